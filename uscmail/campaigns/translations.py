"""Writing a campaign in several languages: the language of its own body, and a translation per other language.
Called from the pages and the API; they flush, the caller commits."""

from dataclasses import dataclass

from ..extensions import db
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput, single_line_text
from . import render
from .languages import LANGUAGE_NAMES
from .models import Campaign, CampaignTranslation
from .services import PREHEADER_MAX_LENGTH, SUBJECT_MAX_LENGTH, TransitionRefused, clean_body


@dataclass
class TranslationFields:
    """What a translator writes: the subject, preheader and body in one language."""

    subject: str
    body: str
    preheader: str = ""


def known_locale(locale: str | None) -> str:
    """The locale if campaigns may be written in it; else InvalidInput naming the ones that may."""
    if locale not in LANGUAGE_NAMES:
        names = ", ".join(f"{name} ({code})" for code, name in LANGUAGE_NAMES.items())
        raise InvalidInput(f"Campaigns can be written in {names}.")
    return locale


def _editable(campaign: Campaign) -> None:
    if not campaign.editable:
        raise TransitionRefused(f"This campaign is {campaign.status.value}; it can no longer be changed.")


def translation(campaign: Campaign, locale: str) -> CampaignTranslation | None:
    """The campaign's translation into `locale`, if it has one."""
    return next((found for found in campaign.translations if found.locale == locale), None)


def set_language(campaign: Campaign, locale: str, actor: Organiser | str) -> None:
    """Say which language the campaign's own subject and body are in (not one it also has a translation into)."""
    _editable(campaign)
    locale = known_locale(locale)
    if translation(campaign, locale) is not None:
        raise InvalidInput(
            f"This campaign already has a {LANGUAGE_NAMES[locale]} translation; remove it first, or choose another "
            "language for the campaign's own text."
        )
    if campaign.locale != locale:
        campaign.locale = locale
        db.session.flush()
        audit.record(actor, "campaign.language", "campaign", campaign.id, locale=locale)


def save_translation(
    campaign: Campaign, locale: str, fields: TranslationFields, actor: Organiser | str
) -> CampaignTranslation:
    """Add or change the campaign's translation into `locale`, checked as the campaign's own text is."""
    _editable(campaign)
    locale = known_locale(locale)
    if locale == campaign.locale:
        raise InvalidInput(f"The campaign's own text is already in {LANGUAGE_NAMES[locale]}.")
    subject = single_line_text(
        fields.subject, "subject", SUBJECT_MAX_LENGTH, required=True, missing="Please give the translation a subject."
    )
    preheader = single_line_text(fields.preheader, "preheader", PREHEADER_MAX_LENGTH, required=False)
    body = clean_body(fields.body, campaign.body_format)
    render.check_subject(subject)
    found = translation(campaign, locale)
    if found is None:
        found = CampaignTranslation(campaign=campaign, locale=locale)
        db.session.add(found)
    found.subject, found.preheader, found.body = subject, preheader, body
    db.session.flush()
    audit.record(actor, "campaign.translation.save", "campaign", campaign.id, locale=locale)
    return found


def remove_translation(campaign: Campaign, locale: str, actor: Organiser | str) -> None:
    """Remove the campaign's translation into `locale` (its readers then get the campaign's own text)."""
    _editable(campaign)
    found = translation(campaign, known_locale(locale))
    if found is None:
        raise InvalidInput(f"This campaign has no {LANGUAGE_NAMES[locale]} translation.")
    campaign.translations.remove(found)
    db.session.flush()
    audit.record(actor, "campaign.translation.remove", "campaign", campaign.id, locale=locale)
