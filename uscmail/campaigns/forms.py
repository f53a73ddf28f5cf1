"""Forms of the campaign pages, and London time in and out. Values are checked by the campaign services; these forms
carry the CSRF token and turn what the browser sent into the services' arguments."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice

from ..forms import Form
from ..inputguard import database_id
from ..mail.messages import allowed_sender, allowed_senders, sender_address
from ..validation import InvalidInput, lf_newlines
from .models import BodyFormat, Campaign, SavedTemplate
from .saved_templates import NAME_MAX_LENGTH, TemplateFields
from .services import FROM_NAME_MAX_LENGTH, PREHEADER_MAX_LENGTH, SUBJECT_MAX_LENGTH, CampaignFields

LONDON = ZoneInfo("Europe/London")
# What <input type="datetime-local"> sends: minutes, or seconds when the browser offers them.
LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


class CampaignForm(Form):
    """What an organiser writes: content, sender, target lists (checkboxes rendered by the template), archive.

    The sender address is chosen from the allowed senders; a stored one that is no longer allowed is still shown,
    marked, so saving explains why it must change instead of silently changing it.
    """

    subject = StringField("Subject", render_kw={"maxlength": SUBJECT_MAX_LENGTH, "autocomplete": "off"})
    preheader = StringField(
        "Preheader (optional)", render_kw={"maxlength": PREHEADER_MAX_LENGTH, "autocomplete": "off"}
    )
    body_format = RadioField(
        "Body format",
        choices=[SelectChoice(BodyFormat.MARKDOWN.value, "Markdown"), SelectChoice(BodyFormat.HTML.value, "HTML")],
        default=BodyFormat.MARKDOWN.value,
        validate_choice=False,
    )
    body = TextAreaField("Body", render_kw={"rows": 18, "spellcheck": "true"}, filters=[lf_newlines])
    # Rendered by the template as checkboxes with each list's confirmed count; the services check the ids.
    lists = SelectMultipleField("Send to", choices=[], validate_choice=False)
    from_name = StringField("Sender name", render_kw={"maxlength": FROM_NAME_MAX_LENGTH, "autocomplete": "off"})
    # The services check the value: a select is only what an honest browser sends.
    from_email = SelectField("Sender address", choices=[], validate_choice=False)
    reply_to = StringField("Reply-to address (optional)", render_kw={"maxlength": 320, "type": "email"})
    public = BooleanField("Show in the public archive once sent")
    # The campaign's revision when the page was opened; saving refuses a campaign changed since (services).
    revision = HiddenField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(address, address) for address in allowed_senders()]
        current = (self.from_email.data or "").strip()
        if current and allowed_sender(current) is None:
            choices.append((current, f"{current} (no longer allowed)"))
        self.from_email.choices = choices

    @classmethod
    def for_campaign(cls, campaign: Campaign | None) -> "CampaignForm":
        """A form filled in from a saved campaign, or with the default sender for a new one."""
        if campaign is None:
            sender = sender_address()
            return cls(data={"from_name": sender.display_name, "from_email": sender.addr_spec, "lists": []})
        return cls(
            data={
                "subject": campaign.subject,
                "preheader": campaign.preheader,
                "body_format": campaign.body_format.value,
                "body": campaign.body,
                "from_name": campaign.from_name,
                "from_email": campaign.from_email,
                "reply_to": campaign.reply_to or "",
                "public": campaign.public,
                "lists": [str(list_id) for list_id in campaign.list_ids],
                "revision": str(campaign.revision),
            }
        )

    @classmethod
    def for_template(cls, template: SavedTemplate) -> "CampaignForm":
        """A new campaign's form filled in from a saved template, with the default sender."""
        sender = sender_address()
        return cls(
            data={
                "subject": template.subject,
                "preheader": template.preheader,
                "body_format": template.body_format.value,
                "body": template.body,
                "from_name": sender.display_name,
                "from_email": sender.addr_spec,
                "lists": [],
            }
        )

    def based_on_revision(self) -> int | None:
        """The revision the form was opened at (None if it does not say); InvalidInput for anything but an id."""
        raw = (self.revision.data or "").strip()
        if not raw:
            return None
        revision = database_id(raw)
        if revision is None:
            raise InvalidInput("This page is out of date or damaged; reload it and make your changes again.")
        return revision

    def list_ids(self) -> list[int]:
        """The ids of the ticked lists; a value that is not an id is refused like an unknown list."""
        ids = [database_id(value) for value in self.lists.data or []]
        if None in ids:
            raise InvalidInput("One of the chosen lists does not exist.")
        return ids

    def campaign_fields(self) -> CampaignFields:
        """The services' view of the form, or InvalidInput for a list value that is not an id."""
        return CampaignFields(
            subject=self.subject.data or "",
            body=self.body.data or "",
            list_ids=self.list_ids(),
            body_format=self.body_format.data or "",
            preheader=self.preheader.data or "",
            from_name=self.from_name.data,
            from_email=self.from_email.data,
            reply_to=self.reply_to.data,
            public=bool(self.public.data),
        )


