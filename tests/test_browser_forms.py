"""Every organiser form, filled in, sent and checked in a real browser (issue #13: "make every organiser form's
browser test submit the form and check the result"). Grouped by page; each test fills a form as a person does,
presses its button in headless Chromium, and checks what came of it: the page, the row, the mail.

Forms covered elsewhere are not repeated here: signing in, two-factor and enrolment, creating an organiser
(test_browser_organisers.py); creating and resuming an event (test_browser_events.py); the spam check and deleting
set-aside mail (test_sender_health.py). The compose, import and export forms have tests of their own.
"""

from datetime import UTC, date, datetime, time

import pyotp
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.api_support import issue_token
from tests.browser_support import heading, sign_in
from tests.campaign_support import start, start_without_worker, status_of, wait_for_status
from tests.factories import (
    ORGANISER_PASSWORD,
    add_confirmed,
    mailing_list,
    make_campaign,
    make_event,
    make_organiser,
    make_subscriber,
    newsletter,
    reminders_list,
)
from uscmail.campaigns.models import Campaign, CampaignStatus
from uscmail.models import Subscriber, SubscriptionStatus
from uscmail.organisers.models import ApiToken, AuditEvent, Organiser, Role
from uscmail.reminders.models import Event, OccurrenceOverride

pytestmark = pytest.mark.browser


def now_timestamp() -> float:
    """Seconds since the epoch, now."""
    return datetime.now(UTC).timestamp()


ADMIN = "admin.forms@example.org"
NEW_PASSWORD = "seven lanterns over a quiet river"


def status_message(page):
    """The green "done" box of an organiser page."""
    return page.get_by_role("status")


def page_error(page):
    """The red error box of an organiser page."""
    return page.get_by_role("alert")


def signed_in_admin(visit, db):
    """A browser page signed in as an admin; returns the page and the admin's TOTP secret."""
    admin = make_organiser(ADMIN, "admin", commit=True)
    secret = admin.totp_secret
    browser_visit = visit()
    sign_in(browser_visit.page, ADMIN, secret)
    return browser_visit, secret


def organiser(db, email: str) -> Organiser:
    """The organiser row as committed now."""
    db.session.rollback()
    return db.session.scalar(sa.select(Organiser).where(Organiser.email == email))


# --- Organisers (admin) ---------------------------------------------------------------------------------------------


def test_the_organisers_page_changes_a_role_revokes_a_token_disables_resets_and_renews_links(visit, db):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    make_organiser("role.change@example.org", "editor", commit=True)
    issue_token(db, "editor", email="role.change@example.org", name="website sync")
    make_organiser("to.disable@example.org", "viewer", commit=True)
    make_organiser("lost.phone@example.org", "editor", commit=True)
    make_organiser("never.came@example.org", "viewer", enrolled=False, commit=True)
    page.goto("/organisers/accounts")

    target = organiser(db, "role.change@example.org")
    page.get_by_label("Role of role.change@example.org").select_option("viewer")
    page.get_by_role("button", name="Change the role of role.change@example.org").click()
    expect(status_message(page)).to_contain_text("role.change@example.org is now viewer")
    assert organiser(db, "role.change@example.org").role is Role.VIEWER

    page.get_by_role("button", name="Revoke the token website sync of role.change@example.org").click()
    expect(status_message(page)).to_contain_text("The API token “website sync” of role.change@example.org is revoked.")
    live = db.session.scalars(
        sa.select(ApiToken).where(ApiToken.organiser_id == target.id, ApiToken.revoked_at.is_(None))
    ).all()
    assert live == []

    page.get_by_role("link", name="Disable to.disable@example.org").click()
    expect(heading(page)).to_have_text("Disable to.disable@example.org?")
    page.get_by_label("Yes, disable this account").check()
    page.get_by_role("button", name="Disable the account").click()
    expect(status_message(page)).to_contain_text("to.disable@example.org is disabled.")
    assert organiser(db, "to.disable@example.org").active is False

    page.get_by_role("link", name="Reset two-factor of lost.phone@example.org").click()
    page.get_by_label("Yes, reset their two-factor authentication").check()
    page.get_by_role("button", name="Reset two-factor authentication").click()
    expect(heading(page)).to_have_text("Set-up link for lost.phone@example.org")
    assert page.get_by_label("Set-up link").input_value().startswith("https://lists.uscuk.test/organisers/enrol/")
    assert organiser(db, "lost.phone@example.org").totp_secret is None

    page.goto("/organisers/accounts")
    page.get_by_role("link", name="New set-up link for never.came@example.org").click()
    page.get_by_label("Yes, make a new set-up link").check()
    page.get_by_role("button", name="Make a new set-up link").click()
    expect(heading(page)).to_have_text("Set-up link for never.came@example.org")
    assert "/organisers/enrol/" in page.get_by_label("Set-up link").input_value()
    assert browser_visit.server_errors == []


