"""Public pages of the protests: `/events` lists the upcoming ones, `/events.ics` is a feed any calendar app can
subscribe to. Nothing personal in either, and no cookies needed."""

from flask import Blueprint, Response, render_template

from .calendar import feed_calendar
from .outlook import upcoming

bp = Blueprint("events", __name__)

FEED_NAME = "USC-UK protests"


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
