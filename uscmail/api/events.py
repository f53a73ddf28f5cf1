"""/api/v1/events: the recurring protests whose reminders go out by themselves; a thin layer over reminders.services.

Viewers read, editors write. A hold or resume notice is queued only after the commit that started its campaign.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import request, url_for

from ..campaigns import tasks
from ..extensions import db
from ..models import utcnow
from ..organisers.models import Role
from ..queueing import after_commit
from ..reminders import services
from ..reminders.models import Event, OccurrenceOverride, Reminder, ReminderStatus
from ..reminders.schedule import Occurrence
from ..reminders.services import EventFields, PlannedReminder
from . import bp, inputs
from .bearer import ApiError, current_api_organiser, token_required

FIELDS = {
    "title", "place", "list", "rrule", "first_date", "start_time", "duration_minutes", "timezone", "map_url",
    "reminder_offsets", "subject_template", "body_template",
}  # fmt: skip
REQUIRED_FIELDS = {"title", "place", "list"}
# null: no start time yet (nothing is sent), no map link, the default subject or body.
NULLABLE_FIELDS = {"start_time", "map_url", "subject_template", "body_template"}
TEXT_FIELDS = ("title", "place", "rrule", "timezone", "map_url", "subject_template", "body_template")
OVERRIDE_FIELDS = {"cancelled", "start_time", "place", "note"}
# An override this far from today is a typing mistake.
DATE_RANGE = timedelta(days=3653)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
HH_MM = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


def _timestamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _clock(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value else None


def occurrence_json(occurrence: Occurrence) -> dict:
    """One occurrence: its start and end in UTC and in the event's time zone, its place, note and whether it is off."""
    return {
        "date": occurrence.date.isoformat(),
        "starts_at": _timestamp(occurrence.starts_at),
        "ends_at": _timestamp(occurrence.ends_at),
        "starts_at_local": occurrence.starts_at.isoformat(),
        "ends_at_local": occurrence.ends_at.isoformat(),
        "place": occurrence.place,
        "note": occurrence.note,
        "cancelled": occurrence.cancelled,
    }


def planned_json(occurrence: Occurrence, planned: PlannedReminder) -> dict:
    """One reminder of an upcoming occurrence. `scheduled`: not decided yet; a cancelled date sends nothing."""
    if planned.reminder is not None:
        status = planned.reminder.status.value
    else:
        status = ReminderStatus.CANCELLED.value if occurrence.cancelled else "scheduled"
    return {
        "offset": planned.time.offset_key,
        "due_at": _timestamp(planned.time.due_at),
        "due_at_local": planned.time.due_at.astimezone(occurrence.starts_at.tzinfo).isoformat(),
        "status": status,
        "campaign_id": planned.reminder.campaign_id if planned.reminder else None,
    }


def reminder_json(reminder: Reminder) -> dict:
    """One entry of the reminder log."""
    return {
        "id": reminder.id,
        "occurrence_date": reminder.occurrence_date.isoformat(),
        "offset": reminder.offset_key,
        "due_at": _timestamp(reminder.due_at),
        "status": reminder.status.value,
        "campaign_id": reminder.campaign_id,
        "detail": reminder.detail,
        "created_at": _timestamp(reminder.created_at),
    }


def event_json(event: Event) -> dict:
    """An event as the API shows it: its fields, the rule in words, whether it is on hold, and its next date."""
    upcoming = services.next_occurrence(event)
    return {
        "id": event.id,
        "public_id": event.public_id,
        "title": event.title,
        "place": event.place,
        "list": event.mailing_list.slug,
        "rrule": event.rrule,
        "rule_text": services.describe_rule(event),
        "first_date": event.first_date.isoformat(),
        "start_time": _clock(event.start_time),
        "duration_minutes": event.duration_minutes,
        "timezone": event.timezone,
        "map_url": event.map_url,
        "reminder_offsets": [dict(offset) for offset in event.reminder_offsets],
        "subject_template": event.subject_template,
        "body_template": event.body_template,
        "on_hold": event.on_hold,
        "hold_reason": event.hold_reason,
        "active_since": _timestamp(event.active_since),
        "last_error": event.last_error,
        "last_error_at": _timestamp(event.last_error_at),
        "next_occurrence": occurrence_json(upcoming) if upcoming else None,
        "created_at": _timestamp(event.created_at),
        "updated_at": _timestamp(event.updated_at),
    }


def override_json(day: date, override: OccurrenceOverride | None) -> dict:
    """The change stored for one date; all empty when there is none."""
    return {
        "date": day.isoformat(),
        "cancelled": bool(override and override.cancelled),
        "start_time": _clock(override.start_time) if override else None,
        "place": override.place if override else None,
        "note": override.note if override else None,
    }


