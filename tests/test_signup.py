"""Signup over real parts: no enumeration, the right mail per state, consent, bot and abuse defences, bad input."""

import hashlib
import re
from email import policy
from email.parser import BytesParser, Parser
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer

from tests.conftest import form_fields, wait_for_signups
from tests.factories import mailing_list, make_list
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
from uscmail.models import (
    Consent,
    ConsentMethod,
    MailingList,
    Subscriber,
    SubscriptionStatus,
    Suppression,
)
from uscmail.subscriptions import consent, mails, services


def error_text(response) -> str:
    """The message in the form's error box, or the heading of an error page."""
    html = response.get_data(as_text=True)
    match = re.search(r'role="alert"[^>]*><p>(.*?)</p>', html) or re.search(r"<h1>(.*?)</h1>", html)
    return match.group(1)


# --- No enumeration -------------------------------------------------------------------------------------------------


def test_signup_answer_is_byte_for_byte_the_same_whatever_the_address_state(app, db, worker, smtp_sink, signup):
    addresses = {state: f"{state}@example.org" for state in STATES}
    for state, email in addresses.items():
        put_in_state(db, email, state)

    answers, thanks_pages = {}, {}
    for number, (state, email) in enumerate(addresses.items()):
        browser = client_from(app, f"192.0.2.{number + 10}")
        answers[state] = whole_response(signup(email, test_client=browser))
        thanks_pages[state] = whole_response(browser.get("/subscribe/thanks"))

    assert answers["new"][0] == 303
    assert ("Location", "/subscribe/thanks") in answers["new"][1]
    assert not any(name == "Set-Cookie" for name, _ in answers["new"][1])
    for state in STATES:
        assert answers[state] == answers["new"], state
        assert thanks_pages[state] == thanks_pages["new"], state
    assert b"Check your inbox" in thanks_pages["new"][2]

    # Drain the mail these signups queued (the suppressed address gets none: see the next test).
    for state in ("new", "pending", "confirmed", "unsubscribed"):
        smtp_sink.wait_for(addresses[state])


def test_each_address_state_gets_the_right_mail_and_a_suppressed_one_gets_none(client, db, worker, smtp_sink, signup):
    put_in_state(db, "kept@example.org", "confirmed", name="Kept")
    put_in_state(db, "waiting@example.org", "pending")
    put_in_state(db, "erased@example.org", "suppressed")
    for email in ("kept@example.org", "waiting@example.org", "erased@example.org"):
        assert signup(email).status_code == 303

    [notice] = smtp_sink.wait_for("kept@example.org")
    assert notice.message["Subject"] == "You are already subscribed to USC-UK"
    assert "/confirm/" not in notice.text() + notice.html()
    preferences_path = LINK.search(notice.text()).group(1)
    assert preferences_path.startswith("/preferences/")
    preferences = client.get(preferences_path)
    assert preferences.status_code == 200
    assert "For kept@example.org" in preferences.get_data(as_text=True)

    [confirmation] = smtp_sink.wait_for("waiting@example.org")
    assert confirmation.message["Subject"] == "Please confirm your subscription to USC-UK"
    confirm_path = LINK.search(confirmation.text()).group(1)
    page = client.get(confirm_path)
    assert client.post(confirm_path, data=form_fields(page.get_data(as_text=True))).status_code == 200
    waiting = subscriber_row(db, "waiting@example.org")
    assert [s.status for s in waiting.subscriptions] == [SubscriptionStatus.CONFIRMED]
    smtp_sink.wait_for("waiting@example.org", count=2)  # the welcome mail

    smtp_sink.settle()
    assert smtp_sink.to("erased@example.org") == []
    assert subscriber_row(db, "erased@example.org") is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 1
    assert len(smtp_sink.to("kept@example.org")) == 1


def test_an_existing_subscribers_name_is_not_changed_by_someone_elses_signup(db, worker, smtp_sink, signup):
    put_in_state(db, "amina@example.org", "confirmed", name="Amina")

    assert signup("amina@example.org", name="Mallory").status_code == 303

    [notice] = smtp_sink.wait_for("amina@example.org")
    assert subscriber_row(db, "amina@example.org").name == "Amina"
    assert notice.message["To"].addresses[0].display_name == "Amina"
    assert "Hello Amina," in notice.text()
    assert "Mallory" not in notice.raw.decode()


