"""What a supporter is told about the protests: the upcoming dates (the public page and feed) and the next one, in
words a person reads ("Saturday 5 December 2026, 2 pm"; in Uyghur and Chinese as CLDR writes them), for the home
page, the confirmed page and the welcome mail.

Only events that are not on hold count; a cancelled date is skipped. When every event is on hold, that is said
plainly rather than naming a date that will not happen."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..extensions import db
from ..i18n import DEFAULT_LOCALE, current_locale, london_day_and_time
from ..models import utcnow
from .models import Event
from .planning import overrides_of
from .schedule import Occurrence, occurrences

HORIZON = timedelta(days=180)
LONDON = ZoneInfo("Europe/London")


def upcoming(include_cancelled: bool) -> list[tuple[Event, Occurrence]]:
    """Occurrences of events not on hold that end after now, within HORIZON, soonest first."""
    now = utcnow()
    events = db.session.scalars(
        sa.select(Event).where(Event.on_hold.is_(False), Event.start_time.is_not(None)).order_by(Event.id)
    ).all()
    found = []
    for event in events:
        for occurrence in occurrences(event, overrides_of(event), now.date(), (now + HORIZON).date()):
            if occurrence.ends_at > now and (include_cancelled or not occurrence.cancelled):
                found.append((event, occurrence))
    return sorted(found, key=lambda pair: pair[1].starts_at)


def time_in_words(moment: datetime) -> str:
    """A clock time as people write it: "2 pm", "10:30 am", "12 noon", "midnight"."""
    if moment.minute == 0 and moment.hour in (0, 12):
        return "midnight" if moment.hour == 0 else "12 noon"
    hour = moment.hour % 12 or 12
    suffix = "am" if moment.hour < 12 else "pm"
    return f"{hour} {suffix}" if moment.minute == 0 else f"{hour}:{moment.minute:02d} {suffix}"


def date_and_time_in_words(moment: datetime) -> str:
    """An aware moment in London time, written out in the locale in force: "Saturday 5 December 2026, 2 pm" in
    English, "2026 5-دېكابىر، شەنبە 14:00" in Uyghur, "2026年12月5日星期六 14:00" in Chinese."""
    if current_locale() != DEFAULT_LOCALE:
        return london_day_and_time(moment)
    local = moment.astimezone(LONDON)
    return f"{local:%A} {local.day} {local:%B %Y}, {time_in_words(local)}"


@dataclass(frozen=True)
class NextProtest:
    """The next protest that will happen, in words."""

    when: str  # "Saturday 5 December 2026, 2 pm" (London time, in the locale in force)
    place: str  # the event's stored place, or that date's override
    title: str
    note: str | None
    map_url: str | None


@dataclass(frozen=True)
class ProtestOutlook:
    """What to tell a supporter: the next protest, or that protests are on hold, or (no events at all) nothing."""

    next: NextProtest | None
    on_hold: bool


def protest_outlook() -> ProtestOutlook:
    """The next occurrence, not cancelled and not yet begun, of any event not on hold; with none, whether some event
    is on hold (so the page can say the protests are paused instead of naming a date)."""
    now = utcnow()
    for event, occurrence in upcoming(include_cancelled=False):
        if occurrence.starts_at > now:
            found = NextProtest(
                when=date_and_time_in_words(occurrence.starts_at),
                place=occurrence.place,
                title=event.title,
                note=occurrence.note,
                map_url=event.map_url,
            )
            return ProtestOutlook(next=found, on_hold=False)
    held = db.session.scalar(sa.select(Event.id).where(Event.on_hold.is_(True)).limit(1)) is not None
    return ProtestOutlook(next=None, on_hold=held)