def event_or_404(event_id: int, for_update: bool = False) -> Event:
    """The event with this id (locked against the reminder beat with for_update), or ApiError 404."""
    # FOR UPDATE OF events: PostgreSQL can't lock the outer-joined list row, and needn't.
    lock = {"of": Event} if for_update else None
    event = db.session.get(Event, event_id, with_for_update=lock) if event_id <= inputs.MAX_ID else None
    if event is None:
        raise ApiError(404, "There is no event with that id.")
    return event


# --- reading input --------------------------------------------------------------------------------------------------


def _date(raw: Any, what: str) -> date:
    """A YYYY-MM-DD date; 400 otherwise."""
    try:
        if isinstance(raw, str) and DATE.fullmatch(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise inputs.bad_request(f"{what} must be a date as YYYY-MM-DD.")


def _near(day: date, what: str) -> date:
    """The date, if it is within ten years of today; 422 otherwise."""
    if abs(day - utcnow().date()) > DATE_RANGE:
        raise inputs.unprocessable(f"{what} must be within ten years of today.")
    return day


def _clock_field(payload: dict, key: str) -> time | None:
    """payload[key] as a wall-clock time "HH:MM", or None for null; 400 otherwise."""
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not HH_MM.fullmatch(value):
        raise inputs.bad_request(f"'{key}' must be a time as HH:MM (24-hour) or null.")
    return time.fromisoformat(value)


def _flag(payload: dict, key: str) -> bool:
    """payload[key] as true or false (false when left out); 400 otherwise."""
    value = payload.get(key, False)
    if not isinstance(value, bool):
        raise inputs.bad_request(f"'{key}' must be true or false.")
    return value


def _offsets(payload: dict) -> list[dict]:
    """reminder_offsets in its documented shape; their values (how many, how far ahead, repeats) are the services'."""
    value = payload["reminder_offsets"]
    shape = '\'reminder_offsets\' must be a list of objects like {"days_before": 3, "at": "10:00"}.'
    if not isinstance(value, list):
        raise inputs.bad_request(shape)
    for offset in value:
        if not isinstance(offset, dict) or set(offset) != {"days_before", "at"}:
            raise inputs.bad_request(shape)
        days, at = offset["days_before"], offset["at"]
        if isinstance(days, bool) or not isinstance(days, int) or not isinstance(at, str) or not HH_MM.fullmatch(at):
            raise inputs.bad_request(shape)
    return [dict(offset) for offset in value]


def _fields(payload: dict[str, Any], current: EventFields) -> EventFields:
    """`current` with the payload's fields applied; 400 for a wrong shape, 422 for a value the services can't take.

    Everything else (lengths, line breaks, the list, rule, offsets and templates) is the services' to refuse.
    """
    # The shape first (400), then the values (422).
    for key in TEXT_FIELDS:
        if key in payload:
            setattr(current, key, inputs.string_field(payload, key, nullable=key in NULLABLE_FIELDS))
    slug = inputs.string_field(payload, "list") if "list" in payload else None
    first_date = _date(payload["first_date"], "'first_date'") if "first_date" in payload else None
    if "start_time" in payload:
        current.start_time = _clock_field(payload, "start_time")
    if "duration_minutes" in payload:
        minutes = payload["duration_minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise inputs.bad_request("'duration_minutes' must be a whole number.")
        current.duration_minutes = minutes
    if "reminder_offsets" in payload:
        current.reminder_offsets = _offsets(payload)

    if first_date is not None:
        current.first_date = first_date
    if slug is not None:
        # joining=False: an archived list is refused by the services, in the words of reminders.
        current.list_id = inputs.lists_by_slug([slug], joining=False)[0].id
    return current


def _stored_fields(event: Event) -> EventFields:
    """The event's current values, as the fields a partial update starts from."""
    return EventFields(
        title=event.title,
        place=event.place,
        list_id=event.list_id,
        rrule=event.rrule,
        first_date=event.first_date,
        start_time=event.start_time,
        duration_minutes=event.duration_minutes,
        timezone=event.timezone,
        map_url=event.map_url,
        reminder_offsets=[dict(offset) for offset in event.reminder_offsets],
        subject_template=event.subject_template,
        body_template=event.body_template,
    )


def _occurrence_date(raw: str) -> date:
    """The date in the path: 400 unless YYYY-MM-DD, 422 if it is far off (set_override refuses dates off the rule)."""
    return _near(_date(raw, "The date in the path"), "The date")


def _after_hold_or_resume(event: Event, notice_campaign_id: int | None):
    """Commit, and queue the notice if there is one: 202 with its id, else 200."""
    if notice_campaign_id is None:
        db.session.commit()
        return {"event": event_json(event), "notice_campaign_id": None}
    after_commit(tasks.start_campaign, notice_campaign_id)
    db.session.commit()
    return {"event": event_json(event), "notice_campaign_id": notice_campaign_id}, 202


# --- endpoints ------------------------------------------------------------------------------------------------------


@bp.get("/events")
@token_required(Role.VIEWER)
def event_list():
    """Every event, oldest first."""
    if request.args:
        raise inputs.bad_request(f"The event list takes no query parameters (got: {', '.join(sorted(request.args))}).")
    return {"items": [event_json(event) for event in services.all_events()]}


@bp.post("/events")
@token_required(Role.EDITOR)
def create_event():
    """A new event, on hold until an organiser has reviewed it and resumes it."""
    payload = inputs.json_body(allowed=FIELDS, required=REQUIRED_FIELDS)
    fields = _fields(payload, EventFields(title="", place="", list_id=0))
    event = services.create_event(fields, current_api_organiser())
    db.session.commit()
    return event_json(event), 201, {"Location": url_for(".event_detail", event_id=event.id)}


@bp.get("/events/<int:event_id>")
@token_required(Role.VIEWER)
def event_detail(event_id: int):
    """One event, with its rule in words and its next date."""
    return event_json(event_or_404(event_id))


@bp.patch("/events/<int:event_id>")
@token_required(Role.EDITOR)
def update_event(event_id: int):
    """Change some fields; the others keep their values. Reminders already decided are not sent again."""
    event = event_or_404(event_id)
    payload = inputs.json_body(allowed=FIELDS)
    if not payload:
        raise inputs.bad_request(f"Send at least one of: {', '.join(sorted(FIELDS))}.")
    services.update_event(event, _fields(payload, _stored_fields(event)), current_api_organiser())
    db.session.commit()
    return event_json(event)


@bp.delete("/events/<int:event_id>")
@token_required(Role.EDITOR)
def delete_event(event_id: int):
    """Delete an event, unless one of its reminders has been sent (409)."""
    services.delete_event(event_or_404(event_id, for_update=True), current_api_organiser())
    db.session.commit()
    return "", 204


@bp.post("/events/<int:event_id>/hold")
@token_required(Role.EDITOR)
def hold_event(event_id: int):
    """Stop the reminders, with a reason; with `notice`, tell the list."""
    event = event_or_404(event_id)
    payload = inputs.json_body(allowed={"reason", "notice"}, required={"reason"})
    reason, notice = inputs.string_field(payload, "reason"), _flag(payload, "notice")
    return _after_hold_or_resume(event, services.hold(event, reason, current_api_organiser(), notice=notice))


@bp.post("/events/<int:event_id>/resume")
@token_required(Role.EDITOR)
def resume_event(event_id: int):
    """Send reminders again from now on; with `notice`, announce the next date to the list."""
    event = event_or_404(event_id)
    payload = inputs.json_body(allowed={"notice"}, empty_ok=True)
    notice = _flag(payload, "notice")
    return _after_hold_or_resume(event, services.resume(event, current_api_organiser(), notice=notice))


@bp.get("/events/<int:event_id>/occurrences")
@token_required(Role.VIEWER)
def occurrences(event_id: int):
    """The next `count` dates from today, each with its reminders and what became of them."""
    event = event_or_404(event_id)
    count = inputs.int_arg(
        inputs.query_args({"count"}), "count", services.OCCURRENCES_DEFAULT, 1, services.OCCURRENCES_MAX
    )
    return {
        "items": [
            {**occurrence_json(occurrence), "reminders": [planned_json(occurrence, item) for item in planned]}
            for occurrence, planned in services.upcoming_with_reminders(event, count)
        ]
    }


@bp.put("/events/<int:event_id>/occurrences/<occurrence_date>")
@token_required(Role.EDITOR)
def set_override(event_id: int, occurrence_date: str):
    """Change one date: cancel it, or move its time or place, or add a note. Fields left out are cleared."""
    event = event_or_404(event_id)
    payload = inputs.json_body(allowed=OVERRIDE_FIELDS)
    cancelled, start_time = _flag(payload, "cancelled"), _clock_field(payload, "start_time")
    place = inputs.string_field(payload, "place", nullable=True)
    note = inputs.string_field(payload, "note", nullable=True)
    day = _occurrence_date(occurrence_date)
    override = services.set_override(
        event, day, current_api_organiser(), cancelled=cancelled, start_time=start_time, place=place, note=note
    )
    db.session.commit()
    return override_json(day, override)


@bp.delete("/events/<int:event_id>/occurrences/<occurrence_date>")
@token_required(Role.EDITOR)
def clear_override(event_id: int, occurrence_date: str):
    """Undo any change to one date: it happens as the rule says."""
    event = event_or_404(event_id)
    services.set_override(event, _occurrence_date(occurrence_date), current_api_organiser())
    db.session.commit()
    return "", 204


@bp.get("/events/<int:event_id>/reminders")
@token_required(Role.VIEWER)
def reminder_log(event_id: int):
    """The reminders decided so far (sent, late, skipped, cancelled), newest first."""
    event = event_or_404(event_id)
    limit = inputs.int_arg(inputs.query_args({"limit"}), "limit", services.LOG_LIMIT_DEFAULT, 1, services.LOG_LIMIT_MAX)
    return {"items": [reminder_json(reminder) for reminder in services.reminder_log(event, limit)]}