def test_the_audit_log_filter_shows_only_what_was_asked_for(visit, db):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    make_organiser("someone@example.org", "viewer", commit=True)
    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Audit log").click()

    page.get_by_label("Action").select_option("organiser.create")
    page.get_by_role("button", name="Filter").click()
    actions = page.locator("table tbody tr td:nth-child(3)")
    expect(actions.first).to_have_text("organiser.create")
    assert set(actions.all_inner_texts()) == {"organiser.create"}
    assert "action=organiser.create" in page.url

    page.get_by_label("Action").select_option("")
    page.get_by_role("textbox", name="Organiser").fill("nobody-at-all@example.org")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table tbody")).to_have_text("No events match.")
    assert browser_visit.server_errors == []


# --- Your account ---------------------------------------------------------------------------------------------------


def test_your_account_makes_new_recovery_codes_changes_the_password_and_signs_out(visit, db):
    browser_visit, secret = signed_in_admin(visit, db)
    page = browser_visit.page
    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Your account").click()
    expect(page.locator("#codes-left")).to_contain_text("You have 0 unused recovery codes left.")

    page.get_by_label("Authenticator code").fill("000000")
    page.get_by_role("button", name="Make new recovery codes").click()
    expect(page_error(page)).to_contain_text("That code is not valid")
    # The sign-in used this time step's code; the next one is still accepted, and is not a replay.
    page.get_by_label("Authenticator code").fill(pyotp.TOTP(secret).at(int(now_timestamp()) + 30))
    page.get_by_role("button", name="Make new recovery codes").click()
    expect(heading(page)).to_have_text("Save your new recovery codes")
    expect(page.locator(".recovery-codes li")).to_have_count(10)
    recovery_code = page.locator(".recovery-codes li").first.inner_text().strip()
    page.goto("/organisers/account")
    expect(page.locator("#codes-left")).to_contain_text("You have 10 unused recovery codes left.")

    page.get_by_label("Current password").fill("not my password at all")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page_error(page)).to_contain_text("That is not your current password")
    page.get_by_label("Current password").fill(ORGANISER_PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(heading(page)).to_have_text("Organisers: sign in")
    expect(status_message(page)).to_contain_text("Your password is changed")

    page.get_by_label("Email address").fill(ADMIN)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(heading(page)).to_have_text("Enter your authentication code")
    page.get_by_role("textbox").fill(recovery_code)  # the authenticator's next codes are spent: a new code works
    page.get_by_role("button", name="Continue").click()
    expect(heading(page)).to_have_text("Organisers")

    page.get_by_role("button", name="Sign out").click()
    expect(heading(page)).to_have_text("Organisers: sign in")
    page.goto("/organisers/accounts")
    expect(heading(page)).to_have_text("Organisers: sign in")
    db.session.rollback()
    assert db.session.scalar(
        sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "organiser.password_changed")
    )
    assert browser_visit.server_errors == []


# --- Subscribers ----------------------------------------------------------------------------------------------------


def subscriber_named(db, email: str) -> Subscriber | None:
    """The subscriber row as committed now."""
    db.session.rollback()
    return db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))


def statuses_of(db, email: str) -> dict[str, SubscriptionStatus]:
    """List slug -> subscription status of an address, as committed now."""
    return {s.mailing_list.slug: s.status for s in subscriber_named(db, email).subscriptions}


