"""Account pages: admins manage organisers; every organiser changes their own password and recovery codes."""

import re
import time

import pyotp
import pytest
import sqlalchemy as sa

from tests.conftest import form_fields, isolated_client
from tests.factories import ORGANISER_PASSWORD, make_organiser
from tests.organiser_support import sign_in_fresh
from tests.pages import fresh, post_from, text
from uscmail.organisers import api_tokens as api_tokens
from uscmail.organisers import services
from uscmail.organisers.models import ApiToken, AuditEvent, Organiser, RecoveryCode, Role

NEW_PASSWORD = "a much longer brand new passphrase"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
CODE = re.compile(r"<code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code>")


def organiser(db, email: str) -> Organiser:
    return fresh(db).scalar(sa.select(Organiser).where(Organiser.email == email))


LINK = re.compile(r'value="https://lists\.uscuk\.test(/organisers/enrol/[^"]+)"')


def set_up_with_link(app, path: str, password: str = NEW_PASSWORD):
    """Open a set-up link in a fresh browser and finish enrolment; returns (browser, final answer)."""
    browser = isolated_client(app)
    begun = post_from(browser, path, path)
    assert begun.status_code == 302 and begun.headers["Location"] == "/organisers/enrol", text(begun)
    page = text(browser.get("/organisers/enrol"))
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    answer = browser.post(
        "/organisers/enrol",
        data={
            **form_fields(page),
            "password": password,
            "password_again": password,
            "code": pyotp.TOTP(secret).now(),
        },
    )
    return browser, answer


def audit_rows(db, action: str) -> list[AuditEvent]:
    return fresh(db).scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


def signed_in(browser) -> bool:
    """True if the browser still has a live organiser session."""
    response = browser.get("/organisers/account")
    assert response.status_code in (200, 302)
    return response.status_code == 200


# The organisers page


def test_admin_sees_every_organiser_with_role_two_factor_last_sign_in_and_live_token_names(db, sign_in_as):
    admin = sign_in_as("admin")
    editor = make_organiser("editor@example.org", commit=True)
    make_organiser("new@example.org", role="viewer", enrolled=False, commit=True)
    api_tokens.create_token(editor, "newsletter-script", "test")
    api_tokens.create_token(editor, "old-laptop", "test")
    api_tokens.revoke_tokens(editor, "old-laptop", "test")
    db.session.commit()

    response = admin.get("/organisers/accounts")
    page = text(response)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<th scope=\"row\">([^<\s]+).*?</tr>", page, re.S)}
    assert set(rows) == {"admin@example.org", "editor@example.org", "new@example.org"}
    assert 'value="admin" selected' in rows["admin@example.org"] and "Enrolled" in rows["admin@example.org"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["admin@example.org"])  # signed in just now
    assert 'value="editor" selected' in rows["editor@example.org"] and "Never" in rows["editor@example.org"]
    assert "1:" in rows["editor@example.org"] and "newsletter-script" in rows["editor@example.org"]
    assert "old-laptop" not in page
    assert 'value="viewer" selected' in rows["new@example.org"] and "Not yet" in rows["new@example.org"]
    assert "Reset two-factor" not in rows["new@example.org"]  # nothing to reset before enrolment
    assert "New set-up link" in rows["new@example.org"] and "New set-up link" not in rows["editor@example.org"]
    stored = organiser(db, "editor@example.org")
    assert stored.password_hash not in page and stored.totp_secret not in page
    token_hashes = fresh(db).scalars(sa.select(ApiToken.token_sha256)).all()
    assert not any(digest in page for digest in token_hashes)


def test_nav_links_to_the_organisers_page_for_admins_and_to_your_account_for_everyone(db, sign_in_as):
    admin_home = text(sign_in_as("admin").get("/organisers/"))
    editor_home = text(sign_in_as("editor").get("/organisers/"))
    assert 'href="/organisers/accounts"' in admin_home and 'href="/organisers/account"' in admin_home
    assert 'href="/organisers/accounts"' not in editor_home and 'href="/organisers/account"' in editor_home


