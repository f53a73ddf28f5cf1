"""Organiser operations on events, called the same way from pages, the API and tests: create and edit, hold and
resume (with optional notices), per-occurrence overrides, and what the event page shows. They flush; for any campaign
id returned the caller asks for `campaigns.tasks.start_campaign` with `after_commit`, then commits."""

import re
from dataclasses import dataclass
from datetime import date, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa

from ..campaigns import render
from ..campaigns import services as campaigns
from ..campaigns.models import Campaign, CampaignKind
from ..campaigns.services import TransitionRefused
from ..extensions import db
from ..mail.messages import sender_address
from ..models import MailingList, utcnow
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput, single_line_text
from .models import DEFAULT_OFFSETS, Event, EventTranslation, OccurrenceOverride, Reminder, ReminderStatus
from .planning import DEFAULT_BODY, DEFAULT_SUBJECT, overrides_of, render_content
from .planning import campaign_source as plain_text
from .schedule import (
    Occurrence,
    ReminderTime,
    RuleInvalid,
    local_datetime,
    occurrence_dates,
    occurrences,
    parse_offsets,
    parse_rule,
    reminder_times,
)

TITLE_MAX, PLACE_MAX, NOTE_MAX, REASON_MAX, SUBJECT_MAX, BODY_MAX = 200, 300, 1000, 500, 255, 20_000
FIRST_DATE_RANGE_DAYS = 3653
HORIZON_DAYS = 400
# How many upcoming dates, and how many decided reminders, one request may ask for.
OCCURRENCES_DEFAULT, OCCURRENCES_MAX = 6, 60
LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX = 50, 200
WEEKDAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday", "SA": "Saturday",
            "SU": "Sunday"}  # fmt: skip
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}


@dataclass
class EventFields:
    """What an organiser sets on an event; checked by `clean_event_fields` before it is stored."""

    title: str
    place: str
    list_id: int
    rrule: str = "FREQ=MONTHLY;BYMONTHDAY=5"
    first_date: date | None = None
    start_time: time | None = None
    duration_minutes: int = 120
    timezone: str = "Europe/London"
    map_url: str | None = None
    reminder_offsets: list[dict] | None = None
    subject_template: str | None = None
    body_template: str | None = None


def clean_event_fields(fields: EventFields) -> dict:
    """Checked column values, or InvalidInput naming the problem; the templates are tried on a sample occurrence."""

    today = utcnow().date()
    values = {
        "title": single_line_text(fields.title, "title", TITLE_MAX),
        "place": single_line_text(fields.place, "place", PLACE_MAX),
        "first_date": fields.first_date or today,
        "start_time": fields.start_time,
        "subject_template": single_line_text(
            fields.subject_template or DEFAULT_SUBJECT, "subject template", SUBJECT_MAX
        ),
        "body_template": multiline_text(fields.body_template or DEFAULT_BODY, "body template", BODY_MAX),
    }
    # Far off is a typing mistake, and would make every view of the event walk years of dates.
    if abs((values["first_date"] - today).days) > FIRST_DATE_RANGE_DAYS:
        raise InvalidInput("The first date must be within ten years of today.")
    zone_name = (fields.timezone or "Europe/London").strip()
    if zone_name not in time_zones():
        raise InvalidInput(f"{zone_name[:64]!r} is not a time zone name such as Europe/London.")
    values["timezone"] = zone_name
    if not isinstance(fields.duration_minutes, int) or not 1 <= fields.duration_minutes <= 24 * 60:
        raise InvalidInput("The duration must be between 1 minute and 24 hours.")
    values["duration_minutes"] = fields.duration_minutes
    map_url = multiline_text((fields.map_url or "").strip(), "map link", 500) or None
    if map_url and (not re.match(r"^https://[^\s/]+\.[^\s]*$", map_url) or len(map_url) > 500):
        raise InvalidInput("The map link must be an https:// address.")
    values["map_url"] = map_url
    mailing_list = db.session.get(MailingList, fields.list_id) if fields.list_id else None
    if mailing_list is None or mailing_list.archived:
        raise InvalidInput("Choose an active list to remind.")
    values["list_id"] = mailing_list.id
    try:
        parse_rule(fields.rrule, values["first_date"])
        values["rrule"] = fields.rrule.strip().removeprefix("RRULE:")
        values["reminder_offsets"] = parse_offsets(
            fields.reminder_offsets if fields.reminder_offsets is not None else default_offsets()
        )
    except RuleInvalid as exc:
        raise InvalidInput(str(exc)) from None
    probe = Event(**values)
    try:
        upcoming = occurrence_dates(probe, values["first_date"], values["first_date"] + timedelta(days=HORIZON_DAYS))
    except RuleInvalid as exc:
        raise InvalidInput(str(exc)) from None
    if not upcoming:
        raise InvalidInput("That rule gives no dates in the next year; check it.")
    try_templates(probe, upcoming[0])
    return values


