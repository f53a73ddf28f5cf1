"""The campaign pages in a real browser: accessibility and phone widths, the live preview, the live progress bar.

An editor signs in through the login and two-factor pages in headless Chromium. Each campaign page is checked with
axe-core (WCAG 2.2 A/AA) in light and dark at desktop and phone widths, must not scroll sideways, and is saved as a
screenshot under /tmp/uscmail-campaign-screenshots/ for a person to look at.
"""

import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, create_editor, heading, sign_in_editor
from tests.campaign_support import status_of, wait_for_status
from tests.factories import add_confirmed, make_campaign, make_event, newsletter
from uscmail.campaigns import services, tasks
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from uscmail.extensions import db as database
from uscmail.models import Subscriber, utcnow

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "uscmail-campaign-screenshots"
LONG_SUBJECT = (
    "Stand with Uyghur families: the March protest outside the embassy on Portland Place, and what comes next"
)


def finished_campaign() -> Campaign:
    """A sent campaign with deliveries in every end state, written directly (the pages only read them)."""
    campaign = make_campaign(LONG_SUBJECT)
    services.start_sending(campaign, "test")
    subscriber_ids = database.session.scalars(sa.select(Subscriber.id).order_by(Subscriber.id)).all()
    outcomes = [DeliveryStatus.SENT] * (len(subscriber_ids) - 3) + [
        DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.UNKNOWN,
    ]  # fmt: skip
    database.session.execute(
        sa.insert(Delivery),
        [
            {"campaign_id": campaign.id, "subscriber_id": subscriber_id, "status": status, "attempts": 1,
             "sent_at": utcnow() if status is DeliveryStatus.SENT else None,
             "error": "550 5.1.1 Mailbox unavailable" if status is DeliveryStatus.FAILED else None}
            for subscriber_id, status in zip(subscriber_ids, outcomes, strict=True)
        ],
    )  # fmt: skip
    database.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(status=CampaignStatus.SENT, snapshot_done=True, finished_at=utcnow(), public=True)
    )
    database.session.commit()
    return campaign


def upcoming_protest() -> None:
    """A monthly protest, not on hold, with a note on its next date, for the public /events page."""
    from datetime import date

    from uscmail.reminders.models import OccurrenceOverride
    from uscmail.reminders.schedule import occurrence_dates

    event = make_event(
        commit=False,
        first_date=date(2026, 1, 5),
        list_id=newsletter().id,
        subject_template="Protest {{ date }}",
        body_template="See you there.",
        active_since=utcnow(),
    )
    today = date.today()
    next_date = occurrence_dates(event, today, date(today.year + 1, today.month, 1))[1]
    database.session.add(OccurrenceOverride(event_id=event.id, occurrence_date=next_date, note="Bring banners"))
    database.session.commit()


@pytest.mark.parametrize(
    ("scheme", "viewport"), [("light", "desktop"), ("dark", "desktop"), ("light", "phone"), ("dark", "phone")]
)
def test_campaign_pages_are_accessible_and_fit_the_screen(visit, db, scheme, viewport):
    secret = create_editor()
    add_confirmed(12)
    draft = make_campaign("Newsletter: March", body="Dear {{ subscriber.name }},\n\n## Protest on the 5th\n\nJoin us.")
    sent = finished_campaign()
    upcoming_protest()
    browser_visit = visit(viewport=VIEWPORTS[viewport], color_scheme=scheme)
    page = browser_visit.page
    inspect = Inspector(page, scheme, viewport, SCREENSHOTS, "campaigns")
    sign_in_editor(page, secret)

    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Campaigns").click()
    inspect("list", "Campaigns")
    page.get_by_role("link", name="New campaign").click()
    expect(page.frame_locator("#preview-frame").locator("body")).to_contain_text("The mail appears here as you write")
    inspect("compose-new", "New campaign")
    page.get_by_label("Subject").fill("A campaign typed in the browser")
    page.get_by_label("Body", exact=True).fill("Dear {{ subscriber.name }},\n\nSee you at **Portland Place**.")
    page.get_by_label("Newsletter").check()
    expect(page.frame_locator("#preview-frame").locator("body")).to_contain_text("Portland Place")
    inspect("compose-filled", "New campaign")
    page.get_by_role("button", name="Save draft").click()
    inspect("campaign-draft", "A campaign typed in the browser")
    page.get_by_label("Send at (London time)").fill("2027-03-28T01:30")
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("alert")).to_contain_text("does not exist in London")
    inspect("campaign-schedule-error", "A campaign typed in the browser")
    page.get_by_role("link", name="Send now…").click()
    inspect("confirm-send", "Send this campaign now?")

    page.goto(f"/organisers/campaigns/{draft.id}/edit")
    inspect("compose-edit", "Edit “Newsletter: March”")
    page.goto(f"/organisers/campaigns/{sent.id}")
    expect(page.locator("#send-progress")).to_have_attribute("value", "100")
    expect(page.locator('[data-stat="sent"]')).to_have_text("9")
    inspect("campaign-sent", LONG_SUBJECT)
    page.get_by_role("link", name="Plain-text version").click()
    inspect("text", "Plain-text version")
    page.goto("/events")
    inspect("events", "Protests")
    expect(page.locator("#events")).to_contain_text("Bring banners")
    page.goto("/archive")
    inspect("archive", "Newsletter archive")
    page.get_by_role("link", name=LONG_SUBJECT).click()  # the web version: the mail itself, for no one in particular
    expect(page.locator("body")).to_contain_text("Dear supporter,")
    page.screenshot(path=SCREENSHOTS / f"campaigns-web-version-{viewport}-{scheme}.png", full_page=True)

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []


