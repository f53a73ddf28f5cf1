"""Forms of the organisers' event pages. The event operations check the values; these forms carry the CSRF token and
turn what the browser sent (a recurrence choice, London wall-clock times, rows of reminder times) into the
operations' arguments, refusing with a message what cannot even be read."""

import re
from datetime import date, time
from itertools import zip_longest

from flask import request
from wtforms import BooleanField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from ..forms import Form
from ..validation import InvalidInput, lf_newlines
from .models import Event
from .planning import DEFAULT_BODY, DEFAULT_SUBJECT
from .schedule import RULE_MAX_LENGTH
from .services import (
    NOTE_MAX,
    ORDINALS,
    PLACE_MAX,
    REASON_MAX,
    SUBJECT_MAX,
    TITLE_MAX,
    WEEKDAYS,
    EventFields,
    default_offsets,
)

# Reminder rows offered on the form: the event's own, and empty ones up to this many (the operations allow ten).
OFFSET_ROWS, OFFSET_ROWS_MAX = 4, 10
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(:[0-5]\d(\.\d{1,6})?)?$")
LIST_ID = re.compile(r"^[0-9]{1,9}$")
MONTHLY_DAY = re.compile(r"^FREQ=MONTHLY;BYMONTHDAY=(-1|[1-9]|[12]\d|3[01])$")
MONTHLY_WEEKDAY = re.compile(r"^FREQ=MONTHLY;BYDAY=(-1|[1-4])(MO|TU|WE|TH|FR|SA|SU)$")
WEEKLY = re.compile(r"^FREQ=WEEKLY;BYDAY=(MO|TU|WE|TH|FR|SA|SU)$")


def day_ordinal(day: int) -> str:
    """'1st', '22nd', '31st'."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


RECURRENCES = [
    SelectChoice("monthday", "On the same day of every month"),
    SelectChoice("weekday", "On a weekday of every month, such as the first Saturday"),
    SelectChoice("weekly", "Every week"),
    SelectChoice("rrule", "Advanced: an RRULE of your own"),
]
MONTH_DAYS = [SelectChoice(str(day), f"the {day_ordinal(day)}") for day in range(1, 32)] + [
    SelectChoice("-1", "the last day of the month")
]
ORDINAL_CHOICES = [SelectChoice(str(number), word) for number, word in ORDINALS.items()]
WEEKDAY_CHOICES = [SelectChoice(code, name) for code, name in WEEKDAYS.items()]


def parse_date(value: str | None, what: str) -> date | None:
    """A date typed as YYYY-MM-DD (what a date input sends), None when empty, or InvalidInput."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidInput(f"The {what} could not be read; use the date picker or write it as 2027-03-05.")
    return day


def parse_clock(value: str | None, what: str) -> time | None:
    """A wall-clock time typed as HH:MM (24-hour, what a time input sends), None when empty, or InvalidInput."""
    value = (value or "").strip()
    if not value:
        return None
    match = CLOCK.match(value)
    if match is None:
        raise InvalidInput(f"The {what} could not be read; use the time picker or write it as 18:00.")
    return time(int(match[1]), int(match[2]))


def parse_whole_number(value: str | None, what: str) -> int:
    """A whole number typed into a number input, or InvalidInput."""
    value = (value or "").strip()
    if not re.fullmatch(r"-?[0-9]{1,6}", value):
        raise InvalidInput(f"The {what} must be a whole number.")
    return int(value)


def offset_words(days_before: int, at: str) -> str:
    """'3 days before at 10:00', '1 day before at 18:00', 'on the day at 08:00'."""
    if days_before == 0:
        return f"on the day at {at}"
    return f"{days_before} day{'' if days_before == 1 else 's'} before at {at}"


def offset_key_words(offset_key: str) -> str:
    """The words for a stored offset key such as '3d@10:00'."""
    days, _, at = offset_key.partition("d@")
    return offset_words(int(days), at) if days.isdigit() else offset_key


