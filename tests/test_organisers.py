"""Organiser accounts: CLI creation with a set-up link, sign-in with mandatory TOTP, lockout, sessions, roles, audit
log."""

import re

import pytest
import sqlalchemy as sa

from tests.conftest import BACKEND, form_fields, isolated_client
from tests.organiser_support import PASSWORD, code_for, create, link_path, post_form, secret_of, set_up
from uscmail.organisers.models import AuditEvent, Organiser

CODES = re.compile(r"<code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code>")


def enrol(app, db, email="admin@example.org", role="admin", password=PASSWORD):
    """An organiser created with the CLI who has used their set-up link; returns their recovery codes.

    The TOTP step used is forgotten, so the test can sign in again within the same 30 seconds.
    """
    created = create(app, email, role)
    assert created.exit_code == 0, created.output
    answer = set_up(app, db, link_path(created), email, password)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    db.session.execute(sa.update(Organiser).where(Organiser.email == email).values(totp_last_step=None))
    db.session.commit()
    return CODES.findall(answer.get_data(as_text=True))


def sign_in(app, db, browser, email="admin@example.org", password=PASSWORD):
    """Sign in with password and the current TOTP code."""
    response = post_form(browser, "/organisers/login", email=email, password=password)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith("/organisers/two-factor")
    response = post_form(browser, "/organisers/two-factor", code=code_for(secret_of(db, email)))
    assert response.status_code == 302, response.get_data(as_text=True)


def test_cli_creates_an_organiser_and_prints_a_one_time_set_up_link_never_asking_for_a_password(app, db):
    result = create(app)
    assert result.exit_code == 0, result.output
    assert "created admin admin@example.org" in result.stderr
    assert "works once, for 72 hours" in result.stderr
    assert result.stdout.count("\n") == 1 and link_path(result)  # stdout holds the link alone, for scripts
    organiser = db.session.scalar(sa.select(Organiser))
    assert not organiser.enrolled and not organiser.password_hash.startswith("$argon2")
    assert "admin" not in link_path(result).lower() and "example" not in link_path(result)
    again = create(app)
    assert again.exit_code != 0 and "already exists" in again.output


def test_the_set_up_link_sets_a_password_and_enrols_totp_with_our_own_qr_code(app, db, client):
    path = link_path(create(app))
    assert post_form(client, path).headers["Location"] == "/organisers/enrol"
    page = client.get("/organisers/enrol").get_data(as_text=True)
    assert "<svg" in page and "http" not in page.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org", ""
    )
    secret = secret_of(db, "admin@example.org")
    assert secret in page  # for typing in by hand
    done = post_form(client, "/organisers/enrol", password=PASSWORD, password_again=PASSWORD, code=code_for(secret))
    codes = CODES.findall(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    home = client.get("/organisers/")
    assert home.status_code == 200 and "Signed in as admin@example.org, admin" in home.get_data(as_text=True)
    stored = db.session.scalar(sa.select(Organiser))
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert all(code not in {r.code_hash for r in stored.recovery_codes} for code in codes)


def test_wrong_password_and_unknown_account_get_the_same_answer(app, db):
    enrol(app, db)
    known = post_form(isolated_client(app), "/organisers/login", email="admin@example.org", password="wrong password!!")
    unknown = post_form(
        isolated_client(app), "/organisers/login", email="nobody@example.org", password="wrong password!!"
    )
    assert known.status_code == unknown.status_code == 400
    # The answers differ only in the CSRF token and the address echoed back into the form.
    strip = re.compile(r'name="csrf_token" type="hidden" value="[^"]+"|value="(admin|nobody)@example.org"')
    assert strip.sub("", known.get_data(as_text=True)) == strip.sub("", unknown.get_data(as_text=True))
    actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert actions.count("login.failed") == 2


def test_account_locks_after_five_failures_even_for_the_right_password(app, db):
    enrol(app, db)
    browser = isolated_client(app)
    for _ in range(5):
        assert (
            post_form(browser, "/organisers/login", email="admin@example.org", password="nope nope nope").status_code
            == 400
        )
    locked = post_form(browser, "/organisers/login", email="admin@example.org", password=PASSWORD)
    assert locked.status_code == 400
    assert "locked for a while" in locked.get_data(as_text=True)


@pytest.mark.parametrize(
    ("failing_as", "then_as"),
    [
        ("admin@example.org", "admin@\uff45xample.org"),  # full-width e: the same domain after UTS-46 mapping
        ("admin@\uff45xample.org", "admin@example.org"),
        ("admin@example.org", "ADMIN@EXAMPLE.ORG"),
        ("Admin@Example.ORG", " admin@example.org "),
    ],
)
def test_the_lockout_counts_the_account_however_its_address_is_typed(app, db, failing_as, then_as):
    enrol(app, db)
    # Typed this way, the right password passes the first step while the account is not locked.
    assert post_form(isolated_client(app), "/organisers/login", email=then_as, password=PASSWORD).status_code == 302
    for _ in range(5):
        failed = post_form(isolated_client(app), "/organisers/login", email=failing_as, password="nope nope nope")
        assert failed.status_code == 400
    locked = post_form(isolated_client(app), "/organisers/login", email=then_as, password=PASSWORD)
    assert locked.status_code == 400
    assert "locked for a while" in locked.get_data(as_text=True)
    assert [e.organiser_id is not None for e in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "login.failed"))] == [True] * 6  # fmt: skip


