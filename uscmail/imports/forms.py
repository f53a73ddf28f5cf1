"""The import form."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, RadioField, SelectMultipleField, StringField, SubmitField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from ..subscribers.services import ConsentBasis


class ImportForm(FlaskForm):
    """A CSV file, the lists to import into, and the consent basis for every address in it."""

    file = FileField("CSV file (UTF-8, with an 'email' column and optionally 'name')", validators=[FileRequired()])
    lists = SelectMultipleField(
        "Lists",
        choices=[],
        validators=[DataRequired("Choose at least one list.")],
        widget=widgets.ListWidget(prefix_label=False),
        option_widget=widgets.CheckboxInput(),
    )
    basis = RadioField(
        "Consent basis",
        choices=[
            SelectChoice(ConsentBasis.PRIOR_CONSENT.value, "They gave consent we can evidence: subscribe them now"),
            SelectChoice(ConsentBasis.NEEDS_CONFIRMATION.value, "Ask each of them to confirm by email first"),
        ],
        validators=[DataRequired("Choose the consent basis.")],
    )
    note = StringField(
        "Where the consent comes from (recorded on every consent row)",
        validators=[DataRequired("State the consent basis."), Length(max=200)],
    )
    dry_run = BooleanField("Dry run: report what would happen, change nothing", default=True)
    submit = SubmitField("Import")
