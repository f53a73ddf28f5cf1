"""The organisers' campaign pages and the public archive, through the test client: roles, composing, the preview and
its policy, London-time scheduling, the send confirmation, the actions, progress numbers, and what the public sees."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.campaign_support import counts, status_of, wait_for_status
from tests.conftest import form_fields, isolated_client
from tests.factories import add_confirmed, make_campaign, make_list, newsletter
from tests.pages import alert, compose_data, flashed, fresh, post_from, text
from uscmail.campaigns import services
from uscmail.campaigns.models import Campaign, CampaignStatus, DeliveryStatus
from uscmail.extensions import db as database
from uscmail.models import Subscriber, utcnow

BASE = "/organisers/campaigns"
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'"
STATS_KEYS = {
    "status", "status_detail", "recipients", "pending", "sent", "failed", "skipped", "unknown", "done", "percent",
    "rate_per_second", "seconds_remaining", "snapshot_done", "hard_bounces", "soft_bounces", "complaints",
    "unsubscribes",
}  # fmt: skip


def campaign_rows(db) -> list[Campaign]:
    return fresh(db).scalars(sa.select(Campaign).order_by(Campaign.id)).all()


def set_state(db, campaign_id: int, **values) -> None:
    """Put a campaign in a state directly (for pages that only read it)."""
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign_id).values(**values))
    db.session.commit()


def sending_without_task(db, campaign: Campaign) -> None:
    """Mark the campaign sending and commit, queueing nothing, so no worker can move it on behind the test's back."""
    services.start_sending(campaign, "test")
    db.session.commit()


# Who may do what