def test_admin_creates_an_organiser_who_sets_their_own_password_through_a_one_time_link(app, db, sign_in_as):
    admin = sign_in_as("admin")
    answer = post_from(
        admin, "/organisers/accounts", "/organisers/accounts", email="New.Volunteer@Example.org", role="viewer"
    )
    page = text(answer)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert "Set-up link for new.volunteer@example.org" in page and "works once, for 72 hours" in page
    path = LINK.search(page).group(1)
    assert "new.volunteer" not in path and "example" not in path
    created = organiser(db, "new.volunteer@example.org")
    assert created.role is Role.VIEWER and created.active and not created.enrolled
    [event] = [e for e in audit_rows(db, "organiser.create") if e.actor == "admin@example.org"]
    assert event.object_id == str(created.id) and event.details == {"role": "viewer"}
    assert [e.actor for e in audit_rows(db, "organiser.enrolment_link_issued")] == ["admin@example.org"]

    # Until the link is used, no password signs in: there is none yet, and there is no first-sign-in enrolment.
    for password in (NEW_PASSWORD, "", "!unset"):
        refused = post_from(
            isolated_client(app), "/organisers/login", "/organisers/login", email=created.email, password=password
        )
        assert refused.status_code == 400, password

    browser, done = set_up_with_link(app, path)
    assert done.status_code == 200 and len(CODE.findall(text(done))) == 10
    assert signed_in(browser)
    assert "Signed in as new.volunteer@example.org, viewer" in text(browser.get("/organisers/"))
    assert organiser(db, "new.volunteer@example.org").enrolled
    assert NEW_PASSWORD not in repr(fresh(db).execute(sa.select(AuditEvent.details)).all())


@pytest.mark.parametrize(
    ("email", "role", "password", "message"),
    [
        ("not an address", "editor", NEW_PASSWORD, "doesn&#39;t look like an email address"),
        ("editor@example.org", "editor", NEW_PASSWORD, "already exists"),
        ("ok@example.org", "owner", NEW_PASSWORD, "Choose a role from the menu"),
        ("ok@example.org", "", NEW_PASSWORD, "Choose a role from the menu"),
    ],
)
def test_bad_new_organisers_get_a_400_and_nothing_is_stored(db, sign_in_as, email, role, password, message):
    admin = sign_in_as("admin")
    make_organiser("editor@example.org", commit=True)
    before = fresh(db).scalar(sa.select(sa.func.count()).select_from(Organiser))
    events = fresh(db).scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    answer = post_from(admin, "/organisers/accounts", "/organisers/accounts", email=email, role=role, password=password)
    page = text(answer)
    assert answer.status_code == 400
    assert message in page and 'id="page-error"' in page
    assert password not in page  # the password is never rendered back
    assert fresh(db).scalar(sa.select(sa.func.count()).select_from(Organiser)) == before
    assert fresh(db).scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == events


def test_a_hostile_address_and_token_name_are_shown_escaped(db, sign_in_as):
    admin = sign_in_as("admin")
    editor = make_organiser("editor@example.org", commit=True)
    api_tokens.create_token(editor, HOSTILE, "test")
    db.session.commit()
    listing = text(admin.get("/organisers/accounts"))
    assert "<script>alert(1)" not in listing and "<img src=x" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    refused = post_from(
        admin, "/organisers/accounts", "/organisers/accounts", email=HOSTILE, role="editor", password=NEW_PASSWORD
    )
    page = text(refused)
    assert refused.status_code == 400
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the address is kept in the form, escaped


# Role, disable, reset 2FA, revoke a token


def test_admin_changes_a_role_and_that_organisers_sessions_end(db, sign_in_as):
    admin = sign_in_as("admin")
    editor_browser = sign_in_as("editor")
    editor_id = organiser(db, "editor@example.org").id
    answer = post_from(admin, "/organisers/accounts", f"/organisers/accounts/{editor_id}/role", role="viewer")
    assert answer.status_code == 302
    assert "editor@example.org is now viewer" in text(admin.get("/organisers/accounts"))
    assert organiser(db, "editor@example.org").role is Role.VIEWER
    assert not signed_in(editor_browser)
    [event] = audit_rows(db, "organiser.role_changed")
    assert event.actor == "admin@example.org" and event.details == {"old": "editor", "new": "viewer"}
    assert signed_in(admin)

    same = post_from(admin, "/organisers/accounts", f"/organisers/accounts/{editor_id}/role", role="viewer")
    assert same.status_code == 302 and "already viewer; nothing was changed" in text(admin.get("/organisers/accounts"))
    bad = post_from(admin, "/organisers/accounts", f"/organisers/accounts/{editor_id}/role", role="superuser")
    assert bad.status_code == 400 and "Choose a role from the menu" in text(bad)
    assert organiser(db, "editor@example.org").role is Role.VIEWER
    assert len(audit_rows(db, "organiser.role_changed")) == 1


