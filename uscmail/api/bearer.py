"""Bearer-token authentication and role checks for the organisers' API. Cookies are never looked at."""

from collections.abc import Callable
from functools import wraps

from flask import current_app, g, jsonify, request

from ..extensions import client_key, db
from ..organisers import api_tokens, credentials
from ..organisers.models import Organiser, Role

REALM = 'Bearer realm="uscmail"'


class ApiError(Exception):
    """An answer of `{"error": message}` with an HTTP status, and any extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(error: ApiError):
    """The JSON answer for an ApiError."""
    return jsonify({"error": error.message}), error.status, error.headers


def bearer_token() -> str | None:
    """The token from `Authorization: Bearer <token>`, or None."""
    scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def rate_limit_key() -> str:
    """Requests are counted per token (by its hash), or per client when no token is sent."""
    raw = bearer_token()
    return "token:" + credentials.sha256_hex(raw)[:32] if raw else "client:" + client_key()


def rate_limit() -> str:
    """The API rate limit, read from config at request time."""
    return current_app.config["API_RATE_LIMIT"]


def authenticate() -> Organiser:
    """The organiser behind this request's bearer token; ApiError 401 if there is no live token."""
    raw = bearer_token()
    if raw is None:
        raise ApiError(401, "Send an API token: Authorization: Bearer <token>.", {"WWW-Authenticate": REALM})
    token = api_tokens.token_for_bearer(raw)
    if token is None:
        raise ApiError(
            401,
            "That API token is not valid: it is unknown, revoked, or its organiser is disabled.",
            {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    organiser = token.organiser
    if api_tokens.touch(token):
        # Committed on its own so the handler starts with a clean transaction and a refused request still counts.
        db.session.commit()
    return organiser


def token_required(role: Role) -> Callable:
    """Decorator: the route needs a bearer token whose organiser's role includes `role` (401, then 403)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            organiser = authenticate()
            if not organiser.role.includes(role):
                raise ApiError(
                    403,
                    f"This needs the {role.value} role; the token's organiser is {organiser.role.value}.",
                    {"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'},
                )
            g.api_organiser = organiser
            return view(*args, **kwargs)

        return wrapped

    return decorator


def current_api_organiser() -> Organiser:
    """The organiser authenticated by token_required for this request."""
    return g.api_organiser