# --- Consent evidence and no IP addresses ---------------------------------------------------------------------------


def test_consent_is_recorded_per_list_with_the_wording_hash_and_no_ip_is_stored(app, db, worker, smtp_sink):
    browser = client_from(app, "203.0.113.45")
    page = browser.get("/subscribe")
    data = {
        **form_fields(page.get_data(as_text=True)),
        "consent_version": WORDING_VERSION,
        "email": "gulnar@example.org",
        "name": "Gulnar",
        "lists": ["newsletter", "london-protest-reminders"],
        "website": "",
    }
    assert browser.post("/subscribe", data=data, headers={"X-Forwarded-For": "198.51.100.99"}).status_code == 303
    wait_for_signups(db)
    expected_sha = hashlib.sha256(consent.WORDINGS[WORDING_VERSION].encode("utf-8")).hexdigest()
    subscriber = subscriber_row(db, "gulnar@example.org")
    rows = db.session.execute(
        sa.select(MailingList.slug, Consent).join(MailingList, MailingList.id == Consent.list_id)
        .where(Consent.subscriber_id == subscriber.id)
        .order_by(MailingList.slug)
    ).all()  # fmt: skip
    assert [slug for slug, _ in rows] == ["london-protest-reminders", "newsletter"]
    for _, evidence in rows:
        assert evidence.method is ConsentMethod.FORM
        assert evidence.wording_version == WORDING_VERSION
        assert evidence.wording_sha256 == expected_sha
        assert evidence.created_at is not None
        assert evidence.confirmed_at is None
        assert evidence.withdrawn_at is None

    [confirmation] = smtp_sink.wait_for("gulnar@example.org")
    confirm_path = LINK.search(confirmation.text()).group(1)
    confirm_page = browser.get(confirm_path)
    assert browser.post(confirm_path, data=form_fields(confirm_page.get_data(as_text=True))).status_code == 200
    smtp_sink.wait_for("gulnar@example.org", count=2)  # the welcome mail

    db.session.rollback()
    confirmed = db.session.scalars(sa.select(Consent).where(Consent.subscriber_id == subscriber.id)).all()
    assert len(confirmed) == 2
    assert all(c.confirmed_at is not None and c.confirmed_at >= c.created_at for c in confirmed)

    stored = stored_strings(db)
    assert ("subscribers", "gulnar@example.org") in stored  # the scan does see the rows written
    for ip in ("203.0.113.45", "198.51.100.99", "127.0.0.1"):
        assert [where for where, value in stored if ip in value] == []


# --- Bot defences ---------------------------------------------------------------------------------------------------


def test_a_filled_honeypot_gets_the_same_thanks_but_no_row_and_no_mail(app, db, worker, smtp_sink, signup):
    person = signup("person@example.org", test_client=client_from(app, "192.0.2.30"))
    bot = signup(
        "bot@example.org", extra={"website": "https://spam.example"}, test_client=client_from(app, "192.0.2.31")
    )

    assert whole_response(bot) == whole_response(person)
    smtp_sink.wait_for("person@example.org")
    smtp_sink.settle()
    assert smtp_sink.to("bot@example.org") == []
    assert subscriber_row(db, "bot@example.org") is None


def test_a_form_sent_back_faster_than_a_person_could_fill_it_in_asks_them_to_confirm_a_person(app, db, signup):
    saved = app.config["SIGNUP_MIN_FILL_SECONDS"]
    app.config["SIGNUP_MIN_FILL_SECONDS"] = 30
    try:
        response = signup("hasty@example.org")
    finally:
        app.config["SIGNUP_MIN_FILL_SECONDS"] = saved

    assert response.status_code == 200
    assert "<h1>One more step</h1>" in response.get_data(as_text=True)
    assert subscriber_row(db, "hasty@example.org") is None  # held on the page until its button is pressed


@pytest.mark.parametrize(
    "started",
    [
        URLSafeTimedSerializer("not-our-key", salt="uscmail.form-started").dumps(0),
        "forged",
        "",
        None,
    ],
    ids=["signed-with-another-key", "garbage", "empty", "missing"],
)
def test_a_forged_or_missing_started_token_records_nothing(client, db, started):
    page = client.get("/subscribe")
    data = {
        **form_fields(page.get_data(as_text=True)),
        "consent_version": WORDING_VERSION,
        "email": "robot@example.org",
        "lists": ["newsletter"],
        "website": "",
        "started": started,
    }
    if started is None:
        del data["started"]
    before = snapshot(db)

    response = client.post("/subscribe", data=data)

    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/thanks"
    assert snapshot(db) == before


