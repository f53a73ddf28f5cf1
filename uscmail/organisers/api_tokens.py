"""API tokens: issue (shown once, stored as a SHA-256), revoke, and find the live token behind a bearer value.

Services flush; the caller commits.
"""

import unicodedata
from datetime import timedelta

import sqlalchemy as sa

from ..extensions import db
from ..models import utcnow
from ..validation import InvalidInput
from . import audit, credentials
from .models import ApiToken, Organiser

# Lets secret scanners recognise a leaked token; the random part alone is 256 bits.
TOKEN_PREFIX = "uscm_"  # noqa: S105 - a public prefix, not a secret
TOKEN_MAX_LENGTH = 256
NAME_MAX_LENGTH = 100
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX_LENGTH or any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput(f"Give the token a name of up to {NAME_MAX_LENGTH} printable characters.")
    return name


def create_token(organiser: Organiser, name: str, actor: Organiser | str) -> str:
    """Issue a token for an active organiser; returns the raw token, which is never stored or shown again."""
    name = _clean_name(name)
    if not organiser.active:
        raise InvalidInput("That organiser is disabled; enable the account before issuing tokens.")
    clash = sa.select(ApiToken.id).where(
        ApiToken.organiser_id == organiser.id, ApiToken.name == name, ApiToken.revoked_at.is_(None)
    )
    if db.session.scalar(clash) is not None:
        raise InvalidInput(f"{organiser.email} already has a live token called {name!r}; revoke it or pick another.")
    raw = credentials.new_token(TOKEN_PREFIX)
    token = ApiToken(organiser_id=organiser.id, name=name, token_sha256=credentials.sha256_hex(raw))
    db.session.add(token)
    db.session.flush()
    audit.record(actor, "api_token.create", "api_token", token.id, organiser_id=organiser.id, name=name)
    return raw


def revoke_tokens(organiser: Organiser, name: str, actor: Organiser | str) -> int:
    """Revoke the organiser's live tokens with this name; returns how many were revoked."""
    return _revoke(organiser, actor, ApiToken.name == name.strip())


def revoke_all_tokens(organiser: Organiser, actor: Organiser | str, reason: str) -> int:
    """Revoke every live token of the organiser (their password or second factor changed, or they were disabled).

    A token stands for the account as it was secured when it was issued; each revocation is audited with the reason.
    """
    return _revoke(organiser, actor, sa.true(), reason=reason)


def _revoke(organiser: Organiser, actor: Organiser | str, condition, **details) -> int:
    tokens = db.session.scalars(
        sa.select(ApiToken).where(ApiToken.organiser_id == organiser.id, ApiToken.revoked_at.is_(None), condition)
    ).all()
    now = utcnow()
    for token in tokens:
        token.revoked_at = now
        audit.record(
            actor, "api_token.revoke", "api_token", token.id, organiser_id=organiser.id, name=token.name, **details
        )
    db.session.flush()
    return len(tokens)


def token_for_bearer(raw: str) -> ApiToken | None:
    """The live token (not revoked, organiser active) with this raw value, or None.

    The lookup is by SHA-256, so response time does not depend on how much of a guess matches a stored token.
    """
    if not raw or len(raw) > TOKEN_MAX_LENGTH:
        return None
    return db.session.scalar(
        sa.select(ApiToken)
        .join(Organiser, ApiToken.organiser_id == Organiser.id)
        .where(
            ApiToken.token_sha256 == credentials.sha256_hex(raw),
            ApiToken.revoked_at.is_(None),
            Organiser.active.is_(True),
        )
    )


def touch(token: ApiToken) -> bool:
    """Record that the token was used, at most once per minute; True if a row was updated."""
    now = utcnow()
    result = db.session.execute(
        sa.update(ApiToken)
        .where(
            ApiToken.id == token.id,
            sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)
