"""The event part of the OpenAPI document: /api/v1/events, their dates, overrides and reminders."""

from ..reminders.models import ReminderStatus
from ..reminders.schedule import FREQUENCIES, RULE_MAX_LENGTH
from ..reminders.services import (
    LOG_LIMIT_DEFAULT,
    LOG_LIMIT_MAX,
    NOTE_MAX,
    OCCURRENCES_DEFAULT,
    OCCURRENCES_MAX,
    PLACE_MAX,
    REASON_MAX,
    SUBJECT_MAX,
    TITLE_MAX,
)
from .openapi_parts import SLUG, TIMESTAMP, answer, body, closed, errors, operation, ref

EVENT_ID = {"name": "event_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
OCCURRENCE_DATE = {
    "name": "occurrence_date",
    "in": "path",
    "required": True,
    "description": "A date the event's rule gives (YYYY-MM-DD), within ten years of today.",
    "schema": {"type": "string", "format": "date"},
}
EVENT_ERRORS = {
    404: "No such event.",
    409: "The event's state does not allow this: holding an event that is on hold, resuming one that is not, "
    "deleting one whose reminders have been sent.",
    422: "Well-formed, but a value is refused: a blank or over-long title or place, line breaks in a one-line field, "
    "an unknown or archived list, a recurrence rule that can't be read or gives no dates in the next year, an unknown "
    "time zone, reminder times out of range or given twice, a template that can't be used, a date the rule does not "
    "give, resuming without a start time, a notice to a list with nobody confirmed.",
}
TAGS = {"tags": ["events"]}
DATE = {"type": "string", "format": "date"}
CLOCK = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "24-hour HH:MM."}
NULLABLE_CLOCK = {**CLOCK, "type": ["string", "null"]}
REMINDER_STATUSES = ["scheduled", *(status.value for status in ReminderStatus)]


def event_errors(*codes: int) -> dict:
    """Error responses worded for events."""
    return errors(*codes, descriptions=EVENT_ERRORS)


def _editable_fields() -> dict:
    return {
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
        "place": {"type": "string", "minLength": 1, "maxLength": PLACE_MAX},
        "list": {**SLUG, "description": "The slug of the list to remind, e.g. london-protest-reminders."},
        "rrule": {
            "type": "string",
            "maxLength": RULE_MAX_LENGTH,
            "default": "FREQ=MONTHLY;BYMONTHDAY=5",
            "description": "An RFC 5545 RRULE without DTSTART, repeating "
            + ", ".join(FREQUENCIES)
            + "; the time of day is `start_time`, so BYHOUR, BYMINUTE and BYSECOND are refused.",
        },
        "first_date": {**DATE, "description": "Dates start on or after this day (default: today)."},
        "start_time": {
            **NULLABLE_CLOCK,
            "description": "Local wall-clock time in `timezone`. Null: not set yet, and nothing is sent.",
        },
        "duration_minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 120},
        "timezone": {"type": "string", "default": "Europe/London", "description": "An IANA time zone name."},
        "map_url": {"type": ["string", "null"], "maxLength": 500, "description": "An https:// link, or null."},
        "reminder_offsets": {
            "type": "array",
            "items": ref("ReminderOffset"),
            "minItems": 1,
            "maxItems": 10,
            "description": "Default: 3 days before at 10:00 and on the day at 08:00.",
        },
        "subject_template": {
            "type": ["string", "null"],
            "maxLength": SUBJECT_MAX,
            "description": "A template with {{ title }}, {{ date }}, {{ time }}, {{ place }}, {{ notes }}; "
            "null: the default.",
        },
        "body_template": {
            "type": ["string", "null"],
            "description": "Markdown template with the same variables and {{ subscriber.name }}; null: the default.",
        },
    }


def _occurrence_fields() -> dict:
    return {
        "date": {**DATE, "description": "The date the rule gives; it names the occurrence."},
        "starts_at": TIMESTAMP,
        "ends_at": TIMESTAMP,
        "starts_at_local": {**TIMESTAMP, "description": "In the event's time zone, with its offset."},
        "ends_at_local": TIMESTAMP,
        "place": {"type": "string"},
        "note": {"type": ["string", "null"]},
        "cancelled": {"type": "boolean"},
    }