def test_the_subscriber_search_finds_by_address_list_and_status(visit, db):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    make_subscriber("rahima@example.org", "Rahima", lists=["newsletter"])
    make_subscriber("erkin@example.org", "Erkin", lists=["london-protest-reminders"])
    make_subscriber("erkin.pending@example.org", "Erkin P", lists=["newsletter"], status=SubscriptionStatus.PENDING)
    db.session.commit()
    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Subscribers").click()

    page.get_by_label("Address or name").fill("erkin")
    page.get_by_role("button", name="Search").click()
    results = page.locator("#subscriber-results tbody tr td:first-child")
    expect(results).to_have_text(["erkin.pending@example.org", "erkin@example.org"], ignore_case=True)
    page.get_by_label("List").select_option("newsletter")
    page.get_by_label("Status").select_option("pending")
    page.get_by_role("button", name="Search").click()
    expect(results).to_have_text(["erkin.pending@example.org"])
    assert browser_visit.server_errors == []


def test_a_subscribers_page_renames_subscribes_unsubscribes_and_erases(visit, db):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    person = make_subscriber("gulnar@example.org", "Gulnar", lists=["newsletter"])
    db.session.commit()
    page.goto(f"/organisers/subscribers/{person.id}")

    page.get_by_label("Name").fill("Gülnar Tursun")
    page.get_by_role("button", name="Save name").click()
    expect(heading(page)).to_have_text("Gülnar Tursun")
    assert subscriber_named(db, "gulnar@example.org").name == "Gülnar Tursun"

    page.get_by_label("Subscribe to").select_option(label="London protest reminders")
    page.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page.locator("#subscriptions")).to_contain_text("London protest reminders")
    assert statuses_of(db, "gulnar@example.org") == {
        "newsletter": SubscriptionStatus.CONFIRMED,
        "london-protest-reminders": SubscriptionStatus.CONFIRMED,
    }

    page.get_by_role("button", name="Unsubscribe from Newsletter").click()
    expect(status_message(page)).to_be_visible()
    assert statuses_of(db, "gulnar@example.org")["newsletter"] is SubscriptionStatus.UNSUBSCRIBED

    page.get_by_role("button", name="Unsubscribe from all lists").click()
    expect(status_message(page)).to_be_visible()
    assert set(statuses_of(db, "gulnar@example.org").values()) == {SubscriptionStatus.UNSUBSCRIBED}

    page.get_by_role("link", name="Erase this subscriber").click()
    expect(heading(page)).to_have_text("Erase gulnar@example.org?")
    page.get_by_label("Yes, erase this subscriber's data for good").check()
    page.get_by_role("button", name="Erase for good").click()
    expect(status_message(page)).to_contain_text("The subscriber is erased.")
    expect(heading(page)).to_have_text("Subscribers")
    assert subscriber_named(db, "gulnar@example.org") is None
    assert browser_visit.server_errors == []


# --- Lists ----------------------------------------------------------------------------------------------------------


def test_lists_are_created_edited_archived_and_brought_back(visit, db):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Lists").click()
    page.get_by_role("link", name="New list").click()

    page.get_by_label("Short name").fill("vigils")
    page.get_by_label("Name", exact=True).fill("Vigils")
    page.get_by_label("Description").fill("Candle-lit vigils for the disappeared.")
    page.get_by_label("Public: offered on the signup form").check()
    page.get_by_role("button", name="Create list").click()
    expect(status_message(page)).to_contain_text("The list Vigils is created.")
    expect(page.locator("#lists")).to_contain_text("Candle-lit vigils for the disappeared.")
    vigils = mailing_list("vigils")
    assert (vigils.name, vigils.public, vigils.archived) == ("Vigils", True, False)

    page.get_by_role("link", name="Edit Vigils").click()
    page.get_by_label("Name", exact=True).fill("Vigils in London")
    page.get_by_label("Public: offered on the signup form").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(status_message(page)).to_contain_text("The list Vigils in London is saved.")
    db.session.rollback()
    assert (mailing_list("vigils").name, mailing_list("vigils").public) == ("Vigils in London", False)

    page.get_by_role("button", name="Archive Vigils in London").click()
    expect(status_message(page)).to_contain_text("The list Vigils in London is archived.")
    db.session.rollback()
    assert mailing_list("vigils").archived is True
    page.get_by_role("link", name="Edit Vigils in London").click()
    page.get_by_role("button", name="Unarchive").click()
    expect(status_message(page)).to_contain_text("The list Vigils in London is back in use.")
    db.session.rollback()
    assert mailing_list("vigils").archived is False
    page.get_by_role("link", name="Edit Vigils in London").click()
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(status_message(page)).to_contain_text("is archived")
    page.get_by_role("button", name="Unarchive Vigils in London").click()
    expect(status_message(page)).to_contain_text("is back in use")
    db.session.rollback()
    assert mailing_list("vigils").archived is False
    assert browser_visit.server_errors == []


