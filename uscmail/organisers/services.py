"""Organiser accounts and logins. Services flush; the caller commits."""

import hmac
from datetime import timedelta

import limits
import sqlalchemy as sa
from flask import current_app

from ..extensions import db, limiter
from ..models import utcnow
from ..validation import InvalidInput, normalise_email
from . import api_tokens as api_tokens
from . import audit, credentials
from .models import ApiToken, Organiser, OrganiserSession, RecoveryCode, Role, SessionStage


def account_address(email: str) -> str | None:
    """The normalised form of an organiser's address as typed at sign-in (UTS-46 domain, lower case), or None.

    Everything that names an account by what was typed (lookup, per-account lockout) goes through this one function,
    so `editor@ｅxample.org` and `EDITOR@example.org` are the same account everywhere.
    """
    try:
        return normalise_email(email)
    except InvalidInput:
        return None


def organiser_by_email(email: str) -> Organiser | None:
    """The organiser with this address (normalised), or None."""
    address = account_address(email)
    if address is None:
        return None
    return db.session.scalar(sa.select(Organiser).where(Organiser.email == address))


def create_organiser(email: str, role: Role, actor: Organiser | str) -> Organiser:
    """Create an account with no usable password; it is set through a set-up link (see enrolment.issue_link).

    InvalidInput for a bad or taken address.
    """
    address = normalise_email(email)
    if db.session.scalar(sa.select(Organiser.id).where(Organiser.email == address)) is not None:
        raise InvalidInput("An organiser with that address already exists.")
    organiser = Organiser(email=address, password_hash=credentials.UNSET_PASSWORD_HASH, role=role)
    db.session.add(organiser)
    db.session.flush()
    audit.record(actor, "organiser.create", "organiser", organiser.id, role=role.value)
    return organiser


def _account_key(email: str) -> str:
    # Keyed on the normalised address, as sign-in looks it up; text that is no address cannot name an account,
    # but is still counted (under its own key) so a failure costs the same either way.
    address = account_address(email) or "invalid:" + email.strip().casefold()
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, address.encode(), "sha256").hexdigest()[:32]


def _login_rate() -> limits.RateLimitItem:
    return limits.parse(current_app.config["LOGIN_FAILURES_PER_ACCOUNT"])


def account_locked(email: str) -> bool:
    """True while an account has had too many failed logins recently."""
    prefix = current_app.config["RATELIMIT_KEY_PREFIX"]
    return not limiter.limiter.test(_login_rate(), prefix, "login-account", _account_key(email))


def record_login_failure(email: str) -> None:
    """Count a failed password or code against the account (whether or not it exists) and audit it."""
    prefix = current_app.config["RATELIMIT_KEY_PREFIX"]
    limiter.limiter.hit(_login_rate(), prefix, "login-account", _account_key(email))
    organiser = organiser_by_email(email)
    audit.record(organiser or "anonymous", "login.failed", "organiser", organiser.id if organiser else None)


def authenticate(email: str, password: str) -> Organiser | None:
    """The active, enrolled organiser with this address and password, or None; the same work either way.

    An account that has not been set up through its set-up link cannot be signed into, whatever password is given.
    """
    organiser = organiser_by_email(email)
    usable = organiser is not None and organiser.enrolled and organiser.active
    valid = credentials.check_password(organiser.password_hash if usable else None, password)
    if not usable or not valid:
        return None
    if credentials.password_hasher.check_needs_rehash(organiser.password_hash):
        organiser.password_hash = credentials.hash_password(password)
    return organiser


def start_session(organiser: Organiser, stage: SessionStage, pending_totp_secret: str | None = None) -> str:
    """A new server-side session; returns the raw token for the cookie (only its hash is stored)."""
    token = credentials.new_token()
    db.session.add(
        OrganiserSession(
            token_sha256=credentials.sha256_hex(token),
            organiser_id=organiser.id,
            stage=stage,
            security_version=organiser.security_version,
            pending_totp_secret=pending_totp_secret,
        )
    )
    db.session.flush()
    return token


