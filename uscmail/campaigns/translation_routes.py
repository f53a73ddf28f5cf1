"""Organiser pages for a campaign's languages: which language its own text is in, and its translations, each with a
preview. Readers get the version in the language they chose (their locale), else the campaign's own."""

from flask import abort, g, redirect, render_template, request, url_for

from ..extensions import db
from ..organisers import access
from ..organisers.models import Role
from ..validation import InvalidInput
from . import translations
from .forms import ActionForm, CampaignLanguageForm, TranslationForm
from .languages import LANGUAGE_NAMES, text_direction
from .models import Campaign
from .routes import ID, back_to, bp, campaign_or_404, status_for

LOCALE = "any(" + ", ".join(LANGUAGE_NAMES) + "):locale"


def _languages_page(campaign: Campaign, form: CampaignLanguageForm | None = None, error: str | None = None):
    form = form or CampaignLanguageForm(data={"locale": campaign.locale})
    form.locale.choices = list(LANGUAGE_NAMES.items())
    translated = {found.locale for found in campaign.translations}
    missing = [
        (code, name) for code, name in LANGUAGE_NAMES.items() if code != campaign.locale and code not in translated
    ]
    return render_template(
        "campaigns/languages.html",
        campaign=campaign,
        form=form,
        missing=missing,
        language_names=LANGUAGE_NAMES,
        action_form=ActionForm(),
        error=error,
    ), 400 if error else 200


@bp.get(f"/<{ID}:campaign_id>/languages")
@access.role_required(Role.VIEWER)
def languages(campaign_id: int):
    """The campaign's languages: its own, and its translations."""
    return _languages_page(campaign_or_404(campaign_id))


@bp.post(f"/<{ID}:campaign_id>/languages")
@access.role_required(Role.EDITOR)
def set_language(campaign_id: int):
    """Say which language the campaign's own text is in."""
    campaign = campaign_or_404(campaign_id)
    form = CampaignLanguageForm()
    try:
        translations.set_language(campaign, form.locale.data, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return _languages_page(campaign, form, error=str(exc))[0], status_for(exc)
    db.session.commit()
    return redirect(url_for(".languages", campaign_id=campaign.id))


def _translation_page(campaign: Campaign, locale: str, form: TranslationForm, error: str | None = None):
    saved = translations.translation(campaign, locale)
    return render_template(
        "campaigns/translation.html",
        campaign=campaign,
        locale=locale,
        language=LANGUAGE_NAMES[locale],
        direction=text_direction(locale),
        form=form,
        saved=saved,
        error=error,
    ), 400 if error else 200


@bp.route(f"/<{ID}:campaign_id>/languages/<{LOCALE}>", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def translation(campaign_id: int, locale: str):
    """Write or change the campaign's translation into one language, beside its own text."""
    campaign = campaign_or_404(campaign_id)
    if not campaign.editable:
        return back_to(campaign.id, f"This campaign is {campaign.status.value}; it can no longer be changed.")
    if locale == campaign.locale:
        abort(404)
    if request.method == "GET":
        saved = translations.translation(campaign, locale)
        data = {"subject": saved.subject, "preheader": saved.preheader, "body": saved.body} if saved else {}
        return _translation_page(campaign, locale, TranslationForm(data=data))
    form = TranslationForm()
    fields = translations.TranslationFields(
        subject=form.subject.data or "", body=form.body.data or "", preheader=form.preheader.data or ""
    )
    try:
        translations.save_translation(campaign, locale, fields, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return _translation_page(campaign, locale, form, error=str(exc))[0], status_for(exc)
    db.session.commit()
    return back_to(campaign.id, f"The {LANGUAGE_NAMES[locale]} translation is saved.")


@bp.route(f"/<{ID}:campaign_id>/languages/<{LOCALE}>/remove", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def remove_translation(campaign_id: int, locale: str):
    """Ask, then remove the campaign's translation into one language."""
    campaign = campaign_or_404(campaign_id)
    found = translations.translation(campaign, locale)
    if found is None:
        abort(404)
    form = ActionForm()
    if request.method == "GET":
        return render_template(
            "campaigns/confirm_remove_translation.html", campaign=campaign, language=LANGUAGE_NAMES[locale], form=form
        )
    try:
        translations.remove_translation(campaign, locale, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return back_to(campaign.id, str(exc))
    db.session.commit()
    return back_to(campaign.id, f"The {LANGUAGE_NAMES[locale]} translation is removed.")
