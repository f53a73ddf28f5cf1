"""Reminders: decide which are due, and turn each into a campaign of kind `reminder` with the occurrence's invitation.

`plan_reminder` is idempotent: a unique Reminder row per event × occurrence × offset is inserted before anything
is sent, so two beat processes, a restart or an overlapping run never send a reminder twice. The beat task
(tasks.send_due_reminders) commits each reminder on its own and keeps one event's failure from stopping the others.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from babel.dates import format_date, format_time

from .. import templating
from ..campaigns import services as campaigns
from ..campaigns import translations as campaign_translations
from ..campaigns.models import CampaignKind
from ..campaigns.sandbox import literal_source
from ..extensions import db, upsert_insert
from ..mail.messages import sender_address
from ..models import MailingList, utcnow
from ..validation import InvalidInput
from .calendar import occurrence_calendar
from .models import Event, EventTranslation, OccurrenceOverride, Reminder, ReminderStatus
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

# The default templates in the other languages a reminder may go out in (translations of the two above).
DEFAULT_TEMPLATES = {
    "en": (DEFAULT_SUBJECT, DEFAULT_BODY),
    "ug": (
        "نامايىش {{ date }}: {{ title }}",
        """ھۆرمەتلىك {{ subscriber.name }}،

بىز **{{ date }} سائەت {{ time }}** دە **{{ place }}** ئالدىدا نامايىش قىلىمىز.
بىزگە قوشۇلۇڭ، بىر دوستىڭىزنىمۇ بىللە ئېلىپ كېلىڭ.
{% if notes %}
**{{ notes }}**
{% endif %}
{% if map_url %}[قانداق بېرىش كېرەك]({{ map_url }}){% endif %}

بۇ خەتكە قوشۇلغان تەكلىپنامە نامايىشنى كالېندارىڭىزغا قوشىدۇ.
""",
    ),
    "zh": (
        "抗议活动 {{ date }}：{{ title }}",
        """亲爱的 {{ subscriber.name }}：

我们将于 **{{ date }} {{ time }}** 在 **{{ place }}** 外举行抗议。请加入我们，并带上一位朋友。
{% if notes %}
**{{ notes }}**
{% endif %}
{% if map_url %}[如何前往]({{ map_url }}){% endif %}

本邮件附带的邀请可将这次抗议加入您的日历。
""",
    ),
}


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


def subject_source(value) -> str:
    """A value output by a reminder subject, as campaign-subject source that shows it as plain text.

    A campaign's subject is a template too, so a title such as `{{ 7*7 }}` or `Bring {{ banners` must not be
    evaluated (or refused) there; only values with a brace become string literals, so subjects stay readable."""
    if value.__class__ is _PassThrough:
        return value
    text = "" if value is None else str(value)
    return campaign_source(value) if "{" in text else text


_SUBJECT_SANDBOX = templating.Sandbox(finalize=subject_source)
_BODY_SANDBOX = templating.Sandbox(finalize=campaign_source)


@dataclass(frozen=True)
class ReminderContent:
    """A reminder's subject and Markdown body for one occurrence."""

    subject: str
    body: str


