"""The import form, and the button that imports a dry run's file for real."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, RadioField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from ..subscribers.services import ConsentBasis


def at_least_one(form, field) -> None:
    """At least one list is ticked. A plain check, not DataRequired: that one would make every checkbox `required`
    in the browser, so the form could not be sent until every list was ticked."""
    if not field.data:
        raise ValidationError("Choose at least one list to import into.")


class ImportForm(FlaskForm):
    """A CSV file, the lists to import into, and the consent basis for every address in it."""

    file = FileField("CSV file", validators=[FileRequired("Choose the CSV file to import.")])
    lists = SelectMultipleField(
        "Lists to add them to",
        choices=[],
        validators=[at_least_one],
        widget=widgets.ListWidget(prefix_label=False),
        option_widget=widgets.CheckboxInput(),
    )
    basis = RadioField(
        "How they consented",
        choices=[
            SelectChoice(ConsentBasis.PRIOR_CONSENT.value, "Already consented elsewhere: subscribe them now"),
            SelectChoice(ConsentBasis.NEEDS_CONFIRMATION.value, "Ask each of them to confirm by email first"),
        ],
        validators=[DataRequired("Choose how they consented.")],
    )
    note = StringField(
        "Where the consent comes from",
        validators=[DataRequired("State the consent basis."), Length(max=200)],
    )
    dry_run = BooleanField("Dry run: show what would happen, change nothing", default=True)


class ImportForRealForm(FlaskForm):
    """The button on a dry run's page that imports the same file with the same choices (CSRF token only)."""