def test_disabling_needs_a_confirmation_then_ends_sessions_and_sign_in(app, db, sign_in_as):
    admin = sign_in_as("admin")
    editor_browser = sign_in_as("editor")
    editor_id = organiser(db, "editor@example.org").id
    path = f"/organisers/accounts/{editor_id}/disable"
    confirm = admin.get(path)
    assert confirm.status_code == 200 and "Disable editor@example.org?" in text(confirm)
    unticked = admin.post(path, data=form_fields(text(confirm)))
    assert unticked.status_code == 400 and "Tick the box to confirm" in text(unticked)
    assert organiser(db, "editor@example.org").active and signed_in(editor_browser)

    answer = post_from(admin, path, path, confirm="y")
    assert answer.status_code == 302
    assert "editor@example.org is disabled." in text(admin.get("/organisers/accounts"))
    assert not organiser(db, "editor@example.org").active
    assert not signed_in(editor_browser)
    refused = post_from(
        isolated_client(app),
        "/organisers/login",
        "/organisers/login",
        email="editor@example.org",
        password=ORGANISER_PASSWORD,
    )
    assert refused.status_code == 400
    [event] = audit_rows(db, "organiser.disabled")
    assert event.actor == "admin@example.org" and event.object_id == str(editor_id)
    again = admin.get(path)
    assert again.status_code == 302
    assert "already disabled; nothing was changed" in text(admin.get("/organisers/accounts"))


def test_resetting_two_factor_needs_a_confirmation_then_gives_a_set_up_link(app, db, sign_in_as):
    admin = sign_in_as("admin")
    editor_browser = sign_in_as("editor")
    editor = organiser(db, "editor@example.org")
    assert services.regenerate_recovery_codes(editor, pyotp.TOTP(editor.totp_secret).now()) is not None
    db.session.commit()
    path = f"/organisers/accounts/{editor.id}/reset-2fa"
    unticked = post_from(admin, path, path)
    assert unticked.status_code == 400 and "Tick the box" in text(unticked)
    assert organiser(db, "editor@example.org").enrolled

    answer = post_from(admin, path, path, confirm="y")
    page = text(answer)
    assert answer.status_code == 200 and "Two-factor authentication of editor@example.org is reset." in page
    reset = organiser(db, "editor@example.org")
    assert not reset.enrolled and reset.recovery_codes == []
    assert not signed_in(editor_browser)
    # The old password alone no longer opens the account (there is no first-sign-in enrolment any more).
    step_one = post_from(
        isolated_client(app),
        "/organisers/login",
        "/organisers/login",
        email="editor@example.org",
        password=ORGANISER_PASSWORD,
    )
    assert step_one.status_code == 400
    assert [e.actor for e in audit_rows(db, "organiser.2fa_reset")] == ["admin@example.org"]

    browser, done = set_up_with_link(app, LINK.search(page).group(1))
    assert done.status_code == 200 and signed_in(browser)
    assert organiser(db, "editor@example.org").enrolled


def test_an_admin_who_resets_their_own_two_factor_is_signed_out_and_shown_their_link(app, db, sign_in_as):
    admin = sign_in_as("admin")
    me = organiser(db, "admin@example.org")
    path = f"/organisers/accounts/{me.id}/reset-2fa"
    assert "This is your own account" in text(admin.get(path))
    answer = post_from(admin, path, path, confirm="y")
    page = text(answer)
    assert answer.status_code == 200 and "you are signed out" in page
    assert 'class="organiser-nav"' not in page and not signed_in(admin)
    browser, done = set_up_with_link(app, LINK.search(page).group(1))
    assert done.status_code == 200 and signed_in(browser)