# --- Bad input ------------------------------------------------------------------------------------------------------

# 251 characters of valid labels: the address is under 320 characters but over the 254 that SMTP allows.
LONG_DOMAIN = ".".join(["d" * 61] * 4) + ".org"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not-an-address"}, "That doesn't look like an email address"),
        ({"email": "a@b@example.org"}, "That doesn't look like an email address"),
        ({"email": "x" * 320 + "@example.org"}, "That email address is too long."),
        (
            {"email": "longlocal@" + LONG_DOMAIN},
            "That doesn't look like an email address: The email address is too long",
        ),
        ({"email": ""}, "Please enter your email address."),
        ({"email": "   "}, "Please enter your email address."),
        ({"email": None}, "Please enter your email address."),
        ({"lists": []}, "Please choose at least one list."),
        ({"lists": ["newsletter", "secret-list"]}, "Unknown list: secret-list"),
        ({"lists": ["organisers-only"]}, "Unknown list: organisers-only"),
        ({"name": "Eve\r\nBcc: victim@example.org"}, "Your name can't contain line breaks or control characters."),
        ({"name": "Eve\nBcc: victim@example.org"}, "Your name can't contain line breaks or control characters."),
        ({"name": "Eve\u2028Bcc: victim@example.org"}, "Your name can't contain line breaks or control characters."),
        ({"name": "x" * 10_000}, "Please keep your name under 200 characters."),
        ({"consent_version": "2020-01-01"}, "The consent wording has changed since the form was opened"),
        ({"consent_version": None}, "The consent wording has changed since the form was opened"),
    ],
    ids=[
        "malformed",
        "two-at-signs",
        "over-320",
        "over-254",
        "empty",
        "blank",
        "missing",
        "no-list",
        "unknown-list",
        "private-list",
        "name-crlf",
        "name-lf",
        "name-line-separator",
        "name-10000",
        "old-consent-version",
        "missing-consent-version",
    ],
)
def test_bad_input_gets_a_clear_message_and_changes_nothing(db, client, fields, message):
    make_list("organisers-only", "Organisers", public=False)
    db.session.commit()
    page = client.get("/subscribe")
    data = {
        **form_fields(page.get_data(as_text=True)),
        "consent_version": WORDING_VERSION,
        "email": "someone@example.org",
        "name": "",
        "lists": ["newsletter"],
        "website": "",
        **fields,
    }
    data = {key: value for key, value in data.items() if value is not None}
    before = snapshot(db)

    response = client.post("/subscribe", data=data)

    assert response.status_code == 400
    assert error_text(response).startswith(message.replace("'", "&#39;"))
    assert 'name="email"' in response.get_data(as_text=True)  # the form is shown again to correct
    assert snapshot(db) == before


def test_a_form_without_its_csrf_token_is_refused_with_400(db, client):
    client.get("/subscribe")
    before = snapshot(db)

    response = client.post(
        "/subscribe",
        data={"email": "someone@example.org", "lists": ["newsletter"], "consent_version": WORDING_VERSION},
    )

    assert response.status_code == 400
    assert "This form expired or was sent from somewhere else" in error_text(response)
    assert snapshot(db) == before


def test_a_json_body_posted_to_the_form_is_refused(db, client):
    fields = form_fields(client.get("/subscribe").get_data(as_text=True))
    before = snapshot(db)

    response = client.post(
        "/subscribe",
        json={**fields, "email": "someone@example.org", "lists": ["newsletter"], "consent_version": WORDING_VERSION},
    )

    assert 400 <= response.status_code < 500
    assert "This form expired or was sent from somewhere else" in error_text(response)
    assert snapshot(db) == before


