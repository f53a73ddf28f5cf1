"""Test copies and sender addresses, on the pages and in the API: test mails are limited per organiser in a moving
window and audited without addresses in clear; campaigns may only be sent from the configured sender addresses."""

import json
import re

import sqlalchemy as sa

from tests.api_support import assert_json_error, issue_token
from tests.campaign_support import status_of
from tests.conftest import RUN_DIR
from tests.factories import add_confirmed, make_campaign, newsletter
from tests.pages import alert, flashed, fresh, post_from, text
from uscmail.campaigns.models import Campaign, CampaignStatus
from uscmail.organisers.models import AuditEvent

BASE = "/organisers/campaigns"
# MAIL_DEFAULT_SENDER's address and MAIL_SENDERS, as the test harness sets them.
DEFAULT_SENDER = "news@uscuk.test"
OTHER_SENDER = "news@example.org"
FORGED = "director@uscuk.test"


def compose_data(**changes) -> dict:
    """A valid compose form for the Newsletter list."""
    data = {
        "subject": "Spring newsletter",
        "body_format": "markdown",
        "body": "Join us at **Portland Place** on the 5th.",
        "lists": [str(newsletter().id)],
        "from_name": "USC-UK",
        "from_email": DEFAULT_SENDER,
    }
    data.update(changes)
    return data


def set_sender(db, campaign_id: int, address: str) -> None:
    """Give a saved campaign a sender directly, as if it was saved before MAIL_SENDERS changed."""
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign_id).values(from_email=address))
    db.session.commit()


def audited_test_sends(db) -> list[AuditEvent]:
    return list(
        fresh(db).scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "campaign.test_send").order_by(AuditEvent.id)
        )
    )


# Test sends: a moving window per organiser, and an audit row without addresses


def test_the_eleventh_test_mail_in_an_hour_is_refused_and_each_send_is_audited(db, sign_in_as, worker, smtp_sink):
    campaign = make_campaign("Tested often")
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}"
    assert "You can send 10 test mails per hour." in text(editor.get(page))
    for n in range(9):
        response = post_from(editor, page, f"{page}/test", addresses=f"tester{n}@example.net")
        assert response.status_code == 302, alert(text(response))
    # Test mails are counted, not requests: two more would make eleven.
    pair = post_from(editor, page, f"{page}/test", addresses="tester9@example.net, spare@example.net")
    assert pair.status_code == 429
    assert "at most 10 test mails per hour" in alert(text(pair)) and "1 more can be sent now" in alert(text(pair))
    tenth = post_from(editor, page, f"{page}/test", addresses="tester9@example.net")
    assert "Test sent to 1 address." in flashed(text(editor.get(tenth.headers["Location"])))
    eleventh = post_from(editor, page, f"{page}/test", addresses="tester10@example.net")
    assert eleventh.status_code == 429
    assert "at most 10 test mails per hour" in alert(text(eleventh)) and "Try again in" in alert(text(eleventh))
    # The limit is the organiser's own: another editor still sends tests.
    colleague = sign_in_as("editor", "second.editor@example.org")
    other = post_from(colleague, page, f"{page}/test", addresses="tester11@example.net")
    assert other.status_code == 302
    for n in (*range(10), 11):
        smtp_sink.wait_for(f"tester{n}@example.net")
    assert smtp_sink.to("tester10@example.net") == [] and smtp_sink.to("spare@example.net") == []
    assert len(smtp_sink.messages) == 11 and status_of(campaign.id) is CampaignStatus.DRAFT

    audits = audited_test_sends(db)
    assert [(a.actor, a.object_id, a.details["count"]) for a in audits] == [
        *[("editor@example.org", str(campaign.id), 1)] * 10,
        ("second.editor@example.org", str(campaign.id), 1),
    ]
    digests = [digest for audit in audits for digest in audit.details["recipients"]]
    assert len(set(digests)) == 11 and all(len(d) == 32 and set(d) <= set("0123456789abcdef") for d in digests)
    stored = json.dumps([audit.details for audit in audits])
    assert "@" not in stored and "tester" not in stored and "example" not in stored
    # Nor do the worker's logs name the addresses (its task arguments are shown as a count).
    assert "tester" not in (RUN_DIR / "worker.log").read_text(errors="replace")


def test_the_api_limits_and_audits_test_sends_the_same_way(db, api, worker, smtp_sink):
    token = issue_token(db, "editor")
    campaign = make_campaign("Tested by a script")
    path = f"/api/v1/campaigns/{campaign.id}/test"
    five = [f"p{n}@example.org" for n in range(5)]
    assert api("POST", path, token, json={"addresses": five}).status_code == 202
    assert api("POST", path, token, json={"addresses": [a.upper() for a in five]}).status_code == 202
    refused = api("POST", path, token, json={"addresses": ["eleventh@example.org"]})
    assert_json_error(refused, 429, "at most 10 test mails per hour")
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    for address in five:
        smtp_sink.wait_for(address, count=2)
    assert smtp_sink.to("eleventh@example.org") == []
    audits = audited_test_sends(db)
    assert [(a.actor, a.details["count"]) for a in audits] == [("editor@example.org", 5)] * 2
    # The same address (in any case) gives the same digest, so an investigation can match it with the key.
    assert audits[0].details["recipients"] == audits[1].details["recipients"]
    assert "@" not in json.dumps([audit.details for audit in audits])


