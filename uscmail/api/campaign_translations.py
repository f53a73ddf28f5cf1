"""/api/v1/campaigns/{id}/translations/{locale}: a campaign's subject, preheader and body in another language (editor).
Readers of that language get it; the others get the campaign's own text."""

from flask import request

from ..campaigns import translations
from ..campaigns.languages import LANGUAGE_NAMES
from ..extensions import db
from ..organisers.models import Role
from . import bp, inputs
from .bearer import ApiError, current_api_organiser, token_required
from .campaigns import COMPOSE_MAX_BYTES, campaign_json, campaign_or_404

FIELDS = {"subject", "preheader", "body"}


def _locale(locale: str) -> str:
    if locale not in LANGUAGE_NAMES:
        raise inputs.bad_request(f"The language must be one of: {', '.join(LANGUAGE_NAMES)}.")
    return locale


@bp.put("/campaigns/<int:campaign_id>/translations/<locale>")
@token_required(Role.EDITOR)
def put_translation(campaign_id: int, locale: str):
    """Add or replace the campaign's translation into one language."""
    request.max_content_length = COMPOSE_MAX_BYTES
    campaign = campaign_or_404(campaign_id)
    locale = _locale(locale)
    payload = inputs.json_body(allowed=FIELDS, required={"subject", "body"})
    fields = translations.TranslationFields(
        subject=inputs.string_field(payload, "subject"),
        body=inputs.string_field(payload, "body"),
        preheader=inputs.string_field(payload, "preheader") if "preheader" in payload else "",
    )
    translations.save_translation(campaign, locale, fields, current_api_organiser())
    db.session.commit()
    return campaign_json(campaign)


@bp.delete("/campaigns/<int:campaign_id>/translations/<locale>")
@token_required(Role.EDITOR)
def delete_translation(campaign_id: int, locale: str):
    """Remove the campaign's translation into one language; 404 if it has none."""
    campaign = campaign_or_404(campaign_id)
    locale = _locale(locale)
    if translations.translation(campaign, locale) is None:
        raise ApiError(404, f"This campaign has no {LANGUAGE_NAMES[locale]} translation.")
    translations.remove_translation(campaign, locale, current_api_organiser())
    db.session.commit()
    return "", 204