class TemplateForm(Form):
    """A saved template: its name, and the subject, preheader, format and body a campaign from it begins with."""

    name = StringField("Template name", render_kw={"maxlength": NAME_MAX_LENGTH, "autocomplete": "off"})
    subject = StringField(
        "Starting subject (optional)", render_kw={"maxlength": SUBJECT_MAX_LENGTH, "autocomplete": "off"}
    )
    preheader = StringField(
        "Starting preheader (optional)", render_kw={"maxlength": PREHEADER_MAX_LENGTH, "autocomplete": "off"}
    )
    body_format = CampaignForm.body_format
    body = TextAreaField("Starting body", render_kw={"rows": 18, "spellcheck": "true"}, filters=[lf_newlines])

    @classmethod
    def for_template(cls, template: SavedTemplate | None) -> "TemplateForm":
        """A form filled in from a saved template, or an empty one."""
        if template is None:
            return cls()
        return cls(
            data={
                "name": template.name,
                "subject": template.subject,
                "preheader": template.preheader,
                "body_format": template.body_format.value,
                "body": template.body,
            }
        )

    def template_fields(self) -> TemplateFields:
        """The services' view of the form."""
        return TemplateFields(
            name=self.name.data or "",
            subject=self.subject.data or "",
            preheader=self.preheader.data or "",
            body_format=self.body_format.data or "",
            body=self.body.data or "",
        )


class SaveAsTemplateForm(Form):
    """ "Save this campaign as a template": the name to keep it under."""

    name = StringField("Template name", render_kw={"maxlength": NAME_MAX_LENGTH, "autocomplete": "off"})


class ScheduleForm(Form):
    """When to send, as the organiser's wall-clock time in London."""

    send_at = StringField("Send at (London time)", render_kw={"type": "datetime-local", "required": True})


class TestSendForm(Form):
    """Addresses for a test copy, separated by commas or new lines."""

    addresses = TextAreaField("Send a test copy to", render_kw={"rows": 3, "autocomplete": "off"})


class ConfirmSendForm(Form):
    """The final "Send to N people" button; N is sent back so a changed count can be shown before anything goes."""

    expected = HiddenField()


class ActionForm(Form):
    """A button that needs nothing but the CSRF token (pause, resume, cancel …)."""


def describe_local(moment: datetime) -> str:
    """'1:30am on Sunday 28 March 2027', for messages about a wall-clock time."""
    hour = moment.hour % 12 or 12
    suffix = "am" if moment.hour < 12 else "pm"
    return f"{hour}:{moment:%M}{suffix} on {moment:%A} {moment.day} {moment:%B %Y}"


def parse_london_time(value: str | None) -> datetime:
    """The aware datetime for a datetime-local value read as London time; InvalidInput for malformed values and for
    wall-clock times that do not exist (clocks go forward) or happen twice (clocks go back) in London."""
    value = (value or "").strip()
    if not value:
        raise InvalidInput("Choose a date and time for the campaign to go out.")
    for pattern in LOCAL_FORMATS:
        try:
            wall = datetime.strptime(value, pattern)  # noqa: DTZ007 - a wall-clock time, placed in London below
            break
        except ValueError:
            continue
    else:
        raise InvalidInput("That date and time could not be read; use the date and time picker.")
    earlier, later = wall.replace(tzinfo=LONDON, fold=0), wall.replace(tzinfo=LONDON, fold=1)
    if earlier.utcoffset() != later.utcoffset():
        # A time in the gap does not survive a round trip through UTC; a time in the overlap does, twice.
        if earlier.astimezone(UTC).astimezone(LONDON).replace(tzinfo=None) != wall:
            raise InvalidInput(
                f"{describe_local(wall)} does not exist in London: the clocks go forward an hour that night. "
                "Choose another time."
            )
        raise InvalidInput(
            f"{describe_local(wall)} happens twice in London: the clocks go back an hour that night. "
            "Choose a time outside that hour."
        )
    return earlier


def in_london(moment: datetime | None) -> datetime | None:
    """The same instant on London's wall clock."""
    return moment.astimezone(LONDON) if moment is not None else None


def london_text(moment: datetime | None) -> str:
    """'Sunday 5 April 2027, 18:30 BST' (or an em dash for no time)."""
    local = in_london(moment)
    if local is None:
        return "—"
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()}"


def london_short(moment: datetime | None) -> str:
    """'5 Apr 2027, 18:30 BST' for tables (or an em dash)."""
    local = in_london(moment)
    if local is None:
        return "—"
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def london_input_value(moment: datetime | None) -> str:
    """The value a datetime-local input needs to show this instant in London time."""
    local = in_london(moment)
    return f"{local:%Y-%m-%dT%H:%M}" if local is not None else ""


def london_date(moment: datetime | None) -> str:
    """'5 April 2027', the London date of an instant (or an em dash)."""
    local = in_london(moment)
    return f"{local.day} {local:%B %Y}" if local is not None else "—"


class CampaignLanguageForm(Form):
    """The language the campaign's own subject and body are written in."""

    locale = SelectField("The campaign's own text is in", choices=[], validate_choice=False)


class TranslationForm(Form):
    """The campaign's subject, preheader and body in another language."""

    subject = StringField("Subject", render_kw={"maxlength": SUBJECT_MAX_LENGTH, "autocomplete": "off", "dir": "auto"})
    preheader = StringField(
        "Preheader (optional)", render_kw={"maxlength": PREHEADER_MAX_LENGTH, "autocomplete": "off", "dir": "auto"}
    )
    body = TextAreaField("Body", render_kw={"rows": 18, "spellcheck": "true", "dir": "auto"}, filters=[lf_newlines])
