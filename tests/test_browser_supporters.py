"""The supporter pages of issue #13 in a real browser: the home page's way to the protests, the calendar feed and the
archive; the "confirm you are a person" page a too-fast signup gets; the next protest on the confirmed page and in
the welcome mail.

Headless Chromium drives the live server; mail goes through the real worker to the SMTP sink. Every page is checked
with axe-core (WCAG 2.2 A/AA) in light and dark, at phone and desktop widths, and saved under /tmp/shots-supporters/.
"""

import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, heading
from tests.conftest import wait_for_signups
from tests.factories import make_event
from tests.test_browser import confirmation_path, path_of, sign_up, subscriptions_of
from uscmail.models import SignupRequest, StatusReason, SubscriptionStatus

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "shots-supporters"
LONDON = ZoneInfo("Europe/London")
PLACE = "outside the Chinese embassy, 49 Portland Place"


def next_fifth_at_two() -> str:
    """The next 5th of a month whose 2 pm (London) is still ahead, written as a person would."""
    now = datetime.now(LONDON)
    day = now.date()
    while not (day.day == 5 and datetime.combine(day, time(14, 0), LONDON) > now):
        day += timedelta(days=1)
    return f"{day:%A} {day.day} {day:%B %Y}, 2 pm"


def monthly_protest_at_two():
    """An active protest on the 5th of each month at 2 pm London time, begun last year."""
    return make_event(first_date=date.today() - timedelta(days=400), start_time=time(14, 0), place=PLACE)


def test_the_home_page_leads_to_the_protests_the_calendar_feed_and_the_archive(visit, db):
    monthly_protest_at_two()
    when = next_fifth_at_two()
    browser_visit = visit()
    page = browser_visit.page
    page.goto("/")

    expect(page.locator("#next-protest")).to_contain_text(f"{when}, {PLACE}")
    feed_link = page.get_by_role("link", name="Protest calendar")
    assert feed_link.get_attribute("href") == "/events.ics"
    feed = page.request.get(feed_link.get_attribute("href"))
    assert feed.status == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VEVENT" in feed.text() and "49 Portland Place" in feed.text()

    page.get_by_role("link", name="Upcoming protests").click()
    expect(heading(page)).to_have_text("Protests")
    expect(page.locator("#events li").first).to_contain_text(PLACE)
    page.go_back()
    page.get_by_role("link", name="Newsletter archive").click()
    expect(heading(page)).to_have_text("Newsletter archive")
    assert browser_visit.server_errors == []


@pytest.mark.parametrize(
    ("scheme", "viewport"), [("light", "desktop"), ("dark", "desktop"), ("light", "phone"), ("dark", "phone")]
)
def test_a_too_fast_signup_is_asked_to_confirm_a_person_then_named_the_next_protest(
    visit, worker, smtp_sink, db, app, monkeypatch, scheme, viewport
):
    """Fill in the form and send it at once: the "confirm you are a person" page, its button, "check your inbox",
    the confirmation mail; then the confirmed page and the welcome mail name the next protest."""
    monkeypatch.setitem(app.config, "SIGNUP_MIN_FILL_SECONDS", 60)
    monthly_protest_at_two()
    when = next_fifth_at_two()
    address = f"quick.{scheme}.{viewport}@example.org"
    browser_visit = visit(viewport=VIEWPORTS[viewport], color_scheme=scheme)
    page = browser_visit.page
    inspect = Inspector(page, scheme, viewport, SCREENSHOTS, "supporters")

    page.goto("/")
    inspect("home", "Stay in touch with USC-UK")
    page.get_by_role("link", name="Subscribe").click()
    sign_up(page, address, "Quick")
    inspect("human-check", "One more step")
    expect(page.get_by_text(f"You are subscribing {address} to:")).to_be_visible()
    expect(page.locator("main li")).to_have_text(["Newsletter"])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) == 0  # held, not stored
    db.session.rollback()

    page.get_by_role("button", name="Yes, I'm a person: subscribe me").click()
    inspect("human-check-thanks", "Check your inbox")
    wait_for_signups(db)
    assert subscriptions_of(db, address) == {"newsletter": (SubscriptionStatus.PENDING, StatusReason.SIGNUP_FORM)}

    page.goto(confirmation_path(smtp_sink, address))
    page.get_by_role("button", name="Confirm my subscription").click()
    inspect("confirmed-next-protest", "You're subscribed")
    expect(page.locator("#next-protest")).to_contain_text(f"{when}, {PLACE}")
    page.get_by_role("link", name="See every upcoming protest").click()
    expect(heading(page)).to_have_text("Protests")

    welcome = smtp_sink.wait_for(address, count=2)[1]
    assert f"Our next protest: {when}, {PLACE}." in welcome.text()
    assert f'{when}, <span dir="auto">{PLACE}</span>.' in welcome.html()  # the place keeps its own direction
    assert path_of(welcome.message["List-Unsubscribe"].strip("<>")).startswith("/unsubscribe/")

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []


def test_posting_the_button_again_stores_nothing_more(visit, worker, smtp_sink, db, app, monkeypatch):
    """The button's POST sent a second time, as a bot replays it: the same answer, one signup, one mail."""
    monkeypatch.setitem(app.config, "SIGNUP_MIN_FILL_SECONDS", 60)
    page = visit().page
    page.goto("/subscribe")
    sign_up(page, "twice@example.org", "Twice")
    expect(heading(page)).to_have_text("One more step")
    fields = {name: page.locator(f"input[name={name}]").input_value() for name in ("csrf_token", "signup")}
    page.get_by_role("button", name="Yes, I'm a person: subscribe me").click()
    expect(heading(page)).to_have_text("Check your inbox")
    wait_for_signups(db)

    replay = page.request.post("/subscribe/check", form=fields)
    assert replay.ok and replay.url.endswith("/subscribe/thanks")
    assert "Check your inbox" in replay.text()

    wait_for_signups(db)
    smtp_sink.wait_for("twice@example.org")
    smtp_sink.settle()
    assert len(smtp_sink.to("twice@example.org")) == 1