def test_signed_out_visitors_are_sent_to_sign_in(app, db):
    campaign = make_campaign()
    stranger = isolated_client(app)
    for path in ("", "/new", f"/{campaign.id}", f"/{campaign.id}/edit", f"/{campaign.id}/stats.json",
                 f"/{campaign.id}/preview", f"/{campaign.id}/send"):  # fmt: skip
        response = stranger.get(BASE + path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/organisers/login"), path


def test_viewers_read_campaigns_but_cannot_compose_preview_or_act(db, sign_in_as):
    add_confirmed(2)
    campaign = make_campaign("Viewer can read this")
    viewer = sign_in_as("viewer")
    listing = text(viewer.get(BASE))
    assert "Viewer can read this" in listing and "New campaign" not in listing
    assert '<a href="/organisers/campaigns" aria-current="page">Campaigns</a>' in listing
    page = viewer.get(f"{BASE}/{campaign.id}")
    assert page.status_code == 200
    assert "2 people confirmed on these lists now" in text(page)
    for control in ("Send now", "Send test", "Schedule", "Delete draft", "Edit</a>"):
        assert control not in text(page)
    assert viewer.get(f"{BASE}/new").status_code == 403
    assert viewer.get(f"{BASE}/{campaign.id}/edit").status_code == 403
    assert viewer.get(f"{BASE}/{campaign.id}/send").status_code == 403
    token = form_fields(text(page))  # the sign-out form's token is this session's token
    assert viewer.post(f"{BASE}/new", data={**token, **compose_data()}).status_code == 403
    assert viewer.post(f"{BASE}/preview", data={**token, **compose_data()}).status_code == 403
    for action in ("schedule", "test", "pause", "delete", "cancel"):
        assert viewer.post(f"{BASE}/{campaign.id}/{action}", data=token).status_code == 403, action
    assert viewer.get(f"{BASE}/{campaign.id}/stats.json").status_code == 200
    assert [c.status for c in campaign_rows(db)] == [CampaignStatus.DRAFT]


# Composing


def test_an_editor_composes_a_draft(db, sign_in_as):
    add_confirmed(2)
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/new"))
    assert re.search(
        r'id="list-\d+"[^>]*>\s*<label for="list-\d+">Newsletter\s*<span class="hint">2 people confirmed', page
    )
    for variable in ("subscriber.name", "unsubscribe_url", "preferences_url", "web_version_url"):
        assert f"<code>{{{{ {variable} }}}}</code>" in page
    assert re.search(r'<iframe class="preview-frame" name="preview-frame" id="preview-frame" sandbox=""', page)
    assert 'formaction="/organisers/campaigns/preview" formtarget="preview-frame"' in page
    assert 'value="news@uscuk.test"' in page  # the default sender, filled in
    response = post_from(editor, f"{BASE}/new", f"{BASE}/new", **compose_data(public="y"))
    (campaign,) = campaign_rows(db)
    assert response.status_code == 302 and response.headers["Location"] == f"{BASE}/{campaign.id}"
    assert (campaign.subject, campaign.status, campaign.public, campaign.list_ids) == (
        "Spring newsletter", CampaignStatus.DRAFT, True, [newsletter().id]
    )  # fmt: skip
    assert campaign.body.startswith("Dear {{ subscriber.name }}")
    shown = text(editor.get(response.headers["Location"]))
    assert "The campaign is saved." in flashed(shown)
    assert "<h1>Spring newsletter</h1>" in shown and "2 people confirmed on these lists now" in shown


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": "  "}, "Please give the campaign a subject."),
        ({"subject": "Hello\r\nBcc: everyone@example.org"}, "The subject can&#39;t contain line breaks"),
        ({"lists": []}, "Choose at least one list to send to."),
        ({"lists": ["newsletter"]}, "One of the chosen lists does not exist."),
        ({"lists": ["99999"]}, "One of the chosen lists does not exist."),
        ({"body": ""}, "Please write the body of the campaign."),
        ({"reply_to": "not an address"}, "The reply-to address doesn&#39;t look like an email address"),
        ({"from_email": "news@"}, "The sender address doesn&#39;t look like an email address"),
        ({"body_format": "word"}, "The body format must be markdown or html."),
    ],
)
def test_invalid_campaigns_are_explained_and_nothing_is_stored(db, sign_in_as, changes, message):
    response = post_from(sign_in_as("editor"), f"{BASE}/new", f"{BASE}/new", **compose_data(**changes))
    assert response.status_code == 400
    assert message in alert(text(response))
    assert campaign_rows(db) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ config }}", "The template uses `config`, which is not available."),
        ("{{ ''.__class__.__mro__ }}", "The template uses `__class__`, which is not available."),
        ("Hi {{ subscriber.email }}", "The template uses `subscriber.email`, which is not available."),
        ("{% for x in %}", "The template has a mistake on line 1"),
    ],
)
def test_template_escapes_and_mistakes_are_refused_with_a_message(db, sign_in_as, body, message):
    response = post_from(sign_in_as("editor"), f"{BASE}/new", f"{BASE}/new", **compose_data(body=body))
    assert response.status_code == 400
    assert message in alert(text(response))
    assert "You can use subscriber.name" in alert(text(response)) or "mistake" in message
    assert "SECRET_KEY" not in text(response)
    assert campaign_rows(db) == []
    assert 'value="Spring newsletter"' in text(response)  # what was typed is kept
    assert 'srcdoc="<p>The mail appears here' in text(response)  # no saved version to preview


def test_editing_changes_a_draft_but_not_a_campaign_that_has_started(db, sign_in_as):
    campaign = make_campaign("Before")
    editor = sign_in_as("editor")
    form = text(editor.get(f"{BASE}/{campaign.id}/edit"))
    assert 'value="Before"' in form and f'src="{BASE}/{campaign.id}/preview"' in form
    response = post_from(
        editor, f"{BASE}/{campaign.id}/edit", f"{BASE}/{campaign.id}/edit", **compose_data(subject="After")
    )
    assert response.status_code == 302
    assert campaign_rows(db)[0].subject == "After"
    set_state(db, campaign.id, status=CampaignStatus.SENT, started_at=utcnow())
    refused = editor.get(f"{BASE}/{campaign.id}/edit", follow_redirects=True)
    assert "This campaign is sent; it can no longer be changed." in flashed(text(refused))
    token = form_fields(text(refused))
    editor.post(f"{BASE}/{campaign.id}/edit", data={**token, **compose_data(subject="Too late")})
    assert campaign_rows(db)[0].subject == "After"


# Preview


def test_the_preview_renders_the_unsaved_form_under_its_own_policy(db, sign_in_as):
    editor = sign_in_as("editor")
    response = post_from(editor, f"{BASE}/new", f"{BASE}/preview", **compose_data(subject="Only a preview"))
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PREVIEW_CSP
    assert response.headers["Cache-Control"] == "no-store"
    html = text(response)
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "Alex" in html and "Portland Place" in html and "{{" not in html
    assert campaign_rows(db) == []  # nothing stored