def scheduled_at(db, campaign_id: int) -> datetime | None:
    """When the campaign is scheduled for, as committed now (aware, UTC)."""
    db.session.rollback()
    return db.session.scalar(sa.select(Campaign.scheduled_at).where(Campaign.id == campaign_id))


# --- A campaign's page (the compose page has its own tests) --------------------------------------------------------


def test_a_campaign_is_scheduled_rescheduled_unscheduled_cancelled_and_a_draft_deleted(visit, db):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    campaign = make_campaign("Scheduled in the browser", lists=[newsletter()])
    draft = make_campaign("A draft to delete", lists=[newsletter()])
    page.goto(f"/organisers/campaigns/{campaign.id}")

    page.get_by_label("Send at (London time)").fill("2027-06-05T14:00")
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator("#campaign-status")).to_have_text("scheduled")
    assert status_of(campaign.id) is CampaignStatus.SCHEDULED
    assert scheduled_at(db, campaign.id) == datetime(2027, 6, 5, 13, 0, tzinfo=UTC)  # 2 pm BST

    page.get_by_label("Send at (London time)").fill("2027-12-05T14:00")
    page.get_by_role("button", name="Change the time").click()
    expect(page.locator("#campaign-status")).to_have_text("scheduled")
    assert scheduled_at(db, campaign.id) == datetime(2027, 12, 5, 14, 0, tzinfo=UTC)  # 2 pm GMT

    page.get_by_role("button", name="Unschedule").click()
    expect(page.locator("#campaign-status")).to_have_text("draft")
    assert status_of(campaign.id) is CampaignStatus.DRAFT

    page.get_by_label("Send at (London time)").fill("2027-12-05T14:00")
    page.get_by_role("button", name="Schedule").click()
    page.get_by_role("link", name="Cancel campaign…").click()
    expect(heading(page)).to_have_text("Cancel “Scheduled in the browser”?")
    page.get_by_role("button", name="Cancel the campaign").click()
    expect(page.locator("#campaign-status")).to_have_text("cancelled")
    assert status_of(campaign.id) is CampaignStatus.CANCELLED

    page.goto(f"/organisers/campaigns/{draft.id}")
    page.get_by_role("link", name="Delete draft…").click()
    page.get_by_role("button", name="Delete the draft").click()
    expect(heading(page)).to_have_text("Campaigns")
    assert status_of(draft.id) is None
    assert browser_visit.server_errors == []


def test_a_test_copy_and_send_now_deliver_the_mail(visit, db, worker, smtp_sink):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    recipients = add_confirmed(3, domain="forms.example.org")
    campaign = make_campaign("Sent from the browser", lists=[newsletter()])
    page.goto(f"/organisers/campaigns/{campaign.id}")

    page.get_by_label("Send a test copy to").fill("proof.reader@example.org, second.reader@example.org")
    page.get_by_role("button", name="Send test").click()
    expect(status_message(page)).to_be_visible()
    for address in ("proof.reader@example.org", "second.reader@example.org"):
        [copy] = smtp_sink.wait_for(address)
        assert copy.message["Subject"] == "[Test] Sent from the browser"

    page.get_by_role("link", name="Send now…").click()
    expect(heading(page)).to_have_text("Send this campaign now?")
    expect(page.locator("#send-summary")).to_contain_text("3 people")
    page.get_by_role("button", name="Send to 3 people").click()
    expect(page.locator("#campaign-status")).to_have_text("sent", timeout=60_000)
    assert wait_for_status(campaign.id, CampaignStatus.SENT) is CampaignStatus.SENT
    for address in recipients:
        assert smtp_sink.wait_for(address)[0].message["Subject"] == "Sent from the browser"
    assert browser_visit.server_errors == []


def test_a_sending_campaign_is_paused_and_resumed(visit, db, worker, smtp_sink):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    recipients = add_confirmed(2, domain="paused.example.org")
    campaign = make_campaign("Paused from the browser", lists=[newsletter()])
    start_without_worker(db, campaign.id)  # sending, but nothing queued: it waits for the button
    page.goto(f"/organisers/campaigns/{campaign.id}")

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#campaign-status")).to_have_text("paused")
    assert status_of(campaign.id) is CampaignStatus.PAUSED

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#campaign-status")).to_have_text("sent", timeout=60_000)
    assert wait_for_status(campaign.id, CampaignStatus.SENT) is CampaignStatus.SENT
    for address in recipients:
        assert smtp_sink.wait_for(address)[0].message["Subject"] == "Paused from the browser"
    assert browser_visit.server_errors == []