def multiline_text(value: str, what: str, max_length: int) -> str:
    """Multi-line text: any length up to max_length, but no NUL or broken characters (they can't be stored)."""
    if any(ch == "\x00" or "\ud800" <= ch <= "\udfff" for ch in value):
        raise InvalidInput(f"The {what} contains characters that can't be stored (NUL or a broken character).")
    if len(value) > max_length:
        raise InvalidInput(f"Please keep the {what} under {max_length:,} characters.")
    return value


@cache
def time_zones() -> frozenset[str]:
    """Every IANA time zone name this machine knows."""
    return frozenset(available_timezones())


def default_offsets() -> list[dict]:
    """Three days before at 10:00, and the morning of the protest at 08:00."""

    return [dict(offset) for offset in DEFAULT_OFFSETS]


def try_templates(event: Event, day: date, translation: EventTranslation | None = None) -> None:
    """Render the templates (the event's, or a translation's) for a sample occurrence and check the result as a
    campaign body would be checked."""

    zone = ZoneInfo(event.timezone)

    starts_at = local_datetime(day, event.start_time or time(18, 0), zone)
    sample = Occurrence(0, day, starts_at, starts_at, event.place, "Bring banners", False)
    content = render_content(event, sample, translation)
    if not content.subject:
        raise InvalidInput("The subject template gives an empty subject.")
    if len(content.subject) > SUBJECT_MAX:
        raise InvalidInput(f"The subject template gives a subject over {SUBJECT_MAX} characters.")
    render.check_template(content.body)


def create_event(fields: EventFields, actor: Organiser | str) -> Event:
    """A new event, on hold until an organiser resumes it (so a half-finished event sends nothing)."""
    event = Event(on_hold=True, hold_reason="New: review the event, then resume it.", **clean_event_fields(fields))
    db.session.add(event)
    db.session.flush()
    audit.record(actor, "event.create", "event", event.id)
    return event


def update_event(event: Event, fields: EventFields, actor: Organiser | str) -> Event:
    """Change an event; reminders already recorded keep their rows, so nothing is sent twice after a change."""
    for key, value in clean_event_fields(fields).items():
        setattr(event, key, value)
    # The organiser has looked at it again: the beat's last complaint about it is cleared.
    event.last_error = event.last_error_at = None
    db.session.flush()
    audit.record(actor, "event.update", "event", event.id)
    return event


def all_events() -> list[Event]:
    """Every event, oldest first."""
    return list(db.session.scalars(sa.select(Event).order_by(Event.id)))


def delete_event(event: Event, actor: Organiser | str) -> None:
    """Delete an event none of whose reminders went out (with its overrides and its log of unsent reminders).

    An event with a sent reminder stays, so the history keeps what it refers to: put it on hold instead.
    """
    sent = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Reminder)
        .where(Reminder.event_id == event.id, Reminder.status.in_((ReminderStatus.SENT, ReminderStatus.LATE)))
    )
    if sent:
        raise TransitionRefused("Reminders of this event have been sent, so it stays in the history; put it on hold.")
    audit.record(actor, "event.delete", "event", event.id)
    db.session.delete(event)
    db.session.flush()


