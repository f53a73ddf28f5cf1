"""The organisers' JSON API /api/v1: bearer tokens, roles, lists, subscribers, errors, and its OpenAPI document."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate as validate_openapi

from tests.api_support import assert_json_error, assert_matches, audit_actions, issue_token
from tests.conftest import wait_for_signups
from tests.factories import ORGANISER_PASSWORD, add_subscriber
from tests.pages import post_from
from uscmail.models import (
    Consent,
    ConsentMethod,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
    utcnow,
)
from uscmail.organisers import api_tokens, credentials
from uscmail.organisers import services as organiser_services
from uscmail.organisers.models import ApiToken, AuditEvent, Organiser, Role
from uscmail.subscribers import lists as list_services
from uscmail.subscribers import services as subscriber_services
from uscmail.subscriptions import services as journey
from uscmail.subscriptions.consent import CURRENT_VERSION
from uscmail.suppression import suppress

LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")


@pytest.fixture
def tokens_by_role(db):
    """A token for a viewer, an editor and an admin."""
    return {role: issue_token(db, role) for role in ("viewer", "editor", "admin")}


def counts(db) -> dict[str, int]:
    """Rows in the tables an API write may touch."""
    db.session.rollback()
    return {
        model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (Subscriber, Subscription, Consent, Suppression, AuditEvent)
    }


# --- tokens and the CLI ---------------------------------------------------------------------------------------------


def test_cli_issues_a_prefixed_token_once_stores_only_its_hash_and_can_revoke_it(app, db, api):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["organisers", "create", "ed@example.org", "--role", "editor"], input="x" * 12 + "\n")
    assert created.exit_code == 0, created.output
    issued = runner.invoke(args=["organisers", "token", "ed@example.org", "--name", "newsletter sync"])
    assert issued.exit_code == 0, issued.output
    raw = issued.stdout.strip()
    assert re.fullmatch(r"uscm_[A-Za-z0-9_-]{43}", raw)
    assert "shown only now" in issued.stderr and raw not in issued.stderr

    db.session.rollback()
    row = db.session.scalar(sa.select(ApiToken))
    assert row.token_sha256 == credentials.sha256_hex(raw) and row.name == "newsletter sync"
    assert row.last_used_at is None and row.revoked_at is None
    [(action, actor, object_id, details)] = audit_actions(db, "api_token")
    assert (action, actor, object_id) == ("api_token.create", "cli", str(row.id))
    assert details == {"organiser_id": row.organiser_id, "name": "newsletter sync"}
    assert all(raw not in str(event) for event in audit_actions(db))

    again = runner.invoke(args=["organisers", "token", "ed@example.org", "--name", "newsletter sync"])
    assert again.exit_code != 0 and "already has a live token" in again.output
    assert runner.invoke(args=["organisers", "token", "nobody@example.org", "--name", "x"]).exit_code != 0

    assert api("GET", "/api/v1/lists", raw).status_code == 200
    assert db.session.scalar(sa.select(ApiToken.last_used_at)) is not None

    revoked = runner.invoke(args=["organisers", "revoke-token", "ed@example.org", "--name", "newsletter sync"])
    assert revoked.exit_code == 0 and "revoked 1 token" in revoked.output
    db.session.rollback()
    assert db.session.scalar(sa.select(ApiToken.revoked_at)) is not None
    assert [a[0] for a in audit_actions(db, "api_token")] == ["api_token.create", "api_token.revoke"]
    assert_json_error(api("GET", "/api/v1/lists", raw), 401, "not valid")
    assert runner.invoke(args=["organisers", "revoke-token", "ed@example.org", "--name", "newsletter sync"]).exit_code
    reissued = runner.invoke(args=["organisers", "token", "ed@example.org", "--name", "newsletter sync"])
    assert reissued.exit_code == 0 and reissued.stdout.strip() != raw


def test_a_disabled_organiser_gets_no_new_token(app, db):
    issue_token(db, "editor")
    organiser_services.disable_organiser(organiser_services.organiser_by_email("editor@example.org"), "test")
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["organisers", "token", "editor@example.org", "--name", "other"])
    assert result.exit_code != 0 and "disabled" in result.output


@pytest.mark.parametrize(
    ("case", "expected_error"),
    [
        ("none", None),
        ("empty bearer", None),
        ("basic scheme", None),
        ("garbage", "invalid_token"),
        ("token hash as token", "invalid_token"),
        ("revoked", "invalid_token"),
        ("disabled organiser", "invalid_token"),
    ],
)
def test_requests_without_a_live_token_get_401_with_a_bearer_challenge(db, api, case, expected_error):
    raw = issue_token(db, "admin")
    headers = {}
    if case == "empty bearer":
        headers["Authorization"] = "Bearer "
    elif case == "basic scheme":
        headers["Authorization"] = "Basic " + raw
    elif case == "garbage":
        headers["Authorization"] = "Bearer uscm_" + "A" * 43
    elif case == "token hash as token":
        headers["Authorization"] = "Bearer " + credentials.sha256_hex(raw)
    elif case == "revoked":
        api_tokens.revoke_tokens(organiser_services.organiser_by_email("admin@example.org"), "script", "test")
        headers["Authorization"] = "Bearer " + raw
    elif case == "disabled organiser":
        organiser_services.disable_organiser(organiser_services.organiser_by_email("admin@example.org"), "test")
        headers["Authorization"] = "Bearer " + raw
    db.session.commit()
    add_subscriber("kept@example.org")
    before = counts(db)
    for method, path, body in (
        ("GET", "/api/v1/lists", None),
        ("GET", "/api/v1/subscribers", None),
        ("POST", "/api/v1/subscribers", {"email": "new@example.org"}),
        ("DELETE", f"/api/v1/subscribers/{db.session.scalar(sa.select(Subscriber.id))}", None),
    ):
        response = api(method, path, headers=headers, json=body)
        assert_json_error(response, 401)
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="uscmail"')
        assert ("invalid_token" in challenge) == (expected_error is not None)
        assert "kept@example.org" not in response.get_data(as_text=True)
    assert counts(db) == before


def test_the_organiser_session_cookie_alone_is_not_accepted(db, api, sign_in_as):
    browser = sign_in_as("admin")
    assert browser.get("/organisers/").status_code == 200  # the session works for the pages
    before = counts(db)
    assert_json_error(browser.get("/api/v1/lists"), 401)
    body = {"email": "a@example.org", "lists": ["newsletter"], "consent_basis": "prior_consent", "consent_note": "x"}
    assert_json_error(browser.post("/api/v1/subscribers", json=body), 401)
    assert counts(db) == before


def test_last_used_at_is_written_at_most_once_a_minute(db, api):
    raw = issue_token(db, "viewer")
    assert api("GET", "/api/v1/lists", raw).status_code == 200
    first = db.session.scalar(sa.select(ApiToken.last_used_at))
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    assert api("GET", "/api/v1/lists", raw).status_code == 200
    assert db.session.scalar(sa.select(ApiToken.last_used_at)) == first
    stale = utcnow() - timedelta(minutes=2)
    db.session.execute(sa.update(ApiToken).values(last_used_at=stale))
    db.session.commit()
    assert api("GET", "/api/v1/lists", raw).status_code == 200
    assert db.session.scalar(sa.select(ApiToken.last_used_at)) > stale + timedelta(minutes=1)


def test_roles_viewer_reads_editor_writes_admin_erases(db, api, tokens_by_role):
    subscriber_id = add_subscriber("ayse@example.org").id
    body = {"email": "b@example.org", "lists": ["newsletter"], "consent_basis": "prior_consent", "consent_note": "x"}
    before = counts(db)
    for role in ("viewer", "editor", "admin"):
        assert api("GET", "/api/v1/lists", tokens_by_role[role]).status_code == 200
        assert api("GET", f"/api/v1/subscribers/{subscriber_id}", tokens_by_role[role]).status_code == 200
    viewer = tokens_by_role["viewer"]
    for method, path, payload in (
        ("POST", "/api/v1/subscribers", body),
        ("PATCH", f"/api/v1/subscribers/{subscriber_id}", {"name": "Changed"}),
        ("POST", f"/api/v1/subscribers/{subscriber_id}/unsubscribe", {}),
        ("DELETE", f"/api/v1/subscribers/{subscriber_id}", None),
    ):
        response = api(method, path, viewer, json=payload)
        assert_json_error(response, 403, "needs the editor role" if method != "DELETE" else "needs the admin role")
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
    assert_json_error(api("DELETE", f"/api/v1/subscribers/{subscriber_id}", tokens_by_role["editor"]), 403, "admin")
    assert_json_error(api("DELETE", "/api/v1/subscribers/424242", tokens_by_role["editor"]), 403)
    assert counts(db) == before
    assert api("DELETE", f"/api/v1/subscribers/{subscriber_id}", tokens_by_role["admin"]).status_code == 204


def test_a_role_change_applies_to_existing_tokens_at_once(db, api):
    raw = issue_token(db, "editor")
    organiser_services.change_role(organiser_services.organiser_by_email("editor@example.org"), Role.VIEWER, "test")
    db.session.commit()
    body = {"email": "b@example.org", "lists": ["newsletter"], "consent_basis": "prior_consent", "consent_note": "x"}
    assert_json_error(api("POST", "/api/v1/subscribers", raw, json=body), 403)


@pytest.mark.parametrize("change", ["own password", "admin resets 2fa", "cli resets 2fa", "cli disables"])
def test_tokens_are_revoked_when_their_organiser_changes_password_loses_2fa_or_is_disabled(
    app, db, api, sign_in_as, change
):
    editor_browser = sign_in_as("editor")
    raw = issue_token(db, "editor", name="sync")
    other = issue_token(db, "viewer", name="sync")  # another organiser's token is not touched
    editor_id = organiser_services.organiser_by_email("editor@example.org").id
    assert api("GET", "/api/v1/lists", raw).status_code == 200
    if change == "own password":
        answer = post_from(
            editor_browser,
            "/organisers/account",
            "/organisers/account/password",
            current_password=ORGANISER_PASSWORD,
            new_password="a much longer brand new passphrase",
            new_password_again="a much longer brand new passphrase",
        )
        assert answer.status_code == 302
        actor = "editor@example.org"
    elif change == "admin resets 2fa":
        path = f"/organisers/accounts/{editor_id}/reset-2fa"
        assert post_from(sign_in_as("admin"), path, path, confirm="y").status_code in (200, 302)
        actor = "admin@example.org"
    else:
        command = "reset-2fa" if change == "cli resets 2fa" else "disable"
        result = app.test_cli_runner().invoke(args=["organisers", command, "editor@example.org"])
        assert result.exit_code == 0, result.output
        actor = "cli"

    assert_json_error(api("GET", "/api/v1/lists", raw), 401, "not valid")
    assert api("GET", "/api/v1/lists", other).status_code == 200
    [revoked] = db.session.scalars(sa.select(ApiToken).where(ApiToken.organiser_id == editor_id)).all()
    assert revoked.revoked_at is not None
    [event] = [e for e in audit_actions(db, "api_token.revoke")]
    assert event[1:3] == (actor, str(revoked.id))
    assert event[3]["organiser_id"] == editor_id and event[3]["name"] == "sync" and event[3]["reason"]


# --- lists ----------------------------------------------------------------------------------------------------------


def test_lists_show_every_list_with_counts_by_status(app, db, api, tokens_by_role):
    list_services.create_list("organisers-only", "Organisers only", "", False, "test")
    db.session.commit()
    add_subscriber("one@example.org", lists=("newsletter", "organisers-only"))
    add_subscriber("two@example.org", basis="needs_confirmation")
    leaver = add_subscriber("three@example.org")
    journey.unsubscribe(leaver.id, None, StatusReason.ORGANISER)
    db.session.commit()

    response = api("GET", "/api/v1/lists", tokens_by_role["viewer"])
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert_matches(app, "MailingListPage", response.json)
    by_slug = {item["slug"]: item for item in response.json["items"]}
    assert list(by_slug) == ["newsletter", "london-protest-reminders", "organisers-only"]
    assert by_slug["newsletter"]["counts"] == {"pending": 1, "confirmed": 1, "unsubscribed": 1}
    assert by_slug["organisers-only"]["counts"] == {"pending": 0, "confirmed": 1, "unsubscribed": 0}
    assert by_slug["organisers-only"]["public"] is False
    assert by_slug["london-protest-reminders"]["counts"] == {"pending": 0, "confirmed": 0, "unsubscribed": 0}

    one = api("GET", "/api/v1/lists/organisers-only", tokens_by_role["viewer"])
    assert one.status_code == 200 and one.json == by_slug["organisers-only"]
    assert_json_error(api("GET", "/api/v1/lists/no-such-list", tokens_by_role["viewer"]), 404)
    assert_json_error(api("GET", "/api/v1/lists/bad%00slug", tokens_by_role["viewer"]), 404)


# --- reading subscribers --------------------------------------------------------------------------------------------


def test_subscribers_page_through_every_row_once_newest_first(app, db, api, tokens_by_role):
    ids = [add_subscriber(f"person{i}@example.org").id for i in range(7)]
    viewer = tokens_by_role["viewer"]
    seen, after, pages = [], None, 0
    while True:
        response = api("GET", "/api/v1/subscribers", viewer, query_string={"limit": 3, "after": after or ""})
        assert response.status_code == 200, response.json
        assert_matches(app, "SubscriberPage", response.json)
        seen += [item["id"] for item in response.json["items"]]
        pages += 1
        after = response.json["next_after"]
        if after is None:
            break
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


def test_subscriber_search_filters_by_text_list_and_status(db, api, tokens_by_role):
    add_subscriber("gulnar@example.org", name="Gulnar", lists=("newsletter", "london-protest-reminders"))
    add_subscriber("amina@example.org", name="Amina Gulnar-Smith")
    add_subscriber("tom@example.net", name="Tom", basis="needs_confirmation")
    viewer = tokens_by_role["viewer"]

    def emails(**query):
        response = api("GET", "/api/v1/subscribers", viewer, query_string=query)
        assert response.status_code == 200, response.json
        return sorted(item["email"] for item in response.json["items"])

    assert emails() == ["amina@example.org", "gulnar@example.org", "tom@example.net"]
    assert emails(q="gulnar") == ["amina@example.org", "gulnar@example.org"]
    assert emails(q="gulnar@") == ["gulnar@example.org"]
    assert emails(q="100%_") == []
    assert emails(list="london-protest-reminders") == ["gulnar@example.org"]
    assert emails(status="pending") == ["tom@example.net"]
    assert emails(list="newsletter", status="confirmed") == ["amina@example.org", "gulnar@example.org"]


@pytest.mark.parametrize(
    ("query", "status", "fragment"),
    [
        ({"limit": "0"}, 400, "'limit'"),
        ({"limit": "201"}, 400, "'limit'"),
        ({"limit": "ten"}, 400, "'limit'"),
        ({"after": "-1"}, 400, "'after'"),
        ({"after": "9" * 5000}, 400, "'after'"),
        ({"after": str(2**31)}, 400, "'after'"),
        ({"status": "bounced"}, 400, "'status'"),
        ({"q": "a\x00b"}, 400, "'q'"),
        ({"q": "x" * 321}, 400, "'q'"),
        ({"page": "2"}, 400, "Unknown query parameter"),
        ({"list": "no-such-list"}, 422, "Unknown list"),
        ({"list": "bad\x00slug"}, 422, "Unknown list"),
    ],
)
def test_bad_search_parameters_get_a_clear_error(db, api, tokens_by_role, query, status, fragment):
    assert_json_error(api("GET", "/api/v1/subscribers", tokens_by_role["viewer"], query_string=query), status, fragment)


def test_one_subscriber_shows_only_what_we_hold(app, db, api, tokens_by_role):
    subscriber = add_subscriber("Nur@Example.org", name="Nur", lists=("newsletter", "london-protest-reminders"))
    response = api("GET", f"/api/v1/subscribers/{subscriber.id}", tokens_by_role["viewer"])
    assert response.status_code == 200
    assert_matches(app, "Subscriber", response.json)
    body = response.json
    assert set(body) == {"id", "email", "name", "locale", "created_at", "updated_at", "subscriptions"}
    assert (body["email"], body["name"], body["locale"]) == ("nur@example.org", "Nur", "en")
    assert [(s["list"], s["status"], s["reason"]) for s in body["subscriptions"]] == [
        ("newsletter", "confirmed", "organiser"),
        ("london-protest-reminders", "confirmed", "organiser"),
    ]
    text = response.get_data(as_text=True)
    assert subscriber.public_id not in text
    viewer = tokens_by_role["viewer"]
    assert_json_error(api("GET", "/api/v1/subscribers/424242", viewer), 404, "no subscriber")
    assert_json_error(api("GET", f"/api/v1/subscribers/{2**40}", viewer), 404)
    assert_json_error(api("GET", "/api/v1/subscribers/abc", viewer), 404)


# --- adding subscribers ---------------------------------------------------------------------------------------------


def test_adding_with_prior_consent_subscribes_at_once_and_records_the_basis(app, db, api, tokens_by_role):
    body = {
        "email": "Dilnur@Example.org",
        "name": "Dilnur",
        "lists": ["newsletter", "london-protest-reminders"],
        "consent_basis": "prior_consent",
        "consent_note": "Paper form, stall at Portland Place, 5 March",
    }
    response = api("POST", "/api/v1/subscribers", tokens_by_role["editor"], json=body)
    assert response.status_code == 201, response.json
    assert_matches(app, "AddResult", response.json)
    assert response.json["outcome"] == "subscribed" and response.json["confirmation_mail"] == "not_needed"
    subscriber_id = response.json["subscriber"]["id"]
    assert response.headers["Location"] == f"/api/v1/subscribers/{subscriber_id}"
    subscriber = db.session.get(Subscriber, subscriber_id)
    assert (subscriber.email, subscriber.name) == ("dilnur@example.org", "Dilnur")
    assert {s.status for s in subscriber.subscriptions} == {SubscriptionStatus.CONFIRMED}
    consents = subscriber_services.consent_history(subscriber)
    assert [(c.method, c.basis) for c in consents] == [(ConsentMethod.API, body["consent_note"])] * 2
    editor_id = db.session.scalar(sa.select(Organiser.id).where(Organiser.email == "editor@example.org"))
    [(action, actor, object_id, details)] = audit_actions(db, "subscriber.add")
    assert (action, actor, object_id) == ("subscriber.add", "editor@example.org", str(subscriber_id))
    assert details == {"outcome": "subscribed", "basis": "prior_consent"}
    assert db.session.scalar(sa.select(AuditEvent.organiser_id).where(AuditEvent.action == "subscriber.add")) == (
        editor_id
    )

    again = api("POST", "/api/v1/subscribers", tokens_by_role["editor"], json=body)
    assert again.status_code == 200 and again.json["outcome"] == "already_subscribed"
    assert "Location" not in again.headers
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Consent)) == 2


def test_adding_without_prior_consent_sends_a_real_confirmation_mail(app, db, api, worker, smtp_sink, tokens_by_role):
    body = {
        "email": "waiting@example.org",
        "lists": ["newsletter"],
        "consent_basis": "needs_confirmation",
        "consent_note": "Asked at a talk to be added",
    }
    response = api("POST", "/api/v1/subscribers", tokens_by_role["editor"], json=body)
    assert response.status_code == 201, response.json
    assert response.json["outcome"] == "confirmation_needed" and response.json["confirmation_mail"] == "queued"
    assert [(s["list"], s["status"]) for s in response.json["subscriber"]["subscriptions"]] == [
        ("newsletter", "pending")
    ]
    [mail] = smtp_sink.wait_for("waiting@example.org")
    assert mail.message["Subject"] == "Please confirm your subscription to USC-UK"
    confirm_path = LINK.search(mail.text()).group(1)
    assert confirm_path.startswith("/confirm/")
    consent = db.session.scalar(sa.select(Consent))
    assert (consent.basis, consent.confirmed_at) == ("Asked at a talk to be added", None)


def test_a_suppressed_address_is_refused_with_409_and_nothing_stored(db, api, tokens_by_role):
    suppress("complained@example.org", SuppressionReason.COMPLAINT)
    db.session.commit()
    before = counts(db)
    body = {
        "email": "Complained@example.org",
        "lists": ["newsletter"],
        "consent_basis": "prior_consent",
        "consent_note": "x",
    }
    assert_json_error(api("POST", "/api/v1/subscribers", tokens_by_role["editor"], json=body), 409, "suppression")
    assert counts(db) == before


GOOD = {"email": "new@example.org", "lists": ["newsletter"], "consent_basis": "prior_consent", "consent_note": "form"}


@pytest.mark.parametrize(
    ("send", "status", "fragment"),
    [
        ({"data": "email=new@example.org", "content_type": "application/x-www-form-urlencoded"}, 415, "JSON"),
        ({"data": '{"email": "new@example.org",', "content_type": "application/json"}, 400, "not valid JSON"),
        ({"json": ["new@example.org"]}, 400, "JSON object"),
        ({"json": {**GOOD, "consent_note": 5}}, 400, "'consent_note' must be a string"),
        ({"json": {k: v for k, v in GOOD.items() if k != "consent_note"}}, 400, "Missing field(s): consent_note"),
        ({"json": {**GOOD, "ip": "192.0.2.1"}}, 400, "Unknown field(s): ip"),
        ({"json": {**GOOD, "lists": "newsletter"}}, 400, "'lists'"),
        ({"json": {**GOOD, "lists": []}}, 400, "'lists'"),
        ({"json": {**GOOD, "email": 7}}, 400, "'email'"),
        ({"json": {**GOOD, "name": ["x"]}}, 400, "'name'"),
        ({"json": {**GOOD, "consent_basis": "implied"}}, 400, "'consent_basis'"),
        ({"json": {**GOOD, "email": "not an address"}}, 422, "doesn't look like an email address"),
        ({"json": {**GOOD, "email": "new\x00@example.org"}}, 422, "email address"),
        ({"json": {**GOOD, "lists": ["newsletter", "no-such-list"]}}, 422, "Unknown list(s): 'no-such-list'"),
        ({"json": {**GOOD, "lists": ["old-news"]}}, 422, "Archived lists can't be joined"),
        ({"json": {**GOOD, "consent_note": "   "}}, 422, "'consent_note'"),
        ({"json": {**GOOD, "consent_note": "x" * 201}}, 422, "'consent_note'"),
        ({"json": {**GOOD, "consent_note": "ok\x00"}}, 422, "control characters"),
        ({"json": {**GOOD, "name": "Line\nbreak"}}, 422, "line breaks"),
        ({"json": {**GOOD, "name": "lone \ud800 surrogate"}}, 422, "control characters"),
        ({"json": {**GOOD, "consent_note": "\udfff"}}, 422, "control characters"),
        ({"json": {**GOOD, "email": "a\ud800@example.org"}}, 422, "email address"),
    ],
)
def test_bad_additions_get_a_clear_error_and_change_nothing(db, api, tokens_by_role, send, status, fragment):
    archived = list_services.create_list("old-news", "Old news", "", False, "test")
    list_services.update_list(archived, "Old news", "", False, True, "test")
    db.session.commit()
    before = counts(db)
    assert_json_error(api("POST", "/api/v1/subscribers", tokens_by_role["editor"], **send), status, fragment)
    assert counts(db) == before


def test_names_that_look_like_html_come_back_verbatim_as_json_strings(db, api, tokens_by_role):
    name = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    body = {**GOOD, "name": name}
    created = api("POST", "/api/v1/subscribers", tokens_by_role["editor"], json=body)
    assert created.status_code == 201
    response = api("GET", f"/api/v1/subscribers/{created.json['subscriber']['id']}", tokens_by_role["viewer"])
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.json["name"] == name
    assert db.session.scalar(sa.select(Subscriber.name)) == name


# --- changing subscribers -------------------------------------------------------------------------------------------


def test_patch_changes_the_name_and_subscriptions_with_audit_entries(app, db, api, tokens_by_role):
    subscriber_id = add_subscriber("rahima@example.org", name="Rahima").id
    body = {"name": "Rahima K.", "subscriptions": {"london-protest-reminders": True, "newsletter": False}}
    response = api("PATCH", f"/api/v1/subscribers/{subscriber_id}", tokens_by_role["editor"], json=body)
    assert response.status_code == 200, response.json
    assert_matches(app, "Subscriber", response.json)
    assert response.json["name"] == "Rahima K."
    assert {s["list"]: s["status"] for s in response.json["subscriptions"]} == {
        "newsletter": "unsubscribed",
        "london-protest-reminders": "confirmed",
    }
    subscriber = db.session.get(Subscriber, subscriber_id)
    assert subscriber.name == "Rahima K."
    assert {s.mailing_list.slug: s.status for s in subscriber.subscriptions} == {
        "newsletter": SubscriptionStatus.UNSUBSCRIBED,
        "london-protest-reminders": SubscriptionStatus.CONFIRMED,
    }
    actions = [(a, actor, details) for a, actor, _, details in audit_actions(db) if a != "subscriber.add"]
    assert actions[-3:] == [
        ("subscriber.update", "editor@example.org", {}),
        ("subscription.subscribe", "editor@example.org", {"list": "london-protest-reminders"}),
        ("subscription.unsubscribe", "editor@example.org", {"list": "newsletter"}),
    ]
    # The same change again is a no-op and writes no audit entry for the subscriptions.
    before = len(audit_actions(db))
    repeat = api("PATCH", f"/api/v1/subscribers/{subscriber_id}", tokens_by_role["editor"], json=body)
    assert repeat.status_code == 200 and len(audit_actions(db)) == before + 1  # the name update only

    cleared = api("PATCH", f"/api/v1/subscribers/{subscriber_id}", tokens_by_role["editor"], json={"name": None})
    assert cleared.status_code == 200 and cleared.json["name"] is None


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 400, "at least one"),
        ({"email": "other@example.org"}, 400, "Unknown field(s): email"),
        ({"subscriptions": ["newsletter"]}, 400, "'subscriptions'"),
        ({"subscriptions": {"newsletter": "yes"}}, 400, "'subscriptions'"),
        ({"name": 3}, 400, "'name'"),
        ({"name": "New", "subscriptions": {"no-such-list": True}}, 422, "Unknown list"),
        ({"name": "New", "subscriptions": {"newsletter": False}, "x": 1}, 400, "Unknown field"),
        ({"name": "New\x00", "subscriptions": {"london-protest-reminders": True}}, 422, "control characters"),
    ],
)
def test_bad_patches_change_nothing(db, api, tokens_by_role, body, status, fragment):
    subscriber_id = add_subscriber("rahima@example.org", name="Rahima").id
    before = counts(db)
    response = api("PATCH", f"/api/v1/subscribers/{subscriber_id}", tokens_by_role["editor"], json=body)
    assert_json_error(response, status, fragment)
    assert counts(db) == before
    subscriber = db.session.get(Subscriber, subscriber_id)
    assert subscriber.name == "Rahima"
    assert [(s.mailing_list.slug, s.status) for s in subscriber.subscriptions] == [
        ("newsletter", SubscriptionStatus.CONFIRMED)
    ]


def test_patch_refuses_to_resubscribe_a_suppressed_address_and_404s_an_unknown_id(db, api, tokens_by_role):
    subscriber_id = add_subscriber("bounced@example.org").id
    suppress("bounced@example.org", SuppressionReason.HARD_BOUNCE)
    db.session.commit()
    before = counts(db)
    editor = tokens_by_role["editor"]
    body = {"subscriptions": {"london-protest-reminders": True}}
    assert_json_error(api("PATCH", f"/api/v1/subscribers/{subscriber_id}", editor, json=body), 409, "suppression")
    assert_json_error(api("PATCH", "/api/v1/subscribers/424242", editor, json={"name": "x"}), 404)
    assert_json_error(api("PATCH", f"/api/v1/subscribers/{subscriber_id}", editor, data="name=x"), 415)
    assert counts(db) == before


def test_unsubscribe_from_named_lists_then_from_all(app, db, api, tokens_by_role):
    subscriber_id = add_subscriber("ilham@example.org", lists=("newsletter", "london-protest-reminders")).id
    editor, path = tokens_by_role["editor"], f"/api/v1/subscribers/{subscriber_id}/unsubscribe"

    some = api("POST", path, editor, json={"lists": ["london-protest-reminders"]})
    assert some.status_code == 200 and some.json["left"] == ["london-protest-reminders"]
    assert_matches(app, "UnsubscribeResult", some.json)
    rest = api("POST", path, editor)  # no body: every list
    assert rest.status_code == 200 and rest.json["left"] == ["newsletter"]
    assert api("POST", path, editor, json={}).json["left"] == []

    subscriber = db.session.get(Subscriber, subscriber_id)
    assert {(s.status, s.status_reason) for s in subscriber.subscriptions} == {
        (SubscriptionStatus.UNSUBSCRIBED, StatusReason.ORGANISER)
    }
    assert all(c.withdrawn_at is not None for c in subscriber_services.consent_history(subscriber))
    assert [d for a, _, _, d in audit_actions(db, "subscription.unsubscribe")] == [
        {"lists": ["london-protest-reminders"]},
        {"lists": ["newsletter"]},
    ]

    before = counts(db)
    assert_json_error(api("POST", path, editor, json={"lists": ["no-such-list"]}), 422, "Unknown list")
    assert_json_error(api("POST", path, editor, json={"lists": "newsletter"}), 400, "'lists'")
    assert_json_error(api("POST", path, editor, data="lists=newsletter", content_type="text/plain"), 415)
    assert_json_error(api("POST", "/api/v1/subscribers/424242/unsubscribe", editor), 404)
    assert counts(db) == before


def test_admin_erases_a_subscriber_who_can_then_not_be_added_again(db, api, tokens_by_role):
    subscriber_id = add_subscriber("erase-me@example.org", name="Erase Me").id
    admin = tokens_by_role["admin"]
    response = api("DELETE", f"/api/v1/subscribers/{subscriber_id}", admin)
    assert response.status_code == 204 and response.get_data() == b""
    assert db.session.get(Subscriber, subscriber_id) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0
    assert db.session.scalar(sa.select(Suppression.reason)) is SuppressionReason.ERASED
    [(action, actor, object_id, details)] = audit_actions(db, "subscriber.erase")
    assert (action, actor, object_id, details) == ("subscriber.erase", "admin@example.org", str(subscriber_id), {})
    assert all("erase-me" not in str(event) for event in audit_actions(db))

    assert_json_error(api("DELETE", f"/api/v1/subscribers/{subscriber_id}", admin), 404)
    again = {**GOOD, "email": "erase-me@example.org"}
    assert_json_error(api("POST", "/api/v1/subscribers", tokens_by_role["editor"], json=again), 409)


# --- the OpenAPI document -------------------------------------------------------------------------------------------


def test_openapi_document_is_public_valid_and_documents_every_api_route(app, db, api):
    response = api("GET", "/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.json
    validate_openapi(document)
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "uscm_…",
    }

    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
            routed |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert routed == documented
    assert ("/api/v1/public/subscribe", "post") in documented

    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            public = path.startswith("/api/v1/public/") or path == "/api/v1/openapi.json"
            assert (operation.get("security") == []) == public, (path, method)
            if not public:
                assert {"401", "403"} <= set(operation["responses"]), (path, method)
            if method in {"post", "patch"} and path != "/api/v1/public/subscribe":
                assert "415" in operation["responses"] and "requestBody" in operation, (path, method)


def test_the_public_endpoints_answer_as_documented(app, db, api, worker, smtp_sink):
    lists = api("GET", "/api/v1/public/lists")
    assert lists.status_code == 200
    assert_matches(app, "PublicLists", lists.json)
    accepted = api(
        "POST",
        "/api/v1/public/subscribe",
        json={"email": "pub@example.org", "lists": ["newsletter"], "consent": True, "consent_version": CURRENT_VERSION},
    )
    assert accepted.status_code == 202
    assert_matches(app, "PublicAccepted", accepted.json)
    wait_for_signups(db)
    assert db.session.scalar(sa.select(Subscriber.email)) == "pub@example.org"
    # Wait for the queued mail, so the worker is done with the database before the next test empties it.
    smtp_sink.wait_for("pub@example.org")
    # A name that cannot be stored as UTF-8 is refused like any bad name, not a 500.
    surrogate = api(
        "POST",
        "/api/v1/public/subscribe",
        json={"email": "pub2@example.org", "name": "\ud800", "lists": ["newsletter"], "consent": True},
    )
    assert_json_error(surrogate, 400, "control characters")


def test_requests_are_rate_limited_per_token(app, db, api, tokens_by_role):
    app.config["API_RATE_LIMIT"] = "3 per minute"
    try:
        statuses = [api("GET", "/api/v1/lists", token=tokens_by_role["viewer"]).status_code for _ in range(3)]
        limited = api("GET", "/api/v1/lists", token=tokens_by_role["viewer"])
        other = api("GET", "/api/v1/lists", token=tokens_by_role["editor"])
    finally:
        app.config["API_RATE_LIMIT"] = "300 per minute"
    assert statuses == [200, 200, 200]
    assert_json_error(limited, 429, "Too many requests")
    assert other.status_code == 200


def test_one_budget_per_token_covers_the_whole_api(app, db, api, tokens_by_role):
    app.config["API_RATE_LIMIT"] = "3 per minute"
    token = tokens_by_role["viewer"]
    try:
        statuses = [api("GET", path, token=token).status_code for path in ("/api/v1/lists", "/api/v1/subscribers")]
        statuses.append(api("GET", "/api/v1/campaigns", token=token).status_code)
        limited = [api("GET", path, token=token) for path in ("/api/v1/events", "/api/v1/lists")]
    finally:
        app.config["API_RATE_LIMIT"] = "300 per minute"
    assert statuses == [200, 200, 200]
    for response in limited:
        assert_json_error(response, 429, "Too many requests")
