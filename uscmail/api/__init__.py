"""The organisers' JSON API under /api/v1, authenticated by bearer tokens only (never the session cookie), so it is
exempt from CSRF protection.

The blueprint is made here, with what every resource shares: the rate limit, the error answers and the OpenAPI
document. Each resource module registers its routes on it (subscribers.py: lists and subscribers; campaigns.py;
events.py); the app factory imports them.
"""

from flask import Blueprint, jsonify

from ..extensions import csrf, db, limiter
from ..validation import InvalidInput
from .bearer import ApiError, error_response, rate_limit, rate_limit_key
from .openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
# One budget per token (or client) across every route of the API, not one per endpoint.
limiter.shared_limit(rate_limit, scope="api", key_func=rate_limit_key)(bp)


@bp.errorhandler(ApiError)
def api_error(error: ApiError):
    """Refused requests change nothing."""
    db.session.rollback()
    return error_response(error)


@bp.errorhandler(InvalidInput)
def invalid_input(error: InvalidInput):
    """A value the services refused: 422 with their message."""
    db.session.rollback()
    return error_response(ApiError(422, str(error)))


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of /api/v1 and /api/v1/public; public, like any API documentation."""
    return jsonify(openapi_document())
