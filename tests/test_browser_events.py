"""The organisers' event pages in a real browser: accessibility, phone widths, the recurrence choices, the preview.

An editor signs in through the login and two-factor pages in headless Chromium, creates an event, resumes it, and
opens a busy event (changed and cancelled dates, a reminder log) and the seeded one that still needs a time. Each page
is checked with axe-core (WCAG 2.2 A/AA) in light and dark at desktop and phone widths, must not scroll sideways, and
is saved as a screenshot under /tmp/uscmail-event-screenshots/ for a person to look at.
"""

import tempfile
from datetime import date, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, create_editor, sign_in_editor
from tests.factories import add_confirmed, make_campaign, reminders_list
from uscmail.extensions import db as database
from uscmail.models import utcnow
from uscmail.reminders import services
from uscmail.reminders.models import Event, Reminder, ReminderStatus

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "uscmail-event-screenshots"
SEEDED_TITLE = "Monthly protest at the Chinese Embassy"
BUSY_TITLE = "Stand with Uyghur families: the monthly protest outside the embassy on Portland Place"


def busy_event() -> Event:
    """An active event with a long title and place, a cancelled date, a moved one with a note, and a reminder log."""
    fields = services.EventFields(
        title=BUSY_TITLE,
        place="Chinese Embassy, 49–51 Portland Place, London W1B 1JL (opposite the Royal Institute of British "
        "Architects)",
        list_id=reminders_list().id,
        rrule="FREQ=MONTHLY;BYMONTHDAY=5",
        first_date=date(2026, 1, 5),
        start_time=time(18, 0),
        map_url="https://www.openstreetmap.org/?mlat=51.5210&mlon=-0.1457#map=18/51.5210/-0.1457",
    )
    event = services.create_event(fields, "test")
    services.resume(event, "test")
    first, second, *_ = [occurrence.date for occurrence, _ in services.upcoming_with_reminders(event, 3)]
    services.set_override(event, first, "test", cancelled=True, note="Cancelled: the road is closed for a state visit")
    services.set_override(event, second, "test", start_time=time(17, 30), place="Downing Street", note="Bring banners")
    campaign = make_campaign("Protest reminder")
    database.session.add_all(
        [
            Reminder(event_id=event.id, occurrence_date=date(2026, 11, 5), offset_key="0d@08:00",
                     status=ReminderStatus.SENT, due_at=utcnow() - timedelta(days=22), campaign_id=campaign.id),
            Reminder(event_id=event.id, occurrence_date=date(2026, 11, 5), offset_key="3d@10:00",
                     status=ReminderStatus.SKIPPED, due_at=utcnow() - timedelta(days=25)),
            Reminder(event_id=event.id, occurrence_date=date(2026, 10, 5), offset_key="0d@08:00",
                     status=ReminderStatus.LATE, due_at=utcnow() - timedelta(days=53)),
        ]
    )  # fmt: skip
    database.session.commit()
    return event


@pytest.mark.parametrize(
    ("scheme", "viewport"), [("light", "desktop"), ("dark", "desktop"), ("light", "phone"), ("dark", "phone")]
)
def test_event_pages_are_accessible_and_fit_the_screen(visit, db, scheme, viewport):
    secret = create_editor()
    add_confirmed(3, mailing_list=reminders_list())
    busy = busy_event()
    seeded = database.session.scalar(sa.select(Event).where(Event.title == SEEDED_TITLE))
    # As organisers' browsers are set up (this Chromium has only its en-US data, so inputs still show 12-hour times).
    browser_visit = visit(
        viewport=VIEWPORTS[viewport], color_scheme=scheme, locale="en-GB", timezone_id="Europe/London"
    )
    page = browser_visit.page
    inspect = Inspector(page, scheme, viewport, SCREENSHOTS, "events")
    sign_in_editor(page, secret)

    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Events").click()
    inspect("list", "Events")
    page.get_by_role("link", name="New event").click()
    inspect("form-new", "New event")

    # Only the chosen recurrence shows its settings.
    expect(page.get_by_label("Day of the month")).to_be_visible()
    expect(page.get_by_label("Which")).to_be_hidden()
    page.get_by_label("On a weekday of every month, such as the first Saturday").check()
    expect(page.get_by_label("Day of the month")).to_be_hidden()
    page.get_by_label("Which").select_option(label="last")
    page.get_by_label("Weekday", exact=True).select_option(label="Friday")
    page.get_by_label("Title").fill("Vigil on the last Friday")
    page.get_by_label("Start time (London time)").fill("18:30")
    page.get_by_label("Place").fill("Parliament Square, London")
    page.get_by_label("Map link (optional)").fill("http://www.openstreetmap.org/")
    page.get_by_role("button", name="Create event").click()
    expect(page.get_by_role("alert")).to_contain_text("The map link must be an https:// address.")
    expect(page.get_by_label("Which")).to_have_value("-1")  # what was chosen is kept
    inspect("form-error", "New event")
    page.get_by_label("Map link (optional)").fill("https://www.openstreetmap.org/")
    page.get_by_role("button", name="Create event").click()
    expect(page.locator("#event-status")).to_have_text("on hold")
    expect(page.locator("#event-facts")).to_contain_text("on the last Friday of every month")
    inspect("event-new", "Vigil on the last Friday")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#event-status")).to_have_text("active")
    expect(page.frame_locator("#preview-frame").locator("body")).to_contain_text("Parliament Square, London")

    page.goto(f"/organisers/events/{busy.id}")
    expect(page.locator("#occurrences")).to_contain_text("Bring banners")
    page.locator("details.change-date summary").nth(1).click()
    expect(page.locator("details.change-date").nth(1).get_by_label("Different place")).to_have_value("Downing Street")
    expect(page.frame_locator("#preview-frame").locator("body")).to_contain_text("Downing Street")
    inspect("event-busy", BUSY_TITLE)
    page.goto(f"/organisers/events/{busy.id}/edit")
    inspect("form-edit", f"Edit “{BUSY_TITLE}”")
    page.goto(f"/organisers/events/{seeded.id}")
    expect(page.locator("#needs-time")).to_contain_text("This event needs a start time.")
    inspect("event-seeded", SEEDED_TITLE)

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []
    database.session.rollback()
    created = database.session.scalar(sa.select(Event).where(Event.title == "Vigil on the last Friday"))
    assert (created.rrule, created.start_time, created.on_hold) == ("FREQ=MONTHLY;BYDAY=-1FR", time(18, 30), False)
