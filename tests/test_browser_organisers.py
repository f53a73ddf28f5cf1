"""The organisers' pages in a real browser: signing in with a password and TOTP, accessibility, phones, privacy.

An admin signs in through the login and two-factor pages in headless Chromium, then every organiser page is opened
with seeded data (names in Uyghur and Chinese, a long address, a few weeks of signups for the chart, audit events).
On each page: axe-core WCAG 2.2 A/AA, no sideways scrolling of the page, no request to another origin, a screenshot
in test-artifacts/screenshots/ for a person to look at.
"""

from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import SCREENSHOTS, VIEWPORTS, Visit, axe_violations, heading, horizontal_overflow
from tests.conftest import TEST_ENV
from tests.factories import ORGANISER_PASSWORD, make_organiser
from uscmail.models import MailingList, Subscriber, Subscription, utcnow
from uscmail.organisers import audit
from uscmail.organisers.models import Organiser
from uscmail.subscribers import services as subscriber_services
from uscmail.subscribers.services import ConsentBasis, ConsentMethod

pytestmark = pytest.mark.browser

ADMIN = "admin.browser@example.org"
NEW_PASSWORD = "four random words for the newcomer"
NEWCOMER = "newcomer.browser@example.org"
LONG_ADDRESS = "a.supporter.with.an.exceptionally.long.address.for.testing@a-long-campaign-domain.example.org"
PEOPLE = [
    ("gulnar.tursun@example.org", "گۈلنار تۇرسۇن", ("newsletter",)),  # Uyghur, right to left
    ("ablikim@example.org", "ئابلىكىم مەمەت", ("newsletter", "london-protest-reminders")),
    ("li.wei@example.org", "李伟", ("london-protest-reminders",)),
    ("dilnur@example.org", "Dilnur Abdulla", ("newsletter",)),
    (LONG_ADDRESS, "Rahima Qasim-Montgomery-Fairweather", ("newsletter", "london-protest-reminders")),
]


def live_base_url() -> str:
    """Where links the app makes point to (BASE_URL); the browser opens their paths on the live server."""
    return TEST_ENV["BASE_URL"]


def mailing_list(db, slug: str) -> MailingList:
    return db.session.scalar(sa.select(MailingList).where(MailingList.slug == slug))


def seed(db) -> dict:
    """An admin with TOTP, subscribers over several weeks, some audit events.
    Returns the admin's id and TOTP secret."""
    admin = make_organiser(ADMIN, "admin")
    ids = {}
    for email, name, slugs in PEOPLE:
        subscriber, _ = subscriber_services.add_subscriber(
            email,
            name,
            [mailing_list(db, slug) for slug in slugs],
            ConsentBasis.PRIOR_CONSENT,
            "Signed up at a stall, paper form kept",
            ConsentMethod.IMPORT,
            admin,
        )
        ids[email] = subscriber.id
    subscriber_services.unsubscribe_from(db.session.get(Subscriber, ids["dilnur@example.org"]), None, "test")
    db.session.flush()
    # Spread the signups (and the one unsubscribe) over the last weeks so the chart has bars of different heights.
    now = utcnow()
    for weeks_ago, subscription in enumerate(db.session.scalars(sa.select(Subscription).order_by(Subscription.id))):
        subscription.created_at = now - timedelta(weeks=weeks_ago % 5, hours=1)
        if subscription.unsubscribed_at is not None:
            subscription.unsubscribed_at = now - timedelta(weeks=1)
    audit.record(admin, "list.update", "mailing_list", mailing_list(db, "newsletter").id, field="description")
    audit.record("cli", "housekeeping.purge", None, None, removed=3)
    db.session.commit()
    return {"admin": admin.id, "secret": admin.totp_secret}


class Inspector:
    """Checks each page it is given and collects what is wrong, per page; screenshots as it goes."""

    def __init__(self, browser_visit: Visit, scheme: str, viewport: str):
        self.visit = browser_visit
        self.scheme = scheme
        self.viewport = viewport
        self.problems: dict[str, list[str]] = {}
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, title: str, page=None) -> None:
        page = page or self.visit.page
        expect(heading(page)).to_have_text(title)
        page.wait_for_load_state("load")
        found = axe_violations(page)
        overflow = horizontal_overflow(page)
        if overflow > 0:
            found.append(f"page is {overflow}px wider than the {VIEWPORTS[self.viewport]['width']}px viewport")
        if found:
            self.problems[name] = found
        page.screenshot(path=SCREENSHOTS / f"organisers-{name}-{self.viewport}-{self.scheme}.png", full_page=True)

    def report(self) -> str:
        return "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in self.problems.items())


