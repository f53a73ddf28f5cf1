"""An event's reminder templates in other languages: subscribers who read Uyghur or Chinese get the event's reminders
in their language (its campaign carries a translation made from these), the others the event's own. They flush; the
caller commits."""

from ..campaigns.languages import LANGUAGE_NAMES
from ..campaigns.translations import known_locale
from ..extensions import db
from ..models import utcnow
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput, single_line_text
from .models import Event, EventTranslation
from .planning import DEFAULT_TEMPLATES
from .services import BODY_MAX, SUBJECT_MAX, multiline_text, try_templates

# The event's own templates are in English (the language of the default templates and of the event page).
EVENT_LOCALE = "en"


def translation(event: Event, locale: str) -> EventTranslation | None:
    """The event's templates in `locale`, if it has them."""
    return next((found for found in event.translations if found.locale == locale), None)


def starting_templates(event: Event, locale: str) -> tuple[str, str]:
    """What the translation form starts from: the saved translation, else the default templates in that language."""
    found = translation(event, locale)
    return (found.subject_template, found.body_template) if found else DEFAULT_TEMPLATES[locale]


def save_translation(
    event: Event, locale: str, subject_template: str, body_template: str, actor: Organiser | str
) -> EventTranslation:
    """Add or change the event's templates in `locale`, tried on a sample date as the event's own are."""
    locale = known_locale(locale)
    if locale == EVENT_LOCALE:
        raise InvalidInput(f"The event's own templates are already in {LANGUAGE_NAMES[locale]}.")
    subject = single_line_text(subject_template, "subject template", SUBJECT_MAX)
    body = multiline_text(body_template or "", "body template", BODY_MAX)
    if not body.strip():
        raise InvalidInput("Please write the body template.")
    found = translation(event, locale)
    candidate = EventTranslation(locale=locale, subject_template=subject, body_template=body)
    try_templates(event, utcnow().date(), candidate)
    if found is None:
        event.translations.append(candidate)
        found = candidate
    else:
        found.subject_template, found.body_template = subject, body
    db.session.flush()
    audit.record(actor, "event.translation.save", "event", event.id, locale=locale)
    return found


def remove_translation(event: Event, locale: str, actor: Organiser | str) -> None:
    """Remove the event's templates in `locale`: its readers then get the event's own."""
    found = translation(event, known_locale(locale))
    if found is None:
        raise InvalidInput(f"This event has no {LANGUAGE_NAMES[locale]} templates.")
    event.translations.remove(found)
    db.session.flush()
    audit.record(actor, "event.translation.remove", "event", event.id, locale=locale)
