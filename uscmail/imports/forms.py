"""The import form, the button that imports a dry run's file for real, and the export's filters."""

from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, RadioField, SelectField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..forms import Form
from ..models import SubscriptionStatus
from ..subscribers.services import ConsentBasis


def at_least_one(form, field) -> None:
    """At least one list is ticked. A plain check, not DataRequired: that one would make every checkbox `required`
    in the browser, so the form could not be sent until every list was ticked."""
    if not field.data:
        raise ValidationError("Choose at least one list to import into.")


class ImportForm(Form):
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


class ImportForRealForm(Form):
    """The button on a dry run's page that imports the same file with the same choices (CSRF token only)."""


class ExportForm(Form):
    """Who to export: lists, subscription status and when they joined. Nothing chosen exports everyone."""

    lists = SelectMultipleField(
        "Lists",
        choices=[],
        coerce=int,
        widget=widgets.ListWidget(prefix_label=False),
        option_widget=widgets.CheckboxInput(),
    )
    status = SelectField(
        "Subscription status",
        choices=[
            SelectChoice("", "Any status"),
            SelectChoice(SubscriptionStatus.CONFIRMED.value, "Confirmed"),
            SelectChoice(SubscriptionStatus.PENDING.value, "Waiting to confirm"),
            SelectChoice(SubscriptionStatus.UNSUBSCRIBED.value, "Unsubscribed"),
        ],
        default="",
    )
    joined_from = DateField("Joined on or after", validators=[Optional()])
    joined_to = DateField("Joined on or before", validators=[Optional()])

    def validate_joined_to(self, field) -> None:
        """The range runs forwards."""
        if field.data and self.joined_from.data and field.data < self.joined_from.data:
            raise ValidationError("The end of the date range is before its start.")