# --- Internationalised input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "name"),
    [
        ("uyghur@example.org", "ئۇيغۇر"),
        ("weiwuer@example.org", "维吾尔"),
        ("emoji@example.org", "Dilnur 🌙✊🏽"),
        ("quoted@example.org", 'Ayşe "Ay" Öztürk, Jr.'),
        ("user@bücher.example", "Zöe"),
        ("用户@example.org", "维吾尔"),
    ],
    ids=["uyghur-name", "chinese-name", "emoji-name", "name-with-comma-and-quotes", "idn-domain", "non-ascii-local"],
)
def test_international_names_and_addresses_get_a_confirmation_that_parses(db, worker, smtp_sink, signup, email, name):
    assert signup(email, name=name).status_code == 303

    [confirmation] = smtp_sink.wait_for(email)
    # Sent with SMTPUTF8 when the address is not ASCII, so headers may be raw UTF-8 (RFC 6532), as a client reads them.
    reparsed = Parser(policy=policy.default).parsestr(confirmation.raw.decode("utf-8"))
    [recipient] = reparsed["To"].addresses
    assert recipient.display_name == name
    assert recipient.addr_spec == email
    assert f"Hello {name}," in confirmation.text()
    assert reparsed["Subject"] == "Please confirm your subscription to USC-UK"
    assert LINK.search(confirmation.text()).group(1).startswith("/confirm/")
    assert subscriber_row(db, email).name == name


# --- Header injection -----------------------------------------------------------------------------------------------

INJECTED_NAMES = [
    "Eve\r\nBcc: victim@example.org",
    "Eve\nBcc: victim@example.org\nSubject: Phish",
    "Eve\rBcc: victim@example.org",
    "Eve\u2028Bcc: victim@example.org",
    "Eve\x85Bcc: victim@example.org",
    "Eve\r\n\r\nInjected body",
]


def store_subscriber_with_name(db, email: str, name: str) -> Subscriber:
    """A pending subscriber whose name skipped validation (an import, an old row, a direct edit)."""
    newsletter = mailing_list("newsletter")
    services.request_subscription(email, None, [newsletter], ConsentMethod.FORM, WORDING_VERSION)
    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    subscriber.name = name
    db.session.commit()
    return subscriber


def header_block(raw: bytes) -> bytes:
    """The message's header section, up to the first empty line."""
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]


def header_names(raw: bytes) -> list[str]:
    """Lower-cased names of the top-level header fields (continuation lines skipped)."""
    lines = re.split(rb"\r?\n", header_block(raw))
    return [line.split(b":", 1)[0].decode().lower() for line in lines if line[:1] not in b" \t"]


@pytest.mark.parametrize("name", INJECTED_NAMES, ids=["crlf", "lf", "cr", "line-separator", "nel", "blank-line"])
def test_a_name_with_line_breaks_in_the_database_cannot_add_a_header(app, db, name):
    subscriber = store_subscriber_with_name(db, "eve@example.org", name)
    newsletter = mailing_list("newsletter")

    built = [
        mails.confirmation_message(subscriber, [newsletter]),
        mails.already_subscribed_message(subscriber, [newsletter]),
        mails.welcome_message(subscriber, [newsletter.id]),
    ]

    for message in built:
        raw = message.as_bytes(policy=policy.SMTP)
        names = header_names(raw)
        assert "bcc" not in names
        assert names.count("subject") == 1
        assert names.count("to") == 1
        assert not re.search(rb"^(Bcc|Subject: Phish|Injected body)", header_block(raw), re.MULTILINE | re.IGNORECASE)
        reparsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert reparsed["Bcc"] is None
        [recipient] = reparsed["To"].addresses
        assert recipient.addr_spec == "eve@example.org"
        assert "\n" not in recipient.display_name and "\r" not in recipient.display_name


def test_an_injected_name_reaches_only_its_own_address_over_smtp(db, worker, smtp_sink):
    from uscmail.subscriptions import tasks

    subscriber = store_subscriber_with_name(db, "eve@example.org", "Eve\r\nBcc: victim@example.org")
    tasks.send_signup_mail.delay(subscriber.id, [mailing_list("newsletter").id])

    [delivered] = smtp_sink.wait_for("eve@example.org")
    assert delivered.rcpt_tos == ["eve@example.org"]
    assert delivered.message["Bcc"] is None
    assert "bcc" not in header_names(delivered.raw)
    smtp_sink.settle()
    assert smtp_sink.to("victim@example.org") == []


# --- Abuse limits ---------------------------------------------------------------------------------------------------


