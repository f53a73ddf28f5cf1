"""A campaign in several languages: each reader gets the version in their own language (else the campaign's own), the
mail says which language and direction it is in, and organisers write translations on their own page."""

import re

import pytest
import sqlalchemy as sa

from tests.api_support import assert_json_error, assert_matches
from tests.campaign_support import VIGIL_BODY, start, wait_for_status
from tests.factories import make_campaign, make_subscriber, newsletter
from tests.pages import alert, flashed, fresh, post_from, text
from tests.waiting import wait_until
from uscmail.campaigns import translations
from uscmail.campaigns.models import Campaign, CampaignStatus, CampaignTranslation
from uscmail.extensions import db as database
from uscmail.organisers.models import AuditEvent
from uscmail.validation import InvalidInput

BASE = "/organisers/campaigns"
UYGHUR_SUBJECT = "ئۇيغۇرلار بىلەن ھەمكارلىق"
UYGHUR_BODY = "ھۆرمەتلىك {{ subscriber.name }}،\n\nھەر ئاينىڭ 5-كۈنى **پورتلاند پلەيس**تا كۆرۈشەيلى.\n"
CHINESE_SUBJECT = "声援维吾尔人"
CHINESE_BODY = "亲爱的 {{ subscriber.name }}：\n\n每月5日在**波特兰坊**见。\n"
API_NEW = {"subject": "December vigil", "body": VIGIL_BODY, "lists": ["newsletter"]}


def translate(campaign: Campaign, locale: str, subject: str, body: str) -> None:
    translations.save_translation(campaign, locale, translations.TranslationFields(subject=subject, body=body), "test")
    database.session.commit()


def readers(*locales: str) -> dict[str, str]:
    """One confirmed Newsletter subscriber per locale (None: no locale stored); their addresses by locale."""
    found = {}
    for locale in locales:
        subscriber = make_subscriber(f"reader-{locale}@example.org", name=f"Reader {locale}", lists=[newsletter()])
        if locale:
            subscriber.locale = locale
        found[locale] = subscriber.email
    database.session.commit()
    return found


def test_each_reader_gets_the_version_in_their_language_else_the_campaigns_own(db, worker, smtp_sink):
    addresses = readers("en", "ug", "zh", "fr")
    campaign = make_campaign("Solidarity news", "Dear {{ subscriber.name }},\n\nSee you on the 5th.\n")
    translate(campaign, "ug", UYGHUR_SUBJECT, UYGHUR_BODY)
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT)

    (uyghur,) = smtp_sink.to(addresses["ug"])
    assert uyghur.message["Subject"] == UYGHUR_SUBJECT
    html = uyghur.html()
    assert '<html lang="ug" dir="rtl">' in html
    assert "ھۆرمەتلىك Reader ug،" in html and "پورتلاند پلەيس" in html
    assert "ھۆرمەتلىك Reader ug،" in uyghur.text()
    assert "See you" not in html
    for locale in ("en", "zh", "fr"):  # no Chinese translation, and no French at all: the campaign's own text
        (mail,) = smtp_sink.to(addresses[locale])
        assert mail.message["Subject"] == "Solidarity news", locale
        assert '<html lang="en" dir="ltr">' in mail.html(), locale
        assert f"Dear Reader {locale}," in mail.text(), locale
    # Every version carries the reader's own one-click unsubscribe.
    assert uyghur.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert uyghur.message["List-Unsubscribe"] != smtp_sink.to(addresses["en"])[0].message["List-Unsubscribe"]


def test_a_campaign_written_in_uyghur_is_marked_right_to_left_for_everyone(db, worker, smtp_sink):
    addresses = readers("en")
    campaign = make_campaign(UYGHUR_SUBJECT, UYGHUR_BODY)
    translations.set_language(campaign, "ug", "test")
    database.session.commit()
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT)
    (mail,) = smtp_sink.to(addresses["en"])
    assert mail.message["Subject"] == UYGHUR_SUBJECT
    assert '<html lang="ug" dir="rtl">' in mail.html()


def test_a_test_send_mails_each_language_version(db, sign_in_as, worker, smtp_sink):
    campaign = make_campaign()
    translate(campaign, "ug", UYGHUR_SUBJECT, UYGHUR_BODY)
    translate(campaign, "zh", CHINESE_SUBJECT, CHINESE_BODY)
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}"
    answer = post_from(editor, page, f"{page}/test", addresses="proof@example.org")
    assert answer.status_code == 302
    wait_until(lambda: len(smtp_sink.to("proof@example.org")) == 3, 30, "three test copies")
    subjects = sorted(mail.message["Subject"] for mail in smtp_sink.to("proof@example.org"))
    assert subjects == sorted(f"[Test] {subject}" for subject in ("Solidarity news", UYGHUR_SUBJECT, CHINESE_SUBJECT))