def load_session(token: str | None) -> OrganiserSession | None:
    """The live session for a cookie token, or None if unknown, expired, stale or the account is disabled."""
    if not token:
        return None
    row = db.session.scalar(
        sa.select(OrganiserSession).where(OrganiserSession.token_sha256 == credentials.sha256_hex(token))
    )
    if row is None:
        return None
    now = utcnow()
    idle = timedelta(seconds=current_app.config["ORGANISER_SESSION_IDLE_SECONDS"])
    lifetime = timedelta(seconds=current_app.config["ORGANISER_SESSION_MAX_SECONDS"])
    organiser = row.organiser
    if (
        not organiser.active
        or row.security_version != organiser.security_version
        or now - row.last_seen_at > idle
        or now - row.created_at > lifetime
    ):
        db.session.delete(row)
        db.session.flush()
        return None
    if now - row.last_seen_at > timedelta(minutes=1):
        row.last_seen_at = now
    return row


def end_session(token: str | None) -> None:
    """Log out: delete the session row."""
    if token:
        db.session.execute(
            sa.delete(OrganiserSession).where(OrganiserSession.token_sha256 == credentials.sha256_hex(token))
        )


def end_all_sessions(organiser: Organiser) -> None:
    """End every session of an organiser (password, 2FA or role changed)."""
    organiser.security_version += 1
    db.session.execute(sa.delete(OrganiserSession).where(OrganiserSession.organiser_id == organiser.id))
    db.session.flush()


