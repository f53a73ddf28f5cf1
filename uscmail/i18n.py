"""Languages of the supporter pages and mails: English, Uyghur (right to left) and Simplified Chinese.

The language of a public page is the one chosen with the switcher (`?lang=ug`, then kept in a cookie), else the
browser's Accept-Language, else English. Organisers' pages stay English. Mail goes out in the subscriber's stored
language (`Subscriber.locale`), chosen on the signup page and changed in the preference centre; the worker has no
request, so mail is rendered inside `flask_babel.force_locale`.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations
from flask import Flask, current_app, g, has_app_context, request
from flask_babel import get_locale, get_translations, refresh

from .extensions import babel

PROJECT_DIR = Path(__file__).resolve().parent.parent
TRANSLATIONS_DIR = PROJECT_DIR / "translations"
DEFAULT_LOCALE = "en"
LONDON = ZoneInfo("Europe/London")
LANGUAGE_COOKIE = "lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600
# Pages for organisers, tools and machines: English whatever the browser asks for.
ENGLISH_ONLY_PATHS = ("/organisers", "/dev/mail", "/api/", "/webhooks/", "/static/")


@dataclass(frozen=True)
class Language:
    """A language the public side speaks: its code, its own name, its BCP 47 tag for `lang`, and its direction."""

    code: str
    name: str
    tag: str
    direction: str


LANGUAGES = {
    "en": Language("en", "English", "en", "ltr"),
    "ug": Language("ug", "ئۇيغۇرچە", "ug", "rtl"),
    "zh": Language("zh", "简体中文", "zh-Hans", "ltr"),
}


def supported(code: object) -> str | None:
    """`code` if it names one of our languages (`en`, `ug`, `zh`), else None."""
    return code if isinstance(code, str) and code in LANGUAGES else None


def language(code: str | None = None) -> Language:
    """The Language of `code`, or of the locale in force (English when none is)."""
    if code is None:
        current = get_locale()
        code = current.language if current is not None else DEFAULT_LOCALE
    return LANGUAGES.get(code, LANGUAGES[DEFAULT_LOCALE])


def current_locale() -> str:
    """The code of the locale in force: the page's in a request, the forced one in a mail, else English."""
    return language().code


def chosen_locale() -> str | None:
    """The language this visitor chose with the switcher (the query string, then the cookie), or None."""
    return supported(request.args.get("lang")) or supported(request.cookies.get(LANGUAGE_COOKIE))


def select_locale() -> str:
    """Flask-Babel's locale selector: the visitor's choice, else Accept-Language, else English."""
    if not request or request.path.startswith(ENGLISH_ONLY_PATHS):
        return DEFAULT_LOCALE
    return chosen_locale() or request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LOCALE


def switcher_links() -> list[tuple[Language, str | None]]:
    """The language switcher: each language with the link that shows this page in it (None for the current one).

    Empty on organisers' pages, and on a page that answers a POST and cannot be fetched again (following the link
    would be a 405)."""
    rule = request.url_rule
    if request.path.startswith(ENGLISH_ONLY_PATHS) or (rule is not None and "GET" not in (rule.methods or ())):
        return []
    here = current_locale()
    return [(lang, None if lang.code == here else f"?lang={lang.code}") for lang in LANGUAGES.values()]


def N_(text: str) -> str:  # noqa: N802 - the name pybabel looks for (see the Makefile's translations target)
    """Mark a text we ship as data (the seeded lists' names and descriptions) for the catalogue; returned as is."""
    return text


def translations() -> NullTranslations:
    """Flask-Babel's catalogue for the locale in force, found once per request and locale.

    Templates call this for every text; Flask-Babel's own get_translations() looks up the request's state, the
    domain and the locale anew each time (a tenth of a page's CPU). Kept on `g` with the locale it was found for, so
    force_locale (mail in another language) and refresh() still get the right catalogue."""
    if not has_app_context():
        return get_translations()
    state = g._get_current_object()
    locale = getattr(getattr(state, "_flask_babel", None), "babel_locale", None)
    kept = getattr(state, "uscmail_translations", None)
    if kept is not None and locale is not None and kept[0] is locale:
        return kept[1]
    found = get_translations()
    state.uscmail_translations = (get_locale(), found)
    return found