def test_an_editor_writes_changes_and_removes_a_translation_on_its_page(db, sign_in_as):
    campaign = make_campaign()
    editor = sign_in_as("editor")
    campaign_page = text(editor.get(f"{BASE}/{campaign.id}"))
    assert f"{BASE}/{campaign.id}/languages" in campaign_page
    languages = text(editor.get(f"{BASE}/{campaign.id}/languages"))
    assert "Translate into Uyghur" in languages and "Translate into Chinese" in languages
    assert "Translate into English" not in languages, "the campaign's own language is not offered"

    page = f"{BASE}/{campaign.id}/languages/ug"
    form = text(editor.get(page))
    assert 'dir="auto"' in form and "Dear {{ subscriber.name }}" in form, "the original is shown beside the form"
    answer = post_from(editor, page, page, subject=UYGHUR_SUBJECT, preheader="", body=UYGHUR_BODY)
    assert answer.status_code == 302
    assert "Uyghur (ئۇيغۇرچە) translation is saved" in flashed(text(editor.get(answer.headers["Location"])))
    saved = fresh(db).get(CampaignTranslation, (campaign.id, "ug"))
    assert (saved.subject, saved.body) == (UYGHUR_SUBJECT, UYGHUR_BODY)

    preview = text(editor.get(f"{BASE}/{campaign.id}/preview?lang=ug"))
    assert UYGHUR_SUBJECT in preview and 'dir="rtl"' in preview
    assert "Stand with the Uyghur people" in text(editor.get(f"{BASE}/{campaign.id}/preview?lang=zh"))
    assert "پورتلاند" in text(editor.get(f"{BASE}/{campaign.id}/text?lang=ug"))

    answer = post_from(editor, page, page, subject="Changed", preheader="Short", body="Changed body")
    assert answer.status_code == 302
    assert fresh(db).get(CampaignTranslation, (campaign.id, "ug")).subject == "Changed"

    remove = f"{page}/remove"
    assert "Remove the Uyghur (ئۇيغۇرچە) translation?" in text(editor.get(remove))
    answer = post_from(editor, remove, remove)
    assert answer.status_code == 302
    assert fresh(db).get(CampaignTranslation, (campaign.id, "ug")) is None
    actions = fresh(db).scalars(sa.select(AuditEvent.action).where(AuditEvent.object_id == str(campaign.id))).all()
    assert {"campaign.translation.save", "campaign.translation.remove"} <= set(actions)


def test_bad_translations_are_refused_with_a_reason_and_nothing_stored(db, sign_in_as):
    campaign = make_campaign()
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}/languages/zh"
    cases = {
        "Please give the translation a subject.": {"subject": "  ", "body": CHINESE_BODY},
        "line breaks": {"subject": "two\nlines", "body": CHINESE_BODY},
        "Please write the body": {"subject": CHINESE_SUBJECT, "body": ""},
        "NUL": {"subject": CHINESE_SUBJECT, "body": "a\x00b"},
        "config": {"subject": CHINESE_SUBJECT, "body": "{{ config.SECRET_KEY }}"},
        "under 255": {"subject": "字" * 256, "body": CHINESE_BODY},
    }
    for words, data in cases.items():
        answer = post_from(editor, page, page, **data)
        assert answer.status_code == 400, words
        assert words.lower() in alert(text(answer)).lower() or words in text(answer), (words, alert(text(answer)))
    too_long = translations.TranslationFields(subject=CHINESE_SUBJECT, body="x" * 500_001)
    with pytest.raises(InvalidInput, match="too long"):  # the form can't carry it: the request limit answers first
        translations.save_translation(fresh(db).get(Campaign, campaign.id), "zh", too_long, "test")
    database.session.rollback()
    assert fresh(db).scalars(sa.select(CampaignTranslation)).all() == []


def test_languages_that_are_not_offered_or_are_the_campaigns_own_are_not_found(db, sign_in_as):
    campaign = make_campaign()
    editor = sign_in_as("editor")
    for path in ("languages/fr", "languages/en", "languages/UG", "languages/ug/remove"):
        assert editor.get(f"{BASE}/{campaign.id}/{path}").status_code == 404, path
    assert editor.get(f"{BASE}/99999999/languages").status_code == 404
    assert editor.get(f"{BASE}/{campaign.id}/languages/%00").status_code == 400, "NUL: refused by the input guard"
    preview = editor.get(f"{BASE}/{campaign.id}/preview?lang=" + "x" * 5000)
    assert preview.status_code == 200 and "Stand with the Uyghur people" in text(preview), "unknown: its own text"