def test_a_new_set_up_link_replaces_the_old_one_for_an_organiser_who_never_used_it(app, db, sign_in_as):
    admin = sign_in_as("admin")
    created = post_from(admin, "/organisers/accounts", "/organisers/accounts", email="slow@example.org", role="editor")
    first = LINK.search(text(created)).group(1)
    target = organiser(db, "slow@example.org")
    path = f"/organisers/accounts/{target.id}/set-up-link"
    confirm = admin.get(path)
    assert confirm.status_code == 200 and "New set-up link for slow@example.org?" in text(confirm)
    answer = post_from(admin, path, path, confirm="y")
    second = LINK.search(text(answer)).group(1)
    assert second != first
    stale = isolated_client(app).get(first)
    assert stale.status_code == 410 and "a newer one replaced it" in text(stale)
    browser, done = set_up_with_link(app, second)
    assert done.status_code == 200 and signed_in(browser)


def test_admin_revokes_an_api_token_by_name(app, db, sign_in_as):
    admin = sign_in_as("admin")
    editor = make_organiser("editor@example.org", commit=True)
    raw = api_tokens.create_token(editor, "newsletter-script", "test")
    kept = api_tokens.create_token(editor, "backup-job", "test")
    db.session.commit()
    api = isolated_client(app)
    assert api.get("/api/v1/lists", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    path = f"/organisers/accounts/{editor.id}/tokens/revoke"

    missing = post_from(admin, "/organisers/accounts", path, name="no-such-token")
    assert missing.status_code == 400 and "has no live API token called" in text(missing)
    answer = post_from(admin, "/organisers/accounts", path, name="newsletter-script")
    assert answer.status_code == 302
    page = text(admin.get("/organisers/accounts"))
    assert "The API token “newsletter-script” of editor@example.org is revoked." in page
    assert api.get("/api/v1/lists", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    assert api.get("/api/v1/lists", headers={"Authorization": f"Bearer {kept}"}).status_code == 200
    [event] = audit_rows(db, "api_token.revoke")
    assert event.actor == "admin@example.org" and event.details["name"] == "newsletter-script"
    assert raw not in repr(event.details)


def test_the_last_active_admin_cannot_demote_or_disable_themselves(db, sign_in_as):
    admin = sign_in_as("admin")
    admin_id = organiser(db, "admin@example.org").id
    retired = make_organiser("retired@example.org", role="admin", commit=True)
    services.disable_organiser(retired, "test")  # a disabled admin does not count
    db.session.commit()

    demoted = post_from(admin, "/organisers/accounts", f"/organisers/accounts/{admin_id}/role", role="editor")
    assert demoted.status_code == 409
    assert "admin@example.org is the last active admin" in text(demoted)
    disable = f"/organisers/accounts/{admin_id}/disable"
    disabled = post_from(admin, disable, disable, confirm="y")
    assert disabled.status_code == 409 and "the last active admin" in text(disabled)
    me = organiser(db, "admin@example.org")
    assert me.role is Role.ADMIN and me.active and signed_in(admin)
    assert audit_rows(db, "organiser.role_changed") == [] and len(audit_rows(db, "organiser.disabled")) == 1

    make_organiser("second@example.org", role="admin", commit=True)
    stepped_down = post_from(admin, "/organisers/accounts", f"/organisers/accounts/{admin_id}/role", role="editor")
    assert stepped_down.status_code == 302 and stepped_down.headers["Location"] == "/organisers/login"
    assert "admin@example.org is now editor" in text(admin.get("/organisers/login"))
    assert not signed_in(admin)
    assert organiser(db, "admin@example.org").role is Role.EDITOR


def test_unknown_organisers_are_404(db, sign_in_as):
    admin = sign_in_as("admin")
    assert admin.get("/organisers/accounts/999999/disable").status_code == 404
    assert (
        post_from(admin, "/organisers/accounts", "/organisers/accounts/999999/role", role="viewer").status_code == 404
    )
    assert admin.get("/organisers/accounts/99999999999/disable").status_code == 404


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_get_403_on_every_admin_page_and_change(db, sign_in_as, role):
    browser = sign_in_as(role)
    target = make_organiser("target@example.org", role="admin", commit=True)
    api_tokens.create_token(target, "script", "test")
    db.session.commit()
    fields = form_fields(text(browser.get("/organisers/account")))
    for path in ("/organisers/accounts", f"/organisers/accounts/{target.id}/disable"):
        assert browser.get(path).status_code == 403, path
    assert browser.get(f"/organisers/accounts/{target.id}/reset-2fa").status_code == 403
    assert browser.get(f"/organisers/accounts/{target.id}/set-up-link").status_code == 403
    posts = {
        "/organisers/accounts": {"email": "sneaky@example.org", "role": "admin", "password": NEW_PASSWORD},
        f"/organisers/accounts/{target.id}/role": {"role": "viewer"},
        f"/organisers/accounts/{target.id}/disable": {"confirm": "y"},
        f"/organisers/accounts/{target.id}/reset-2fa": {"confirm": "y"},
        f"/organisers/accounts/{target.id}/set-up-link": {"confirm": "y"},
        f"/organisers/accounts/{target.id}/tokens/revoke": {"name": "script"},
    }
    for path, data in posts.items():
        assert browser.post(path, data={**fields, **data}).status_code == 403, path
    after = organiser(db, "target@example.org")
    assert after.role is Role.ADMIN and after.active and after.totp_secret is not None
    assert organiser(db, "sneaky@example.org") is None
    assert fresh(db).scalar(sa.select(ApiToken.revoked_at).where(ApiToken.organiser_id == target.id)) is None
    assert signed_in(browser)


def test_posts_without_the_csrf_token_are_refused(db, sign_in_as):
    admin = sign_in_as("admin")
    answer = admin.post(
        "/organisers/accounts", data={"email": "x@example.org", "role": "admin", "password": NEW_PASSWORD}
    )
    assert answer.status_code == 400
    assert organiser(db, "x@example.org") is None
    changed = admin.post(
        "/organisers/account/password",
        data={"current_password": ORGANISER_PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
    )
    assert changed.status_code == 400 and signed_in(admin)


# Your own account


def test_changing_your_password_ends_every_session_and_only_the_new_password_works(app, db, sign_in_as):
    here = sign_in_as("viewer")
    elsewhere = sign_in_as("viewer")
    old_hash = organiser(db, "viewer@example.org").password_hash
    answer = post_from(
        here,
        "/organisers/account",
        "/organisers/account/password",
        current_password=ORGANISER_PASSWORD,
        new_password=NEW_PASSWORD,
        new_password_again=NEW_PASSWORD,
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/organisers/login"
    page = text(here.get(answer.headers["Location"]))
    assert "Your password is changed, all your sessions have ended and your API tokens are revoked" in page
    assert 'action="/organisers/login"' in page
    assert not signed_in(here) and not signed_in(elsewhere)
    assert organiser(db, "viewer@example.org").password_hash != old_hash

    secret = organiser(db, "viewer@example.org").totp_secret
    _, old = sign_in_fresh(app, "viewer@example.org", ORGANISER_PASSWORD, pyotp.TOTP(secret).now())
    assert old.status_code == 400
    browser, new = sign_in_fresh(app, "viewer@example.org", NEW_PASSWORD, pyotp.TOTP(secret).now())
    assert new.status_code == 302 and signed_in(browser)
    [event] = audit_rows(db, "organiser.password_changed")
    assert event.actor == "viewer@example.org" and event.details == {}


def test_a_wrong_current_password_is_a_400_and_counts_as_a_failed_sign_in(app, db, sign_in_as):
    browser = sign_in_as("editor")
    old_hash = organiser(db, "editor@example.org").password_hash
    for _ in range(5):
        wrong = post_from(
            browser,
            "/organisers/account",
            "/organisers/account/password",
            current_password="not my password at all",
            new_password=NEW_PASSWORD,
            new_password_again=NEW_PASSWORD,
        )
        assert wrong.status_code == 400 and "That is not your current password" in text(wrong)
    assert len(audit_rows(db, "login.failed")) == 5
    # Five failures lock the account: now even the right password is refused, here and at sign-in.
    locked = post_from(
        browser,
        "/organisers/account",
        "/organisers/account/password",
        current_password=ORGANISER_PASSWORD,
        new_password=NEW_PASSWORD,
        new_password_again=NEW_PASSWORD,
    )
    assert locked.status_code == 400
    sign_in_page = post_from(
        isolated_client(app),
        "/organisers/login",
        "/organisers/login",
        email="editor@example.org",
        password=ORGANISER_PASSWORD,
    )
    assert sign_in_page.status_code == 400 and "locked for a while" in text(sign_in_page)
    assert organiser(db, "editor@example.org").password_hash == old_hash
    assert signed_in(browser)
    assert audit_rows(db, "organiser.password_changed") == []


@pytest.mark.parametrize(
    ("new", "again", "message"),
    [
        (NEW_PASSWORD, NEW_PASSWORD + "x", "The two new passwords differ"),
        ("too short", "too short", "at least 12 characters"),
        (ORGANISER_PASSWORD, ORGANISER_PASSWORD, "The new password is your current one"),
    ],
)
def test_bad_new_passwords_get_a_400_and_change_nothing(db, sign_in_as, new, again, message):
    browser = sign_in_as("viewer")
    old_hash = organiser(db, "viewer@example.org").password_hash
    answer = post_from(
        browser,
        "/organisers/account",
        "/organisers/account/password",
        current_password=ORGANISER_PASSWORD,
        new_password=new,
        new_password_again=again,
    )
    page = text(answer)
    assert answer.status_code == 400 and message in page
    assert new not in page and ORGANISER_PASSWORD not in page
    assert organiser(db, "viewer@example.org").password_hash == old_hash
    assert signed_in(browser)


def test_regenerated_recovery_codes_work_once_and_the_old_ones_stop_working(app, db, sign_in_as):
    browser = sign_in_as("editor")
    secret = organiser(db, "editor@example.org").totp_secret
    page = text(browser.get("/organisers/account"))
    assert "You have <strong>0</strong> unused recovery codes left." in page

    wrong = post_from(browser, "/organisers/account", "/organisers/account/recovery-codes", code="12345x")
    assert wrong.status_code == 400 and "That code is not valid" in text(wrong)
    assert fresh(db).scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0
    assert len(audit_rows(db, "login.failed")) == 1

    first = post_from(
        browser, "/organisers/account", "/organisers/account/recovery-codes", code=pyotp.TOTP(secret).now()
    )
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    old_codes = CODE.findall(text(first))
    # The next time step: the code just used is refused a second time.
    second = post_from(
        browser,
        "/organisers/account",
        "/organisers/account/recovery-codes",
        code=pyotp.TOTP(secret).at(time.time() + 30),
    )
    new_codes = CODE.findall(text(second))
    assert len(old_codes) == len(new_codes) == 10 and not set(old_codes) & set(new_codes)
    assert "You have <strong>10</strong> unused" in text(browser.get("/organisers/account"))

    _, with_old = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, old_codes[0])
    assert with_old.status_code == 400
    again, with_new = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, new_codes[0])
    assert with_new.status_code == 302 and signed_in(again)
    _, reused = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, new_codes[0])
    assert reused.status_code == 400
    assert "You have <strong>9</strong> unused" in text(again.get("/organisers/account"))

    events = audit_rows(db, "organiser.recovery_codes_regenerated")
    assert [e.actor for e in events] == ["editor@example.org"] * 2
    stored = fresh(db).scalars(sa.select(RecoveryCode.code_hash)).all()
    assert not set(stored) & set(new_codes)


def test_account_pages_and_audit_rows_never_hold_a_password_secret_or_code(app, db, sign_in_as):
    admin = sign_in_as("admin")
    post_from(
        admin,
        "/organisers/accounts",
        "/organisers/accounts",
        email="v@example.org",
        role="viewer",
        password=NEW_PASSWORD,
    )
    secret = organiser(db, "admin@example.org").totp_secret
    totp = pyotp.TOTP(secret).now()
    codes = CODE.findall(text(post_from(admin, "/organisers/account", "/organisers/account/recovery-codes", code=totp)))
    account_page = text(admin.get("/organisers/account"))
    post_from(
        admin,
        "/organisers/account",
        "/organisers/account/password",
        current_password=ORGANISER_PASSWORD,
        new_password=NEW_PASSWORD,
        new_password_again=NEW_PASSWORD,
    )
    assert secret not in account_page and not any(code in account_page for code in codes)
    rows = fresh(db).execute(sa.select(AuditEvent.action, AuditEvent.object_id, AuditEvent.details)).all()
    actions = {row.action for row in rows}
    assert {"organiser.create", "organiser.recovery_codes_regenerated", "organiser.password_changed"} <= actions
    flat = repr(rows)
    for leaked in (NEW_PASSWORD, ORGANISER_PASSWORD, secret, totp, *codes):
        assert leaked not in flat
