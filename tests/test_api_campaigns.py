"""The campaign endpoints of /api/v1: compose, preview, test, schedule, send, follow; roles, errors, the document."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.api_support import assert_json_error, assert_matches, assert_roles_enforced, audit_actions
from tests.campaign_support import VIGIL_BODY, VIGIL_SUBJECT, start_without_worker, status_of, wait_for_status
from tests.factories import add_subscriber, make_campaign
from uscmail.campaigns import services
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, campaign_lists
from uscmail.models import utcnow
from uscmail.organisers.models import AuditEvent
from uscmail.subscribers import lists as list_services
from uscmail.subscribers import services as subscriber_services

NEW = {"subject": VIGIL_SUBJECT, "body": VIGIL_BODY, "lists": ["newsletter"]}


def rows(db) -> dict[str, int]:
    """Rows in the tables a campaign request may touch."""
    db.session.rollback()
    tables = {"campaigns": Campaign.__table__, "campaign_lists": campaign_lists, "deliveries": Delivery.__table__}
    tables["audit"] = AuditEvent.__table__
    return {name: db.session.scalar(sa.select(sa.func.count()).select_from(table)) for name, table in tables.items()}


def in_an_hour() -> str:
    return (utcnow() + timedelta(hours=1)).isoformat()


# --- composing ------------------------------------------------------------------------------------------------------


def test_an_editor_creates_reads_lists_changes_and_deletes_a_draft(app, db, api, editor, viewer):
    created = api("POST", "/api/v1/campaigns", editor, json={**NEW, "preheader": "Friday, 6 pm", "public": True})
    assert created.status_code == 201, created.json
    assert_matches(app, "Campaign", created.json)
    campaign = created.json
    assert created.headers["Location"].endswith(f"/api/v1/campaigns/{campaign['id']}")
    assert (campaign["status"], campaign["kind"], campaign["subject"], campaign["preheader"]) == (
        "draft",
        "newsletter",
        "December vigil",
        "Friday, 6 pm",
    )
    # Sender defaults come from the configured sender.
    assert (campaign["from_name"], campaign["from_email"], campaign["reply_to"]) == ("USC-UK", "news@uscuk.test", None)
    assert (campaign["lists"], campaign["body"], campaign["public"]) == (["newsletter"], VIGIL_BODY, True)
    assert campaign["created_at"].endswith("+00:00") and campaign["scheduled_at"] is None

    assert api("GET", f"/api/v1/campaigns/{campaign['id']}", viewer).json == campaign
    other = api("POST", "/api/v1/campaigns", editor, json={**NEW, "subject": "Reminders", "body_format": "html"})
    listed = api("GET", "/api/v1/campaigns", viewer)
    assert listed.status_code == 200
    assert_matches(app, "CampaignPage", listed.json)
    assert [c["subject"] for c in listed.json["items"]] == ["Reminders", "December vigil"]
    assert [c["id"] for c in api("GET", "/api/v1/campaigns?limit=1", viewer).json["items"]] == [other.json["id"]]
    assert api("GET", "/api/v1/campaigns?status=sent", viewer).json["items"] == []
    assert len(api("GET", "/api/v1/campaigns?status=draft&kind=newsletter", viewer).json["items"]) == 2
    assert api("GET", "/api/v1/campaigns?kind=reminder", viewer).json["items"] == []

    change = {"subject": "December vigil: new time", "lists": ["newsletter", "london-protest-reminders"]}
    changed = api("PATCH", f"/api/v1/campaigns/{campaign['id']}", editor, json=change)
    assert changed.status_code == 200, changed.json
    assert (changed.json["subject"], changed.json["lists"]) == (change["subject"], change["lists"])
    # A partial update leaves the other fields as they were.
    assert (changed.json["preheader"], changed.json["body"], changed.json["public"]) == (
        "Friday, 6 pm",
        VIGIL_BODY,
        True,
    )
    replied = api("PATCH", f"/api/v1/campaigns/{campaign['id']}", editor, json={"reply_to": "Office@Example.ORG"})
    assert replied.json["reply_to"] == "Office@example.org"  # the domain normalised
    cleared = api("PATCH", f"/api/v1/campaigns/{campaign['id']}", editor, json={"reply_to": None})
    assert cleared.json["reply_to"] is None and cleared.json["subject"] == change["subject"]

    assert api("DELETE", f"/api/v1/campaigns/{campaign['id']}", editor).status_code == 204
    assert_json_error(api("GET", f"/api/v1/campaigns/{campaign['id']}", viewer), 404, "no campaign")
    assert [(action, actor) for action, actor, _, _ in audit_actions(db, "campaign.")] == [
        ("campaign.create", "editor@example.org"),
        ("campaign.create", "editor@example.org"),
        ("campaign.update", "editor@example.org"),
        ("campaign.update", "editor@example.org"),
        ("campaign.update", "editor@example.org"),
        ("campaign.delete", "editor@example.org"),
    ]


@pytest.mark.parametrize(
    ("send", "status", "fragment"),
    [
        ({"data": "subject=x", "content_type": "application/x-www-form-urlencoded"}, 415, "JSON"),
        ({"data": '{"subject": ', "content_type": "application/json"}, 400, "not valid JSON"),
        ({"json": [NEW]}, 400, "JSON object"),
        ({"json": {k: v for k, v in NEW.items() if k != "body"}}, 400, "Missing field(s): body"),
        ({"json": {**NEW, "status": "sent"}}, 400, "Unknown field(s): status"),
        ({"json": {**NEW, "subject": 5}}, 400, "'subject' must be a string"),
        ({"json": {**NEW, "from_email": ["a@example.org"]}}, 400, "'from_email'"),
        ({"json": {**NEW, "lists": "newsletter"}}, 400, "'lists'"),
        ({"json": {**NEW, "lists": []}}, 400, "'lists'"),
        ({"json": {**NEW, "body_format": "rtf"}}, 400, "'body_format' must be one of: markdown, html"),
        ({"json": {**NEW, "public": "yes"}}, 400, "'public' must be true or false"),
        ({"json": {**NEW, "body": "x\x00", "public": 1}}, 400, "'public'"),  # the shape is checked first
        ({"json": {**NEW, "subject": "   "}}, 422, "subject"),
        ({"json": {**NEW, "subject": "Vigil\r\nBcc: everyone@example.org"}}, 422, "line breaks"),
        ({"json": {**NEW, "subject": "x" * 256}}, 422, "under 255 characters"),
        ({"json": {**NEW, "body": " \n "}}, 422, "body"),
        ({"json": {**NEW, "body": "NUL\x00byte"}}, 422, "NUL"),
        ({"json": {**NEW, "body": "lone \ud800 surrogate"}}, 422, "surrogate"),
        ({"json": {**NEW, "from_email": "not an address"}}, 422, "email address"),
        ({"json": {**NEW, "reply_to": "a\ud800@example.org"}}, 422, "email address"),
        ({"json": {**NEW, "lists": ["newsletter", "no-such-list"]}}, 422, "Unknown list(s): 'no-such-list'"),
        ({"json": {**NEW, "lists": ["old-news"]}}, 422, "Archived lists can't be sent to"),
        ({"json": {**NEW, "body": "{% if %}"}}, 422, "The template has a mistake on line 1"),
        ({"json": {**NEW, "body": "{{ config.SECRET_KEY }}"}}, 422, "`config`, which is not available"),
    ],
)
def test_bad_drafts_get_a_clear_error_and_store_nothing(db, api, editor, send, status, fragment):
    archived = list_services.create_list("old-news", "Old news", "", False, "test")
    list_services.update_list(archived, "Old news", "", False, True, "test")
    db.session.commit()
    before = rows(db)
    assert_json_error(api("POST", "/api/v1/campaigns", editor, **send), status, fragment)
    assert rows(db) == before


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 400, "Send at least one of"),
        ({"kind": "reminder"}, 400, "Unknown field(s): kind"),
        ({"body": None}, 400, "'body' must be a string"),
        ({"reply_to": 7}, 400, "'reply_to' must be a string or null"),
        ({"subject": "New\nline"}, 422, "line breaks"),
        ({"lists": ["no-such-list"]}, 422, "Unknown list"),
    ],
)
def test_bad_changes_change_nothing(db, api, editor, body, status, fragment):
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    before = rows(db)
    assert_json_error(api("PATCH", f"/api/v1/campaigns/{campaign_id}", editor, json=body), status, fragment)
    assert rows(db) == before
    campaign = db.session.get(Campaign, campaign_id)
    assert (campaign.subject, campaign.body, campaign.reply_to) == ("December vigil", VIGIL_BODY, None)


def test_unknown_ids_are_404_and_bad_list_queries_400(db, api, editor, viewer):
    for method, path in [
        ("GET", "/api/v1/campaigns/424242"),
        ("GET", "/api/v1/campaigns/99999999999"),
        ("GET", "/api/v1/campaigns/424242/stats"),
        ("GET", "/api/v1/campaigns/424242/preview"),
    ]:
        assert_json_error(api(method, path, viewer), 404, "There is no campaign with that id.")
    for method, path, body in [
        ("PATCH", "/api/v1/campaigns/424242", {"subject": "x"}),
        ("DELETE", "/api/v1/campaigns/424242", None),
        ("POST", "/api/v1/campaigns/424242/send", None),
        ("POST", "/api/v1/campaigns/424242/test", {"addresses": ["me@example.org"]}),
        ("POST", "/api/v1/campaigns/424242/schedule", {"send_at": in_an_hour()}),
    ]:
        assert_json_error(api(method, path, editor, json=body), 404, "no campaign")
    for query, fragment in [
        ("status=done", "'status' must be one of"),
        ("kind=flyer", "'kind' must be one of"),
        ("limit=0", "'limit'"),
        ("limit=201", "'limit'"),
        ("page=2", "Unknown query parameter(s): page"),
        ("status=draft&status=sent", "once"),
    ]:
        assert_json_error(api("GET", f"/api/v1/campaigns?{query}", viewer), 400, fragment)


# --- roles ----------------------------------------------------------------------------------------------------------

WRITES = [
    ("POST", "/api/v1/campaigns", NEW),
    ("PATCH", "/api/v1/campaigns/{id}", {"subject": "x"}),
    ("DELETE", "/api/v1/campaigns/{id}", None),
    ("POST", "/api/v1/campaigns/{id}/test", {"addresses": ["me@example.org"]}),
    ("POST", "/api/v1/campaigns/{id}/schedule", {"send_at": "2030-01-05T18:00:00Z"}),
    ("POST", "/api/v1/campaigns/{id}/unschedule", None),
    ("POST", "/api/v1/campaigns/{id}/send", None),
    ("POST", "/api/v1/campaigns/{id}/pause", None),
    ("POST", "/api/v1/campaigns/{id}/resume", None),
    ("POST", "/api/v1/campaigns/{id}/cancel", None),
    ("POST", "/api/v1/campaigns/{id}/resend-failed", None),
]
READS = [
    "/api/v1/campaigns",
    "/api/v1/campaigns/{id}",
    "/api/v1/campaigns/{id}/stats",
    "/api/v1/campaigns/{id}/preview",
]


def test_viewers_read_but_cannot_write_and_nothing_works_without_a_token(db, api, viewer):
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    before = rows(db)
    writes = [(method, path.format(id=campaign_id), body) for method, path, body in WRITES]
    assert_roles_enforced(api, viewer, writes, [path.format(id=campaign_id) for path in READS])
    assert rows(db) == before and status_of(campaign_id) is CampaignStatus.DRAFT


# --- preview, test sends, stats -------------------------------------------------------------------------------------


def test_preview_shows_the_campaign_as_a_subscriber_would_get_it(app, db, api, viewer):
    campaign_id = make_campaign(VIGIL_SUBJECT, "Dear {{ subscriber.name }},\n\n" + VIGIL_BODY.split("\n\n", 1)[1]).id
    response = api("GET", f"/api/v1/campaigns/{campaign_id}/preview", viewer)
    assert response.status_code == 200, response.json
    assert_matches(app, "Preview", response.json)
    assert response.json["subject"] == "December vigil"
    assert "Dear Alex," in response.json["html"] and "<strong>Friday</strong>" in response.json["html"]
    assert "Dear Alex," in response.json["text"] and "The vigil outside the embassy is on" in response.json["text"]
    assert_json_error(api("GET", f"/api/v1/campaigns/{campaign_id}/preview?name=Bob", viewer), 400, "name")


def test_a_test_copy_is_mailed_to_the_addresses_given(db, api, editor, worker, smtp_sink):
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    before = rows(db)
    path = f"/api/v1/campaigns/{campaign_id}/test"
    response = api("POST", path, editor, json={"addresses": ["Me@Example.org", "colleague@example.org"]})
    assert response.status_code == 202, response.json
    assert response.json == {"addresses": ["me@example.org", "colleague@example.org"]}
    for address in ("me@example.org", "colleague@example.org"):
        [mail] = smtp_sink.wait_for(address)
        assert mail.message["Subject"] == "[Test] December vigil"
        assert "The vigil outside the embassy is on" in mail.text()
    # A test is not a send: the campaign is still a draft and no delivery was recorded.
    assert status_of(campaign_id) is CampaignStatus.DRAFT
    assert rows(db)["deliveries"] == before["deliveries"] == 0

    for body, status, fragment in [
        ({"addresses": "me@example.org"}, 400, "'addresses'"),
        ({"addresses": []}, 400, "'addresses'"),
        ({"addresses": [1]}, 400, "'addresses'"),
        ({"to": ["me@example.org"]}, 400, "Unknown field(s): to"),
        ({"addresses": ["not an address"]}, 422, "email address"),
        ({"addresses": [f"p{n}@example.org" for n in range(6)]}, 422, "at most 5 addresses"),
    ]:
        assert_json_error(api("POST", path, editor, json=body), status, fragment)
    assert_json_error(api("POST", path, editor, data="me@example.org", content_type="text/plain"), 415)


# --- scheduling -----------------------------------------------------------------------------------------------------


def test_schedule_and_unschedule(app, db, api, editor):
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    path = f"/api/v1/campaigns/{campaign_id}"
    scheduled = api("POST", f"{path}/schedule", editor, json={"send_at": "2030-01-05T18:00:00+01:00"})
    assert scheduled.status_code == 200, scheduled.json
    assert_matches(app, "Campaign", scheduled.json)
    assert (scheduled.json["status"], scheduled.json["scheduled_at"]) == ("scheduled", "2030-01-05T17:00:00+00:00")
    # A scheduled campaign can still be changed, and moved.
    assert api("PATCH", path, editor, json={"subject": "Moved vigil"}).status_code == 200
    moved = api("POST", f"{path}/schedule", editor, json={"send_at": "2030-01-06t18:00:00z"})
    assert moved.json["scheduled_at"] == "2030-01-06T18:00:00+00:00"

    unscheduled = api("POST", f"{path}/unschedule", editor)
    assert unscheduled.status_code == 200 and unscheduled.json["status"] == "draft"
    assert unscheduled.json["scheduled_at"] is None
    assert_json_error(api("POST", f"{path}/unschedule", editor, json={}), 409, "not scheduled")
    assert [action for action, _, _, _ in audit_actions(db, "campaign.")][-4:] == [
        "campaign.schedule",
        "campaign.update",
        "campaign.schedule",
        "campaign.unschedule",
    ]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"send_at": "2030-01-05T18:00:00"}, 400, "with its offset"),
        ({"send_at": "2030-01-05"}, 400, "RFC 3339"),
        ({"send_at": "next Friday"}, 400, "RFC 3339"),
        ({"send_at": "2030-02-30T18:00:00Z"}, 400, "RFC 3339"),
        ({"send_at": "9999-12-31T23:59:59-01:00"}, 400, "RFC 3339"),
        ({"send_at": 1893456000}, 400, "'send_at' must be a string"),
        ({}, 400, "Missing field(s): send_at"),
        ({"send_at": "2020-01-05T18:00:00Z"}, 422, "in the future"),
    ],
)
def test_bad_schedules_change_nothing(db, api, editor, body, status, fragment):
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    before = rows(db)
    assert_json_error(api("POST", f"/api/v1/campaigns/{campaign_id}/schedule", editor, json=body), status, fragment)
    assert rows(db) == before and status_of(campaign_id) is CampaignStatus.DRAFT


# --- sending --------------------------------------------------------------------------------------------------------


def test_a_campaign_sent_through_the_api_reaches_confirmed_subscribers_only(app, db, api, editor, worker, smtp_sink):
    for email in ("amina@example.org", "bilal@example.org", "chen@example.org"):
        add_subscriber(email)
    gone = add_subscriber("gone@example.org")
    subscriber_services.unsubscribe_from(gone, None, "test")
    add_subscriber("other-list@example.org", lists=("london-protest-reminders",))
    db.session.commit()
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    path = f"/api/v1/campaigns/{campaign_id}"

    started = api("POST", f"{path}/send", editor)
    assert started.status_code == 202, started.json
    assert_matches(app, "Campaign", started.json)
    assert started.json["status"] == "sending" and started.json["started_at"] is not None
    for email in ("amina@example.org", "bilal@example.org", "chen@example.org"):
        [mail] = smtp_sink.wait_for(email)
        assert mail.message["Subject"] == "December vigil"
        assert "The vigil outside the embassy is on" in mail.text()
    wait_for_status(campaign_id, CampaignStatus.SENT)

    stats = api("GET", f"{path}/stats", editor)
    assert stats.status_code == 200
    assert_matches(app, "CampaignStats", stats.json)
    assert {key: stats.json[key] for key in ("status", "recipients", "sent", "failed", "pending", "percent")} == {
        "status": "sent",
        "recipients": 3,
        "sent": 3,
        "failed": 0,
        "pending": 0,
        "percent": 100,
    }
    smtp_sink.settle(1.0)
    assert smtp_sink.to("gone@example.org") == [] and smtp_sink.to("other-list@example.org") == []
    assert len(smtp_sink.messages) == 3

    # Once sent, it can't be sent, changed, scheduled, deleted, paused or resumed; the message says why.
    before = rows(db)
    for method, suffix, body in [
        ("POST", "/send", None),
        ("PATCH", "", {"subject": "Again"}),
        ("PATCH", "", {"lists": ["no-such-list"]}),
        ("POST", "/schedule", {"send_at": in_an_hour()}),
        ("DELETE", "", None),
        ("POST", "/pause", None),
        ("POST", "/resume", None),
        ("POST", "/cancel", None),
    ]:
        assert_json_error(api(method, path + suffix, editor, json=body), 409, "sent")
    assert_json_error(api("POST", f"{path}/resend-failed", editor), 422, "No deliveries of this campaign have failed")
    assert rows(db) == before
    finished = api("GET", path, editor).json
    assert finished["status"] == "sent" and finished["finished_at"] is not None


def test_sending_to_lists_with_nobody_confirmed_is_refused(db, api, editor):
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY, lists=("london-protest-reminders",)).id
    before = rows(db)
    response = api("POST", f"/api/v1/campaigns/{campaign_id}/send", editor)
    assert_json_error(response, 422, "Nobody is confirmed on the chosen lists")
    assert rows(db) == before and status_of(campaign_id) is CampaignStatus.DRAFT
    assert_json_error(api("POST", f"/api/v1/campaigns/{campaign_id}/send", editor, json={"now": True}), 400, "now")


def test_pause_then_resume_carries_on_sending(app, db, api, editor, worker, smtp_sink):
    add_subscriber("dilnur@example.org")
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    start_without_worker(db, campaign_id)
    path = f"/api/v1/campaigns/{campaign_id}"

    assert_json_error(api("POST", f"{path}/pause", editor, json={"reason": 5}), 400, "'reason'")
    assert_json_error(api("POST", f"{path}/pause", editor, json={"reason": "a\nb"}), 422, "line breaks")
    paused = api("POST", f"{path}/pause", editor, json={"reason": "Wrong date in the text"})
    assert paused.status_code == 200, paused.json
    assert (paused.json["status"], paused.json["status_detail"]) == ("paused", "Wrong date in the text")
    assert_json_error(api("POST", f"{path}/pause", editor), 409, "only a campaign that is sending can be paused")
    assert_json_error(api("PATCH", path, editor, json={"subject": "x"}), 409, "can no longer be changed")

    resumed = api("POST", f"{path}/resume", editor)
    assert resumed.status_code == 202, resumed.json
    assert (resumed.json["status"], resumed.json["status_detail"]) == ("sending", None)
    [mail] = smtp_sink.wait_for("dilnur@example.org")
    assert mail.message["Subject"] == "December vigil"
    wait_for_status(campaign_id, CampaignStatus.SENT)
    assert [action for action, _, _, _ in audit_actions(db, "campaign.")][-3:] == [
        "campaign.send",
        "campaign.pause",
        "campaign.resume",
    ]


def test_cancel_stops_a_campaign_for_good(db, api, editor):
    add_subscriber("erkin@example.org")
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    start_without_worker(db, campaign_id)
    path = f"/api/v1/campaigns/{campaign_id}"
    assert_json_error(api("POST", f"{path}/cancel", editor, data="now", content_type="text/plain"), 415)
    cancelled = api("POST", f"{path}/cancel", editor)
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled" and cancelled.json["finished_at"] is not None
    assert_json_error(api("POST", f"{path}/resume", editor), 409, "only a paused campaign can be resumed")
    assert_json_error(api("POST", f"{path}/send", editor), 409, "cancelled")
    assert_json_error(api("DELETE", path, editor), 409, "Only drafts can be deleted")


def test_failed_deliveries_can_be_sent_again(app, db, api, editor, worker, smtp_sink):
    add_subscriber("fatima@example.org")
    add_subscriber("gulnar@example.org")
    smtp_sink.replies["gulnar@example.org"] = "554 5.7.1 Message refused by local policy"
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    path = f"/api/v1/campaigns/{campaign_id}"
    assert api("POST", f"{path}/send", editor).status_code == 202
    smtp_sink.wait_for("fatima@example.org")
    wait_for_status(campaign_id, CampaignStatus.SENT)
    assert dict(db.session.execute(sa.select(Delivery.status, sa.func.count()).group_by(Delivery.status)).all()) == {
        DeliveryStatus.SENT: 1,
        DeliveryStatus.FAILED: 1,
    }
    assert api("GET", f"{path}/stats", editor).json["failed"] == 1

    del smtp_sink.replies["gulnar@example.org"]
    again = api("POST", f"{path}/resend-failed", editor)
    assert again.status_code == 202, again.json
    assert_matches(app, "ResendResult", again.json)
    assert again.json["requeued"] == 1 and again.json["campaign"]["status"] == "sending"
    [mail] = smtp_sink.wait_for("gulnar@example.org")
    assert mail.message["Subject"] == "December vigil"
    wait_for_status(campaign_id, CampaignStatus.SENT)
    assert len(smtp_sink.to("fatima@example.org")) == 1  # nothing sent twice
    [(_, _, _, details)] = audit_actions(db, "campaign.resend_failed")
    assert details == {"count": 1}


# --- the document ---------------------------------------------------------------------------------------------------


def test_every_campaign_route_is_documented_with_its_errors(app, db, api):
    document = api("GET", "/api/v1/openapi.json").json
    routed = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/campaigns")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert len(routed) == 17
    for rule, method in routed:
        path = rule.replace("<int:campaign_id>", "{campaign_id}").replace("<locale>", "{locale}")
        operation = document["paths"][path][method.lower()]
        assert operation["tags"] == ["campaigns"]
        if "{campaign_id}" in path:
            assert "404" in operation["responses"], (path, method)
        if method != "GET" and path != "/api/v1/campaigns" and not path.endswith("/test"):
            # Every change of a campaign's status can meet a status that refuses it.
            assert "409" in operation["responses"], (path, method)
    for name in ("NewCampaign", "CampaignPatch"):
        assert set(document["components"]["schemas"][name]["properties"]) == {
            "subject",
            "preheader",
            "body_format",
            "body",
            "lists",
            "from_name",
            "from_email",
            "reply_to",
            "public",
            "locale",
        }
    assert "campaign" in document["paths"]["/api/v1/campaigns/{campaign_id}"]["get"]["responses"]["404"]["description"]


def test_timestamps_are_utc(db, api, viewer):
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    services.schedule(db.session.get(Campaign, campaign_id), datetime(2031, 6, 5, 18, 0, tzinfo=UTC), "test")
    db.session.commit()
    shown = api("GET", f"/api/v1/campaigns/{campaign_id}", viewer).json
    assert shown["scheduled_at"] == "2031-06-05T18:00:00+00:00"
    assert datetime.fromisoformat(shown["updated_at"]).utcoffset() == timedelta(0)
