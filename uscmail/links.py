"""Links that leave the site: absolute URLs on the public site (BASE_URL), and the signed tokens in them (one salt
per purpose, no address inside, old keys accepted).

Confirmation tokens expire (CONFIRM_TOKEN_MAX_AGE) and carry a nonce that is cleared once used; so do organisers'
set-up links (ENROLMENT_LINK_MAX_AGE). Unsubscribe and preference tokens never expire, so a link in a years-old mail
still works.
"""

import hmac
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from itsdangerous import (
    BadData,
    SignatureExpired,
    Signer,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)

CONFIRM = "uscmail.confirm"
UNSUBSCRIBE = "uscmail.unsubscribe"
PREFERENCES = "uscmail.preferences"
FORM_STARTED = "uscmail.form-started"
SIGNUP_CHECK = "uscmail.signup-check"
ENROLMENT = "uscmail.organiser-enrolment"


class TokenInvalid(Exception):
    """A token that is tampered, signed with an unknown key, or of the wrong shape."""


class TokenExpired(TokenInvalid):
    """A well-signed token that is older than its purpose allows."""


def _keys() -> list[str]:
    # itsdangerous signs with the last key and verifies with all of them.
    config = current_app.config
    return [*reversed(config.get("SECRET_KEY_FALLBACKS") or []), config["SECRET_KEY"]]


def _timed(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_keys(), salt=salt)


def _untimed(salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(_keys(), salt=salt)


def _load(serializer, token: str, **kwargs) -> Any:
    try:
        return serializer.loads(token, **kwargs)
    except SignatureExpired as exc:
        raise TokenExpired(str(exc)) from None
    except (BadData, UnicodeError, ValueError, TypeError) as exc:
        raise TokenInvalid(str(exc)) from None


def _pair_of_strings(value: Any) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise TokenInvalid("unexpected payload")
    return value[0], value[1]


def make_confirm_token(public_id: str, nonce: str) -> str:
    """Token for a confirmation link: the subscriber's public id and the current confirmation nonce."""
    return _timed(CONFIRM).dumps([public_id, nonce])


def read_confirm_token(token: str) -> tuple[str, str]:
    """Return (public_id, nonce) from a confirmation token, or raise TokenExpired / TokenInvalid."""
    max_age = current_app.config["CONFIRM_TOKEN_MAX_AGE"]
    return _pair_of_strings(_load(_timed(CONFIRM), token, max_age=max_age))


def make_unsubscribe_token(public_id: str, list_ids: list[int], campaign_id: int | None = None) -> str:
    """Never-expiring token that unsubscribes one subscriber from the given lists. A campaign's mail also names the
    campaign, so the campaign's unsubscribes can be counted (a number on the campaign, never who left)."""
    payload = [public_id, sorted(list_ids)]
    if campaign_id is not None:
        payload.append(campaign_id)
    return _untimed(UNSUBSCRIBE).dumps(payload)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class UnsubscribeLink:
    """What an unsubscribe token says: whose link it is, which lists it leaves, and the campaign it came in (None
    for links made before campaigns were named, and for mail that is not a campaign's)."""

    public_id: str
    list_ids: list[int]
    campaign_id: int | None = None


def read_unsubscribe_link(token: str) -> UnsubscribeLink:
    """The contents of an unsubscribe token, with or without a campaign id, or raise TokenInvalid."""
    value = _load(_untimed(UNSUBSCRIBE), token)
    if not (
        isinstance(value, list)
        and len(value) in (2, 3)
        and isinstance(value[0], str)
        and isinstance(value[1], list)
        and all(_is_id(i) for i in value[1])
        and (len(value) == 2 or _is_id(value[2]))
    ):
        raise TokenInvalid("unexpected payload")
    return UnsubscribeLink(value[0], value[1], value[2] if len(value) == 3 else None)


def read_unsubscribe_token(token: str) -> tuple[str, list[int]]:
    """Return (public_id, list_ids) from an unsubscribe token, or raise TokenInvalid."""
    link = read_unsubscribe_link(token)
    return link.public_id, link.list_ids


def make_preferences_token(public_id: str) -> str:
    """Never-expiring token that opens one subscriber's preference centre."""
    return _untimed(PREFERENCES).dumps(public_id)


def read_preferences_token(token: str) -> str:
    """Return the public id from a preference-centre token, or raise TokenInvalid."""
    value = _load(_untimed(PREFERENCES), token)
    if not isinstance(value, str):
        raise TokenInvalid("unexpected payload")
    return value


def make_enrolment_token(organiser_id: int, nonce: str) -> str:
    """Token for an organiser's one-time set-up link: their id and the link's nonce (no address)."""
    return _timed(ENROLMENT).dumps([organiser_id, nonce])


def read_enrolment_token(token: str) -> tuple[int, str]:
    """Return (organiser_id, nonce) from a set-up link token, or raise TokenExpired / TokenInvalid."""
    value = _load(_timed(ENROLMENT), token, max_age=current_app.config["ENROLMENT_LINK_MAX_AGE"])
    if not (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], str)
    ):
        raise TokenInvalid("unexpected payload")
    return value[0], value[1]


def make_form_started_token() -> str:
    """A signed timestamp put in the signup form, to measure how fast it was filled in."""
    return _timed(FORM_STARTED).dumps(0)


def seconds_since_form_started(token: str) -> float | None:
    """Seconds since the form was served, or None if the token is missing or forged."""
    try:
        _, signed_at = _timed(FORM_STARTED).loads(token, return_timestamp=True)
    except (BadData, UnicodeError, ValueError, TypeError):
        return None
    return (datetime.now(UTC) - signed_at).total_seconds()


def make_signup_check_token(signup: dict) -> str:
    """A signed, timestamped copy of a signup held back because its form came back too fast; it goes into a hidden
    field of the "confirm you are a person" page, never into a URL or a mail."""
    return _timed(SIGNUP_CHECK).dumps(signup)


def read_signup_check_token(token: str) -> dict:
    """The signup held in a check token younger than SIGNUP_CHECK_MAX_AGE, or raise TokenExpired / TokenInvalid."""
    value = _load(_timed(SIGNUP_CHECK), token, max_age=current_app.config["SIGNUP_CHECK_MAX_AGE"])
    if not isinstance(value, dict):
        raise TokenInvalid("unexpected payload")
    return value


def external_url(endpoint: str, **values) -> str:
    """An absolute URL on the public site (BASE_URL), for links in mail; works outside a request."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["BASE_URL"] + path


class TokenSigner:
    """Signs the same never-expiring tokens as the functions above, without itsdangerous' per-call key derivation
    and compression attempt (≈25 µs a token → ≈2 µs). The campaign builder checks its tokens against theirs before
    using it."""

    def __init__(self, salt: str):
        signer = Signer(current_app.config["SECRET_KEY"], salt=salt)
        self.mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)

    def sign(self, payload: str) -> str:
        """`payload` (compact JSON) signed: base64url(payload) "." base64url(HMAC)."""
        encoded = urlsafe_b64encode(payload.encode()).rstrip(b"=")
        mac = self.mac.copy()
        mac.update(encoded)
        return (encoded + b"." + urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode("ascii")
