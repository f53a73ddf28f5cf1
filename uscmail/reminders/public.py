"""Public pages of the protests: `/events` lists the upcoming ones, `/events.ics` is a feed any calendar app can
subscribe to. Nothing personal in either, and no cookies needed."""

from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, Response, render_template

from ..extensions import db
from ..models import utcnow
from .calendar import feed_calendar
from .models import Event
from .planning import overrides_of
from .schedule import Occurrence, occurrences

bp = Blueprint("events", __name__)

HORIZON = timedelta(days=180)
FEED_NAME = "USC-UK protests"


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


@bp.get("/events")
def index():
    """Upcoming protests: when, where, and any note for the day."""
    return render_template("events/index.html", entries=upcoming(include_cancelled=True))


@bp.get("/events.ics")
def feed():
    """The calendar feed; cancelled dates stay in it, marked cancelled, so calendars drop them."""
    body = feed_calendar(upcoming(include_cancelled=True), FEED_NAME)
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'inline; filename="uscuk-protests.ics"'
    response.headers["Cache-Control"] = "public, max-age=900"
    return response