def test_the_campaigns_own_language_can_change_but_not_to_one_it_is_translated_into(db, sign_in_as):
    campaign = make_campaign()
    translate(campaign, "ug", UYGHUR_SUBJECT, UYGHUR_BODY)
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}/languages"
    answer = post_from(editor, page, page, locale="ug")
    assert answer.status_code == 400
    assert "already has a Uyghur (ئۇيغۇرچە) translation" in alert(text(answer))
    answer = post_from(editor, page, page, locale="xx")
    assert answer.status_code == 400 and "can be written in" in alert(text(answer))
    assert post_from(editor, page, page, locale="zh").status_code == 302
    assert fresh(db).get(Campaign, campaign.id).locale == "zh"


def test_viewers_read_translations_but_cannot_write_them_and_sent_campaigns_are_closed(db, sign_in_as):
    campaign = make_campaign()
    translate(campaign, "ug", UYGHUR_SUBJECT, UYGHUR_BODY)
    viewer = sign_in_as("viewer")
    page = text(viewer.get(f"{BASE}/{campaign.id}/languages"))
    assert UYGHUR_SUBJECT in page and "Translate into" not in page and "Remove" not in page
    assert viewer.get(f"{BASE}/{campaign.id}/languages/ug").status_code == 403
    assert viewer.post(f"{BASE}/{campaign.id}/languages", data={"locale": "zh"}).status_code in (400, 403)

    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign.id).values(status=CampaignStatus.SENT))
    db.session.commit()
    editor = sign_in_as("editor")
    answer = editor.get(f"{BASE}/{campaign.id}/languages/ug")
    assert answer.status_code == 302
    assert "can no longer be changed" in flashed(text(editor.get(answer.headers["Location"])))


# --- the API ----------------------------------------------------------------------------------------------------------


def test_the_api_writes_reads_previews_and_removes_translations(app, db, api, editor, viewer):
    created = api("POST", "/api/v1/campaigns", editor, json={**API_NEW, "locale": "zh", "subject": CHINESE_SUBJECT})
    assert created.status_code == 201, created.json
    assert_matches(app, "Campaign", created.json)
    assert (created.json["locale"], created.json["translations"]) == ("zh", [])
    campaign_id = created.json["id"]
    path = f"/api/v1/campaigns/{campaign_id}/translations/ug"
    answer = api("PUT", path, editor, json={"subject": UYGHUR_SUBJECT, "body": UYGHUR_BODY})
    assert answer.status_code == 200, answer.json
    assert_matches(app, "Campaign", answer.json)
    assert answer.json["translations"] == [
        {"locale": "ug", "subject": UYGHUR_SUBJECT, "preheader": "", "body": UYGHUR_BODY}
    ]
    preview = api("GET", f"/api/v1/campaigns/{campaign_id}/preview?lang=ug", viewer)
    assert preview.status_code == 200 and preview.json["subject"] == UYGHUR_SUBJECT
    assert 'dir="rtl"' in preview.json["html"]
    assert api("GET", f"/api/v1/campaigns/{campaign_id}/preview?lang=en", viewer).json["subject"] == CHINESE_SUBJECT
    assert api("DELETE", path, editor).status_code == 204
    assert api("GET", f"/api/v1/campaigns/{campaign_id}", viewer).json["translations"] == []


def test_the_api_refuses_bad_translations_with_the_documented_errors(db, api, editor, viewer):
    campaign = make_campaign()
    base = f"/api/v1/campaigns/{campaign.id}/translations"
    good = {"subject": UYGHUR_SUBJECT, "body": UYGHUR_BODY}
    assert_json_error(api("PUT", f"{base}/ug", viewer, json=good), 403)
    assert_json_error(api("PUT", f"{base}/fr", editor, json=good), 400, "must be one of")
    assert_json_error(api("PUT", f"{base}/en", editor, json=good), 422, "already in English")
    assert_json_error(api("PUT", f"{base}/ug", editor, json={"subject": UYGHUR_SUBJECT}), 400)
    assert_json_error(api("PUT", f"{base}/ug", editor, json={**good, "extra": 1}), 400)
    assert_json_error(api("PUT", f"{base}/ug", editor, json={**good, "subject": ["x"]}), 400)
    assert_json_error(api("PUT", f"{base}/ug", editor, json={**good, "body": "{{ config }}"}), 422)
    assert_json_error(api("PUT", f"{base}/ug", editor, json={**good, "body": "x\u0000y"}), 422)
    assert_json_error(api("PUT", "/api/v1/campaigns/99999/translations/ug", editor, json=good), 404)
    assert_json_error(api("DELETE", f"{base}/ug", editor), 404, "no Uyghur")
    assert_json_error(api("GET", f"/api/v1/campaigns/{campaign.id}/preview?lang=xx", viewer), 400)
    assert_json_error(api("PATCH", f"/api/v1/campaigns/{campaign.id}", editor, json={"locale": 5}), 400)
    assert_json_error(api("PATCH", f"/api/v1/campaigns/{campaign.id}", editor, json={"locale": "xx"}), 400)
    assert fresh(db).scalars(sa.select(CampaignTranslation)).all() == []
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign.id).values(status=CampaignStatus.SENT))
    db.session.commit()
    assert_json_error(api("PUT", f"{base}/ug", editor, json=good), 409, "can no longer be changed")


