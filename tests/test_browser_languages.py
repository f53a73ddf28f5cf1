"""The supporter journey in Uyghur, Chinese and English in headless Chromium: pick the language on the signup page,
sign up, read the confirmation mail, confirm, get the welcome mail; the preference centre changes the language of
the next mail; every public page is axe-clean and mirrored in Uyghur, light and dark, at phone and desktop widths.

Screenshots (pages, and mails rendered as a mail client shows them) land in test-artifacts/screenshots/ for a
person to look at.
"""

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import SCREENSHOTS, Inspector, heading
from tests.conftest import wait_for_signups
from tests.factories import sign_up_subscriber
from uscmail.links import make_confirm_token, make_unsubscribe_token
from uscmail.models import Consent, Subscriber
from uscmail.subscriptions import mails
from uscmail.subscriptions.consent import CURRENT_VERSIONS, WORDINGS, wording_sha256

pytestmark = pytest.mark.browser

PUBLIC_ORIGIN = "https://lists.uscuk.test"
LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# What a person sees and presses in each language, and what the mails say.
WORDS = {
    "ug": {
        "switch": "ئۇيغۇرچە",
        "tag": "ug",
        "dir": "rtl",
        "subscribe_title": "USC-UK ئېلخەتلىرىگە مۇشتەرى بولۇڭ",
        "email": "ئېلخەت ئادرېسى",
        "name": "ئىسىم (ئىختىيارىي)",
        "newsletter": "خەۋەرنامە",
        "button": "مۇشتەرى بولۇش",
        "thanks": "ئېلخەت ساندۇقىڭىزنى تەكشۈرۈڭ",
        "confirm_subject": "USC-UK غا مۇشتەرى بولغانلىقىڭىزنى جەزملەشتۈرۈڭ",
        "greeting": "ياخشىمۇسىز گۈلنار،",
        "confirm_title": "مۇشتەرىلىكىڭىزنى جەزملەشتۈرۈڭ",
        "confirm_button": "مۇشتەرىلىكىمنى جەزملەشتۈرۈش",
        "confirmed_title": "مۇشتەرى بولدىڭىز",
        "welcome_subject": "ئەنگلىيە ئۇيغۇرلار بىلەن ھەمدەملىك ھەرىكىتىگە خۇش كەپسىز",
        "welcome_line": "خۇش كەپسىز، گۈلنار!",
        "display_name": "گۈلنار",
    },
    "zh": {
        "switch": "简体中文",
        "tag": "zh-Hans",
        "dir": "ltr",
        "subscribe_title": "订阅 USC-UK 的邮件",
        "email": "电子邮件地址",
        "name": "姓名（选填）",
        "newsletter": "通讯",
        "button": "订阅",
        "thanks": "请查看您的收件箱",
        "confirm_subject": "请确认您对 USC-UK 的订阅",
        "greeting": "李梅，您好：",
        "confirm_title": "确认您的订阅",
        "confirm_button": "确认我的订阅",
        "confirmed_title": "订阅成功",
        "welcome_subject": "欢迎加入英国声援维吾尔人运动",
        "welcome_line": "李梅，欢迎您！",
        "display_name": "李梅",
    },
    "en": {
        "switch": "English",
        "tag": "en",
        "dir": "ltr",
        "subscribe_title": "Subscribe to USC-UK emails",
        "email": "Email address",
        "name": "Name (optional)",
        "newsletter": "Newsletter",
        "button": "Subscribe",
        "thanks": "Check your inbox",
        "confirm_subject": "Please confirm your subscription to USC-UK",
        "greeting": "Hello Amina,",
        "confirm_title": "Confirm your subscription",
        "confirm_button": "Confirm my subscription",
        "confirmed_title": "You're subscribed",
        "welcome_subject": "Welcome to the Uyghur Solidarity Campaign UK",
        "welcome_line": "Welcome, Amina!",
        "display_name": "Amina",
    },
}
# The language the browser asks for before the person picks one: never the one they pick.
BROWSER_LANGUAGE = {"ug": "en-GB", "zh": "en-GB", "en": "zh-CN"}


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_ORIGIN + "/"), url
    return url.removeprefix(PUBLIC_ORIGIN)


def mail_language(mail) -> tuple[str, str]:
    """The lang and dir of the mail's HTML part's <html> element."""
    found = re.search(r'<html lang="([^"]+)" dir="([^"]+)">', mail.html())
    assert found, mail.html()[:200]
    return found.group(1), found.group(2)


def screenshot_mail(visit, mail, name: str) -> None:
    """Render a mail's HTML part as a mail client does (nothing fetched) at phone and desktop widths."""
    for label, viewport in (("phone", PHONE), ("desktop", {"width": 700, "height": 900})):
        page = visit(viewport=viewport).page
        page.route("**/*", lambda route: route.abort())
        page.set_content(mail.html())
        page.screenshot(path=SCREENSHOTS / f"lang-{name}-{label}.png", full_page=True)


