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


RULE_MAX_LENGTH = 500
# RFC 5545 parts an organiser may use: no time of day (that is the start time), no dateutil extensions (BYEASTER).
RULE_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH",
              "BYSETPOS", "WKST"}  # fmt: skip
# Sub-daily rules, and INTERVAL=0, would keep the rule engine busy for minutes or for ever.
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
INTERVAL_MAX = 1000
DATE_PARTS = {"BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO"}


def parse_rule(rule: str, first_date: date):
    """The dateutil rule for an RRULE string starting on first_date, or RuleInvalid saying what is wrong."""
    text = (rule or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text or "DTSTART" in text.upper() or "\n" in text or "\r" in text:
        raise RuleInvalid("Give a recurrence rule such as FREQ=MONTHLY;BYMONTHDAY=5 (without DTSTART).")
    if len(text) > RULE_MAX_LENGTH:
        raise RuleInvalid(f"Please keep the recurrence rule under {RULE_MAX_LENGTH} characters.")
    pairs = (part.partition("=") for part in text.split(";"))
    parts = {key.strip().upper(): value.strip().upper() for key, _, value in pairs}
    refused = sorted(key for key in parts if key not in RULE_PARTS)
    if refused:
        raise RuleInvalid(
            f"A rule can't use {', '.join(refused)[:100]}; the time of day is the start time. "
            f"It may use {', '.join(sorted(RULE_PARTS))}."
        )
    if parts.get("FREQ") not in FREQUENCIES:
        raise RuleInvalid(f"A rule repeats {', '.join(FREQUENCIES[:-1])} or {FREQUENCIES[-1]} (FREQ=…).")
    interval = parts.get("INTERVAL", "1")
    if not (interval.isascii() and interval.isdigit() and 1 <= int(interval) <= INTERVAL_MAX):
        raise RuleInvalid(f"INTERVAL must be a whole number from 1 to {INTERVAL_MAX}.")
    if parts["FREQ"] == "DAILY" and "BYSETPOS" in parts:
        raise RuleInvalid(
            "BYSETPOS picks among the days of a week, month or year: use it with WEEKLY, MONTHLY or YEARLY."
        )
    dtstart = datetime.combine(first_date, time(0))
    try:
        rule = rrulestr(text, dtstart=dtstart)
        if parts["FREQ"] == "DAILY" and DATE_PARTS & set(parts):
            # A daily rule whose date parts never match would walk every day to the year 9999 before giving up; the
            # same parts on a yearly rule give the same days, and fail fast.
            yearly = rrulestr(text.upper().replace("FREQ=DAILY", "FREQ=YEARLY"), dtstart=dtstart)
            if yearly.after(dtstart, inc=True) is None:
                raise RuleInvalid("That rule gives no dates at all; check its BY… parts.")
        return rule
    except RuleInvalid:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        raise RuleInvalid(f"That recurrence rule can't be read: {exc}") from None


def occurrence_dates(event: Event, after: date, until: date) -> list[date]:
    """The dates the event's rule gives from `after` to `until`, both included."""
    rule = parse_rule(event.rrule, event.first_date)
    end = datetime.combine(until, time(0))
    if not rule._until and not rule._count:  # noqa: SLF001 - dateutil exposes no accessor
        # Bounded, so a rule that never matches stops at `until` instead of searching to the year 9999.
        rule = rule.replace(until=end)
    start = datetime.combine(max(after, event.first_date), time(0))
    try:
        return [moment.date() for moment in rule.between(start, end, inc=True)]
    except (ValueError, IndexError, OverflowError) as exc:
        raise RuleInvalid(f"That recurrence rule can't be used: {exc}") from None


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
