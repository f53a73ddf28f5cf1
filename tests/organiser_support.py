"""Helpers for the organiser account tests: creating organisers with the CLI, following their set-up links, TOTP
codes, signing in through both steps."""

import re
import time

import pyotp
import sqlalchemy as sa

from tests.conftest import form_fields, isolated_client
from tests.factories import ORGANISER_PASSWORD
from tests.pages import post_from
from uscmail.organisers.models import Organiser, OrganiserSession

PASSWORD = ORGANISER_PASSWORD
LINK = re.compile(r"^https://lists\.uscuk\.test(/organisers/enrol/\S+)$", re.M)


def create(app, email="admin@example.org", role="admin"):
    """`flask organisers create`; returns the CLI result (the set-up link is on stdout)."""
    return app.test_cli_runner().invoke(args=["organisers", "create", email, "--role", role])


def link_path(result) -> str:
    """The path of the set-up link a CLI command printed."""
    return LINK.search(result.stdout).group(1)


def post_form(browser, path, **data):
    """Load `path` for its hidden fields, then post `data` to it."""
    page = browser.get(path)
    return browser.post(path, data={**form_fields(page.get_data(as_text=True)), **data})


def secret_of(db, email):
    """The organiser's TOTP secret, enrolled or pending in a session row (decrypted)."""
    db.session.rollback()
    pending = db.session.scalars(
        sa.select(OrganiserSession)
        .join(Organiser)
        .where(Organiser.email == email, OrganiserSession.pending_totp_secret_encrypted.is_not(None))
    ).first()
    enrolled = db.session.scalar(sa.select(Organiser).where(Organiser.email == email)).totp_secret
    secret = enrolled or (pending.pending_totp_secret if pending else None)
    db.session.rollback()
    return secret


def code_for(secret, offset_steps=0):
    """The TOTP code for this secret, `offset_steps` 30-second steps from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


def set_up(app, db, path, email="admin@example.org", password=PASSWORD, browser=None):
    """Open a set-up link and finish it (password and TOTP); returns the answer of the last step."""
    browser = browser or isolated_client(app)
    assert post_form(browser, path).status_code == 302
    page = browser.get("/organisers/enrol").get_data(as_text=True)
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    fields = {"password": password, "password_again": password, "code": code_for(secret)}
    return browser.post("/organisers/enrol", data={**form_fields(page), **fields})


def sign_in_fresh(app, email: str, password: str, code: str):
    """A fresh browser through both sign-in steps; returns (browser, answer to the second step)."""
    browser = isolated_client(app)
    step_one = post_from(browser, "/organisers/login", "/organisers/login", email=email, password=password)
    if step_one.status_code != 302:
        return browser, step_one
    return browser, post_from(browser, "/organisers/two-factor", "/organisers/two-factor", code=code)
