"""Reminders: decide which are due, and turn each into a campaign of kind `reminder` with the occurrence's invitation.

`plan_due_reminders` is idempotent: a unique Reminder row per event × occurrence × offset is inserted before anything
is sent, so two beat processes, a restart or an overlapping run never send a reminder twice.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from celery.exceptions import SoftTimeLimitExceeded

from .. import templating
from ..extensions import db, upsert_insert
from ..mail.messages import sender_address
from ..models import MailingList, utcnow
from ..validation import InvalidInput
from .calendar import occurrence_calendar
from .models import Event, OccurrenceOverride, Reminder, ReminderStatus
from .schedule import Occurrence, occurrences, reminder_times

log = logging.getLogger(__name__)

# How far back a run looks for reminders it missed (the system was down): older ones are not even logged.
LOOKBACK = timedelta(days=7)
# A reminder sent this much after its time counts as late.
GRACE = timedelta(minutes=15)

DEFAULT_SUBJECT = "Protest {{ date }}: {{ title }}"
DEFAULT_BODY = """Dear {{ subscriber.name }},

We protest outside **{{ place }}** on **{{ date }} at {{ time }}**. Please join us, and bring a friend.
{% if notes %}
**{{ notes }}**
{% endif %}
{% if map_url %}[How to get there]({{ map_url }}){% endif %}

The invitation attached to this email adds the protest to your calendar.
"""


VARIABLES = frozenset(
    {"title", "date", "time", "place", "notes", "map_url", "subscriber", "unsubscribe_url", "preferences_url",
     "web_version_url"}
)  # fmt: skip
AVAILABLE = (
    "You can use title, date, time, place, notes, map_url, subscriber.name, unsubscribe_url, preferences_url and "
    "web_version_url."
)


class _PassThrough(str):
    """Campaign-template source handed on as it is: `{{ subscriber.name }}` and the URLs, which the campaign fills
    in for each recipient."""


class _MapLink(str):
    """The event's map link: an address, so it stays one in the Markdown body (a link target, not text)."""


class _PersonalPassThrough:
    """Stands for `subscriber` in a reminder template: its name is left for the campaign's own personalisation."""

    name = _PassThrough("{{ subscriber.name }}")


def campaign_source(value) -> str:
    """A value output by a reminder body, as campaign-template source that shows it as plain text.

    The body is a campaign template itself, so an organiser's note `Bring {{ banners }}` must not become template
    syntax there: each value becomes a Jinja string literal (`{{ "Bring {{ banners }}" }}`), which the campaign shows
    as text, never as Markdown or template code. The map link stays an address, its braces percent-encoded.
    """
    if value.__class__ is _PassThrough:
        return value
    text = "" if value is None else str(value)
    if value.__class__ is _MapLink:
        return text.replace("{", "%7B").replace("}", "%7D")
    if not text:
        return ""
    return '{{ "' + text.replace("\\", "\\\\").replace('"', '\\"') + '" }}'


_SUBJECT_SANDBOX = templating.Sandbox()
_BODY_SANDBOX = templating.Sandbox(finalize=campaign_source)


@dataclass(frozen=True)
class ReminderContent:
    """A reminder's subject and Markdown body for one occurrence."""

    subject: str
    body: str


def occurrence_values(event: Event, occurrence: Occurrence) -> dict:
    """The variables a reminder template may use."""
    return {
        "title": event.title,
        "date": occurrence.starts_at.strftime("%A %-d %B %Y"),
        "time": occurrence.starts_at.strftime("%H:%M"),
        "place": occurrence.place,
        "notes": occurrence.note or "",
        "map_url": _MapLink(event.map_url or ""),
        "subscriber": _PersonalPassThrough(),
        "unsubscribe_url": _PassThrough("{{ unsubscribe_url }}"),
        "preferences_url": _PassThrough("{{ preferences_url }}"),
        "web_version_url": _PassThrough("{{ web_version_url }}"),
    }


def _fill(sandbox: templating.Sandbox, source: str, what: str, values: dict) -> str:
    try:
        tree = templating.parse_checked(sandbox, source, VARIABLES, AVAILABLE)
        return templating.render(templating.compile_checked(sandbox, tree), values)
    except templating.TemplateRefused as exc:
        raise templating.TemplateRefused(f"The reminder template can't be used (the {what}): {exc}") from None


def render_content(event: Event, occurrence: Occurrence) -> ReminderContent:
    """Fill the event's templates with the occurrence (date, time, place, notes) in the shared sandbox, or raise
    TemplateRefused (an InvalidInput). Places, notes and titles are plain text: the body shows them as text."""
    values = occurrence_values(event, occurrence)
    subject = _fill(_SUBJECT_SANDBOX, event.subject_template, "subject", values)
    body = _fill(_BODY_SANDBOX, event.body_template, "body", values)
    return ReminderContent(" ".join(subject.split()), body)


def overrides_of(event: Event) -> dict[date, OccurrenceOverride]:
    """The event's per-occurrence overrides by date."""
    rows = db.session.scalars(sa.select(OccurrenceOverride).where(OccurrenceOverride.event_id == event.id))
    return {row.occurrence_date: row for row in rows}