def verify_second_factor(organiser: Organiser, code: str) -> bool:
    """Accept a current TOTP code (each once only) or an unused recovery code."""
    if not organiser.enrolled:
        return False
    step = credentials.accepted_totp_step(organiser.totp_secret, code, organiser.totp_last_step)
    if step is not None:
        organiser.totp_last_step = step
        return True
    if not credentials.looks_like_recovery_code(code):
        return False
    for recovery in organiser.recovery_codes:
        if recovery.used_at is None and credentials.recovery_code_matches(recovery.code_hash, code):
            # Consumed with a conditional UPDATE, so two sign-ins racing with one code cannot both pass.
            used = db.session.execute(
                sa.update(RecoveryCode)
                .where(RecoveryCode.id == recovery.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
                .execution_options(synchronize_session="fetch")
            )
            if not used.rowcount:
                return False
            audit.record(organiser, "login.recovery_code_used", "organiser", organiser.id)
            return True
    return False


def reset_two_factor(organiser: Organiser, actor: Organiser | str) -> None:
    """Remove TOTP and recovery codes, ending all sessions and API tokens; the account cannot be signed into until
    it is set up again through a new set-up link (enrolment.issue_link)."""
    organiser.totp_secret = None
    organiser.totp_last_step = None
    organiser.recovery_codes = []
    end_all_sessions(organiser)
    api_tokens.revoke_all_tokens(organiser, actor, reason="2fa_reset")
    audit.record(actor, "organiser.2fa_reset", "organiser", organiser.id)


def change_password(organiser: Organiser, new_password: str, actor: Organiser | str) -> None:
    """Set a new password; every session ends and every API token is revoked."""
    problem = credentials.password_problem(new_password)
    if problem:
        raise InvalidInput(problem)
    organiser.password_hash = credentials.hash_password(new_password)
    end_all_sessions(organiser)
    api_tokens.revoke_all_tokens(organiser, actor, reason="password_changed")
    audit.record(actor, "organiser.password_changed", "organiser", organiser.id)


def change_role(organiser: Organiser, role: Role, actor: Organiser | str) -> None:
    """Change an organiser's role and end their sessions."""
    old = organiser.role
    organiser.role = role
    end_all_sessions(organiser)
    audit.record(actor, "organiser.role_changed", "organiser", organiser.id, old=old.value, new=role.value)


def disable_organiser(organiser: Organiser, actor: Organiser | str) -> None:
    """Disable an account; its sessions and API tokens stop working."""
    organiser.active = False
    end_all_sessions(organiser)
    api_tokens.revoke_all_tokens(organiser, actor, reason="disabled")
    audit.record(actor, "organiser.disabled", "organiser", organiser.id)


def leaves_no_admin(organiser: Organiser, role: Role, active: bool) -> bool:
    """True if giving `organiser` this role and active flag would leave no active admin (locks the admin rows)."""
    if role is Role.ADMIN and active:
        return False
    admins = db.session.scalars(
        sa.select(Organiser.id).where(Organiser.role == Role.ADMIN, Organiser.active.is_(True)).with_for_update()
    ).all()
    return set(admins) <= {organiser.id}


def verify_current_password(organiser: Organiser, password: str) -> bool:
    """True if this is the organiser's password; a wrong one (or a locked account) counts as a failed login."""
    if not account_locked(organiser.email) and credentials.check_password(organiser.password_hash, password):
        return True
    record_login_failure(organiser.email)
    return False


def unused_recovery_code_count(organiser: Organiser) -> int:
    """How many of the organiser's recovery codes are still unused."""
    return sum(1 for recovery in organiser.recovery_codes if recovery.used_at is None)


def regenerate_recovery_codes(organiser: Organiser, code: str) -> list[str] | None:
    """Replace every recovery code if `code` is a current TOTP code; returns the new codes (show once), or None.

    A wrong code (or a locked account) counts as a failed login.
    """
    step = None
    if organiser.enrolled and not account_locked(organiser.email):
        step = credentials.accepted_totp_step(organiser.totp_secret, code, organiser.totp_last_step)
    if step is None:
        record_login_failure(organiser.email)
        return None
    organiser.totp_last_step = step
    codes = replace_recovery_codes(organiser)
    audit.record(organiser, "organiser.recovery_codes_regenerated", "organiser", organiser.id)
    db.session.flush()
    return codes


def replace_recovery_codes(organiser: Organiser) -> list[str]:
    """Give the organiser ten new recovery codes (the old ones stop working); returns them, to be shown once."""
    codes = credentials.new_recovery_codes()
    organiser.recovery_codes = [RecoveryCode(code_hash=credentials.hash_recovery_code(c)) for c in codes]
    return codes


def reencrypt_totp_secrets() -> tuple[int, list[str]]:
    """Re-encrypt every stored TOTP secret (enrolled and pending) with the current TOTP_ENCRYPTION_KEY.

    Returns how many were re-encrypted and the addresses of organisers whose secret no configured key opens (left
    as they are). Once nothing is unreadable, the old key can leave TOTP_ENCRYPTION_KEY_FALLBACKS.
    """
    done, unreadable = 0, []
    for organiser in db.session.scalars(sa.select(Organiser).where(Organiser.totp_secret_encrypted.is_not(None))):
        try:
            organiser.totp_secret_encrypted = credentials.reencrypt_secret(organiser.totp_secret_encrypted)
            done += 1
        except credentials.SecretUnreadable:
            unreadable.append(organiser.email)
    pending = sa.select(OrganiserSession).where(OrganiserSession.pending_totp_secret_encrypted.is_not(None))
    for row in db.session.scalars(pending):
        try:
            row.pending_totp_secret_encrypted = credentials.reencrypt_secret(row.pending_totp_secret_encrypted)
            done += 1
        except credentials.SecretUnreadable:
            db.session.delete(row)  # an unfinished enrolment: it simply starts again
    db.session.flush()
    return done, unreadable


def all_organisers() -> list[Organiser]:
    """Every organiser, active ones first, then by address."""
    return list(db.session.scalars(sa.select(Organiser).order_by(Organiser.active.desc(), Organiser.email)))


def get_organiser(organiser_id: int) -> Organiser | None:
    """The organiser with this id, or None."""
    return db.session.get(Organiser, organiser_id)


def live_token_names() -> dict[int, list[str]]:
    """The names of each organiser's live (unrevoked) API tokens, by organiser id."""
    rows = db.session.execute(
        sa.select(ApiToken.organiser_id, ApiToken.name).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.name)
    )
    names: dict[int, list[str]] = {}
    for organiser_id, name in rows:
        names.setdefault(organiser_id, []).append(name)
    return names