def test_a_duplicate_keeps_the_campaigns_language_and_translations(db, sign_in_as):
    campaign = make_campaign()
    translations.set_language(campaign, "zh", "test")
    translate(campaign, "ug", UYGHUR_SUBJECT, UYGHUR_BODY)
    editor = sign_in_as("editor")
    page = f"{BASE}/{campaign.id}"
    assert post_from(editor, page, f"{page}/duplicate").status_code == 302
    copy = fresh(db).scalars(sa.select(Campaign).where(Campaign.id != campaign.id)).one()
    assert copy.locale == "zh"
    assert [(found.locale, found.subject, found.body) for found in copy.translations] == [
        ("ug", UYGHUR_SUBJECT, UYGHUR_BODY)
    ]


# What each reader sees around the body: the layout's words in the language of their version.
FOOTERS = {
    "ug": {
        "brand": "ئەنگلىيە ئۇيغۇرلار بىلەن ھەمدەملىك ھەرىكىتى",
        "unsubscribe": "مۇشتەرىلىكتىن چېكىنىش",
        "preferences": "تەڭشەكلىرىڭىزنى ئۆزگەرتىڭ",
        "browser": "توركۆرگۈچىڭىزدە كۆرۈڭ",
        "reply": "بۇ ئېلخەتكە جاۋاب قايتۇرۇڭ ياكى بىزگە خەت يېزىڭ:",
        "no_tracking": "ئېلخەتلىرىمىزنى ئاچقان-ئاچمىغانلىقىڭىزنى ھەرگىز ئىز قوغلىمايمىز.",
    },
    "zh": {
        "brand": "英国声援维吾尔人运动",
        "unsubscribe": "退订",
        "preferences": "更改偏好设置",
        "browser": "在浏览器中查看",
        "reply": "回复此邮件，或写信给我们：",
        "no_tracking": "我们从不追踪您是否打开我们的邮件。",
    },
    "en": {
        "brand": "Uyghur Solidarity Campaign UK",
        "unsubscribe": "Unsubscribe",
        "preferences": "Change your preferences",
        "browser": "View in your browser",
        "reply": "Reply to this email or write to us at",
        "no_tracking": "We never track whether you open our emails.",
    },
}


def test_the_footer_of_each_readers_mail_is_in_their_language(db, worker, smtp_sink):
    """Sent by the worker: a Uyghur reader's mail has a Uyghur footer (right to left), a Chinese reader's a Chinese
    one, an English reader's an English one; each footer link is that reader's own, and no English is left around a
    translated body."""
    addresses = readers("en", "ug", "zh")
    campaign = make_campaign("Solidarity news", "Dear {{ subscriber.name }},\n\nSee you on the 5th.\n")
    translate(campaign, "ug", UYGHUR_SUBJECT, UYGHUR_BODY)
    translate(campaign, "zh", CHINESE_SUBJECT, CHINESE_BODY)
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT)

    for locale, words in FOOTERS.items():
        (mail,) = smtp_sink.to(addresses[locale])
        html, text = mail.html(), mail.text().replace("\r\n", "\n")
        unsubscribe_url = mail.message["List-Unsubscribe"].strip("<>")
        assert re.search(rf'<a href="{re.escape(unsubscribe_url)}"[^>]*>{words["unsubscribe"]}</a>', html), locale
        assert re.search(rf"\n{words['unsubscribe']}[:：] {re.escape(unsubscribe_url)}\n", text), locale
        footer = html.split('class="footer"', 1)[1]
        for key in ("preferences", "browser", "reply", "no_tracking"):
            assert words[key] in footer and words[key] in text, (locale, key)
        assert words["brand"] in html and f"-- \n{words['brand']}\n" in text, locale
        assert 'href="mailto:' in footer, locale
        if locale != "en":
            english = FOOTERS["en"]
            for key in ("brand", "preferences", "browser", "reply", "no_tracking"):
                assert english[key] not in html and english[key] not in text, (locale, key)
            assert f">{english['unsubscribe']}</a>" not in html and f"\n{english['unsubscribe']}:" not in text
    (uyghur,) = smtp_sink.to(addresses["ug"])
    assert '<html lang="ug" dir="rtl">' in uyghur.html() and re.search(r'class="footer"[^>]*dir="rtl"', uyghur.html())
    (chinese,) = smtp_sink.to(addresses["zh"])
    assert '<html lang="zh-Hans" dir="ltr">' in chinese.html()