def test_the_preview_explains_a_sandbox_escape_in_the_body(db, sign_in_as):
    response = post_from(sign_in_as("editor"), f"{BASE}/new", f"{BASE}/preview", **compose_data(body="{{ config }}"))
    assert response.status_code == 422
    assert response.headers["Content-Security-Policy"] == PREVIEW_CSP
    page = text(response)
    assert "The mail can't be shown yet." in page and "SECRET_KEY" not in page
    assert "The template uses `config`, which is not available." in page
    assert campaign_rows(db) == []


def test_a_saved_campaign_has_a_preview_and_a_plain_text_view(db, sign_in_as):
    campaign = make_campaign("Saved", body="Dear {{ subscriber.name }},\n\nSee you on the 5th.")
    viewer = sign_in_as("viewer")
    page = text(viewer.get(f"{BASE}/{campaign.id}"))
    assert f'sandbox="" title="Preview of the mail" src="{BASE}/{campaign.id}/preview"' in page
    preview = viewer.get(f"{BASE}/{campaign.id}/preview")
    assert preview.headers["Content-Security-Policy"] == PREVIEW_CSP
    assert "See you on the 5th." in text(preview)
    plain = text(viewer.get(f"{BASE}/{campaign.id}/text"))
    part = re.search(r'<pre class="mail-text"[^>]* id="text-part">(.*?)</pre>', plain, re.S).group(1)
    assert "Alex" in part and "See you on the 5th." in part and "<p>" not in part


# Scheduling in London time


@pytest.mark.parametrize(
    ("typed", "stored", "shown"),
    [
        ("2031-07-01T18:30", datetime(2031, 7, 1, 17, 30, tzinfo=UTC), "Tuesday 1 July 2031, 18:30 BST"),
        ("2031-12-01T18:30", datetime(2031, 12, 1, 18, 30, tzinfo=UTC), "Monday 1 December 2031, 18:30 GMT"),
    ],
)
def test_scheduling_reads_the_time_as_london_time(db, sign_in_as, typed, stored, shown):
    campaign = make_campaign()
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}"
    response = post_from(editor, page, f"{page}/schedule", send_at=typed)
    assert response.status_code == 302
    (row,) = campaign_rows(db)
    assert (row.status, row.scheduled_at) == (CampaignStatus.SCHEDULED, stored)
    shown_page = text(editor.get(page))
    assert f"Scheduled for {shown}." in flashed(shown_page)
    assert f'<dd id="scheduled-at">{shown}</dd>' in shown_page
    assert f'value="{typed}"' in shown_page  # the picker shows the London time again
    assert "Unschedule" in shown_page
    post_from(editor, page, f"{page}/unschedule")
    (row,) = campaign_rows(db)
    assert (row.status, row.scheduled_at) == (CampaignStatus.DRAFT, None)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("2027-03-28T01:30", "1:30am on Sunday 28 March 2027 does not exist in London: the clocks go forward"),
        ("2027-10-31T01:30", "1:30am on Sunday 31 October 2027 happens twice in London: the clocks go back"),
        ("next tuesday", "That date and time could not be read"),
        ("", "Choose a date and time for the campaign to go out."),
        ("2020-01-06T10:00", "Choose a time in the future for the campaign to go out."),
    ],
)
def test_times_that_do_not_exist_or_have_passed_are_refused(db, sign_in_as, typed, message):
    campaign = make_campaign()
    page = f"{BASE}/{campaign.id}"
    response = post_from(sign_in_as("editor"), page, f"{page}/schedule", send_at=typed)
    assert response.status_code == 400
    assert message in alert(text(response))
    assert f'value="{typed}"' in text(response) or not typed
    assert campaign_rows(db)[0].status is CampaignStatus.DRAFT


# Sending


