"""When an event happens and when its reminders are due: RFC 5545 rules in local wall-clock time, right across
daylight-saving changes and month ends."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from .models import Event, OccurrenceOverride


class RuleInvalid(ValueError):
    """A recurrence rule or reminder offset that cannot be used; the message says why."""


@dataclass(frozen=True)
class Occurrence:
    """One date of an event, with any override for that date applied."""

    event_id: int
    date: date  # the date the rule gives, which names the occurrence
    starts_at: datetime  # aware, in the event's time zone
    ends_at: datetime
    place: str
    note: str | None
    cancelled: bool


def local_datetime(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`day` at wall-clock time `at` in `zone`. A time skipped by the spring change (01:30 on the last Sunday of
    March in London) moves forward by the gap; a time that happens twice in autumn means the first one."""
    # fold=0 reads a skipped time with the offset from before the change, so the round trip through UTC lands the
    # length of the gap later (01:30 GMT is 02:30 BST); an ambiguous time gets its first reading.
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone)


def parse_rule(rule: str, first_date: date):
    """The dateutil rule for an RRULE string starting on first_date, or RuleInvalid."""
    text = (rule or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text or "DTSTART" in text.upper() or "\n" in text:
        raise RuleInvalid("Give a recurrence rule such as FREQ=MONTHLY;BYMONTHDAY=5 (without DTSTART).")
    try:
        return rrulestr(text, dtstart=datetime.combine(first_date, time(0)))
    except (ValueError, TypeError) as exc:
        raise RuleInvalid(f"That recurrence rule can't be read: {exc}") from None


def occurrence_dates(event: Event, after: date, until: date) -> list[date]:
    """The dates the event's rule gives from `after` to `until`, both included."""
    rule = parse_rule(event.rrule, event.first_date)
    start = datetime.combine(max(after, event.first_date), time(0))
    return [moment.date() for moment in rule.between(start, datetime.combine(until, time(0)), inc=True)]


def occurrences(event: Event, overrides: dict[date, OccurrenceOverride], after: date, until: date) -> list[Occurrence]:
    """The event's occurrences between two dates, with overrides applied. Empty while the start time is unset."""
    if event.start_time is None:
        return []
    zone = ZoneInfo(event.timezone)
    found = []
    for day in occurrence_dates(event, after, until):
        override = overrides.get(day)
        starts_at = local_datetime(day, (override and override.start_time) or event.start_time, zone)
        found.append(
            Occurrence(
                event_id=event.id,
                date=day,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=event.duration_minutes),
                place=(override and override.place) or event.place,
                note=override.note if override else None,
                cancelled=bool(override and override.cancelled),
            )
        )
    return found


@dataclass(frozen=True)
class ReminderTime:
    """When one reminder of one occurrence is due."""

    offset_key: str
    due_at: datetime  # UTC


def offset_key(offset: dict) -> str:
    """The stable name of an offset, e.g. "3d@10:00"."""
    return f"{int(offset['days_before'])}d@{offset['at']}"


def parse_offsets(offsets: list[dict]) -> list[dict]:
    """Checked reminder offsets ({"days_before": 0–60, "at": "HH:MM"}), or RuleInvalid."""
    if not isinstance(offsets, list) or not offsets or len(offsets) > 10:
        raise RuleInvalid("Give between one and ten reminder times.")
    checked = []
    for offset in offsets:
        try:
            days = int(offset["days_before"])
            at = time.fromisoformat(str(offset["at"]))
        except (KeyError, TypeError, ValueError):
            raise RuleInvalid('Each reminder needs "days_before" (a whole number) and "at" (HH:MM).') from None
        if not 0 <= days <= 60:
            raise RuleInvalid("A reminder can go out between 0 and 60 days before.")
        checked.append({"days_before": days, "at": at.strftime("%H:%M")})
    if len({offset_key(offset) for offset in checked}) != len(checked):
        raise RuleInvalid("The same reminder time is given twice.")
    return checked


def reminder_times(event: Event, occurrence: Occurrence) -> list[ReminderTime]:
    """The due times of the occurrence's reminders, in UTC, computed in local wall-clock time."""
    zone = ZoneInfo(event.timezone)
    times = []
    for offset in event.reminder_offsets:
        day = occurrence.date - timedelta(days=int(offset["days_before"]))
        local = local_datetime(day, time.fromisoformat(offset["at"]), zone)
        times.append(ReminderTime(offset_key(offset), local.astimezone(UTC)))
    return times