# Sender addresses


def test_the_compose_page_offers_only_our_sender_addresses(db, sign_in_as):
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/new"))
    first = 'id="from_email" name="from_email"><option selected value="news@uscuk.test">news@uscuk.test</option>'
    assert re.search(r"<select [^>]*" + first, page)
    assert '<option value="news@example.org">news@example.org</option>' in page
    response = post_from(editor, f"{BASE}/new", f"{BASE}/new", **compose_data(from_email=OTHER_SENDER.upper()))
    assert response.status_code == 302
    (campaign,) = fresh(db).scalars(sa.select(Campaign)).all()
    assert campaign.from_email == OTHER_SENDER


def test_a_forged_sender_is_refused_on_create_update_and_for_a_saved_campaign(db, sign_in_as):
    editor = sign_in_as("editor")
    message = "director@uscuk.test is not one of our sender addresses; choose news@uscuk.test or news@example.org."
    created = post_from(editor, f"{BASE}/new", f"{BASE}/new", **compose_data(from_email=FORGED))
    assert created.status_code == 400 and message in alert(text(created))
    assert fresh(db).scalars(sa.select(Campaign)).all() == []

    campaign = make_campaign("Honest sender")
    edit = f"{BASE}/{campaign.id}/edit"
    changed = post_from(editor, edit, edit, **compose_data(subject="Changed", from_email=FORGED))
    assert changed.status_code == 400 and message in alert(text(changed))
    kept = fresh(db).get(Campaign, campaign.id)
    assert (kept.subject, kept.from_email) == ("Honest sender", DEFAULT_SENDER)

    # A campaign saved with a sender that is no longer allowed: nothing goes out, and the pages say why.
    add_confirmed(1)
    set_sender(db, campaign.id, FORGED)
    page = f"{BASE}/{campaign.id}"
    why = "This campaign&#39;s sender address director@uscuk.test is no longer one of ours"
    test = post_from(editor, page, f"{page}/test", addresses="me@example.net")
    assert test.status_code == 400 and why in alert(text(test))
    sent = post_from(editor, f"{page}/send", f"{page}/send", expected="1")
    assert sent.status_code == 409 and why in alert(text(sent))
    assert status_of(campaign.id) is CampaignStatus.DRAFT
    # The edit form still shows the stored sender, marked, so saving explains rather than silently changing it.
    form = text(editor.get(edit))
    assert '<option selected value="director@uscuk.test">director@uscuk.test (no longer allowed)</option>' in form
    assert fresh(db).scalars(sa.select(AuditEvent).where(AuditEvent.action == "campaign.test_send")).all() == []


def test_a_sender_name_cannot_smuggle_in_another_address_or_header(db, sign_in_as, worker, smtp_sink):
    editor = sign_in_as("editor")
    broken = post_from(editor, f"{BASE}/new", f"{BASE}/new", **compose_data(from_name="USC\r\nBcc: all@example.net"))
    assert broken.status_code == 400
    assert "The sender name can&#39;t contain line breaks or control characters." in alert(text(broken))
    sneaky = 'Director" <director@uscuk.test>, "x'
    post_from(editor, f"{BASE}/new", f"{BASE}/new", **compose_data(from_name=sneaky))
    (campaign,) = fresh(db).scalars(sa.select(Campaign)).all()
    page = f"{BASE}/{campaign.id}"
    post_from(editor, page, f"{page}/test", addresses="me@example.net")
    (mail,) = smtp_sink.wait_for("me@example.net")
    (sender,) = mail.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (sneaky, DEFAULT_SENDER)
    assert mail.message["Bcc"] is None and mail.mail_from == "bounces@uscuk.test", "test copies name no delivery"


def test_the_api_refuses_a_forged_sender_on_create_update_test_and_send(db, api):
    token = issue_token(db, "editor")
    new = {"subject": "December vigil", "body": "On **Friday**.", "lists": ["newsletter"]}
    assert_json_error(
        api("POST", "/api/v1/campaigns", token, json={**new, "from_email": FORGED}), 422, "not one of our"
    )
    assert fresh(db).scalars(sa.select(Campaign)).all() == []
    created = api("POST", "/api/v1/campaigns", token, json={**new, "from_email": OTHER_SENDER})
    assert created.status_code == 201 and created.json["from_email"] == OTHER_SENDER
    path = f"/api/v1/campaigns/{created.json['id']}"
    assert_json_error(api("PATCH", path, token, json={"from_email": FORGED}), 422, "not one of our sender addresses")
    assert api("GET", path, token).json["from_email"] == OTHER_SENDER
    set_sender(db, created.json["id"], FORGED)
    refusal = "sender address director@uscuk.test is no longer one of ours"
    assert_json_error(api("POST", f"{path}/test", token, json={"addresses": ["me@example.org"]}), 422, refusal)
    assert_json_error(api("POST", f"{path}/send", token), 422, refusal)
    assert status_of(created.json["id"]) is CampaignStatus.DRAFT