def test_the_preview_follows_typing_and_switches_to_phone_width(visit, db):
    secret = create_editor()
    add_confirmed(2)
    browser_visit = visit(viewport=VIEWPORTS["desktop"])
    page = browser_visit.page
    sign_in_editor(page, secret)
    page.goto("/organisers/campaigns/new")
    frame = page.frame_locator("#preview-frame")
    page.get_by_label("Subject").fill("Live preview")
    page.get_by_label("Newsletter").check()
    page.get_by_label("Body", exact=True).press_sequentially("Hello {{ subscriber.name }}, typed live", delay=20)
    expect(frame.locator("body")).to_contain_text("Hello Alex, typed live")
    assert page.locator("#preview-frame").bounding_box()["width"] == pytest.approx(600, abs=1)
    page.get_by_label("Phone (375 px)").check()
    expect(page.locator("#preview-frame")).to_have_css("width", "375px")
    page.get_by_label("Body", exact=True).press_sequentially(" and then some more")
    expect(frame.locator("body")).to_contain_text("typed live and then some more")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "campaigns-live-preview-phone-width.png", full_page=True)
    assert page.evaluate("document.querySelector('#compose-form').getAttribute('target')") is None
    database.session.rollback()
    assert database.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0  # previews store nothing
    assert browser_visit.server_errors == [] and browser_visit.foreign_requests() == []


def test_without_javascript_the_preview_button_fills_the_frame(visit, db):
    secret = create_editor()
    add_confirmed(1)
    campaign = make_campaign("Without scripts", body="Nothing runs here, yet the preview works.")
    browser_visit = visit(viewport=VIEWPORTS["phone"], java_script_enabled=False)
    page = browser_visit.page
    sign_in_editor(page, secret)
    page.goto(f"/organisers/campaigns/{campaign.id}/edit")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("body")).to_contain_text("yet the preview works")  # the saved version, on load
    page.get_by_label("Body", exact=True).fill("Changed, not saved.")
    page.get_by_role("button", name="Preview").click()
    expect(frame.locator("body")).to_contain_text("Changed, not saved.")
    expect(heading(page)).to_have_text("Edit “Without scripts”")  # the page itself stayed put
    assert status_of(campaign.id) is CampaignStatus.DRAFT


def test_the_progress_bar_follows_a_sending_campaign_without_reloading(visit, db, spawn_worker, smtp_sink):
    secret = create_editor()
    add_confirmed(300)
    # Small batches, each written as it ends, and a slow sink: several seconds in all, so the page sees it happen.
    queue = f"campaign-progress-{uuid.uuid4().hex[:6]}"
    spawn_worker("progress", queue=queue, CAMPAIGN_BATCH_SIZE=20)
    smtp_sink.delay = 0.04
    campaign = make_campaign("Three hundred supporters", lists=[newsletter()])
    services.start_sending(campaign, "test")
    database.session.commit()
    browser_visit = visit(viewport=VIEWPORTS["desktop"])
    page = browser_visit.page
    sign_in_editor(page, secret)
    page.goto(f"/organisers/campaigns/{campaign.id}")
    expect(page.locator("#send-progress")).to_have_attribute("value", "0")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    tasks.start_campaign.apply_async((campaign.id,), queue=queue)  # the worker starts while the page is open
    seen = set()
    for _ in range(300):
        seen.add(page.locator("#send-progress").get_attribute("value"))
        if "100" in seen:
            break
        page.wait_for_timeout(100)
    expect(page.locator("#send-progress")).to_have_attribute("value", "100", timeout=60_000)
    expect(page.locator("#campaign-status")).to_have_text("sent")
    expect(page.locator('[data-stat="sent"]')).to_have_text("300")
    expect(page.locator("#progress-note")).to_contain_text("The campaign is now sent")
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()  # an action for a status it has left
    expect(page.get_by_role("link", name="Cancel campaign…")).to_be_hidden()
    assert page.evaluate("window.stillTheSamePage") is True
    assert len(seen - {"0", "100"}) >= 1, f"no value between 0 and 100 was shown: {seen}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "campaigns-progress-finished.png", full_page=True)
    wait_for_status(campaign.id, CampaignStatus.SENT)
    assert browser_visit.server_errors == []