def test_send_now_confirms_the_number_of_people_then_sends(db, sign_in_as, worker, smtp_sink):
    addresses = add_confirmed(3)
    campaign = make_campaign("Three people")
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/{campaign.id}/send"))
    assert "This will send <strong>“Three people”</strong> to 3 people on\n  Newsletter." in page
    assert '<button type="submit" class="button">Send to 3 people</button>' in page
    add_confirmed(1)  # someone confirms while the organiser reads the page
    stale = editor.post(f"{BASE}/{campaign.id}/send", data={**form_fields(page), "expected": "3"})
    assert stale.status_code == 409
    assert "it is now 4 people" in alert(text(stale)) and "Send to 4 people" in text(stale)
    assert status_of(campaign.id) is CampaignStatus.DRAFT
    response = editor.post(f"{BASE}/{campaign.id}/send", data={**form_fields(page), "expected": "4"})
    assert response.status_code == 302
    assert "Sending to 4 people has started." in flashed(text(editor.get(response.headers["Location"])))
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert counts(campaign.id) == {DeliveryStatus.SENT: 4}
    assert {address for address in addresses if smtp_sink.to(address)} == set(addresses)
    again = editor.get(f"{BASE}/{campaign.id}/send", follow_redirects=True)
    assert "This campaign is sent; it can&#39;t be sent again." in flashed(text(again))


def test_nobody_to_send_to_shows_no_send_button(db, sign_in_as):
    campaign = make_campaign()
    page = text(sign_in_as("editor").get(f"{BASE}/{campaign.id}/send"))
    assert "Nobody is confirmed on Newsletter, so there is no one to send to." in page
    assert "Send to" not in page


def test_pause_resume_and_cancel_change_the_status(db, sign_in_as, worker, smtp_sink):
    add_confirmed(5)
    campaign = make_campaign("Paused and resumed")
    sending_without_task(db, campaign)
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}"
    assert ">Pause</button>" in text(editor.get(page))
    response = post_from(editor, page, f"{page}/pause")
    assert response.status_code == 302 and status_of(campaign.id) is CampaignStatus.PAUSED
    shown = text(editor.get(page))
    assert "Paused. Messages already on their way finish" in flashed(shown)
    assert 'id="campaign-status">paused</span>' in shown and "Paused by an organiser." in shown
    assert ">Resume</button>" in shown and ">Pause</button>" not in shown
    post_from(editor, page, f"{page}/resume")  # queues the start task for the worker
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert counts(campaign.id) == {DeliveryStatus.SENT: 5}
    refused = post_from(editor, page, f"{page}/pause")  # too late: it has finished
    assert refused.status_code == 409
    assert "only a campaign that is sending can be paused" in alert(text(refused))
    assert editor.get(f"{page}/cancel").status_code == 302  # nothing left to cancel


def test_cancelling_asks_first_and_then_stops_for_good(db, sign_in_as):
    add_confirmed(2)
    scheduled = make_campaign("Scheduled then cancelled")
    services.schedule(scheduled, datetime(2031, 7, 1, 17, 30, tzinfo=UTC), "test")
    paused = make_campaign("Paused then cancelled")
    sending_without_task(db, paused)
    services.pause(paused, "test")
    database.session.commit()
    editor = sign_in_as("editor")
    confirm = text(editor.get(f"{BASE}/{scheduled.id}/cancel"))
    assert "Cancel “Scheduled then cancelled”?" in confirm
    assert "scheduled for Tuesday 1 July 2031, 18:30 BST" in confirm
    assert status_of(scheduled.id) is CampaignStatus.SCHEDULED  # looking changes nothing
    for campaign in (scheduled, paused):
        page = f"{BASE}/{campaign.id}/cancel"
        response = post_from(editor, page, page)
        assert response.status_code == 302 and status_of(campaign.id) is CampaignStatus.CANCELLED
    shown = text(editor.get(f"{BASE}/{paused.id}"))
    assert "The campaign is cancelled. Nothing more will be sent." in flashed(shown)
    assert ">Pause</button>" not in shown and ">Resume</button>" not in shown and "Cancel campaign" not in shown


