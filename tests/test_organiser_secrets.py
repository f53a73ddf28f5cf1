"""Organisers' secrets at rest: TOTP secrets encrypted with TOTP_ENCRYPTION_KEY (rotated through a fallback list),
recovery codes as salted Argon2id; a wrong key is a clear 503, never a 500; the migration converts old rows."""

import re

import pyotp
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from tests.factories import ORGANISER_PASSWORD
from tests.organiser_support import sign_in_fresh
from tests.pages import fresh, post_from, text
from uscmail.organisers import credentials
from uscmail.organisers.models import ApiToken, AuditEvent, Organiser, OrganiserSession

CODE = re.compile(r"<code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code>")


def raw_rows(db, table: str) -> str:
    """Every column of every row of a table, read with SQL past the ORM, as one string."""
    return repr(fresh(db).execute(sa.text(f"SELECT * FROM {table}")).all())  # noqa: S608 - a fixed table name


def current_code(db, secret: str) -> str:
    """The authenticator's current code, after forgetting the last step used (each code is accepted once)."""
    fresh(db).execute(sa.update(Organiser).values(totp_last_step=None))
    db.session.commit()
    return pyotp.TOTP(secret).now()


def editor_with_codes(db, sign_in_as) -> tuple[str, list[str]]:
    """An enrolled editor with fresh recovery codes: (TOTP secret, codes)."""
    browser = sign_in_as("editor")
    secret = fresh(db).scalar(sa.select(Organiser).where(Organiser.email == "editor@example.org")).totp_secret
    page = post_from(
        browser, "/organisers/account", "/organisers/account/recovery-codes", code=pyotp.TOTP(secret).now()
    )
    codes = CODE.findall(text(page))
    assert len(codes) == 10
    return secret, codes


def test_the_database_holds_neither_the_totp_secret_nor_the_recovery_codes(app, db, sign_in_as):
    secret, codes = editor_with_codes(db, sign_in_as)
    organisers, recovery = raw_rows(db, "organisers"), raw_rows(db, "recovery_codes")
    assert secret not in organisers and secret.lower() not in organisers.lower()
    for code in codes:
        assert code not in recovery and credentials.sha256_hex(code) not in recovery
    hashes = fresh(db).scalars(sa.text("SELECT code_hash FROM recovery_codes")).all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert len({h.split("$")[4] for h in hashes}) == 10  # a salt of its own for each code


def test_a_recovery_code_works_once_even_when_typed_differently(app, db, sign_in_as):
    secret, codes = editor_with_codes(db, sign_in_as)
    _, first = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, " " + codes[3].upper().replace("-", " "))
    assert first.status_code == 302
    _, again = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, codes[3])
    assert again.status_code == 400
    actions = fresh(db).scalars(sa.select(AuditEvent.action).where(AuditEvent.action.startswith("login."))).all()
    assert actions.count("login.recovery_code_used") == 1


def test_a_key_in_the_fallback_list_still_decrypts_and_rotation_moves_every_secret_to_the_new_key(
    app, db, sign_in_as, monkeypatch
):
    secret, _ = editor_with_codes(db, sign_in_as)
    old_key = app.config["TOTP_ENCRYPTION_KEY"]
    new_key = Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEY", new_key)
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEY_FALLBACKS", [old_key])
    _, answer = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, current_code(db, secret))
    assert answer.status_code == 302

    result = app.test_cli_runner().invoke(args=["organisers", "rotate-totp-key"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 TOTP secret" in result.output
    stored = fresh(db).scalar(sa.text("SELECT totp_secret_encrypted FROM organisers"))
    assert Fernet(new_key.encode()).decrypt(stored.encode()).decode() == secret
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEY_FALLBACKS", [])  # the old key can go now
    _, answer = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, current_code(db, secret))
    assert answer.status_code == 302


def test_a_wrong_key_is_a_clear_503_that_changes_nothing_and_rotation_names_who_is_affected(
    app, db, sign_in_as, monkeypatch
):
    secret, _ = editor_with_codes(db, sign_in_as)
    before = fresh(db).scalar(sa.text("SELECT totp_secret_encrypted FROM organisers"))
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEY", Fernet.generate_key().decode())
    browser, answer = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, current_code(db, secret))
    page = text(answer)
    assert answer.status_code == 503
    assert "cannot read the stored authenticator keys" in page and "TOTP_ENCRYPTION_KEY" in page
    assert secret not in page and "Traceback" not in page
    assert browser.get("/organisers/").status_code == 302  # not signed in
    failures = fresh(db).scalar(sa.select(sa.func.count()).where(AuditEvent.action == "login.failed"))
    assert failures == 0  # the organiser did nothing wrong: no step towards a lockout

    result = app.test_cli_runner().invoke(args=["organisers", "rotate-totp-key"])
    assert result.exit_code != 0
    assert "no configured key decrypts the TOTP secret of editor@example.org" in result.output
    assert fresh(db).scalar(sa.text("SELECT totp_secret_encrypted FROM organisers")) == before

    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEY", "not a fernet key")
    _, malformed = sign_in_fresh(app, "editor@example.org", ORGANISER_PASSWORD, current_code(db, secret))
    assert malformed.status_code == 503 and "TOTP_ENCRYPTION_KEY" in text(malformed)