@pytest.mark.parametrize("code", ["ug", "zh", "en"])
def test_pick_a_language_sign_up_confirm_and_get_the_mails_in_it(visit, worker, smtp_sink, db, code):
    """The switcher on the signup page, the form filled in and sent, the confirmation mail, the page it links to,
    the welcome mail: all in the chosen language, and the subscriber's language and consent wording stored."""
    words = WORDS[code]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser_visit = visit(viewport=DESKTOP, locale=BROWSER_LANGUAGE[code])
    page = browser_visit.page
    page.goto("/subscribe")
    expect(page.locator("html")).not_to_have_attribute("lang", words["tag"])
    page.get_by_role("navigation").get_by_role("link", name=words["switch"]).click()
    expect(page.locator("html")).to_have_attribute("lang", words["tag"])
    expect(page.locator("html")).to_have_attribute("dir", words["dir"])
    expect(heading(page)).to_have_text(words["subscribe_title"])
    expect(page.locator("#consent")).to_contain_text(WORDINGS[CURRENT_VERSIONS[code]])
    for viewport, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=SCREENSHOTS / f"lang-{code}-subscribe-{viewport}.png", full_page=True)
    page.set_viewport_size(DESKTOP)

    address = f"language.{code}@example.org"
    page.get_by_label(words["email"]).fill(address)
    page.get_by_label(words["name"]).fill(words["display_name"])
    page.get_by_label(words["newsletter"], exact=True).check()
    page.get_by_role("button", name=words["button"]).click()
    expect(heading(page)).to_have_text(words["thanks"])
    wait_for_signups(db)

    [confirmation] = smtp_sink.wait_for(address)
    assert confirmation.message["Subject"] == words["confirm_subject"]
    assert confirmation.message["Content-Language"] == words["tag"]
    assert confirmation.text().startswith(words["greeting"])
    assert mail_language(confirmation) == (words["tag"], words["dir"])
    confirm_path = LINK.search(confirmation.text()).group(1)

    # The link is opened where the mail is read: a browser with no language cookie, asking for English (a link in a
    # Uyghur or Chinese mail says its language; one in an English mail leaves it to the browser).
    reader = visit(viewport=DESKTOP, locale="en-GB").page
    reader.goto(confirm_path)
    expect(reader.locator("html")).to_have_attribute("lang", words["tag"])
    expect(heading(reader)).to_have_text(words["confirm_title"])
    expect(reader.locator("main li")).to_have_text([words["newsletter"]])
    reader.get_by_role("button", name=words["confirm_button"]).click()
    expect(heading(reader)).to_have_text(words["confirmed_title"])
    for viewport, size in (("phone", PHONE), ("desktop", DESKTOP)):
        reader.set_viewport_size(size)
        reader.screenshot(path=SCREENSHOTS / f"lang-{code}-confirmed-{viewport}.png", full_page=True)

    welcome = smtp_sink.wait_for(address, count=2)[1]
    assert welcome.message["Subject"] == words["welcome_subject"]
    assert welcome.message["Content-Language"] == words["tag"]
    assert welcome.text().startswith(words["welcome_line"])
    assert words["newsletter"] in welcome.text()
    assert mail_language(welcome) == (words["tag"], words["dir"])
    screenshot_mail(visit, welcome, f"{code}-welcome")
    screenshot_mail(visit, confirmation, f"{code}-confirmation")

    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == address))
    assert subscriber.locale == code
    consent = db.session.scalar(sa.select(Consent).where(Consent.subscriber_id == subscriber.id))
    version = CURRENT_VERSIONS[code]
    assert (consent.wording_version, consent.wording_sha256) == (version, wording_sha256(WORDINGS[version]))
    assert consent.confirmed_at is not None
    db.session.rollback()
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []


def test_the_browsers_language_is_used_when_none_is_picked(visit, worker, smtp_sink, db):
    """No choice made: a browser asking for Uyghur gets the form in Uyghur, and the subscriber is stored as Uyghur."""
    words = WORDS["ug"]
    page = visit(locale="ug-CN").page
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.get_by_role("main").get_by_role("link", name=words["button"]).click()
    expect(heading(page)).to_have_text(words["subscribe_title"])
    page.get_by_label(words["email"]).fill("browser.language@example.org")
    page.get_by_label(words["newsletter"], exact=True).check()
    page.get_by_role("button", name=words["button"]).click()
    expect(heading(page)).to_have_text(words["thanks"])
    wait_for_signups(db)
    [mail] = smtp_sink.wait_for("browser.language@example.org")
    assert mail.message["Subject"] == words["confirm_subject"]
    stored = db.session.scalar(sa.select(Subscriber.locale).where(Subscriber.email == "browser.language@example.org"))
    assert stored == "ug"
    db.session.rollback()