def test_resend_to_failed_sends_the_refused_messages_again(db, sign_in_as, worker, smtp_sink):
    addresses = add_confirmed(3)
    smtp_sink.replies[addresses[1]] = "554 5.7.1 Rejected for policy reasons"  # not a bounce: no suppression
    campaign = make_campaign("Some refused")
    sending_without_task(db, campaign)
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}"
    post_from(editor, page, f"{page}/pause")
    post_from(editor, page, f"{page}/resume")
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert counts(campaign.id) == {DeliveryStatus.SENT: 2, DeliveryStatus.FAILED: 1}
    shown = text(editor.get(page))
    assert ">Resend to failed (1)</button>" in shown
    del smtp_sink.replies[addresses[1]]
    response = post_from(editor, page, f"{page}/resend-failed")
    assert "1 person whose message failed will be sent it again." in flashed(
        text(editor.get(response.headers["Location"]))
    )
    smtp_sink.wait_for(addresses[1])
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert counts(campaign.id) == {DeliveryStatus.SENT: 3}


def test_a_test_copy_goes_to_the_given_addresses_only(db, sign_in_as, worker, smtp_sink):
    add_confirmed(2)
    campaign = make_campaign("Worth testing")
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}"
    response = post_from(editor, page, f"{page}/test", addresses="ana@example.net,\nbo@example.net")
    assert "Test sent to 2 addresses." in flashed(text(editor.get(response.headers["Location"])))
    for address in ("ana@example.net", "bo@example.net"):
        (mail,) = smtp_sink.wait_for(address)
        assert mail.message["Subject"] == "[Test] Worth testing"
    assert len(smtp_sink.messages) == 2 and status_of(campaign.id) is CampaignStatus.DRAFT
    too_many = post_from(editor, page, f"{page}/test", addresses=",".join(f"t{i}@example.net" for i in range(6)))
    assert too_many.status_code == 400 and "A test goes to at most 5 addresses." in alert(text(too_many))
    broken = post_from(editor, page, f"{page}/test", addresses="ana@")
    assert broken.status_code == 400 and "That doesn&#39;t look like an email address" in alert(text(broken))


def test_a_draft_can_be_deleted_but_not_a_sent_campaign(db, sign_in_as):
    draft = make_campaign("Throwaway")
    sent = make_campaign("Kept in history")
    set_state(db, sent.id, status=CampaignStatus.SENT, started_at=utcnow(), finished_at=utcnow())
    editor = sign_in_as("editor")
    response = post_from(editor, f"{BASE}/{draft.id}", f"{BASE}/{draft.id}/delete")
    assert response.headers["Location"] == BASE
    assert "The draft “Throwaway” is deleted." in flashed(text(editor.get(BASE)))
    refused = post_from(editor, f"{BASE}/{sent.id}", f"{BASE}/{sent.id}/delete")
    assert refused.status_code == 409 and "Only drafts can be deleted" in alert(text(refused))
    assert [c.subject for c in campaign_rows(db)] == ["Kept in history"]


# Progress and the list


def test_stats_json_reports_the_deliveries(db, sign_in_as, worker, smtp_sink):
    add_confirmed(3)
    campaign = make_campaign()
    viewer = sign_in_as("viewer")
    before = viewer.get(f"{BASE}/{campaign.id}/stats.json")
    assert before.mimetype == "application/json" and before.headers["Cache-Control"] == "no-store"
    assert set(before.json) == STATS_KEYS and before.json["status"] == "draft" and before.json["recipients"] == 0
    sending_without_task(db, campaign)
    post_from(sign_in_as("editor"), f"{BASE}/{campaign.id}", f"{BASE}/{campaign.id}/pause")
    page = text(viewer.get(f"{BASE}/{campaign.id}"))
    assert '<progress id="send-progress" max="100" value="0"' in page and 'data-status="paused"' in page
    assert "may or may not have arrived" in page and "never re-sent automatically" in page
    post_from(sign_in_as("editor"), f"{BASE}/{campaign.id}", f"{BASE}/{campaign.id}/resume")
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    after = viewer.get(f"{BASE}/{campaign.id}/stats.json").json
    assert set(after) == STATS_KEYS
    assert {key: after[key] for key in ("status", "recipients", "sent", "done", "percent", "pending", "failed")} == {
        "status": "sent", "recipients": 3, "sent": 3, "done": 3, "percent": 100, "pending": 0, "failed": 0,
    }  # fmt: skip
    assert after["snapshot_done"] is True and isinstance(after["rate_per_second"], float)
    assert after["rate_per_second"] > 0, "a finished send shows its average rate, not 0.0"
    page = text(viewer.get(f"{BASE}/{campaign.id}"))
    assert '<progress id="send-progress" max="100" value="100"' in page and '<dd data-stat="sent">3</dd>' in page


