"""Languages: the catalogues are complete, the page's language is chosen as documented, the signup carries it to the
subscriber and the mail, each language's consent wording is its own version, and the sanitiser keeps dir and lang.

The journeys in a real browser, with screenshots and axe-core, are in tests/test_browser_languages.py.
"""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from flask import request
from flask_babel import force_locale, refresh
from wtforms import StringField
from wtforms.validators import DataRequired

from tests.conftest import form_fields, isolated_client, wait_for_signups
from tests.factories import sign_up_subscriber
from uscmail.campaigns.render import sanitise
from uscmail.forms import Form, wtforms_catalogue
from uscmail.i18n import translations
from uscmail.models import Consent, Subscriber
from uscmail.subscriptions import mails
from uscmail.subscriptions.consent import CURRENT_VERSIONS, WORDINGS, wording_sha256

PROJECT_DIR = Path(__file__).resolve().parent.parent
TRANSLATED = ("ug", "zh")
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")
TAG = re.compile(r"</?[a-z]+")
ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")
HAN = re.compile("[\u4e00-\u9fff]")
LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")


def catalogue(code: str):
    with (PROJECT_DIR / "translations" / code / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        return read_po(po_file, locale=code)


def texts_in_the_code() -> set[str]:
    """Every translatable text in the code and templates, extracted as `make translations` does (babel.cfg)."""
    method_map = [("uscmail/**.py", "python"), ("templates/**.html", "jinja2"), ("templates/**.txt", "jinja2")]
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    return {message for _, _, message, _, _ in extract_from_dir(str(PROJECT_DIR), method_map, keywords=keywords)}


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_text_of_the_code_is_translated_with_its_placeholders_and_markup(code):
    """No public text is left in English: every text the code can show has a translation, which keeps the
    placeholders and HTML tags of the original."""
    translations = {message.id: message for message in catalogue(code) if message.id}
    missing = sorted(texts_in_the_code() - set(translations))
    assert not missing, f"texts not in translations/{code} (run `make translations`, then translate): {missing}"
    problems = []
    script = ARABIC_SCRIPT if code == "ug" else HAN
    for msgid, message in translations.items():
        # A plural (ngettext) has a singular and a plural original and one translation per plural form; each form
        # keeps the plural original's placeholders and markup.
        original = msgid[-1] if isinstance(msgid, tuple) else msgid
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(forms) or message.fuzzy:
            problems.append(f"untranslated: {msgid!r}")
            continue
        for form in forms:
            if sorted(PLACEHOLDER.findall(original)) != sorted(PLACEHOLDER.findall(form)):
                problems.append(f"placeholders differ: {original!r} -> {form!r}")
            elif sorted(TAG.findall(original)) != sorted(TAG.findall(form)):
                problems.append(f"markup differs: {original!r} -> {form!r}")
            # Texts of placeholders and punctuation only ("%(when)s, %(place)s") have no words to be in a script.
            has_words = re.search(r"[A-Za-z]", PLACEHOLDER.sub("", original))
            if has_words and not script.search(form) and original != "USC-UK mailing lists":
                problems.append(f"not in the language's script: {form!r}")
    assert not problems, "\n".join(problems)


def test_each_language_shows_its_own_consent_wording_version_and_hash(client, db):
    """The wording shown is the page language's own version; its hash is that of the exact text shown."""
    versions = set()
    for code, script in (("en", None), ("ug", ARABIC_SCRIPT), ("zh", HAN)):
        page = client.get(f"/subscribe?lang={code}").get_data(as_text=True)
        version = CURRENT_VERSIONS[code]
        versions.add(version)
        assert f'name="consent_version" type="hidden" value="{version}"' in page
        assert f'name="locale" type="hidden" value="{code}"' in page
        assert WORDINGS[version] in page.replace("&#39;", "'")
        if script:
            assert script.search(WORDINGS[version])
    assert len(versions) == 3
    assert len({wording_sha256(WORDINGS[version]) for version in versions}) == 3


def test_wtforms_own_messages_follow_the_page_language_from_one_catalogue_load_a_language(app):
    """WTForms' built-in messages are in the page's language (English where WTForms has no catalogue), and each
    language's catalogue is read from disk once, not on every request."""

    class Required(Form):
        value = StringField(validators=[DataRequired()])

    wtforms_catalogue.cache_clear()
    messages = {}
    for _ in range(3):
        for code in ("en", "zh", "ug"):
            with app.test_request_context(f"/?lang={code}", method="POST", data={}):
                form = Required(meta={"csrf": False})
                assert not form.validate()
                messages[code] = form.value.errors
    required = ["This field is required."]
    assert messages == {"en": required, "zh": ["该字段是必填字段。"], "ug": required}
    assert wtforms_catalogue.cache_info().misses == 3


@pytest.mark.parametrize(
    ("query", "accept", "tag", "direction"),
    [
        ("", "zh-CN,zh;q=0.9,en;q=0.5", "zh-Hans", "ltr"),
        ("", "ug-CN,ug;q=0.9", "ug", "rtl"),
        ("", "fr-FR,de;q=0.8", "en", "ltr"),
        ("", "", "en", "ltr"),
        ("?lang=ug", "zh-CN", "ug", "rtl"),  # the choice beats the browser's
        ("?lang=xx", "zh-CN", "zh-Hans", "ltr"),  # an unknown choice is no choice
        ("?lang=" + "u" * 5000, "", "en", "ltr"),
        ("?lang=ug%20", "", "en", "ltr"),
    ],
)
def test_the_page_language_is_the_choice_then_accept_language_then_english(client, query, accept, tag, direction):
    response = client.get("/" + query, headers={"Accept-Language": accept} if accept else {})
    assert response.status_code == 200
    assert f'<html lang="{tag}" dir="{direction}">' in response.get_data(as_text=True)
    assert ("lang=ug" in (response.headers.get("Set-Cookie") or "")) == (query == "?lang=ug")


def test_a_chosen_language_is_kept_in_a_cookie_and_never_reaches_organisers_pages(client):
    chosen = client.get("/?lang=zh")
    cookie = chosen.headers["Set-Cookie"]
    assert "lang=zh" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert '<html lang="zh-Hans"' in client.get("/subscribe").get_data(as_text=True)
    not_found = client.get("/no-such-page")
    assert not_found.status_code == 404 and "此地址没有页面。" in not_found.get_data(as_text=True)
    login = client.get("/organisers/login", headers={"Accept-Language": "ug"}).get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in login and "language-switcher" not in login


def test_a_nul_byte_in_the_language_choice_is_refused_in_the_page_language(client):
    response = client.get("/subscribe?lang=ug%00", headers={"Accept-Language": "zh"})
    assert response.status_code == 400
    assert "该请求包含无法保存的字符" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers or "lang=" not in response.headers["Set-Cookie"]


def test_a_form_claiming_an_unknown_language_or_another_languages_wording_gets_a_clear_error(client, db):
    page = client.get("/subscribe?lang=zh").get_data(as_text=True)
    fields = {**form_fields(page), "email": "tampered@example.org", "lists": ["newsletter"], "website": ""}
    unknown = client.post("/subscribe", data={**fields, "locale": "xx", "consent_version": CURRENT_VERSIONS["zh"]})
    assert unknown.status_code == 400
    assert "请从页面上选择一种语言。" in unknown.get_data(as_text=True)
    mismatched = client.post("/subscribe", data={**fields, "locale": "ug", "consent_version": CURRENT_VERSIONS["zh"]})
    assert mismatched.status_code == 400
    assert "同意声明已有更改" in mismatched.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


def test_a_chinese_signup_without_a_choice_is_stored_and_mailed_in_chinese(client, db, worker, smtp_sink):
    """Accept-Language alone: the form, the stored locale and the confirmation mail are Chinese."""
    headers = {"Accept-Language": "zh-CN,zh;q=0.9"}
    page = client.get("/subscribe", headers=headers).get_data(as_text=True)
    data = {**form_fields(page), "email": "lihua@example.org", "name": "李华", "lists": ["newsletter"], "website": ""}
    data.update(locale="zh", consent_version=CURRENT_VERSIONS["zh"])
    assert client.post("/subscribe", data=data, headers=headers).status_code == 303
    wait_for_signups(db)
    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "lihua@example.org"))
    assert subscriber.locale == "zh"
    consent = db.session.scalar(sa.select(Consent).where(Consent.subscriber_id == subscriber.id))
    assert (consent.wording_version, consent.wording_sha256) == (
        CURRENT_VERSIONS["zh"],
        wording_sha256(WORDINGS[CURRENT_VERSIONS["zh"]]),
    )
    [mail] = smtp_sink.wait_for("lihua@example.org")
    assert mail.message["Subject"] == "请确认您对 USC-UK 的订阅"
    assert mail.message["Content-Language"] == "zh-Hans"
    assert mail.text().startswith("李华，您好：")
    assert '<html lang="zh-Hans" dir="ltr">' in mail.html()
    assert "?lang=zh" in LINK.search(mail.text()).group(1)