@pytest.fixture
def schema_before_secrets(app, db):
    """The database migrated back to just before this change; migrated forward again afterwards."""
    from flask_migrate import downgrade, upgrade

    db.session.remove()
    downgrade(revision="0008_organiser_secrets-1")
    yield
    db.session.remove()
    upgrade()


def test_the_migration_encrypts_old_secrets_and_keeps_old_recovery_codes_working(app, db, schema_before_secrets):
    from flask_migrate import upgrade

    secret, pending = pyotp.random_base32(), pyotp.random_base32()
    old_codes = credentials.new_recovery_codes()
    with db.engine.begin() as connection:
        organiser_id = connection.execute(
            sa.text(
                "INSERT INTO organisers (email, password_hash, role, active, totp_secret, security_version, created_at)"
                " VALUES ('old@example.org', :hash, 'editor', true, :secret, 1, CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"hash": credentials.hash_password(ORGANISER_PASSWORD), "secret": secret},
        ).scalar_one()
        for code in old_codes:
            connection.execute(
                sa.text("INSERT INTO recovery_codes (organiser_id, code_sha256) VALUES (:id, :digest)"),
                {"id": organiser_id, "digest": credentials.sha256_hex(code)},
            )
        # A sign-in half-way through enrolment, an API token and an audit entry: all must survive untouched.
        connection.execute(
            sa.text(
                "INSERT INTO organiser_sessions (token_sha256, organiser_id, stage, security_version,"
                " pending_totp_secret, created_at, last_seen_at) VALUES ('s', :id, 'password', 1, :pending,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": organiser_id, "pending": pending},
        )
        connection.execute(
            sa.text(
                "INSERT INTO api_tokens (organiser_id, name, token_sha256, created_at)"
                " VALUES (:id, 'script', 't', CURRENT_TIMESTAMP)"
            ),
            {"id": organiser_id},
        )
        connection.execute(
            sa.text(
                "INSERT INTO audit_events (created_at, organiser_id, actor, action, details)"
                " VALUES (CURRENT_TIMESTAMP, :id, 'old@example.org', 'login.succeeded', '{}')"
            ),
            {"id": organiser_id},
        )
    upgrade(revision="0008_organiser_secrets")

    assert secret not in raw_rows(db, "organisers")
    assert pending not in raw_rows(db, "organiser_sessions")
    assert fresh(db).scalar(sa.select(OrganiserSession)).pending_totp_secret == pending
    assert fresh(db).scalar(sa.select(ApiToken.organiser_id)) == organiser_id
    assert fresh(db).scalar(sa.select(AuditEvent.organiser_id)) == organiser_id
    assert not any(credentials.sha256_hex(code) in raw_rows(db, "recovery_codes") for code in old_codes)
    organiser = fresh(db).get(Organiser, organiser_id)
    assert organiser.totp_secret == secret
    _, answer = sign_in_fresh(app, "old@example.org", ORGANISER_PASSWORD, old_codes[0])
    assert answer.status_code == 302, text(answer)
    _, again = sign_in_fresh(app, "old@example.org", ORGANISER_PASSWORD, old_codes[0])
    assert again.status_code == 400