def test_the_list_shows_campaigns_newest_first_with_london_times(db, sign_in_as):
    older = make_campaign("Older")
    newer = make_campaign("Newer")
    set_state(
        db, older.id, status=CampaignStatus.SENT,
        started_at=datetime(2026, 6, 5, 8, 0, tzinfo=UTC), finished_at=datetime(2026, 6, 5, 8, 20, tzinfo=UTC),
    )  # fmt: skip
    set_state(db, newer.id, status=CampaignStatus.SCHEDULED, scheduled_at=datetime(2031, 1, 5, 9, 0, tzinfo=UTC))
    page = text(sign_in_as("viewer").get(BASE))
    rows = page.split('id="campaigns"', 1)[1].split("</table>", 1)[0]
    assert rows.index("Newer") < rows.index("Older")
    assert "5 Jan 2031, 09:00 GMT" in rows  # winter: London is on UTC
    assert "5 Jun 2026, 09:00 BST" in rows and "5 Jun 2026, 09:20 BST" in rows


# The public archive


def test_the_archive_lists_only_public_sent_campaigns_without_personal_data(app, db):
    add_confirmed(2)
    database.session.execute(sa.update(Subscriber).values(name="Gulnar Tursun"))
    database.session.commit()
    body = "Dear {{ subscriber.name }},\n\n[Leave the list]({{ unsubscribe_url }}) · [Change]({{ preferences_url }})"
    campaigns = {name: make_campaign(name, body=body) for name in (
        "Public sent", "Later public sent", "Private sent", "Public draft", "Public scheduled",
        "Public cancelled unsent", "Public sending",
    )}  # fmt: skip
    now = utcnow()
    states = {
        "Public sent": {"status": CampaignStatus.SENT, "started_at": now - timedelta(days=40),
                        "finished_at": datetime(2026, 5, 31, 23, 30, tzinfo=UTC)},
        "Later public sent": {"status": CampaignStatus.SENT, "started_at": now - timedelta(days=2),
                              "finished_at": now - timedelta(days=2)},
        "Private sent": {"status": CampaignStatus.SENT, "started_at": now, "finished_at": now, "public": False},
        "Public scheduled": {"status": CampaignStatus.SCHEDULED, "scheduled_at": now + timedelta(days=3)},
        "Public cancelled unsent": {"status": CampaignStatus.CANCELLED, "finished_at": now},
        "Public sending": {"status": CampaignStatus.SENDING, "started_at": now},
    }  # fmt: skip
    for name, campaign in campaigns.items():
        set_state(db, campaign.id, **{"public": True, **states.get(name, {})})
    visitor = isolated_client(app)
    listing = visitor.get("/archive")
    assert listing.status_code == 200 and "Set-Cookie" not in listing.headers
    links = re.findall(r'<a href="/archive/([\w-]+)" dir="auto">([^<]+)</a>', text(listing))
    assert [subject for _, subject in links] == ["Later public sent", "Public sent"]
    assert "1 June 2026" in text(listing)  # 23:30 UTC on 31 May is past midnight in London
    for name in ("Public sent", "Private sent", "Public sending"):
        response = visitor.get(f"/archive/{campaigns[name].public_id}")
        assert response.status_code == 200, name
        assert "Set-Cookie" not in response.headers
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "sandbox" in policy and "script-src" not in policy
        html = text(response)
        assert "Gulnar" not in html and "@example.org" not in html and "{{" not in html
        assert "/unsubscribe/" not in html and "/preferences/" not in html
    for name in ("Public draft", "Public scheduled", "Public cancelled unsent"):
        assert visitor.get(f"/archive/{campaigns[name].public_id}").status_code == 404, name
    assert visitor.get("/archive/not-a-real-id").status_code == 404
    assert visitor.get("/archive/" + "x" * 200).status_code == 404


def test_lists_named_in_the_compose_form_exclude_archived_ones(db, sign_in_as):
    make_list("old-list", "Old list", archived=True)
    database.session.commit()
    page = text(sign_in_as("editor").get(f"{BASE}/new"))
    assert "Newsletter" in page and "Old list" not in page