def test_failed_deliveries_are_sent_again_from_the_campaign_page(visit, db, worker, smtp_sink):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    refused, accepted = add_confirmed(2, domain="resend.example.org")
    # Refused by policy (5.7.1): the delivery fails, but the address is not suppressed, so it can be tried again.
    smtp_sink.replies[refused] = "554 5.7.1 Message refused by policy"
    campaign = make_campaign("Resent from the browser", lists=[newsletter()])
    start(campaign)
    assert wait_for_status(campaign.id, CampaignStatus.SENT) is CampaignStatus.SENT
    assert smtp_sink.wait_for(accepted) and not smtp_sink.to(refused)
    smtp_sink.replies.pop(refused)

    page.goto(f"/organisers/campaigns/{campaign.id}")
    page.get_by_role("button", name="Resend to failed (1)").click()
    expect(status_message(page)).to_be_visible()
    [mail] = smtp_sink.wait_for(refused)
    assert mail.message["Subject"] == "Resent from the browser"
    assert wait_for_status(campaign.id, CampaignStatus.SENT) is CampaignStatus.SENT
    assert len(smtp_sink.to(accepted)) == 1, "only the failed delivery is sent again"
    expect(page.locator('[data-stat="failed"]')).to_have_text("0", timeout=30_000)
    assert browser_visit.server_errors == []


# --- An event's page (creating and resuming are in test_browser_events.py) ----------------------------------------


def test_an_event_is_edited_a_date_changed_and_cleared_and_the_event_put_on_hold(visit, db, worker, smtp_sink):
    browser_visit, _ = signed_in_admin(visit, db)
    page = browser_visit.page
    event = make_event(first_date=date(2027, 1, 1), start_time=time(18, 0), place="Portland Place")
    subscriber = add_confirmed(1, mailing_list=reminders_list(), domain="held.example.org")[0]
    page.goto(f"/organisers/events/{event.id}")

    page.get_by_role("link", name="Edit the event").click()
    page.get_by_label("Place").fill("Chinese Embassy, 49 Portland Place")
    page.get_by_label("Start time (London time)").fill("14:00")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#event-facts")).to_contain_text("Chinese Embassy, 49 Portland Place")
    db.session.rollback()
    saved = db.session.get(Event, event.id)
    assert (saved.place, saved.start_time) == ("Chinese Embassy, 49 Portland Place", time(14, 0))

    page.locator("details.change-date summary").first.click()
    first_date = page.locator("details.change-date").first
    first_date.get_by_label("Different place").fill("Downing Street")
    first_date.get_by_label("Note for the day").fill("Bring banners")
    first_date.get_by_role("button", name="Save").click()
    expect(page.locator("#occurrences")).to_contain_text("Bring banners")
    db.session.rollback()
    [override] = db.session.scalars(sa.select(OccurrenceOverride).where(OccurrenceOverride.event_id == event.id))
    assert (override.occurrence_date, override.place, override.note) == (
        date(2027, 1, 5),
        "Downing Street",
        "Bring banners",
    )
    page.locator("details.change-date summary").first.click()
    page.locator("details.change-date").first.get_by_role("button", name="Clear changes").click()
    expect(page.locator("#occurrences")).not_to_contain_text("Bring banners")
    db.session.rollback()
    assert db.session.scalars(sa.select(OccurrenceOverride).where(OccurrenceOverride.event_id == event.id)).all() == []

    page.get_by_label("Reason").fill("Paused while the road is closed")
    page.get_by_label("Send a “protests are paused” notice").check()
    page.get_by_role("button", name="Put on hold").click()
    expect(page.locator("#event-status")).to_have_text("on hold")
    db.session.rollback()
    held = db.session.get(Event, event.id)
    assert (held.on_hold, held.hold_reason) == (True, "Paused while the road is closed")
    [notice] = smtp_sink.wait_for(subscriber)
    assert "Paused while the road is closed" in notice.text()
    assert browser_visit.server_errors == []
