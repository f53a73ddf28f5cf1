"""The public JSON signup API: same answers for every address, clear JSON errors, real mail, lists, CORS, limits."""

import hashlib

import pytest
import sqlalchemy as sa

from tests.conftest import form_fields, wait_for_signups
from tests.factories import make_list
from tests.signup_support import (
    LINK,
    STATES,
    WORDING_VERSION,
    client_from,
    put_in_state,
    snapshot,
    stored_strings,
    subscriber_row,
    whole_response,
)
from uscmail.extensions import limiter
from uscmail.models import Consent, ConsentMethod, StatusReason, SubscriptionStatus
from uscmail.subscriptions import consent

SUBSCRIBE = "/api/v1/public/subscribe"
CAMPAIGN_SITE = "https://www.uscuk.test"
OTHER_SITE = "https://evil.example"
ACCEPTED_MESSAGE = "Thank you. If the address can receive mail, a message is on its way: open it to confirm."


def request_body(email: str, **changes) -> dict:
    """A valid request as the campaign's website sends it, with some fields changed or (as None) removed."""
    body = {
        "email": email,
        "name": "",
        "lists": ["newsletter"],
        "consent_version": WORDING_VERSION,
        "consent": True,
        **changes,
    }
    return {key: value for key, value in body.items() if value is not None}


# --- No enumeration and the mail that follows -----------------------------------------------------------------------


def test_api_answer_is_byte_for_byte_the_same_whatever_the_address_state(app, db, worker, smtp_sink):
    addresses = {state: f"api-{state}@example.org" for state in STATES}
    for state, email in addresses.items():
        put_in_state(db, email, state)

    answers = {
        state: whole_response(client_from(app, f"192.0.2.{number + 40}").post(SUBSCRIBE, json=request_body(email)))
        for number, (state, email) in enumerate(addresses.items())
    }

    first = answers["new"]
    assert first[0] == 202
    assert ("Content-Type", "application/json") in first[1]
    for state in STATES:
        assert answers[state] == first, state
    for state in ("new", "pending", "confirmed", "unsubscribed"):
        smtp_sink.wait_for(addresses[state])


def test_a_valid_api_request_sends_a_confirmation_and_records_api_consent(app, db, worker, smtp_sink):
    client = client_from(app, "203.0.113.99")
    response = client.post(
        SUBSCRIBE, json=request_body("Nur@Example.org", name="Nur", lists=["newsletter", "london-protest-reminders"])
    )

    assert response.status_code == 202
    assert response.get_json() == {"status": "check_inbox", "message": ACCEPTED_MESSAGE}
    wait_for_signups(db)
    subscriber = subscriber_row(db, "nur@example.org")
    assert subscriber.name == "Nur"
    assert {(s.status, s.status_reason) for s in subscriber.subscriptions} == {
        (SubscriptionStatus.PENDING, StatusReason.SIGNUP_API)
    }
    evidence = db.session.scalars(sa.select(Consent).where(Consent.subscriber_id == subscriber.id)).all()
    expected_sha = hashlib.sha256(consent.WORDINGS[WORDING_VERSION].encode("utf-8")).hexdigest()
    assert (
        sorted((c.method, c.wording_version, c.wording_sha256) for c in evidence)
        == [(ConsentMethod.API, WORDING_VERSION, expected_sha)] * 2
    )

    [confirmation] = smtp_sink.wait_for("nur@example.org")
    assert confirmation.message["Subject"] == "Please confirm your subscription to USC-UK"
    assert "Newsletter" in confirmation.text() and "London protest reminders" in confirmation.text()
    confirm_path = LINK.search(confirmation.text()).group(1)
    page = client.get(confirm_path)
    assert client.post(confirm_path, data=form_fields(page.get_data(as_text=True))).status_code == 200
    assert {s.status for s in subscriber_row(db, "nur@example.org").subscriptions} == {SubscriptionStatus.CONFIRMED}
    smtp_sink.wait_for("nur@example.org", count=2)  # the welcome mail
    assert [where for where, value in stored_strings(db) if "203.0.113.99" in value] == []


