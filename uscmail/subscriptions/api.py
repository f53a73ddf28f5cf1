"""The public JSON signup endpoint for the campaign's own website: same rules, limits and answers as the form."""

from flask import Blueprint, jsonify, request

from ..extensions import csrf, db
from ..i18n import DEFAULT_LOCALE, LANGUAGES, supported
from ..models import ConsentMethod
from . import services
from .consent import current_version, current_wording
from .routes import signup_limit
from .signups import accept_signup

bp = Blueprint("public_api", __name__, url_prefix="/api/v1/public")
csrf.exempt(bp)

ACCEPTED = {
    "status": "check_inbox",
    "message": "Thank you. If the address can receive mail, a message is on its way: open it to confirm.",
}


def error(message: str, status: int):
    """A JSON error answer."""
    return jsonify({"error": message}), status


LOCALE_PROBLEM = "'locale' must be one of: " + ", ".join(LANGUAGES) + "."


@bp.get("/lists")
def lists():
    """Public lists and the consent wording the embedding site must show verbatim (`?locale=ug` for another
    language's; English by default)."""
    locale = supported(request.args.get("locale", DEFAULT_LOCALE))
    if locale is None:
        return error(LOCALE_PROBLEM, 400)
    wording = current_wording(locale)
    db.session.commit()
    return {
        "locale": locale,
        "lists": [{"slug": m.slug, "name": m.name, "description": m.description} for m in services.public_lists()],
        "consent": {
            "version": wording.version,
            "text": wording.text,
            "sha256": wording.sha256,
        },
    }


@bp.post("/subscribe")
@signup_limit
def subscribe():
    """JSON body: email, optional name, lists (slugs), consent_version, consent (true), optional locale (the language
    the supporter read the wording in and will get mail in). 202 for every valid request."""
    if not request.is_json:
        return error("Send a JSON body with Content-Type: application/json.", 415)
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return error("The body must be a JSON object.", 400)
    email, name, slugs = payload.get("email"), payload.get("name"), payload.get("lists")
    if not isinstance(email, str):
        return error("'email' must be a string.", 400)
    if name is not None and not isinstance(name, str):
        return error("'name' must be a string.", 400)
    if not isinstance(slugs, list) or not all(isinstance(slug, str) for slug in slugs):
        return error("'lists' must be a list of list slugs.", 400)
    if payload.get("consent") is not True:
        return error(
            "'consent' must be true: the supporter must have agreed to the consent wording.",
            400,
        )
    locale = supported(payload.get("locale", DEFAULT_LOCALE))
    if locale is None:
        return error(LOCALE_PROBLEM, 400)
    version = payload.get("consent_version", current_version(locale))
    if payload.get("website"):
        return jsonify(ACCEPTED), 202
    try:
        accept_signup(
            email,
            name,
            slugs,
            ConsentMethod.API,
            version if isinstance(version, str) else "",
            locale=locale,
        )
    except services.InvalidInput as exc:
        return error(str(exc), 400)
    return jsonify(ACCEPTED), 202
