"""The "confirm you are a person" step. A signup form sent back faster than SIGNUP_MIN_FILL_SECONDS is not dropped:
what was typed, already validated, is held in a signed token (its own salt, SIGNUP_CHECK_MAX_AGE) on a page with one
button, and pressing it lets the signup go ahead as if the form had been sent normally.

Each token works once: its nonce is claimed in a store shared by the web processes (Redis, or this process without
it), so a bot replaying the button's POST stores nothing more. Nothing here looks the address up, so the page and
what follows it are the same for everyone."""

import secrets
from dataclasses import dataclass

from flask import Flask, current_app

from ..i18n import supported
from ..links import TokenInvalid, make_signup_check_token, read_signup_check_token
from ..seen import SeenKeys

STORE = "uscmail_signup_checks_used"
# A used nonce is remembered a little longer than its token lives, so it cannot come back when forgotten.
MARGIN_SECONDS = 60


@dataclass(frozen=True)
class HeldSignup:
    """A validated signup waiting for its button to be pressed."""

    email: str
    name: str | None
    slugs: tuple[str, ...]
    wording_version: str
    nonce: str
    locale: str = "en"


def init_app(app: Flask) -> None:
    """Give the app its store of used check tokens."""
    store = SeenKeys(app.config["REDIS_URL"], app.config["RATELIMIT_KEY_PREFIX"], "signup-check-used")
    app.extensions.setdefault(STORE, store)


def hold(email: str, name: str | None, slugs: list[str], wording_version: str, locale: str = "en") -> str:
    """The token for the check page's hidden field: the signup as validated, its language, and a fresh nonce."""
    return make_signup_check_token(
        {
            "email": email,
            "name": name,
            "lists": slugs,
            "version": wording_version,
            "locale": locale,
            "nonce": secrets.token_hex(16),
        }
    )


def read(token: str) -> HeldSignup:
    """The signup held in a token, or TokenExpired / TokenInvalid (also for a well-signed token of the wrong shape)."""
    value = read_signup_check_token(token)
    email, name, slugs = value.get("email"), value.get("name"), value.get("lists")
    version, nonce, locale = value.get("version"), value.get("nonce"), value.get("locale", "en")
    if not (
        isinstance(email, str)
        and (name is None or isinstance(name, str))
        and isinstance(slugs, list)
        and all(isinstance(slug, str) for slug in slugs)
        and isinstance(version, str)
        and isinstance(nonce, str)
        and nonce
        and isinstance(locale, str)
        and supported(locale) == locale
    ):
        raise TokenInvalid("unexpected payload")
    return HeldSignup(email, name, tuple(slugs), version, nonce, locale)


def claim(held: HeldSignup) -> bool:
    """True the first time a token's signup is claimed, False for every repeat (seen.Unavailable if Redis fails)."""
    seconds = current_app.config["SIGNUP_CHECK_MAX_AGE"] + MARGIN_SECONDS
    return current_app.extensions[STORE].claim(held.nonce, seconds)


def release(held: HeldSignup) -> None:
    """Let the token be used again: its signup could not be stored after all."""
    current_app.extensions[STORE].release(held.nonce)