def test_the_public_api_takes_a_language_and_gives_that_languages_wording(client, db, worker, smtp_sink):
    listed = client.get("/api/v1/public/lists?locale=ug").get_json()
    assert listed["locale"] == "ug" and listed["consent"]["version"] == CURRENT_VERSIONS["ug"]
    assert listed["consent"]["sha256"] == wording_sha256(WORDINGS[CURRENT_VERSIONS["ug"]])
    assert client.get("/api/v1/public/lists?locale=fr").status_code == 400
    body = {"email": "api.ug@example.org", "lists": ["newsletter"], "consent": True, "locale": "ug"}
    assert client.post("/api/v1/public/subscribe", json={**body, "locale": ["ug"]}).status_code == 400
    assert client.post("/api/v1/public/subscribe", json=body).status_code == 202
    wait_for_signups(db)
    assert db.session.scalar(sa.select(Subscriber.locale).where(Subscriber.email == "api.ug@example.org")) == "ug"
    [mail] = smtp_sink.wait_for("api.ug@example.org")
    assert mail.message["Subject"] == "USC-UK غا مۇشتەرى بولغانلىقىڭىزنى جەزملەشتۈرۈڭ"
    assert '<html lang="ug" dir="rtl">' in mail.html()


def test_an_existing_subscribers_language_changes_on_confirmation_not_on_request(client, db, worker, smtp_sink):
    """A confirmed English subscriber signs up for more in Uyghur: the mail is Uyghur, the stored language changes
    only when the person confirms from the page opened in Uyghur."""
    subscriber = sign_up_subscriber("returning@example.org", lists=("newsletter",))
    page = client.get("/subscribe?lang=ug").get_data(as_text=True)
    data = {**form_fields(page), "email": "returning@example.org", "lists": ["london-protest-reminders"]}
    data.update(website="", locale="ug", consent_version=CURRENT_VERSIONS["ug"])
    assert client.post("/subscribe", data=data).status_code == 303
    wait_for_signups(db)
    db.session.refresh(subscriber)
    assert subscriber.locale == "en"
    [mail] = smtp_sink.wait_for("returning@example.org")
    assert mail.message["Content-Language"] == "ug"
    confirm_path = LINK.search(mail.text()).group(1)
    assert confirm_path.endswith("?lang=ug")
    fresh = isolated_client(client.application)  # another browser: no language cookie
    fields = form_fields(fresh.get(confirm_path).get_data(as_text=True))
    assert fresh.post(confirm_path, data=fields).status_code == 200
    db.session.rollback()
    assert db.session.get(Subscriber, subscriber.id).locale == "ug"


