"""The organisers' home page, navigation, list form, export page and favicon in a real browser.

The home page shows counts of what is waiting (drafts, scheduled campaigns, the next protest and its reminders); the
navigation fits one line at 1280 px and wraps without sideways scrolling on a 390 px phone; the list form's slug
pattern compiles in Chromium (no console error) and blocks a bad slug, which the server also refuses; the export page
downloads only on a POST, with the chosen filters. Pages are checked with axe-core in light and dark at both widths
and saved as screenshots under /tmp/shots-fixes/ for a person to look at.
"""

import csv
import io
import tempfile
from datetime import date, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import Inspector, heading, horizontal_overflow, sign_in
from tests.factories import add_confirmed, make_campaign, make_organiser, reminders_list
from uscmail.campaigns.models import CampaignStatus
from uscmail.extensions import db as database
from uscmail.models import MailingList, utcnow
from uscmail.organisers.models import AuditEvent
from uscmail.reminders import services as events

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "shots-fixes"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
ADMIN = "a.very.long.organiser.address@uyghur-solidarity-campaign.example.org"


def admin_secret() -> str:
    return make_organiser(ADMIN, "admin", commit=True).totp_secret


def busy_day() -> None:
    """Two drafts, one scheduled campaign, an active protest with a time, three confirmed subscribers."""
    make_campaign("Spring newsletter")
    make_campaign("Draft about the vigil")
    scheduled = make_campaign("Scheduled appeal")
    scheduled.status = CampaignStatus.SCHEDULED
    scheduled.scheduled_at = utcnow() + timedelta(days=2)
    fields = events.EventFields(
        title="Vigil outside the embassy",
        place="49–51 Portland Place, London",
        list_id=reminders_list().id,
        rrule="FREQ=MONTHLY;BYMONTHDAY=5",
        first_date=date(2026, 1, 5),
        start_time=time(18, 0),
    )
    events.resume(events.create_event(fields, "test"), "test")
    database.session.commit()
    add_confirmed(3)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_home_shows_what_waits_and_the_navigation_fits(visit, db, scheme, viewport):
    secret = admin_secret()
    busy_day()
    browser = visit(viewport=WIDTHS[viewport], color_scheme=scheme)
    page = browser.page
    check = Inspector(page, scheme, viewport, SCREENSHOTS, "home")
    sign_in(page, ADMIN, secret)
    check("page", "Organisers")
    expect(page.locator("#count-drafts")).to_have_text("2")
    expect(page.locator("#count-scheduled")).to_have_text("1")
    expect(page.locator("#count-sending")).to_have_text("0")
    expect(page.locator("#count-confirmed")).to_have_text("3")
    protest = page.get_by_role("region", name="Next protest")
    expect(protest).to_contain_text("18:00")
    expect(protest.get_by_role("listitem")).to_have_count(2)  # the two default reminders
    expect(protest.get_by_role("listitem").first).to_contain_text("to come")
    nav = page.get_by_role("navigation", name="Organisers")
    expect(nav.get_by_role("link", name="Export")).to_be_visible()
    middles = nav.evaluate(
        """nav => [...nav.querySelectorAll('a, button, .nav-who')].map(element => {
             const box = element.getBoundingClientRect(); return Math.round(box.top + box.height / 2) })"""
    )
    if viewport == "desktop":  # one line: every item's middle at the same height (smaller text aside)
        assert max(middles) - min(middles) <= 4, f"the navigation wraps at 1280 px: items at {sorted(set(middles))}"
    assert horizontal_overflow(page) == 0
    page.get_by_role("link", name="Import", exact=True).click()
    check("nav-import", "Import subscribers")
    assert not check.problems, check.report()
    assert browser.server_errors == [] and browser.foreign_requests() == []


def test_the_slug_pattern_compiles_blocks_a_bad_slug_and_the_server_refuses_it_too(visit, db):
    secret = admin_secret()
    browser = visit(viewport=WIDTHS["desktop"])
    page = browser.page
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    sign_in(page, ADMIN, secret)
    page.goto("/organisers/lists/new")
    expect(heading(page)).to_have_text("New list")
    slug = page.get_by_label("Short name")
    assert page.evaluate("p => { new RegExp(p, 'v'); return true }", slug.get_attribute("pattern"))
    slug.fill("Bad Slug!")
    page.get_by_label("Name", exact=True).fill("Bad list")
    page.get_by_role("button", name="Create list").click()
    assert slug.evaluate("input => input.validity.patternMismatch")  # the browser stopped the form
    expect(heading(page)).to_have_text("New list")
    assert not [line for line in console if "pattern" in line.lower()], console
    # Without the browser's check, the server says no and keeps what was typed.
    slug.evaluate("input => input.removeAttribute('pattern')")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("alert")).to_contain_text("The short name may use a-z, 0-9 and hyphens")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Bad list")
    assert db.session.scalar(sa.select(MailingList).where(MailingList.name == "Bad list")) is None
    page.get_by_label("Short name").fill("vigil-2027")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("cell", name="vigil-2027")).to_be_visible()
    db.session.rollback()
    assert db.session.scalar(sa.select(MailingList.name).where(MailingList.slug == "vigil-2027")) == "Bad list"


def test_export_filters_are_filled_and_the_download_holds_those_rows(visit, db):
    secret = admin_secret()
    newsletter_people = add_confirmed(2)
    add_confirmed(1, reminders_list(), domain="example.net")
    browser = visit(viewport=WIDTHS["desktop"], accept_downloads=True)
    page = browser.page
    sign_in(page, ADMIN, secret)
    page.goto("/organisers/export.csv")  # the old link: a page now, no download
    expect(heading(page)).to_have_text("Export subscribers")
    check = Inspector(page, "light", "desktop", SCREENSHOTS, "export")
    check("page", "Export subscribers")
    expect(page.locator("#export-warning")).to_contain_text("could be put in danger")
    page.get_by_role("checkbox", name="Newsletter").check()
    page.get_by_label("Subscription status").select_option(label="Confirmed")
    page.get_by_label("Joined on or after").fill((utcnow() - timedelta(days=1)).date().isoformat())
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the CSV file").click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["email", "name", "locale", "created_at", "newsletter"]
    assert sorted((row[0], row[4]) for row in rows[1:]) == [(email, "confirmed") for email in sorted(newsletter_people)]
    db.session.rollback()
    [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "subscribers.export")).all()
    assert event.actor == ADMIN and event.details["subscribers"] == 2 and event.details["lists"] == ["newsletter"]
    assert not check.problems, check.report()


def test_every_page_has_our_own_favicon(visit, db):
    browser = visit(viewport=WIDTHS["desktop"])
    page = browser.page
    page.goto("/subscribe")
    icon = page.locator("link[rel=icon]")
    assert icon.get_attribute("href") == "/static/favicon.svg" and icon.get_attribute("type") == "image/svg+xml"
    svg = page.request.get("/static/favicon.svg")
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.body()
    ico = page.request.get("/favicon.ico")
    assert ico.status == 200 and ico.headers["content-type"] in ("image/vnd.microsoft.icon", "image/x-icon")
    assert ico.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    assert browser.server_errors == [] and browser.foreign_requests() == []