@pytest.mark.parametrize(
    ("scheme", "viewport"), [("light", "desktop"), ("dark", "desktop"), ("light", "phone"), ("dark", "phone")]
)
def test_every_organiser_page_is_accessible_fits_and_stays_on_our_origin(visit, db, scheme, viewport):
    """Sign in as an admin in the browser and walk every organiser page: axe, no sideways page scroll, same origin."""
    seeded = seed(db)
    options = {"viewport": VIEWPORTS[viewport], "color_scheme": scheme}
    admin_visit = visit(**options)
    page = admin_visit.page
    inspect = Inspector(admin_visit, scheme, viewport)

    page.goto("/organisers/")  # not signed in: sent to the login page
    inspect("login", "Organisers: sign in")
    page.get_by_label("Email address").fill(ADMIN)
    page.get_by_label("Password").fill(ORGANISER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    inspect("two-factor", "Enter your authentication code")
    page.get_by_role("textbox").fill(pyotp.TOTP(seeded["secret"]).now())
    page.get_by_role("button", name="Continue").click()
    inspect("home", "Organisers")

    nav = page.get_by_role("navigation", name="Organisers")
    nav.get_by_role("link", name="Dashboard").click()
    inspect("dashboard", "Dashboard")
    bars = page.locator('svg.chart-svg .chart-bars rect:not([height="0.0"])')
    expect(bars).to_have_count(6)  # signups in five different weeks and one unsubscribe

    nav.get_by_role("link", name="Subscribers").click()
    inspect("subscribers", "Subscribers")
    expect(page.get_by_role("cell", name="李伟")).to_be_visible()
    page.get_by_role("link", name=LONG_ADDRESS).click()
    inspect("subscriber", "Rahima Qasim-Montgomery-Fairweather")

    page.goto("/organisers/subscribers?q=ablikim")
    expect(page.get_by_role("cell", name="ئابلىكىم مەمەت")).to_be_visible()
    page.get_by_role("link", name="ablikim@example.org").click()
    inspect("subscriber-uyghur", "ئابلىكىم مەمەت")

    nav.get_by_role("link", name="Lists").click()
    inspect("lists", "Lists")
    page.goto("/organisers/lists/new")
    inspect("new-list", "New list")
    nav.get_by_role("link", name="Audit log").click()
    inspect("audit", "Audit log")
    nav.get_by_role("link", name="Organisers").click()
    inspect("accounts", "Organisers")
    # The admin creates an organiser and is shown their one-time set-up link.
    page.get_by_label("Email address").fill(NEWCOMER)
    page.get_by_label("Role", exact=True).select_option("editor")
    page.get_by_role("button", name="Create organiser").click()
    inspect("set-up-link", f"Set-up link for {NEWCOMER}")
    link = page.get_by_label("Set-up link").input_value()
    assert NEWCOMER not in link and link.startswith(f"{live_base_url()}/organisers/enrol/")
    nav.get_by_role("link", name="Your account").click()
    inspect("account", "Your account")
    nav.get_by_role("link", name="Import").click()
    inspect("import", "Import subscribers")

    # The newcomer opens the link, chooses a password, enrols an authenticator app, and is signed in.
    newcomer_visit = visit(**options)
    newcomer = newcomer_visit.page
    newcomer.goto(link.removeprefix(live_base_url()))
    inspect("enrol-link", "Set up your organiser account", page=newcomer)
    expect(newcomer.get_by_text(NEWCOMER)).to_be_visible()
    newcomer.get_by_role("button", name="Set up my account").click()
    inspect("enrol", "Set up your organiser account", page=newcomer)
    expect(newcomer.locator(".qr svg")).to_be_visible()
    newcomer.get_by_label("Choose a password").fill(NEW_PASSWORD)
    newcomer.get_by_label("The same password again").fill(NEW_PASSWORD)
    secret = newcomer.locator("code.secret").inner_text()
    newcomer.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    newcomer.get_by_role("button", name="Finish setting up").click()
    inspect("recovery-codes", "Save your recovery codes", page=newcomer)
    expect(newcomer.locator(".recovery-codes li")).to_have_count(10)
    newcomer.get_by_role("link", name="I have saved them").click()
    inspect("newcomer-home", "Organisers", page=newcomer)
    expect(newcomer.get_by_role("navigation", name="Organisers")).to_contain_text(f"{NEWCOMER} (editor)")

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    for browser_visit in (admin_visit, newcomer_visit):
        assert f"{browser_visit.origin}/static/style.css" in browser_visit.requests  # the log does see requests
        assert browser_visit.foreign_requests() == []
        assert browser_visit.server_errors == []
    db.session.rollback()
    assert db.session.get(Organiser, seeded["admin"]).last_login_at is not None
