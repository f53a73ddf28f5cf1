"""Organiser pages for an event's reminder templates in other languages, each beside the event's own, with a preview
of the next reminder in that language."""

from flask import abort, g, render_template, request

from ..campaigns.forms import ActionForm
from ..campaigns.languages import LANGUAGE_NAMES, text_direction
from ..extensions import db
from ..organisers import access
from ..organisers.models import Role
from ..validation import InvalidInput
from . import translations
from .forms import EventTranslationForm
from .models import Event
from .routes import ID, back_to, bp, event_or_404

LOCALE = "any(" + ", ".join(code for code in LANGUAGE_NAMES if code != translations.EVENT_LOCALE) + "):locale"


def _translation_page(event: Event, locale: str, form: EventTranslationForm, error: str | None = None):
    return render_template(
        "reminders/translation.html",
        event=event,
        locale=locale,
        language=LANGUAGE_NAMES[locale],
        direction=text_direction(locale),
        form=form,
        saved=translations.translation(event, locale),
        error=error,
    ), 400 if error else 200


@bp.route(f"/<{ID}:event_id>/languages/<{LOCALE}>", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def translation(event_id: int, locale: str):
    """Write or change the event's reminder templates in one language."""
    event = event_or_404(event_id)
    if request.method == "GET":
        subject, body = translations.starting_templates(event, locale)
        return _translation_page(event, locale, EventTranslationForm(data={"subject": subject, "body": body}))
    form = EventTranslationForm()
    try:
        translations.save_translation(event, locale, form.subject.data or "", form.body.data or "", g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return _translation_page(event, locale, form, error=str(exc))
    db.session.commit()
    return back_to(event.id, f"The {LANGUAGE_NAMES[locale]} reminder templates are saved.")


@bp.route(f"/<{ID}:event_id>/languages/<{LOCALE}>/remove", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def remove_translation(event_id: int, locale: str):
    """Ask, then remove the event's reminder templates in one language."""
    event = event_or_404(event_id)
    if translations.translation(event, locale) is None:
        abort(404)
    form = ActionForm()
    if request.method == "GET":
        return render_template(
            "reminders/confirm_remove_translation.html", event=event, language=LANGUAGE_NAMES[locale], form=form
        )
    translations.remove_translation(event, locale, g.organiser)
    db.session.commit()
    return back_to(event.id, f"The {LANGUAGE_NAMES[locale]} reminder templates are removed.")