def test_an_api_request_with_the_honeypot_filled_is_accepted_but_records_and_sends_nothing(
    client, db, worker, smtp_sink
):
    before = snapshot(db)

    response = client.post(SUBSCRIBE, json=request_body("api-bot@example.org", website="https://spam.example"))

    assert response.status_code == 202
    assert response.get_json()["status"] == "check_inbox"
    assert snapshot(db) == before
    smtp_sink.settle()
    assert smtp_sink.to("api-bot@example.org") == []


# --- Refused requests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "origin"),
    [
        ("application/x-www-form-urlencoded", "email=x%40example.org&lists=newsletter&consent=true", OTHER_SITE),
        (
            "multipart/form-data; boundary=b",
            '--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nx\r\n--b--',
            OTHER_SITE,
        ),
        ("text/plain", '{"email": "x@example.org", "lists": ["newsletter"], "consent": true}', OTHER_SITE),
        (None, '{"email": "x@example.org", "lists": ["newsletter"], "consent": true}', None),
    ],
    ids=["form-urlencoded-cross-site", "multipart-cross-site", "text-plain-cross-site", "no-content-type"],
)
def test_a_body_that_is_not_declared_json_is_refused_with_415(client, db, content_type, body, origin):
    headers = {"Origin": origin} if origin else {}
    if content_type:
        headers["Content-Type"] = content_type
    before = snapshot(db)

    response = client.post(SUBSCRIBE, data=body, headers=headers)

    assert response.status_code == 415
    assert response.get_json() == {"error": "Send a JSON body with Content-Type: application/json."}
    assert "Access-Control-Allow-Origin" not in response.headers
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"email": "x@example.org", ', "The body must be a JSON object."),
        ("", "The body must be a JSON object."),
        ('["x@example.org"]', "The body must be a JSON object."),
        ('"x@example.org"', "The body must be a JSON object."),
        ("null", "The body must be a JSON object."),
        (request_body(None), "'email' must be a string."),
        (request_body(["x@example.org"]), "'email' must be a string."),
        (request_body("not-an-address"), "That doesn't look like an email address"),
        (request_body(""), "Please enter your email address."),
        (request_body("x" * 330 + "@example.org"), "That email address is too long."),
        (request_body("x@example.org", consent=None), "'consent' must be true"),
        (request_body("x@example.org", consent=False), "'consent' must be true"),
        (request_body("x@example.org", consent="true"), "'consent' must be true"),
        (request_body("x@example.org", consent=1), "'consent' must be true"),
        (request_body("x@example.org", lists=["newsletter", "organisers-only"]), "Unknown list: organisers-only"),
        (request_body("x@example.org", lists=["no-such-list"]), "Unknown list: no-such-list"),
        (request_body("x@example.org", lists=[]), "Please choose at least one list."),
        (request_body("x@example.org", lists="newsletter"), "'lists' must be a list of list slugs."),
        (request_body("x@example.org", lists=[1]), "'lists' must be a list of list slugs."),
        (request_body("x@example.org", lists=None), "'lists' must be a list of list slugs."),
        (request_body("x@example.org", name=["Eve"]), "'name' must be a string."),
        (request_body("x@example.org", name="Eve\r\nBcc: v@example.org"), "Your name can't contain line breaks"),
        (request_body("x@example.org", name="x" * 10_000), "Please keep your name under 200 characters."),
        (request_body("x@example.org", consent_version="2020-01-01"), "The consent wording has changed"),
    ],
    ids=[
        "invalid-json",
        "empty-body",
        "array",
        "string",
        "null",
        "missing-email",
        "email-not-a-string",
        "malformed-email",
        "empty-email",
        "over-long-email",
        "consent-missing",
        "consent-false",
        "consent-string",
        "consent-number",
        "private-list",
        "unknown-list",
        "no-list",
        "lists-not-a-list",
        "list-slug-not-a-string",
        "lists-missing",
        "name-not-a-string",
        "name-crlf",
        "name-10000",
        "old-consent-version",
    ],
)
def test_a_bad_request_gets_400_with_a_json_error_and_changes_nothing(client, db, body, message):
    make_list("organisers-only", "Organisers", public=False)
    db.session.commit()
    before = snapshot(db)

    if isinstance(body, dict):
        response = client.post(SUBSCRIBE, json=body)
    else:
        response = client.post(SUBSCRIBE, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.get_json()["error"].startswith(message)
    assert snapshot(db) == before


def test_the_sixth_api_signup_from_one_ip_within_an_hour_gets_429_in_json(app, db, worker, smtp_sink):
    site_visitor = client_from(app, "198.51.100.70")
    for number in range(5):
        response = site_visitor.post(SUBSCRIBE, json=request_body(f"visitor{number}@example.org"))
        assert response.status_code == 202, number

    refused = site_visitor.post(SUBSCRIBE, json=request_body("visitor5@example.org"))

    assert refused.status_code == 429
    assert refused.get_json() == {
        "error": "Too many requests came from your network. Please wait a while and try again."
    }
    assert subscriber_row(db, "visitor5@example.org") is None
    for number in range(5):
        smtp_sink.wait_for(f"visitor{number}@example.org")


# --- The lists and the wording --------------------------------------------------------------------------------------


def test_the_lists_endpoint_offers_the_public_lists_and_the_exact_consent_wording(client, db):
    make_list("organisers-only", "Organisers", public=False)
    make_list("old-campaign", "Old campaign", public=True, archived=True)
    db.session.commit()

    response = client.get("/api/v1/public/lists")

    assert response.status_code == 200
    payload = response.get_json()
    assert [item["slug"] for item in payload["lists"]] == ["newsletter", "london-protest-reminders"]
    assert payload["lists"][1]["name"] == "London protest reminders"
    assert "Portland Place" in payload["lists"][1]["description"]
    text = consent.WORDINGS[WORDING_VERSION]
    assert payload["consent"] == {
        "version": WORDING_VERSION,
        "text": text,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


# --- CORS -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def cors_app(app, db):
    """A second app built with CORS_ORIGINS set, since CORS is configured in create_app; shares the test database."""
    from config import TestConfig
    from uscmail import create_app
    from uscmail.extensions import db as database

    # create_app rebinds the shared limiter and makes its Celery app the default; both are put back afterwards.
    saved_limiter = limiter._storage, limiter._limiter
    config = TestConfig()
    config.CORS_ORIGINS = [CAMPAIGN_SITE]
    embedding_app = create_app(config)
    yield embedding_app
    with embedding_app.app_context():
        database.engine.dispose()
    limiter._storage, limiter._limiter = saved_limiter
    app.extensions["celery"].set_default()


def test_cors_lets_only_the_configured_site_call_the_api(cors_app, client, db, worker, smtp_sink):
    browser = cors_app.test_client()
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    allowed = browser.options(SUBSCRIBE, headers={"Origin": CAMPAIGN_SITE, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == CAMPAIGN_SITE
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "content-type" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in allowed.headers

    refused = browser.options(SUBSCRIBE, headers={"Origin": OTHER_SITE, **preflight})
    assert "Access-Control-Allow-Origin" not in refused.headers

    posted = browser.post(SUBSCRIBE, json=request_body("cors@example.org"), headers={"Origin": CAMPAIGN_SITE})
    assert posted.status_code == 202
    assert posted.headers["Access-Control-Allow-Origin"] == CAMPAIGN_SITE
    [confirmation] = smtp_sink.wait_for("cors@example.org")
    assert confirmation.message["Subject"] == "Please confirm your subscription to USC-UK"

    foreign = browser.post(SUBSCRIBE, json=request_body("cors-other@example.org"), headers={"Origin": OTHER_SITE})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    listed = browser.get("/api/v1/public/lists", headers={"Origin": OTHER_SITE})
    assert "Access-Control-Allow-Origin" not in listed.headers
    smtp_sink.wait_for("cors-other@example.org")  # the request itself is valid; the browser hides the answer

    # The signup page may be framed by the configured site only; without CORS_ORIGINS, by nobody.
    assert f"frame-ancestors 'self' {CAMPAIGN_SITE}" in browser.get("/subscribe").headers["Content-Security-Policy"]
    default_app = client.options(SUBSCRIBE, headers={"Origin": CAMPAIGN_SITE, **preflight})
    assert "Access-Control-Allow-Origin" not in default_app.headers
    assert "frame-ancestors 'none'" in client.get("/subscribe").headers["Content-Security-Policy"]
