"""One-time set-up links: how an organiser gets a password and an authenticator app, when the account is created
and after their two-factor authentication is reset. Services flush; the caller commits.

The link is signed, bound to this purpose, expires (ENROLMENT_LINK_MAX_AGE) and holds the organiser's id and a nonce,
never an address. Only the nonce's SHA-256 is stored; using the link clears it, and a newer link replaces it, so a link
works once. Opening the link (GET) changes nothing; its button starts an enrolment session that carries the TOTP
secret being enrolled, and the set-up page then takes the new password and a code from the app.
"""

import hmac
import secrets

from flask import current_app

from .. import links
from ..extensions import db
from ..links import external_url
from ..validation import InvalidInput
from . import audit, credentials, services
from .models import Organiser


class LinkUnusable(Exception):
    """A set-up link that cannot be used: malformed, expired, used, replaced, or for a disabled account."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


def link_hours() -> int:
    """How many hours a set-up link works."""
    return current_app.config["ENROLMENT_LINK_MAX_AGE"] // 3600


def issue_link(organiser: Organiser, actor: Organiser | str) -> str:
    """A new set-up link (an absolute URL) for the organiser; earlier links and enrolments in progress stop working."""
    nonce = secrets.token_urlsafe(24)
    organiser.enrolment_nonce_sha256 = credentials.sha256_hex(nonce)
    services.end_all_sessions(organiser)
    audit.record(actor, "organiser.enrolment_link_issued", "organiser", organiser.id)
    return external_url("organisers.enrol_start", token=links.make_enrolment_token(organiser.id, nonce))


def reset_two_factor_with_link(organiser: Organiser, actor: Organiser | str) -> str:
    """Reset the organiser's two-factor authentication (sessions and API tokens end) and issue a set-up link."""
    services.reset_two_factor(organiser, actor)
    return issue_link(organiser, actor)


def organiser_for_link(token: str) -> Organiser:
    """The organiser a set-up link is for; LinkUnusable (with a message for them and a status) if it cannot be used."""
    ask = "Ask an admin for a new set-up link."
    try:
        organiser_id, nonce = links.read_enrolment_token(token)
    except links.TokenExpired:
        raise LinkUnusable(f"This set-up link has expired: links work for {link_hours()} hours. {ask}", 410) from None
    except links.TokenInvalid:
        raise LinkUnusable(f"This set-up link is not valid; check that you copied all of it. {ask}", 400) from None
    organiser = db.session.get(Organiser, organiser_id)
    stored = organiser.enrolment_nonce_sha256 if organiser is not None else None
    if stored is None or not organiser.active or not hmac.compare_digest(stored, credentials.sha256_hex(nonce)):
        raise LinkUnusable(f"This set-up link has already been used, or a newer one replaced it. {ask}", 410)
    return organiser


def complete(organiser: Organiser, pending_secret: str, password: str, password_again: str, code: str) -> list[str]:
    """Set the password and the authenticator app if the code matches; returns new recovery codes (show them once).

    Uses up the link and ends every other session. InvalidInput, with nothing changed, for a password that is not
    acceptable, a code that does not match, or a link that was used or replaced meanwhile.
    """
    if organiser.enrolment_nonce_sha256 is None:
        raise InvalidInput("This set-up link has already been used. Sign in, or ask an admin for a new link.")
    problem = credentials.password_problem(password)
    if problem:
        raise InvalidInput(f"{problem} Nothing was changed.")
    if password != password_again:
        raise InvalidInput("The two passwords differ; nothing was changed.")
    step = credentials.accepted_totp_step(pending_secret, code, None)
    if step is None:
        raise InvalidInput("That code doesn't match. Check the time on your phone and enter the current code.")
    organiser.password_hash = credentials.hash_password(password)
    organiser.totp_secret = pending_secret
    organiser.totp_last_step = step
    organiser.enrolment_nonce_sha256 = None
    codes = services.replace_recovery_codes(organiser)
    services.end_all_sessions(organiser)
    audit.record(organiser, "organiser.2fa_enrolled", "organiser", organiser.id)
    return codes
