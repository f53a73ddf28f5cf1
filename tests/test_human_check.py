"""The "confirm you are a person" page a too-fast signup gets (issue #13), over the real app and database: the signup
is held, not stored, until the button is pressed; the button works once per page, needs its CSRF token, refuses an
old, forged or mangled token with a clear 400, and the page looks the same whatever the address's state."""

import html as html_module
import re
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.conftest import CSRF, form_fields, wait_for_signups
from tests.signup_support import STATES, WORDING_VERSION, client_from, put_in_state, snapshot, subscriber_row
from uscmail.extensions import db as database
from uscmail.models import MailingList, SubscriptionStatus

TOKEN = re.compile(r'name="signup" type="hidden" value="([^"]+)"')
BUTTON = "Yes, I'm a person: subscribe me"


@pytest.fixture
def hasty(app, monkeypatch):
    """Every signup form comes back faster than a person could fill it in."""
    monkeypatch.setitem(app.config, "SIGNUP_MIN_FILL_SECONDS", 60)


def send_form(browser, email: str, lists=("newsletter",), **extra):
    """Load the signup form and send it back at once."""
    page = browser.get("/subscribe").get_data(as_text=True)
    data = {**form_fields(page), "consent_version": WORDING_VERSION, "email": email, "name": "", "website": ""}
    data.update(lists=list(lists), **extra)
    return browser.post("/subscribe", data=data)


def check_page_fields(response) -> dict[str, str]:
    """The CSRF token and the held signup of a "confirm you are a person" page."""
    html = response.get_data(as_text=True)
    return {"csrf_token": CSRF.search(html).group(1), "signup": TOKEN.search(html).group(1)}


def error_text(response) -> str:
    """The message in the signup form's error box."""
    html = response.get_data(as_text=True)
    return html_module.unescape(re.search(r'role="alert"[^>]*><p>(.*?)</p>', html).group(1))


def test_a_hasty_signup_is_held_on_the_page_and_its_button_stores_it_once(app, db, worker, smtp_sink, hasty):
    browser = client_from(app, "192.0.2.60")
    before = snapshot(db)
    page = send_form(browser, "Hasty@Example.org")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>One more step</h1>" in html and BUTTON in html
    assert "You are subscribing <strong>hasty@example.org</strong>" in html
    assert snapshot(db) == before  # held in the page, not stored

    fields = check_page_fields(page)
    first = browser.post("/subscribe/check", data=fields)
    assert (first.status_code, first.headers["Location"]) == (303, "/subscribe/thanks")
    wait_for_signups(db)
    assert [s.status for s in subscriber_row(db, "hasty@example.org").subscriptions] == [SubscriptionStatus.PENDING]
    smtp_sink.wait_for("hasty@example.org")

    stored = snapshot(db)
    again = browser.post("/subscribe/check", data=fields)
    assert (again.status_code, again.headers["Location"]) == (303, "/subscribe/thanks")  # the same answer...
    assert snapshot(db) == stored  # ...and nothing more stored or sent
    smtp_sink.settle()
    assert len(smtp_sink.to("hasty@example.org")) == 1


def test_the_page_is_the_same_whatever_the_addresss_state(app, db, hasty):
    pages = {}
    for number, state in enumerate(STATES):
        email = f"{state}@example.org"
        put_in_state(db, email, state)
        response = send_form(client_from(app, f"192.0.2.{70 + number}"), email)
        fields = check_page_fields(response)
        html = response.get_data(as_text=True).replace(email, "ADDRESS")
        for value in fields.values():
            html = html.replace(value, "TOKEN")
        # Content-Length follows the address and the token; everything else must match.
        headers = sorted((name, value) for name, value in response.headers.items() if name != "Content-Length")
        pages[state] = (response.status_code, headers, html)
    for state in STATES:
        assert pages[state] == pages["new"], state


def test_the_button_needs_its_csrf_token(app, db, hasty):
    browser = client_from(app, "192.0.2.80")
    fields = check_page_fields(send_form(browser, "no-csrf@example.org"))
    before = snapshot(db)
    response = browser.post("/subscribe/check", data={"signup": fields["signup"]})
    assert response.status_code == 400
    assert "This form expired or was sent from somewhere else" in response.get_data(as_text=True)
    assert snapshot(db) == before


def test_a_page_left_open_too_long_asks_for_the_form_again(app, db, hasty):
    browser = client_from(app, "192.0.2.81")
    fields = check_page_fields(send_form(browser, "slow@example.org"))
    max_age = app.config["SIGNUP_CHECK_MAX_AGE"]

    class SignedLongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - max_age - 5

    with app.app_context():
        payload = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="uscmail.signup-check").loads(fields["signup"])
    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="uscmail.signup-check", signer=SignedLongAgo)
    before = snapshot(db)

    response = browser.post("/subscribe/check", data={**fields, "signup": old.dumps(payload)})

    assert response.status_code == 400
    assert error_text(response) == "That page was open too long; please fill in the form again."
    assert "<h1>Subscribe to USC-UK emails</h1>" in response.get_data(as_text=True)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "token",
    [
        "",
        "forged",
        "a\x00b",
        "9" * 20_000,
        URLSafeTimedSerializer("not-our-key", salt="uscmail.signup-check").dumps(
            {"email": "x@example.org", "name": None, "lists": ["newsletter"], "version": WORDING_VERSION, "nonce": "n"}
        ),
        URLSafeTimedSerializer("test-secret-key-" + "x" * 32, salt="uscmail.form-started").dumps(0),
        URLSafeTimedSerializer("test-secret-key-" + "x" * 32, salt="uscmail.signup-check").dumps(
            {"email": ["x@example.org"], "lists": "newsletter", "version": 1, "nonce": ""}
        ),
    ],
    ids=["empty", "garbage", "nul-byte", "huge", "another-key", "another-purpose", "wrong-shape"],
)
def test_a_forged_or_mangled_token_gets_a_clear_400_and_stores_nothing(app, db, hasty, token):
    browser = client_from(app, "192.0.2.82")
    fields = check_page_fields(send_form(browser, "mangled@example.org"))
    before = snapshot(db)

    response = browser.post("/subscribe/check", data={**fields, "signup": token})

    assert response.status_code == 400
    assert "<h1>" in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    assert snapshot(db) == before


def test_a_list_closed_while_the_page_was_open_is_explained_and_the_form_kept(app, db, hasty):
    browser = client_from(app, "192.0.2.83")
    page = send_form(browser, "kept@example.org", lists=("newsletter", "london-protest-reminders"))
    fields = check_page_fields(page)
    reminders = database.session.scalar(
        database.select(MailingList).where(MailingList.slug == "london-protest-reminders")
    )
    reminders.public = False
    database.session.commit()
    before = snapshot(db)

    response = browser.post("/subscribe/check", data=fields)

    assert response.status_code == 400
    assert error_text(response) == "Unknown list: london-protest-reminders"
    html = response.get_data(as_text=True)
    assert 'value="kept@example.org"' in html
    assert snapshot(db) == before


def test_bad_input_is_reported_at_once_and_the_honeypot_stays_silent(app, db, hasty):
    browser = client_from(app, "192.0.2.84")
    bad = send_form(browser, "not an address")
    assert bad.status_code == 400
    assert "doesn't look like an email address" in error_text(bad)
    assert TOKEN.search(bad.get_data(as_text=True)) is None

    before = snapshot(db)
    bot = send_form(client_from(app, "192.0.2.85"), "bot@example.org", website="https://spam.example")
    assert (bot.status_code, bot.headers["Location"]) == (303, "/subscribe/thanks")
    assert snapshot(db) == before