def test_the_preference_centre_rejects_an_unknown_language_and_keeps_the_old_one(client, db):
    subscriber = sign_up_subscriber("prefs.lang@example.org")
    path = mails.preferences_url(subscriber).removeprefix("https://lists.uscuk.test")
    page = client.get(path).get_data(as_text=True)
    assert 'name="locale" id="locale-en" value="en" checked' in page
    for bad in ("xx", "ug\u202e", "1" * 10_000):
        response = client.post(path, data={**form_fields(page), "locale": bad, "lists": []})
        assert response.status_code == 400
        assert "Please choose a language from the page." in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Subscriber, subscriber.id).locale == "en"


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ('<p dir="rtl" lang="ug">ئۇيغۇرچە</p>', '<p dir="rtl" lang="ug">ئۇيغۇرچە</p>'),
        (
            '<blockquote dir="RTL" lang="zh-Hans">声援</blockquote>',
            '<blockquote dir="rtl" lang="zh-Hans">声援</blockquote>',
        ),
        ('<ul dir="auto"><li lang="en-GB">x</li></ul>', '<ul dir="auto"><li lang="en-GB">x</li></ul>'),
        ('<p dir="sideways" lang="ug onclick=x">a</p>', "<p>a</p>"),
        ('<span lang="" dir="">a</span>', "<span>a</span>"),
        ('<p dir="rtl" onmouseover="alert(1)" class="x">a</p>', '<p dir="rtl">a</p>'),
    ],
)
def test_the_sanitiser_keeps_direction_and_language_and_only_valid_ones(app, fragment, expected):
    with app.app_context():
        assert sanitise(fragment) == expected


def test_templates_keep_one_catalogue_a_request_and_follow_force_locale_and_refresh(app):
    """i18n.translations() keeps the page's catalogue on `g` for the request: a mail rendered meanwhile in another
    language (force_locale) gets that language's, the page's comes back after it, and a new choice (refresh) is
    followed; with no request (a worker), the catalogue in force is found each time."""

    def subscribe_button() -> str:
        return app.jinja_env.from_string('{{ _("Subscribe") }}').render()

    with app.test_request_context("/subscribe?lang=ug"):
        assert subscribe_button() == "مۇشتەرى بولۇش"
        assert translations() is translations()  # found once
        with force_locale("zh"):
            assert subscribe_button() == "订阅"
        assert subscribe_button() == "مۇشتەرى بولۇش"
        with force_locale("en"):
            assert subscribe_button() == "Subscribe"
        assert app.jinja_env.from_string("{{ 'Subscribe' | catalogued }}").render() == "مۇشتەرى بولۇش"
    with app.test_request_context("/subscribe?lang=zh"):
        assert subscribe_button() == "订阅"
        request.args = {"lang": "ug"}  # as if the choice changed mid-request
        refresh()
        assert subscribe_button() == "مۇشتەرى بولۇش"
    with app.app_context(), force_locale("zh"):
        assert subscribe_button() == "订阅"