def event_schemas() -> dict:
    """The component schemas of the event endpoints."""
    fields = _editable_fields()
    occurrence = _occurrence_fields()
    return {
        "ReminderOffset": closed(
            {"days_before": {"type": "integer", "minimum": 0, "maximum": 60}, "at": CLOCK},
        ),
        "Occurrence": closed(occurrence),
        "Event": closed(
            {
                "id": {"type": "integer"},
                "public_id": {"type": "string", "description": "Names the event in calendar invitations."},
                **{key: value for key, value in fields.items() if key not in {"first_date", "subject_template"}},
                "first_date": DATE,
                "rule_text": {"type": "string", "description": 'The rule in words: "on the 5th of every month".'},
                "subject_template": {"type": "string"},
                "body_template": {"type": "string"},
                "on_hold": {"type": "boolean", "description": "No reminders go out; new events start on hold."},
                "hold_reason": {"type": ["string", "null"]},
                "active_since": {
                    **TIMESTAMP,
                    "description": "Created or last resumed: reminders due before then are not sent.",
                },
                "last_error": {
                    "type": ["string", "null"],
                    "description": "The last problem the reminder beat met with this event; cleared when it is saved.",
                },
                "last_error_at": {"oneOf": [TIMESTAMP, {"type": "null"}]},
                "next_occurrence": {
                    "oneOf": [ref("Occurrence"), {"type": "null"}],
                    "description": "The next date not cancelled and not begun; null without a start time.",
                },
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "EventPage": closed({"items": {"type": "array", "items": ref("Event")}}),
        "NewEvent": closed(fields, required=["title", "place", "list"]),
        "EventPatch": closed(fields, required=[], minProperties=1),
        "HoldRequest": closed(
            {
                "reason": {"type": "string", "minLength": 1, "maxLength": REASON_MAX},
                "notice": {"type": "boolean", "default": False, "description": "Mail the list that protests pause."},
            },
            required=["reason"],
        ),
        "ResumeRequest": closed(
            {
                "notice": {
                    "type": "boolean",
                    "default": False,
                    "description": "Mail the list the next date (not sent if there is none).",
                }
            },
            required=[],
        ),
        "HoldResult": closed(
            {
                "event": ref("Event"),
                "notice_campaign_id": {
                    "type": ["integer", "null"],
                    "description": "The notice campaign, queued to send; follow it at /api/v1/campaigns/{id}/stats.",
                },
            }
        ),
        "PlannedReminder": closed(
            {
                "offset": {"type": "string", "description": 'Days before and local time, e.g. "3d@10:00".'},
                "due_at": TIMESTAMP,
                "due_at_local": TIMESTAMP,
                "status": {
                    "enum": REMINDER_STATUSES,
                    "description": "scheduled: not decided yet (nothing goes out while the event is on hold); "
                    "sent, late, skipped or cancelled once its time has come. A cancelled date shows cancelled.",
                },
                "campaign_id": {"type": ["integer", "null"]},
            }
        ),
        "PlannedOccurrence": closed(
            {**occurrence, "reminders": {"type": "array", "items": ref("PlannedReminder")}},
        ),
        "OccurrencePage": closed({"items": {"type": "array", "items": ref("PlannedOccurrence")}}),
        "OccurrenceOverride": closed(
            {
                "cancelled": {"type": "boolean", "default": False},
                "start_time": {**NULLABLE_CLOCK, "description": "A different time that day; null: the usual one."},
                "place": {"type": ["string", "null"], "maxLength": PLACE_MAX},
                "note": {"type": ["string", "null"], "maxLength": NOTE_MAX, "description": "Shown in the reminders."},
            },
            required=[],
        ),
        "StoredOverride": closed(
            {
                "date": DATE,
                "cancelled": {"type": "boolean"},
                "start_time": NULLABLE_CLOCK,
                "place": {"type": ["string", "null"]},
                "note": {"type": ["string", "null"]},
            }
        ),
        "ReminderLogEntry": closed(
            {
                "id": {"type": "integer"},
                "occurrence_date": DATE,
                "offset": {"type": "string"},
                "due_at": TIMESTAMP,
                "status": {"enum": [status.value for status in ReminderStatus]},
                "campaign_id": {
                    "type": ["integer", "null"],
                    "description": "The reminder's campaign (sent and late ones, unless it was deleted).",
                },
                "detail": {
                    "type": ["string", "null"],
                    "description": "Why it was not sent, when it could not be made.",
                },
                "created_at": TIMESTAMP,
            }
        ),
        "ReminderLog": closed({"items": {"type": "array", "items": ref("ReminderLogEntry")}}),
    }


def _state_change(operation_id: str, summary: str, request: dict) -> dict:
    """A hold or resume: 200, or 202 when a notice campaign was queued."""
    return {
        "parameters": [EVENT_ID],
        "post": operation(
            operation_id,
            summary,
            {
                "200": answer("Done; no notice was sent.", ref("HoldResult")),
                "202": answer("Done, and the notice campaign is queued.", ref("HoldResult")),
                **event_errors(400, 401, 403, 404, 409, 415, 422),
            },
            requestBody=request,
            **TAGS,
        ),
    }


def event_paths() -> dict:
    """The path items under /api/v1/events."""
    prefix = "/api/v1/events/{event_id}"
    return {
        "/api/v1/events": {
            "get": operation(
                "listEvents",
                "Every event, oldest first (viewer).",
                {"200": answer("The events.", ref("EventPage")), **event_errors(400, 401, 403)},
                **TAGS,
            ),
            "post": operation(
                "createEvent",
                "A new recurring protest, on hold until it is resumed (editor).",
                {
                    "201": answer("The event.", ref("Event"), headers={"Location": {"schema": {"type": "string"}}}),
                    **event_errors(400, 401, 403, 415, 422),
                },
                requestBody=body(ref("NewEvent")),
                **TAGS,
            ),
        },
        prefix: {
            "parameters": [EVENT_ID],
            "get": operation(
                "getEvent",
                "One event, with its rule in words and its next date (viewer).",
                {"200": answer("The event.", ref("Event")), **event_errors(401, 403, 404)},
                **TAGS,
            ),
            "patch": operation(
                "updateEvent",
                "Change some fields; the others keep their values. Reminders already decided are not sent again "
                "(editor).",
                {
                    "200": answer("The event after the change.", ref("Event")),
                    **event_errors(400, 401, 403, 404, 415, 422),
                },
                requestBody=body(ref("EventPatch")),
                **TAGS,
            ),
            "delete": operation(
                "deleteEvent",
                "Delete an event none of whose reminders has been sent, with its date changes (editor). "
                "Campaigns are never deleted with it.",
                {"204": answer("Deleted."), **event_errors(401, 403, 404, 409)},
                **TAGS,
            ),
        },
        f"{prefix}/hold": _state_change(
            "holdEvent",
            "Stop the reminders, with a reason; `notice` mails the list (editor).",
            body(ref("HoldRequest")),
        ),
        f"{prefix}/resume": _state_change(
            "resumeEvent",
            "Send reminders again, from now on; `notice` mails the list the next date (editor). Needs a start time.",
            body(ref("ResumeRequest"), required=False),
        ),
        f"{prefix}/occurrences": {
            "parameters": [EVENT_ID],
            "get": operation(
                "listOccurrences",
                "The next dates from today, up to 400 days ahead, with their reminders; empty while the start time is "
                "unset (viewer).",
                {"200": answer("The dates.", ref("OccurrencePage")), **event_errors(400, 401, 403, 404)},
                parameters=[
                    {
                        "name": "count",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": OCCURRENCES_MAX,
                            "default": OCCURRENCES_DEFAULT,
                        },
                    }
                ],
                **TAGS,
            ),
        },
        f"{prefix}/occurrences/{{occurrence_date}}": {
            "parameters": [EVENT_ID, OCCURRENCE_DATE],
            "put": operation(
                "setOccurrence",
                "Change one date: cancel it, move its time or place, add a note; fields left out are cleared, and "
                "all empty clears the change (editor).",
                {
                    "200": answer("The change stored for that date.", ref("StoredOverride")),
                    **event_errors(400, 401, 403, 404, 415, 422),
                },
                requestBody=body(ref("OccurrenceOverride")),
                **TAGS,
            ),
            "delete": operation(
                "clearOccurrence",
                "Undo any change to one date (editor).",
                {"204": answer("The date is as the rule gives it."), **event_errors(400, 401, 403, 404, 422)},
                **TAGS,
            ),
        },
        f"{prefix}/reminders": {
            "parameters": [EVENT_ID],
            "get": operation(
                "reminderLog",
                "The reminders decided so far, newest first (viewer).",
                {"200": answer("The log.", ref("ReminderLog")), **event_errors(400, 401, 403, 404)},
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": LOG_LIMIT_MAX,
                            "default": LOG_LIMIT_DEFAULT,
                        },
                    }
                ],
                **TAGS,
            ),
        },
    }