def _claim(
    event: Event, occurrence: Occurrence, key: str, due_at: datetime, status: ReminderStatus, detail: str | None = None
) -> int | None:
    """Insert the unique Reminder row; its id, or None if another run already has it."""
    statement = (
        upsert_insert(Reminder)
        .values(
            event_id=event.id,
            occurrence_date=occurrence.date,
            offset_key=key,
            due_at=due_at,
            status=status,
            detail=detail,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(Reminder.id)
    )
    return db.session.scalar(statement)


def reminder_campaign(event: Event, occurrence: Occurrence):
    """A campaign of kind `reminder` for the occurrence, carrying its invitation (not yet sending)."""
    from ..campaigns import services as campaigns
    from ..campaigns.models import CampaignKind

    content = render_content(event, occurrence)
    sender = sender_address()
    fields = campaigns.CampaignFields(
        subject=content.subject[: campaigns.SUBJECT_MAX_LENGTH],
        body=content.body,
        list_ids=[event.list_id],
        from_name=sender.display_name or None,
        from_email=sender.addr_spec,
    )
    campaign = campaigns.create_campaign(fields, "reminders", kind=CampaignKind.REMINDER)
    campaign.calendar = occurrence_calendar(event, occurrence)
    return campaign


def problem_words(exc: Exception) -> str:
    """What went wrong, for an organiser: an InvalidInput's own message, else the kind of error (the log has more)."""
    if isinstance(exc, InvalidInput):
        return str(exc)
    return f"An unexpected error ({type(exc).__name__}); the log has the details."


def record_event_error(event_id: int, problem: str) -> None:
    """Keep the last problem the beat met with an event, with the time, for its page; commits."""
    db.session.execute(
        sa.update(Event).where(Event.id == event_id).values(last_error=problem[:500], last_error_at=utcnow())
    )
    db.session.commit()


def plan_due_reminders(now: datetime | None = None) -> list[int]:
    """Record every reminder whose time has come and start its campaign; returns the campaign ids to queue.

    Reminders missed while the system was down go out late if the protest is still ahead, and are recorded as
    skipped if not. Events on hold or without a start time send nothing. Each reminder commits on its own.
    Events are isolated: whatever goes wrong with one is logged, kept on the event (`last_error`) and the others go
    on; a reminder that can't be made is recorded as skipped with the reason, so it is not tried again every run.
    """
    now = now or utcnow()
    started: list[int] = []
    event_ids = db.session.scalars(
        sa.select(Event.id).where(Event.on_hold.is_(False), Event.start_time.is_not(None)).order_by(Event.id)
    ).all()
    for event_id in event_ids:
        try:
            _plan_event(db.session.get(Event, event_id), now, started)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:  # noqa: BLE001 - one event's fault must not stop the other events' reminders
            db.session.rollback()
            log.exception("the reminders of event %s could not be planned", event_id)
            record_event_error(event_id, problem_words(exc))
    return started


def _plan_event(event: Event, now: datetime, started: list[int]) -> None:
    """Decide the event's due reminders; the ids of campaigns started (and committed) are added to `started`."""
    from ..campaigns import services as campaigns

    event_id = event.id
    furthest = max((int(offset["days_before"]) for offset in event.reminder_offsets), default=0)
    window = occurrences(
        event, overrides_of(event), (now - LOOKBACK).date(), (now + timedelta(days=furthest + 1)).date()
    )
    for occurrence in window:
        for due in reminder_times(event, occurrence):
            if due.due_at > now or due.due_at < max(now - LOOKBACK, event.active_since):
                continue
            if occurrence.cancelled:
                _claim(event, occurrence, due.offset_key, due.due_at, ReminderStatus.CANCELLED)
            elif occurrence.starts_at <= now:
                if _claim(event, occurrence, due.offset_key, due.due_at, ReminderStatus.SKIPPED):
                    log.warning("reminder %s of event %s skipped: the protest had begun", due.offset_key, event_id)
            else:
                status = ReminderStatus.LATE if now - due.due_at > GRACE else ReminderStatus.SENT
                reminder_id = _claim(event, occurrence, due.offset_key, due.due_at, status)
                if reminder_id is None:
                    db.session.rollback()
                    continue
                if campaigns.recipient_count([event.list_id]) == 0:
                    # Nobody to remind: recorded as skipped, so the event page shows it.
                    db.session.execute(
                        sa.update(Reminder).where(Reminder.id == reminder_id).values(status=ReminderStatus.SKIPPED)
                    )
                else:
                    try:
                        campaign = reminder_campaign(event, occurrence)
                        campaigns.start_sending(campaign, "reminders")
                    except SoftTimeLimitExceeded:
                        raise
                    except Exception as exc:  # noqa: BLE001 - recorded on the reminder and the event, never retried
                        db.session.rollback()
                        problem = problem_words(exc)
                        log.error(
                            "reminder %s of event %s could not be made: %s", due.offset_key, event_id, problem,
                            exc_info=not isinstance(exc, InvalidInput),
                        )  # fmt: skip
                        detail = f"Not sent: {problem}"[:500]
                        _claim(event, occurrence, due.offset_key, due.due_at, ReminderStatus.SKIPPED, detail)
                        db.session.commit()
                        record_event_error(event_id, problem)
                        continue
                    db.session.execute(
                        sa.update(Reminder).where(Reminder.id == reminder_id).values(campaign_id=campaign.id)
                    )
                    db.session.commit()
                    started.append(campaign.id)
            db.session.commit()


def default_list() -> MailingList | None:
    """The London protest reminders list."""
    return db.session.scalar(sa.select(MailingList).where(MailingList.slug == "london-protest-reminders"))