def test_sign_in_attempts_are_limited_per_client_address(app, db):
    browser = isolated_client(app, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    statuses = [
        post_form(browser, "/organisers/login", email=f"x{i}@example.org", password="wrong password!!").status_code
        for i in range(21)
    ]
    assert statuses[:20] == [400] * 20
    assert statuses[20] == 429


def test_a_totp_code_is_accepted_once_only(app, db, client):
    enrol(app, db)
    sign_in(app, db, client)
    secret = secret_of(db, "admin@example.org")
    used = code_for(secret)
    other = isolated_client(app)
    post_form(other, "/organisers/login", email="admin@example.org", password=PASSWORD)
    replay = post_form(other, "/organisers/two-factor", code=used)
    assert replay.status_code == 400
    assert other.get("/organisers/").status_code == 302


def test_recovery_code_signs_in_once(app, db, client):
    codes = enrol(app, db)
    for attempt, expected in ((1, 302), (2, 400)):
        client = isolated_client(app)
        post_form(client, "/organisers/login", email="admin@example.org", password=PASSWORD)
        response = post_form(client, "/organisers/two-factor", code=codes[0].upper().replace("-", " "))
        assert response.status_code == expected, attempt


def test_session_rotates_on_sign_in_and_ends_on_sign_out(app, db, client):
    enrol(app, db)
    client.get("/organisers/login")
    before = client.get_cookie("session").value
    sign_in(app, db, client)
    after = client.get_cookie("session").value
    assert before != after
    stolen = after
    response = post_form(client, "/organisers/", **{})  # GET renders, POST is not allowed
    assert response.status_code == 405
    home = client.get("/organisers/").get_data(as_text=True)
    logout = client.post("/organisers/logout", data=form_fields(home))
    assert logout.status_code == 302
    replay = isolated_client(app)
    replay.set_cookie("session", stolen)
    assert replay.get("/organisers/").status_code == 302


@pytest.mark.parametrize("change", ["password", "2fa", "role"])
def test_every_session_ends_when_password_2fa_or_role_changes(app, db, client, change):
    from uscmail.organisers import services
    from uscmail.organisers.models import Role

    enrol(app, db)
    sign_in(app, db, client)
    assert client.get("/organisers/").status_code == 200
    organiser = db.session.scalar(sa.select(Organiser))
    if change == "password":
        services.change_password(organiser, "another long password", "cli")
    elif change == "2fa":
        services.reset_two_factor(organiser, "cli")
    else:
        services.change_role(organiser, Role.VIEWER, "cli")
    db.session.commit()
    assert client.get("/organisers/").status_code == 302


def test_viewer_cannot_open_the_admin_audit_log(app, db, client):
    enrol(app, db, email="viewer@example.org", role="viewer")
    sign_in(app, db, client, email="viewer@example.org")
    assert client.get("/organisers/").status_code == 200
    assert client.get("/organisers/audit").status_code == 403


def test_audit_log_lists_sign_ins_for_admins_and_never_holds_secrets(app, db, client):
    enrol(app, db)
    post_form(isolated_client(app), "/organisers/login", email="admin@example.org", password="wrong password!!")
    sign_in(app, db, client)
    page = client.get("/organisers/audit").get_data(as_text=True)
    for action in (
        "organiser.create",
        "organiser.enrolment_link_issued",
        "login.failed",
        "organiser.2fa_enrolled",
        "login.succeeded",
    ):
        assert action in page
    filtered = client.get("/organisers/audit?action=login.failed").get_data(as_text=True)
    assert "login.failed" in filtered and "organiser.create</td>" not in filtered
    rows = db.session.execute(sa.select(AuditEvent.details, AuditEvent.action)).all()
    flat = repr(rows)
    assert PASSWORD not in flat and secret_of(db, "admin@example.org") not in flat


def test_audit_events_cannot_be_changed_or_deleted(app, db):
    from uscmail.organisers import audit

    audit.record("cli", "test.event")
    db.session.commit()
    event = db.session.scalar(sa.select(AuditEvent))
    event.action = "tampered"
    with pytest.raises(PermissionError):
        db.session.flush()
    db.session.rollback()
    if BACKEND == "postgres":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.session.execute(sa.text("UPDATE audit_events SET action = 'tampered'"))
        db.session.rollback()


def test_audit_record_refuses_secret_looking_details(app, db):
    from uscmail.organisers import audit

    with pytest.raises(ValueError, match="must not hold"):
        audit.record("cli", "test.event", token="abc")


def test_cli_reset_2fa_gives_a_new_set_up_link_and_disable_ends_sign_in(app, db, client):
    enrol(app, db)
    sign_in(app, db, client)
    runner = app.test_cli_runner()
    reset = runner.invoke(args=["organisers", "reset-2fa", "admin@example.org"])
    assert reset.exit_code == 0 and "works once" in reset.stderr
    assert client.get("/organisers/").status_code == 302
    # The password alone opens nothing now: there is no enrolment at sign-in any more.
    response = post_form(isolated_client(app), "/organisers/login", email="admin@example.org", password=PASSWORD)
    assert response.status_code == 400
    answer = set_up(app, db, link_path(reset), password="a brand new long password")
    assert answer.status_code == 200
    assert runner.invoke(args=["organisers", "disable", "admin@example.org"]).exit_code == 0
    assert (
        post_form(
            isolated_client(app), "/organisers/login", email="admin@example.org", password="a brand new long password"
        ).status_code
        == 400
    )
    missing = runner.invoke(args=["organisers", "disable", "ghost@example.org"])
    assert missing.exit_code != 0 and "no organiser" in missing.output


def test_sign_in_as_fixture_gives_each_role_its_pages(sign_in_as):
    editor = sign_in_as("editor")
    assert "Signed in as editor@example.org, editor" in editor.get("/organisers/").get_data(as_text=True)
    assert editor.get("/organisers/audit").status_code == 403
    assert sign_in_as("admin").get("/organisers/audit").status_code == 200


def test_navigation_offers_each_role_only_what_it_may_open(sign_in_as):
    links = re.compile(r'<nav class="organiser-nav".*?</nav>', re.S)
    pages = {role: links.search(sign_in_as(role).get("/organisers/").get_data(as_text=True)).group(0) for role in
             ("viewer", "editor", "admin")}  # fmt: skip
    assert "Subscribers" in pages["viewer"] and "Import" not in pages["viewer"]
    assert "Import" in pages["editor"] and "Export" not in pages["editor"] and "Audit log" not in pages["editor"]
    assert all(label in pages["admin"] for label in ("Import", "Export", "Audit log", "Organisers"))