def test_the_preference_centre_changes_the_language_and_the_next_mail_follows(visit, worker, smtp_sink, db):
    """An English subscriber picks Chinese in the preference centre; the preference link mail they ask for next
    (from an unsubscribe page) comes in Chinese and opens the preference centre in Chinese."""
    subscriber = sign_up_subscriber("changes.language@example.org", name="Mei")
    page = visit(locale="en-GB").page
    page.goto(path_of(mails.preferences_url(subscriber)))
    expect(page.get_by_label("English")).to_be_checked()
    page.get_by_label("简体中文").check()
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
    expect(page.get_by_label("简体中文")).to_be_checked()
    db.session.rollback()
    assert db.session.get(Subscriber, subscriber.id).locale == "zh"

    page.goto(path_of(mails.unsubscribe_url(subscriber, [subscriber.subscriptions[0].list_id])))
    page.get_by_role("button", name="Email me a link to my preferences").click()
    expect(heading(page)).to_have_text("Check your inbox")
    [mail] = smtp_sink.wait_for("changes.language@example.org")
    assert mail.message["Subject"] == "您的 USC-UK 偏好设置链接"
    assert mail.text().startswith("Mei，您好：")
    assert mail_language(mail) == ("zh-Hans", "ltr")
    page.goto(path_of(re.search(r"https://\S+/preferences/\S+", mail.text())[0]))
    expect(heading(page)).to_have_text("您的偏好设置")
    db.session.rollback()


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("code", ["ug", "zh"])
def test_every_public_page_in_uyghur_and_chinese_is_accessible_fits_and_mirrors(
    visit, worker, smtp_sink, db, code, scheme, viewport
):
    """axe-core WCAG 2.2 AA, no sideways scrolling and a screenshot on each public page; in Uyghur the layout is
    mirrored: the brand on the right, the switcher on the left, the consent rule on the right, boxes right of labels."""
    size = PHONE if viewport == "phone" else DESKTOP
    browser_visit = visit(viewport=size, color_scheme=scheme)
    page = browser_visit.page
    inspect = Inspector(page, scheme, viewport, SCREENSHOTS, f"lang-{code}")
    subscriber = sign_up_subscriber(f"pages.{code}.{scheme}.{viewport}@example.org", confirmed=False)
    subscriber.locale = code
    db.session.commit()
    confirm_path = "/confirm/" + make_confirm_token(subscriber.public_id, subscriber.confirm_nonce)
    list_ids = [s.list_id for s in subscriber.subscriptions]

    page.goto(f"/?lang={code}")
    inspect("home", "USC-UK بىلەن ئالاقىدە بولۇڭ" if code == "ug" else "与 USC-UK 保持联系")
    page.goto("/subscribe")
    inspect("subscribe", WORDS[code]["subscribe_title"])
    if code == "ug":
        rtl = page.evaluate(
            """() => ({
              brand: document.querySelector('.brand').getBoundingClientRect().right,
              switcher: document.querySelector('.language-switcher').getBoundingClientRect().right,
              end: document.querySelector('.site-header .wrap').getBoundingClientRect().right,
              rule: getComputedStyle(document.querySelector('.consent')).borderRightWidth,
              box: document.querySelector('.choice input').getBoundingClientRect().left,
              label: document.querySelector('.choice label').getBoundingClientRect().left,
            })"""
        )
        assert rtl["brand"] > rtl["end"] - 30 and rtl["rule"] == "4px" and rtl["box"] > rtl["label"], rtl
        if viewport == "desktop":
            assert rtl["switcher"] < rtl["brand"] - 300, rtl  # on the left, on the same line
    page.get_by_role("button", name=WORDS[code]["button"]).click()
    expect(page.get_by_role("alert")).to_be_visible()
    inspect("subscribe-error", WORDS[code]["subscribe_title"])
    page.goto(confirm_path)
    inspect("confirm", WORDS[code]["confirm_title"])
    page.goto(path_of(mails.preferences_url(subscriber, code)))
    inspect("preferences", "تەڭشەكلىرىڭىز" if code == "ug" else "您的偏好设置")
    page.goto(path_of(mails.unsubscribe_url(subscriber, list_ids, code)))
    inspect("unsubscribe", "مۇشتەرىلىكتىن چېكىنىش" if code == "ug" else "退订")
    page.goto("/events")
    inspect("events", "نامايىشلار" if code == "ug" else "抗议活动")
    page.goto("/archive")
    inspect("archive", "خەۋەرنامە ئارخىپى" if code == "ug" else "通讯存档")
    assert page.goto("/no-such-page").status == 404
    inspect("not-found", "بۇ ئادرېستا بەت يوق." if code == "ug" else "此地址没有页面。")
    token = make_unsubscribe_token(subscriber.public_id, list_ids)
    assert page.goto(f"/unsubscribe/{token}x").status == 400
    inspect(
        "bad-request",
        "بۇ تەلەپتە بىر خاتالىق بار. ئارقىغا قايتىپ قايتا سىناڭ." if code == "ug" else "该请求有误。请返回后重试。",
    )

    assert not inspect.problems, f"accessibility or layout problems ({code}, {scheme}, {viewport}):\n{inspect.report()}"
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []
