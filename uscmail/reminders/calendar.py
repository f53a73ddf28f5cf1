"""iCalendar (RFC 5545) for protests: one occurrence as an invitation attached to its reminders, and the public feed."""

from datetime import UTC, datetime

from flask import current_app
from icalendar import Calendar
from icalendar import Event as CalendarEvent

from ..models import utcnow
from .models import Event
from .schedule import Occurrence

PRODUCT_ID = "-//Uyghur Solidarity Campaign UK//uscmail//EN"


def _calendar() -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    return calendar


def _domain() -> str:
    base = current_app.config["BASE_URL"]
    return base.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "uscmail"


def occurrence_component(event: Event, occurrence: Occurrence, stamp: datetime | None = None) -> CalendarEvent:
    """The VEVENT of one occurrence: its own UID, local start and end with their time zone, place, note."""
    component = CalendarEvent()
    component.add("uid", f"{event.public_id}-{occurrence.date.isoformat()}@{_domain()}")
    component.add("dtstamp", (stamp or utcnow()).astimezone(UTC))
    component.add("dtstart", occurrence.starts_at)
    component.add("dtend", occurrence.ends_at)
    component.add("summary", event.title)
    component.add("location", occurrence.place)
    description = [occurrence.note] if occurrence.note else []
    if event.map_url:
        description.append(f"Map: {event.map_url}")
        component.add("url", event.map_url)
    if description:
        component.add("description", "\n\n".join(description))
    component.add("status", "CANCELLED" if occurrence.cancelled else "CONFIRMED")
    return component


def occurrence_calendar(event: Event, occurrence: Occurrence) -> str:
    """A calendar holding one occurrence, with its VTIMEZONE, as text (CRLF lines)."""
    calendar = _calendar()
    calendar.add_component(occurrence_component(event, occurrence))
    calendar.add_missing_timezones()
    return calendar.to_ical().decode()


def feed_calendar(entries: list[tuple[Event, Occurrence]], name: str) -> str:
    """The public feed: every listed occurrence, with the time zones they use."""
    calendar = _calendar()
    calendar.add("x-wr-calname", name)
    stamp = utcnow()
    for event, occurrence in entries:
        calendar.add_component(occurrence_component(event, occurrence, stamp))
    calendar.add_missing_timezones()
    return calendar.to_ical().decode()
