"""The base of every form: Flask-WTF's, with WTForms' own messages translated from a catalogue loaded once per
language and process (Flask-WTF reads the catalogue file again on every request)."""

import functools

from babel.support import NullTranslations, Translations
from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.i18n import messages_path


@functools.cache
def wtforms_catalogue(locale: str) -> NullTranslations:
    """WTForms' messages ("This field is required." …) in `locale`; English where WTForms has no catalogue."""
    return Translations.load(messages_path(), [locale], domain="wtforms")


class Form(FlaskForm):
    """A CSRF-protected form (FlaskForm) whose built-in messages are in the page's language."""

    class Meta:
        def get_translations(self, form):
            return wtforms_catalogue(str(get_locale() or "en"))