def occurrence_values(event: Event, occurrence: Occurrence, locale: str = "en") -> dict:
    """The variables a reminder template may use; the date and time written as readers of `locale` write them."""
    if locale == "en":
        day, hour = occurrence.starts_at.strftime("%A %-d %B %Y"), occurrence.starts_at.strftime("%H:%M")
    else:
        day = format_date(occurrence.starts_at, format="full", locale=locale)
        hour = format_time(occurrence.starts_at, format="short", locale=locale)
    return {
        "title": event.title,
        "date": day,
        "time": hour,
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


def render_content(
    event: Event, occurrence: Occurrence, translation: EventTranslation | None = None
) -> ReminderContent:
    """Fill the event's templates (or a translation's) with the occurrence (date, time, place, notes) in the shared
    sandbox, or raise TemplateRefused (an InvalidInput). Places, notes and titles are plain text: the body shows them
    as text."""
    source = translation or event
    values = occurrence_values(event, occurrence, translation.locale if translation else "en")
    subject = _fill(_SUBJECT_SANDBOX, source.subject_template, "subject", values)
    body = _fill(_BODY_SANDBOX, source.body_template, "body", values)
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
    content = render_content(event, occurrence)
    sender = sender_address()
    fields = campaigns.CampaignFields(
        # The campaign's subject is a template itself: the reminder's words are shown as they are.
        subject=literal_source(content.subject, campaigns.SUBJECT_MAX_LENGTH),
        body=content.body,
        list_ids=[event.list_id],
        from_name=sender.display_name or None,
        from_email=sender.addr_spec,
    )
    campaign = campaigns.create_campaign(fields, "reminders", kind=CampaignKind.REMINDER)
    campaign.calendar = occurrence_calendar(event, occurrence)
    for translation in event.translations:
        translated = render_content(event, occurrence, translation)
        campaign_translations.save_translation(
            campaign,
            translation.locale,
            campaign_translations.TranslationFields(
                subject=literal_source(translated.subject, campaigns.SUBJECT_MAX_LENGTH), body=translated.body
            ),
            "reminders",
        )
    return campaign


def problem_words(exc: Exception) -> str:
    """What went wrong, for an organiser: an InvalidInput's own message, else the kind of error (the log has more)."""
    if isinstance(exc, InvalidInput):
        return str(exc)
    return f"An unexpected error ({type(exc).__name__}); the log has the details."


def record_event_error(event_id: int, problem: str) -> None:
    """Keep the last problem the beat met with an event, with the time, for its page."""
    db.session.execute(
        sa.update(Event).where(Event.id == event_id).values(last_error=problem[:500], last_error_at=utcnow())
    )
    db.session.flush()


def due_event_ids() -> list[int]:
    """The events whose reminders may be due: not on hold, with a start time."""
    statement = sa.select(Event.id).where(Event.on_hold.is_(False), Event.start_time.is_not(None))
    return list(db.session.scalars(statement.order_by(Event.id)))


@dataclass(frozen=True)
class DueReminder:
    """One reminder whose time has come: of which date, which offset (e.g. "3d"), and when it was due."""

    occurrence: Occurrence
    offset_key: str
    due_at: datetime


def due_reminders(event: Event, now: datetime) -> list[DueReminder]:
    """The event's reminders due by `now` and not older than LOOKBACK (nor than the event's last resume)."""
    furthest = max((int(offset["days_before"]) for offset in event.reminder_offsets), default=0)
    first, last = (now - LOOKBACK).date(), (now + timedelta(days=furthest + 1)).date()
    oldest = max(now - LOOKBACK, event.active_since)
    return [
        DueReminder(occurrence, due.offset_key, due.due_at)
        for occurrence in occurrences(event, overrides_of(event), first, last)
        for due in reminder_times(event, occurrence)
        if oldest <= due.due_at <= now
    ]


def plan_reminder(event: Event, due: DueReminder, now: datetime) -> int | None:
    """Decide one due reminder: record it (its unique row first, so it is decided once however many runs race) and,
    when it is to go out, create and start its campaign. Returns the campaign's id, to be queued after the commit;
    None when nothing is sent (a cancelled date, a protest already begun, nobody on the list, or another run first).

    Missed reminders go out late if the protest is still ahead. Flushes; the caller commits each reminder on its own.
    """
    occurrence, key, due_at = due.occurrence, due.offset_key, due.due_at
    if occurrence.cancelled:
        _claim(event, occurrence, key, due_at, ReminderStatus.CANCELLED)
        return None
    if occurrence.starts_at <= now:
        if _claim(event, occurrence, key, due_at, ReminderStatus.SKIPPED):
            log.warning("reminder %s of event %s skipped: the protest had begun", key, event.id)
        return None
    reminder_id = _claim(
        event, occurrence, key, due_at, ReminderStatus.LATE if now - due_at > GRACE else ReminderStatus.SENT
    )
    if reminder_id is None:
        return None
    if campaigns.recipient_count([event.list_id]) == 0:
        # Nobody to remind: recorded as skipped, so the event page shows it.
        db.session.execute(sa.update(Reminder).where(Reminder.id == reminder_id).values(status=ReminderStatus.SKIPPED))
        return None
    campaign = reminder_campaign(event, occurrence)
    campaigns.start_sending(campaign, "reminders")
    db.session.execute(sa.update(Reminder).where(Reminder.id == reminder_id).values(campaign_id=campaign.id))
    return campaign.id


def skip_reminder(event: Event, due: DueReminder, problem: str) -> None:
    """A reminder that could not be made: recorded as skipped with the reason (so it is not tried again every run),
    and the problem kept on the event."""
    detail = f"Not sent: {problem}"[:500]
    _claim(event, due.occurrence, due.offset_key, due.due_at, ReminderStatus.SKIPPED, detail)
    record_event_error(event.id, problem)


def default_list() -> MailingList | None:
    """The London protest reminders list."""
    return db.session.scalar(sa.select(MailingList).where(MailingList.slug == "london-protest-reminders"))