def next_occurrence(event: Event) -> Occurrence | None:
    """The next occurrence that is not cancelled and has not begun, or None."""
    now = utcnow()
    for occurrence in occurrences(event, overrides_of(event), now.date(), (now + timedelta(days=HORIZON_DAYS)).date()):
        if occurrence.starts_at > now and not occurrence.cancelled:
            return occurrence
    return None


def _notice(event: Event, subject: str, body: str) -> int:
    """A one-off campaign to the event's list (a paused or resumed notice), started; returns its id."""

    fields = campaigns.CampaignFields(subject=subject, body=body, list_ids=[event.list_id])
    campaign = campaigns.create_campaign(fields, "reminders", kind=CampaignKind.REMINDER)
    campaigns.start_sending(campaign, "reminders")
    return campaign.id


def hold(event: Event, reason: str, actor: Organiser | str, notice: bool = False) -> int | None:
    """Put the event on hold: no reminders go out. With `notice`, tell the list; returns that campaign's id."""
    if event.on_hold:
        raise TransitionRefused("This event is already on hold.")
    reason = single_line_text(reason, "reason for the hold", REASON_MAX)
    event.on_hold, event.hold_reason = True, reason
    audit.record(actor, "event.hold", "event", event.id, notice=notice)
    db.session.flush()
    if not notice:
        return None
    # Title, reason and place are plain text in the notice, never template code or Markdown.
    body = f"Dear {{{{ subscriber.name }}}},\n\nOur protests ({plain_text(event.title)}) are paused for now.\n\n"
    body += f"{plain_text(reason)}\n\n"
    body += "We will write again when they resume."
    return _notice(event, f"Protests paused: {event.title}", body)


def resume(event: Event, actor: Organiser | str, notice: bool = False) -> int | None:
    """Take the event off hold; reminders due from now on go out. With `notice`, announce the next date."""
    if not event.on_hold:
        raise TransitionRefused("This event is not on hold.")
    if event.start_time is None:
        raise InvalidInput("Set the start time of the protest before resuming it.")
    event.on_hold, event.hold_reason, event.active_since = False, None, utcnow()
    audit.record(actor, "event.resume", "event", event.id, notice=notice)
    db.session.flush()
    upcoming = next_occurrence(event)
    if not notice or upcoming is None:
        return None
    when = upcoming.starts_at.strftime("%A %-d %B %Y at %H:%M")
    body = f"Dear {{{{ subscriber.name }}}},\n\nOur protests resume on **{when}**, at {plain_text(upcoming.place)}.\n\n"
    body += "You will get a reminder before each one."
    return _notice(event, f"Protests resume on {upcoming.starts_at.strftime('%-d %B')}: {event.title}", body)


def set_override(
    event: Event,
    occurrence_date: date,
    actor: Organiser | str,
    cancelled: bool = False,
    start_time: time | None = None,
    place: str | None = None,
    note: str | None = None,
) -> OccurrenceOverride | None:
    """Change one occurrence (None clears the override when nothing is set). The date must be one the rule gives."""
    if occurrence_date not in occurrence_dates(event, occurrence_date, occurrence_date):
        raise InvalidInput(f"{occurrence_date:%-d %B %Y} is not a date of this event.")
    place = single_line_text(place, "place", PLACE_MAX, required=False) or None
    note = multiline_text((note or "").strip(), "note", NOTE_MAX) or None
    override = db.session.scalar(
        sa.select(OccurrenceOverride).where(
            OccurrenceOverride.event_id == event.id, OccurrenceOverride.occurrence_date == occurrence_date
        )
    )
    if not (cancelled or start_time or place or note):
        if override is not None:
            db.session.delete(override)
        audit.record(actor, "event.override_clear", "event", event.id, date=occurrence_date.isoformat())
        db.session.flush()
        return None
    if override is None:
        override = OccurrenceOverride(event_id=event.id, occurrence_date=occurrence_date)
        db.session.add(override)
    override.cancelled, override.start_time, override.place, override.note = cancelled, start_time, place, note
    audit.record(actor, "event.override", "event", event.id, date=occurrence_date.isoformat(), cancelled=cancelled)
    db.session.flush()
    return override