def test_a_sixth_signup_from_one_ip_within_an_hour_gets_429_and_other_ips_are_unaffected(
    app, db, worker, smtp_sink, signup
):
    crowd = client_from(app, "198.51.100.7")
    for number in range(5):
        response = signup(f"crowd{number}@example.org", test_client=crowd)
        assert response.status_code == 303, number

    refused = signup("crowd5@example.org", test_client=crowd)
    assert refused.status_code == 429
    assert "Too many requests came from your network. Please wait a while and try again." in error_text(refused)
    assert subscriber_row(db, "crowd5@example.org") is None

    neighbour = signup("neighbour@example.org", test_client=client_from(app, "198.51.100.8"))
    assert neighbour.status_code == 303

    for address in [f"crowd{number}@example.org" for number in range(5)] + ["neighbour@example.org"]:
        smtp_sink.wait_for(address)
    assert smtp_sink.to("crowd5@example.org") == []


def test_invalid_submissions_do_not_use_up_the_signup_allowance(app, db, worker, smtp_sink, signup):
    typist = client_from(app, "198.51.100.20")
    for _ in range(6):
        assert signup("not-an-address", test_client=typist).status_code == 400
    for number in range(5):
        assert signup(f"typist{number}@example.org", test_client=typist).status_code == 303, number
    assert signup("typist5@example.org", test_client=typist).status_code == 429

    for number in range(5):
        smtp_sink.wait_for(f"typist{number}@example.org")


def test_one_address_gets_at_most_three_confirmation_mails_a_day(app, db, worker, smtp_sink, signup):
    spellings = [
        "target@example.org",
        "Target@example.org",
        "TARGET@EXAMPLE.ORG",
        "target@Example.org",
        "target@example.org",
    ]
    answers = [
        whole_response(signup(email, test_client=client_from(app, f"203.0.113.{number + 60}")))
        for number, email in enumerate(spellings)
    ]

    assert answers[0][0] == 303
    assert all(answer == answers[0] for answer in answers)
    smtp_sink.wait_for("target@example.org", count=3)
    smtp_sink.settle()
    delivered = smtp_sink.to("target@example.org")
    assert len(delivered) == 3
    assert {mail.message["Subject"] for mail in delivered} == {"Please confirm your subscription to USC-UK"}


# --- Security headers and no third-party assets ---------------------------------------------------------------------


class LinkCollector(HTMLParser):
    """Collects every URL a page makes the browser load or offer: src, href, action."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in {"src", "href", "action", "srcset"} and value]


def test_the_signup_page_has_a_strict_csp_no_referrer_and_no_third_party_urls(client, db):
    response = client.get("/subscribe")

    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp.split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"

    collector = LinkCollector()
    collector.feed(response.get_data(as_text=True))
    assert "/static/style.css" in collector.urls  # the collector sees the page's links
    for url in collector.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url
    with client.get("/static/style.css") as stylesheet_response:
        stylesheet = stylesheet_response.get_data(as_text=True)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", stylesheet)


def test_the_thanks_and_error_pages_carry_the_same_security_headers(client, db, worker, smtp_sink, signup):
    thanks = client.get(signup("headers@example.org").headers["Location"])
    refused = signup("not-an-address")
    smtp_sink.wait_for("headers@example.org")
    for response in (thanks, refused):
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_a_confirmation_mail_the_relay_defers_goes_out_when_it_takes_mail_again(client, db, worker, smtp_sink, signup):
    """451 is "not now": the mail task tries again later (it used to give up at once, losing the confirmation)."""
    from tests.conftest import WORKER_LOG
    from tests.waiting import wait_until

    def retries() -> int:
        lines = WORKER_LOG.read_text(errors="replace").splitlines()
        return sum("send_signup_mail" in line and "retry: Retry in" in line for line in lines)

    before = retries()
    smtp_sink.replies["later@example.org"] = "451 4.3.0 Try again later"
    assert signup("later@example.org").status_code == 303
    wait_until(lambda: retries() > before, 30, "the worker to put the mail off")
    assert not smtp_sink.to("later@example.org")
    del smtp_sink.replies["later@example.org"]
    [mail] = smtp_sink.wait_for("later@example.org")
    assert mail.message["Subject"].startswith("Please confirm")
