"""One-time set-up links: an organiser chooses their password and enrols TOTP through a signed, expiring, single-use
link with no address in it; opening it changes nothing; there is no enrolment at first sign-in any more."""

import base64
import re
import time

import sqlalchemy as sa

from tests.conftest import form_fields, isolated_client
from tests.organiser_support import PASSWORD, code_for, create, link_path, post_form, secret_of, set_up
from tests.pages import fresh, text
from uscmail.organisers.models import AuditEvent, Organiser, OrganiserSession


def post_anyway(browser, path):
    """POST to `path` with a valid CSRF token (taken from the login page), as a forged or replayed form would."""
    return browser.post(path, data=form_fields(text(browser.get("/organisers/login"))))


def secret_in(page: str) -> str:
    """The TOTP key shown on the set-up page."""
    return re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)


def sessions(db) -> int:
    return fresh(db).scalar(sa.select(sa.func.count()).select_from(OrganiserSession))


def test_a_set_up_link_works_once(app, db):
    path = link_path(create(app))
    first = set_up(app, db, path)
    assert first.status_code == 200 and "Save your recovery codes" in text(first)
    for browser in (isolated_client(app), isolated_client(app)):
        used = browser.get(path)
        assert used.status_code == 410 and "already been used" in text(used)
        assert "Set up my account" not in text(used)
        again = post_anyway(browser, path)
        assert again.status_code == 410 and browser.get("/organisers/enrol").status_code == 400
    enrolled = [e.action for e in fresh(db).scalars(sa.select(AuditEvent).order_by(AuditEvent.id))]
    assert enrolled.count("organiser.2fa_enrolled") == 1


def test_two_browsers_that_opened_the_same_link_cannot_both_finish(app, db):
    path = link_path(create(app))
    other = isolated_client(app)
    assert post_form(other, path).status_code == 302
    other_page = text(other.get("/organisers/enrol"))
    assert set_up(app, db, path).status_code == 200
    fields = {**form_fields(other_page), "password": PASSWORD, "password_again": PASSWORD}
    late = other.post("/organisers/enrol", data={**fields, "code": code_for(secret_in(other_page))})
    assert late.status_code == 400 and "Open your set-up link again" in text(late)
    assert fresh(db).scalar(sa.select(Organiser)).enrolled


def test_a_set_up_link_expires(app, db, monkeypatch):
    path = link_path(create(app))
    monkeypatch.setitem(app.config, "ENROLMENT_LINK_MAX_AGE", 1)
    time.sleep(2.1)  # deliberately let time pass: past the one-second lifetime, in whole-second timestamps
    browser = isolated_client(app)
    expired = browser.get(path)
    assert expired.status_code == 410 and "This set-up link has expired" in text(expired)
    assert post_anyway(browser, path).status_code == 410
    assert sessions(db) == 0 and not fresh(db).scalar(sa.select(Organiser)).enrolled


def test_a_tampered_link_or_one_replaced_by_a_newer_link_is_refused(app, db):
    path = link_path(create(app))
    payload = path.rsplit("/", 1)[1].split(".", 1)[0]
    assert b"example" not in base64.urlsafe_b64decode(payload + "==")  # no address inside, only an id and a nonce
    tampered = isolated_client(app).get(path[:-2] + ("AA" if not path.endswith("AA") else "BB"))
    assert tampered.status_code == 400 and "not valid" in text(tampered)
    assert isolated_client(app).get("/organisers/enrol/x").status_code == 400

    newer = app.test_cli_runner().invoke(args=["organisers", "reset-2fa", "admin@example.org"])
    assert newer.exit_code == 0
    replaced = isolated_client(app).get(path)
    assert replaced.status_code == 410 and "a newer one replaced it" in text(replaced)
    assert set_up(app, db, link_path(newer)).status_code == 200


def test_opening_a_set_up_link_changes_nothing(app, db):
    path = link_path(create(app))
    page = isolated_client(app).get(path)
    assert page.status_code == 200 and "admin@example.org" in text(page) and "72 hours" in text(page)
    assert sessions(db) == 0  # a mail scanner following the link starts nothing
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"


def test_a_wrong_code_or_a_bad_password_changes_nothing_and_the_link_still_works(app, db, client):
    path = link_path(create(app))
    assert post_form(client, path).status_code == 302
    secret = secret_of(db, "admin@example.org")
    wrong_code = "000000" if code_for(secret) != "000000" else "111111"
    for password, again, code, message in (
        (PASSWORD, PASSWORD, wrong_code, "That code doesn&#39;t match"),
        ("too short", "too short", code_for(secret), "at least 12 characters"),
        (PASSWORD, PASSWORD + "!", code_for(secret), "The two passwords differ"),
    ):
        answer = post_form(client, "/organisers/enrol", password=password, password_again=again, code=code)
        page = text(answer)
        assert answer.status_code == 400 and message in page, page
        assert password not in page
        assert secret in page  # the same QR code and key: the app already set up stays valid
    organiser = fresh(db).scalar(sa.select(Organiser))
    assert not organiser.enrolled and organiser.enrolment_nonce_sha256 is not None
    done = post_form(client, "/organisers/enrol", password=PASSWORD, password_again=PASSWORD, code=code_for(secret))
    assert done.status_code == 200 and client.get("/organisers/").status_code == 200


def test_the_old_first_sign_in_enrolment_is_gone(app, db, sign_in_as):
    create(app, email="new@example.org", role="admin")
    browser = isolated_client(app)
    refused = post_form(browser, "/organisers/login", email="new@example.org", password=PASSWORD)
    assert refused.status_code == 400
    assert browser.get("/organisers/two-factor/setup").status_code == 404
    assert browser.get("/organisers/two-factor").status_code == 302  # back to the login page
    assert sessions(db) == 0
    # Even an admin signed in elsewhere gives the unenrolled account no way in but its link.
    admin = sign_in_as("admin")
    assert admin.get("/organisers/enrol").status_code == 400


def test_the_pending_totp_secret_is_encrypted_in_the_session_row(app, db, client):
    path = link_path(create(app))
    assert post_form(client, path).status_code == 302
    secret = secret_of(db, "admin@example.org")
    rows = repr(fresh(db).execute(sa.text("SELECT * FROM organiser_sessions")).all())
    assert secret not in rows and "gAAAAA" in rows  # a Fernet token
    assert secret in text(client.get("/organisers/enrol"))


def test_a_link_for_a_disabled_account_is_refused(app, db):
    path = link_path(create(app, email="gone@example.org", role="editor"))
    assert app.test_cli_runner().invoke(args=["organisers", "disable", "gone@example.org"]).exit_code == 0
    refused = isolated_client(app).get(path)
    assert refused.status_code == 410