@dataclass(frozen=True)
class PlannedReminder:
    """One reminder of an upcoming occurrence: when it is due, and its row once it has been decided."""

    time: ReminderTime
    reminder: Reminder | None


def upcoming_with_reminders(
    event: Event, count: int = OCCURRENCES_DEFAULT
) -> list[tuple[Occurrence, list[PlannedReminder]]]:
    """The next `count` occurrences (from today) with their reminder times and what became of each."""

    today = utcnow().date()
    found = occurrences(event, overrides_of(event), today, today + timedelta(days=HORIZON_DAYS))[:count]
    rows = db.session.scalars(
        sa.select(Reminder).where(Reminder.event_id == event.id, Reminder.occurrence_date >= today)
    ).all()
    decided = {(row.occurrence_date, row.offset_key): row for row in rows}
    return [
        (
            occurrence,
            [
                PlannedReminder(due, decided.get((occurrence.date, due.offset_key)))
                for due in reminder_times(event, occurrence)
            ],
        )
        for occurrence in found
    ]


def reminder_log(event: Event, limit: int = LOG_LIMIT_DEFAULT) -> list[Reminder]:
    """The event's most recent reminder decisions (sent, late, skipped, cancelled), newest first."""
    return list(
        db.session.scalars(
            sa.select(Reminder).where(Reminder.event_id == event.id).order_by(Reminder.due_at.desc()).limit(limit)
        )
    )


def preview_next_reminder(event: Event, translation: EventTranslation | None = None):
    """The next reminder exactly as it will be sent (a RenderedMail for a sample subscriber), or None; in the
    translation's language if given."""

    upcoming = next_occurrence(event)
    if upcoming is None:
        return None
    content = render_content(event, upcoming, translation)
    sender = sender_address()
    # Built in memory only (never added to the session): the same content and layout the reminder will have.
    campaign = Campaign(
        kind=CampaignKind.REMINDER,
        subject=content.subject[:SUBJECT_MAX],
        body=content.body,
        from_name=sender.display_name or "USC-UK",
        from_email=sender.addr_spec,
        lists=[event.mailing_list],
        locale=translation.locale if translation else "en",
    )
    return render.render_preview(campaign)


def get_event(event_id: int) -> Event | None:
    """The event with this id, or None."""
    return db.session.get(Event, event_id)


def describe_rule(event: Event) -> str:
    """The recurrence in words for the common rules ("on the 5th of every month"), else the rule itself."""
    parts = dict(part.split("=", 1) for part in event.rrule.upper().split(";") if "=" in part)
    freq, monthday, byday = parts.get("FREQ"), parts.get("BYMONTHDAY"), parts.get("BYDAY")
    if parts.get("INTERVAL", "1") != "1" or not set(parts) <= {"FREQ", "BYMONTHDAY", "BYDAY", "INTERVAL"}:
        return event.rrule
    if freq == "MONTHLY" and monthday and not byday:
        if not re.fullmatch(r"-1|[1-9]|[12][0-9]|3[01]", monthday):
            return event.rrule  # a list of days, or counted from the end
        day = int(monthday)
        if day == -1:
            return "on the last day of every month"
        suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        text = f"on the {day}{suffix} of every month"
        return text + (f" (months without a {day}{suffix} are skipped)" if day > 28 else "")
    match = re.fullmatch(r"(-?\d)([A-Z]{2})", byday or "")
    if freq == "MONTHLY" and match and int(match[1]) in ORDINALS and match[2] in WEEKDAYS:
        return f"on the {ORDINALS[int(match[1])]} {WEEKDAYS[match[2]]} of every month"
    if freq == "WEEKLY" and byday in WEEKDAYS:
        return f"every {WEEKDAYS[byday]}"
    return event.rrule