class EventForm(Form):
    """An event as an organiser writes it. The reminder rows are plain inputs named `days_before` and `at`, read in
    pairs (the template renders them), so there can be as many rows as the event needs."""

    title = StringField("Title", render_kw={"maxlength": TITLE_MAX, "autocomplete": "off"})
    recurrence = RadioField("Repeats", choices=RECURRENCES, default="monthday", validate_choice=False)
    month_day = SelectField("Day of the month", choices=MONTH_DAYS, default="5", validate_choice=False)
    ordinal = SelectField("Which", choices=ORDINAL_CHOICES, default="1", validate_choice=False)
    weekday = SelectField("Weekday", choices=WEEKDAY_CHOICES, default="SA", validate_choice=False)
    weekly_day = SelectField("Day of the week", choices=WEEKDAY_CHOICES, default="SA", validate_choice=False)
    rrule = StringField("RRULE", render_kw={"maxlength": RULE_MAX_LENGTH, "autocomplete": "off", "spellcheck": "false"})
    first_date = StringField("First date", render_kw={"type": "date"})
    start_time = StringField("Start time (London time)", render_kw={"type": "time"})
    duration_minutes = StringField(
        "Duration in minutes", default="120", render_kw={"type": "number", "min": 1, "max": 1440, "step": 1}
    )
    place = StringField("Place", render_kw={"maxlength": PLACE_MAX})
    map_url = StringField("Map link (optional)", render_kw={"type": "url", "maxlength": 500})
    # Rendered by the template with the list's confirmed count; the operations check the id.
    list_id = SelectField("Remind the list", choices=[], validate_choice=False)
    subject_template = StringField(
        "Subject", default=DEFAULT_SUBJECT, render_kw={"maxlength": SUBJECT_MAX, "autocomplete": "off"}
    )
    body_template = TextAreaField(
        "Body", default=DEFAULT_BODY, render_kw={"rows": 14, "spellcheck": "true"}, filters=[lf_newlines]
    )

    @classmethod
    def for_event(cls, event: Event | None, default_list_id: int | None, today: date) -> "EventForm":
        """A form filled in from a saved event, or with the defaults (reminders list, first date today) for a new
        one. The common rules show as their choice; anything else as the advanced RRULE."""
        if event is None:
            form = cls(data={"first_date": today.isoformat(), "list_id": str(default_list_id or "")})
            form.offsets = [(str(o["days_before"]), o["at"]) for o in default_offsets()]
            return form
        data = {
            "title": event.title,
            "rrule": event.rrule,
            "first_date": event.first_date.isoformat(),
            "start_time": event.start_time.strftime("%H:%M") if event.start_time else "",
            "duration_minutes": str(event.duration_minutes),
            "place": event.place,
            "map_url": event.map_url or "",
            "list_id": str(event.list_id),
            "subject_template": event.subject_template,
            "body_template": event.body_template,
            **recurrence_data(event.rrule),
        }
        form = cls(data=data)
        form.offsets = [(str(o["days_before"]), o["at"]) for o in event.reminder_offsets]
        return form

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What the reminder rows hold: as sent when the form was posted, else set by for_event.
        self.offsets: list[tuple[str, str]] = []
        if request.method == "POST":
            self.offsets = list(
                zip_longest(request.form.getlist("days_before"), request.form.getlist("at"), fillvalue="")
            )

    def offset_rows(self) -> list[tuple[str, str]]:
        """The rows to show: the filled ones, then empty ones up to OFFSET_ROWS (one more when all are filled)."""
        filled = [(days, at) for days, at in self.offsets if days.strip() or at.strip()]
        shown = max(OFFSET_ROWS, min(len(filled) + 1, OFFSET_ROWS_MAX))
        return filled + [("", "")] * (shown - len(filled))

    def rule(self) -> str:
        """The RRULE the chosen recurrence stands for, or InvalidInput for a choice that is not offered."""
        kind = self.recurrence.data
        if kind == "monthday":
            if self.month_day.data not in {choice.value for choice in MONTH_DAYS}:
                raise InvalidInput("Choose a day of the month.")
            return f"FREQ=MONTHLY;BYMONTHDAY={self.month_day.data}"
        if kind == "weekday":
            if (
                self.ordinal.data not in {choice.value for choice in ORDINAL_CHOICES}
                or self.weekday.data not in WEEKDAYS
            ):
                raise InvalidInput("Choose which weekday of the month, such as the first Saturday.")
            return f"FREQ=MONTHLY;BYDAY={self.ordinal.data}{self.weekday.data}"
        if kind == "weekly":
            if self.weekly_day.data not in WEEKDAYS:
                raise InvalidInput("Choose the day of the week.")
            return f"FREQ=WEEKLY;BYDAY={self.weekly_day.data}"
        if kind == "rrule":
            return (self.rrule.data or "").strip()
        raise InvalidInput("Choose how the event repeats.")

    def reminder_offsets(self) -> list[dict]:
        """The filled reminder rows as offsets; a half-filled row is refused. Ranges are checked by the operations."""
        offsets = []
        for number, (days, at) in enumerate(self.offsets, start=1):
            if not days.strip() and not at.strip():
                continue
            if not days.strip() or not at.strip():
                raise InvalidInput(f"Reminder {number} needs both the days before and the time.")
            offsets.append(
                {
                    "days_before": parse_whole_number(days, f"number of days before in reminder {number}"),
                    "at": parse_clock(at, f"time of reminder {number}").strftime("%H:%M"),
                }
            )
        return offsets

    def event_fields(self, timezone: str = "Europe/London") -> EventFields:
        """The operations' view of the form, or InvalidInput for what cannot be read."""
        list_id = self.list_id.data or ""
        return EventFields(
            title=self.title.data or "",
            place=self.place.data or "",
            list_id=int(list_id) if LIST_ID.match(list_id) else 0,
            rrule=self.rule(),
            first_date=parse_date(self.first_date.data, "first date"),
            start_time=parse_clock(self.start_time.data, "start time"),
            duration_minutes=parse_whole_number(self.duration_minutes.data, "duration in minutes"),
            timezone=timezone,
            map_url=self.map_url.data or "",
            reminder_offsets=self.reminder_offsets(),
            subject_template=self.subject_template.data or "",
            body_template=self.body_template.data or "",
        )