def catalogued(text: str | None) -> str:
    """The translation of a text we ship as data (N_), in the locale in force; any other text (what organisers
    wrote) as it is. A template filter: Jinja's `_()` would take the text as trusted markup and a format string."""
    return translations().ugettext(text) if text else (text or "")


# How dates are written in each language: CLDR's British English (as the pages always wrote them), Uyghur and
# Simplified Chinese; (day and date, date).
DATE_FORMATS = {
    "en": ("en_GB", "EEEE d MMMM y", "d MMMM y"),
    "ug": ("ug", "full", "long"),
    "zh": ("zh_Hans_CN", "full", "long"),
}


def london_date(moment: datetime | None) -> str:
    """The London date of an instant in the words of the locale in force ("5 April 2027", "2027年4月5日")."""
    if moment is None:
        return "—"
    cldr_locale, _, date_format = DATE_FORMATS[current_locale()]
    return format_date(moment.astimezone(LONDON).date(), date_format, locale=cldr_locale)


def london_day_and_time(moment: datetime) -> str:
    """Weekday, date and time of an instant in London, in the words of the locale in force, joined as CLDR joins
    them ("Friday 5 March 2027, 18:00", "2027 5-مارت، جۈمە 18:00", "2027年3月5日星期五 18:00")."""
    local = moment.astimezone(LONDON)
    cldr_locale, day_format, _ = DATE_FORMATS[current_locale()]
    day = format_date(local.date(), day_format, locale=cldr_locale)
    time = format_time(local.time(), "HH:mm", locale=cldr_locale)
    return get_datetime_format("full", locale=cldr_locale).replace("'", "").replace("{0}", time).replace("{1}", day)


def compile_catalogues(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Compile every translations/<locale>/LC_MESSAGES/messages.po whose .mo is missing or older; return those
    written. `make translations` does the same with pybabel; tests and `make run` need no separate step."""
    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalogue = read_po(po_file, locale=po_path.parent.parent.name)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalogue)
        written.append(mo_path)
    return written


def init_i18n(app: Flask) -> None:
    """Bind Flask-Babel with our selector, give templates the page's language, and keep a switcher choice."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.install_gettext_callables(
        gettext=lambda text: translations().ugettext(text),
        ngettext=lambda singular, plural, n: translations().ungettext(singular, plural, n),
        pgettext=lambda context, text: translations().upgettext(context, text),
        npgettext=lambda context, singular, plural, n: translations().unpgettext(context, singular, plural, n),
        newstyle=True,
    )
    app.add_template_filter(catalogued, "catalogued")
    app.add_template_filter(london_date, "local_date")
    app.add_template_filter(london_day_and_time, "local_day_and_time")
    missing = [code for code in LANGUAGES if code != DEFAULT_LOCALE and not _catalogue(code).exists()]
    if missing:
        app.logger.warning("no compiled translations for %s: run `make translations`", ", ".join(missing))

    @app.before_request
    def forget_last_locale() -> None:
        # A request may share an app context (and so Flask-Babel's cached locale) with the one before it.
        refresh()

    @app.context_processor
    def language_context() -> dict:
        return {"page_language": language(), "language_links": switcher_links if request else list}

    @app.after_request
    def keep_language_choice(response):
        choice = supported(request.args.get("lang"))
        if choice and choice != request.cookies.get(LANGUAGE_COOKIE):
            response.set_cookie(
                LANGUAGE_COOKIE,
                choice,
                max_age=LANGUAGE_COOKIE_MAX_AGE,
                secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
                httponly=True,
                samesite="Lax",
            )
        return response


def _catalogue(code: str) -> Path:
    return TRANSLATIONS_DIR / code / "LC_MESSAGES" / "messages.mo"