def recurrence_data(rule: str) -> dict:
    """The form's recurrence choice for a stored rule: one of the common ones, else the advanced RRULE."""
    text = rule.strip().upper()
    if match := MONTHLY_DAY.match(text):
        return {"recurrence": "monthday", "month_day": match[1]}
    if match := MONTHLY_WEEKDAY.match(text):
        return {"recurrence": "weekday", "ordinal": match[1], "weekday": match[2]}
    if match := WEEKLY.match(text):
        return {"recurrence": "weekly", "weekly_day": match[1]}
    return {"recurrence": "rrule"}


class HoldForm(Form):
    """Put an event on hold: why (shown to organisers, and in the notice), and whether to tell the list."""

    reason = StringField("Reason", render_kw={"maxlength": REASON_MAX, "autocomplete": "off"})
    notice = BooleanField("Send a “protests are paused” notice to the list, with this reason")

    def reason_text(self) -> str:
        """The reason as typed; the operation checks it."""
        return self.reason.data or ""


class ResumeForm(Form):
    """Take an event off hold, optionally announcing the next date to the list."""

    notice = BooleanField("Send a “protests resume” notice to the list")


class OverrideForm(Form):
    """A change to one date: cancelled, another time or place, a note. The template gives each date's fields their
    own ids; the date itself is in the address the form posts to."""

    cancelled = BooleanField("Cancel this date")
    start_time = StringField("Different time (London time)", render_kw={"type": "time"})
    place = StringField("Different place", render_kw={"maxlength": PLACE_MAX})
    note = StringField("Note for the day", render_kw={"maxlength": NOTE_MAX})

    @classmethod
    def for_override(cls, override) -> "OverrideForm":
        """Filled in from a stored override, or empty."""
        if override is None:
            return cls(formdata=None)
        return cls(
            formdata=None,
            data={
                "cancelled": override.cancelled,
                "start_time": override.start_time.strftime("%H:%M") if override.start_time else "",
                "place": override.place or "",
                "note": override.note or "",
            },
        )

    def changes(self) -> dict:
        """The operation's keyword arguments; all empty when the organiser pressed "Clear"."""
        if request.form.get("change") == "clear":
            return {}
        return {
            "cancelled": bool(self.cancelled.data),
            "start_time": parse_clock(self.start_time.data, "different time"),
            "place": self.place.data or "",
            "note": self.note.data or "",
        }


class EventTranslationForm(Form):
    """The event's reminder templates in another language."""

    subject = StringField(
        "Subject", render_kw={"maxlength": SUBJECT_MAX, "autocomplete": "off", "dir": "auto", "required": True}
    )
    body = TextAreaField(
        "Body", render_kw={"rows": 14, "spellcheck": "true", "dir": "auto", "required": True}, filters=[lf_newlines]
    )
