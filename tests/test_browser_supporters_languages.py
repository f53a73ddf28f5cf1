"""The supporters' pages of issue #13 and campaign mail in Uyghur and Chinese, in headless Chromium: the next protest
named in the reader's words on the home page, the confirmed page and the welcome mail; the "confirm you are a
person" page and its button; a campaign mail's brand and footer in the reader's language, right to left in Uyghur.
No English is left on them but what people typed. Screenshots land in test-artifacts/screenshots/.
"""

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from playwright.sync_api import expect

from tests.browser_support import SCREENSHOTS, axe_violations, heading
from tests.campaign_support import start, wait_for_status
from tests.conftest import wait_for_signups
from tests.factories import make_campaign, make_event, make_subscriber, newsletter
from tests.test_browser_languages import DESKTOP, LINK, PHONE, WORDS, mail_language, path_of, screenshot_mail
from uscmail.campaigns import translations
from uscmail.campaigns.models import CampaignStatus

pytestmark = pytest.mark.browser

# What the pages and mails of this module say, beyond the journey's words in tests/test_browser_languages.py.
MORE_WORDS = {
    "ug": {
        "human_title": "يەنە بىر قەدەم",
        "human_button": "ھەئە، مەن ئادەم: مېنى مۇشتەرى قىلىڭ",
        "next_protest": "كېيىنكى نامايىشىمىز:",
        "date_and_place": "{when}، {place}.",
    },
    "zh": {
        "human_title": "还差一步",
        "human_button": "是的，我是真人：为我订阅",
        "next_protest": "我们的下一次抗议活动：",
        "date_and_place": "{when}，{place}。",
    },
}

PLACE = "Chinese Embassy, 49–51 Portland Place"
LATIN_WORD = re.compile(r"[A-Za-z]+")
CLDR = {"ug": "ug", "zh": "zh_Hans_CN"}


def next_protest_words(code: str) -> str:
    """The next 5th of a month whose 2 pm (London) is ahead, as the language writes it (CLDR's date, 24-hour time)."""
    london = ZoneInfo("Europe/London")
    now = datetime.now(london)
    day = now.date()
    while not (day.day == 5 and datetime.combine(day, time(14, 0), london) > now):
        day += timedelta(days=1)
    return f"{format_date(day, 'full', locale=CLDR[code])} 14:00"


def english_left(text: str, *typed: str) -> list[str]:
    """Latin-script words in a text, apart from links, what people typed (an address, a place) and our name."""
    for kept in typed:
        text = text.replace(kept, " ")
    return [word for word in LATIN_WORD.findall(re.sub(r"https?://\S+", " ", text)) if word not in ("USC", "UK")]


def public_text(page) -> str:
    """What a visitor reads on a page: the main part and the footer (the switcher names every language)."""
    return page.locator("main").inner_text() + "\n" + page.locator("footer").inner_text()


def screenshot_both(page, name: str) -> None:
    """Screenshots of the page at phone and desktop widths; axe-core must find nothing at either."""
    for viewport, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=SCREENSHOTS / f"lang-{name}-{viewport}.png", full_page=True)
        assert axe_violations(page) == [], (name, viewport)


@pytest.mark.parametrize("code", ["ug", "zh"])
def test_a_too_fast_signup_is_asked_and_told_the_next_protest_in_the_readers_language(
    visit, worker, smtp_sink, db, app, monkeypatch, code
):
    """The home page names the next protest in the reader's words; the form sent back too fast gets the "confirm you
    are a person" page in that language, its button goes on, and the confirmed page and the welcome mail name the
    protest the same way. No English is left but the place and the address the person typed."""
    monkeypatch.setitem(app.config, "SIGNUP_MIN_FILL_SECONDS", 60)
    make_event(first_date=date.today() - timedelta(days=400), start_time=time(14, 0), place=PLACE)
    words, when, address = {**WORDS[code], **MORE_WORDS[code]}, next_protest_words(code), f"quick.{code}@example.org"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser_visit = visit(viewport=PHONE, locale="en-GB")
    page = browser_visit.page

    page.goto(f"/?lang={code}")
    expect(page.locator("#next-protest")).to_contain_text(when)
    assert english_left(public_text(page), PLACE) == []
    screenshot_both(page, f"{code}-home-next-protest")
    page.get_by_role("main").get_by_role("link", name=words["button"]).click()
    page.get_by_label(words["email"]).fill(address)
    page.get_by_label(words["newsletter"], exact=True).check()
    page.get_by_role("button", name=words["button"]).click()

    expect(heading(page)).to_have_text(words["human_title"])
    expect(page.locator("main strong")).to_have_text(address)
    expect(page.locator("main li")).to_have_text([words["newsletter"]])
    assert english_left(public_text(page), address) == []
    screenshot_both(page, f"{code}-human-check")
    page.get_by_role("button", name=words["human_button"]).click()
    expect(heading(page)).to_have_text(words["thanks"])
    wait_for_signups(db)

    [confirmation] = smtp_sink.wait_for(address)
    assert confirmation.message["Subject"] == words["confirm_subject"]
    reader = visit(viewport=PHONE, locale="en-GB").page
    reader.goto(path_of(LINK.search(confirmation.text())[0]))
    reader.get_by_role("button", name=words["confirm_button"]).click()
    expect(heading(reader)).to_have_text(words["confirmed_title"])
    expect(reader.locator("#next-protest")).to_contain_text(when)
    assert english_left(public_text(reader), PLACE) == []
    screenshot_both(reader, f"{code}-confirmed-next-protest")

    welcome = smtp_sink.wait_for(address, count=2)[1]
    text = welcome.text()
    assert f"{words['next_protest']} {words['date_and_place'].format(when=when, place=PLACE)}" in text
    assert english_left(text, PLACE) == [], text
    assert mail_language(welcome) == (words["tag"], words["dir"])
    screenshot_mail(visit, welcome, f"{code}-welcome-next-protest")
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []


UYGHUR_BODY = "ھۆرمەتلىك {{ subscriber.name }}،\n\nھەر ئاينىڭ 5-كۈنى **پورتلاند پلەيس**تا كۆرۈشەيلى.\n"
UYGHUR_FOOTER = ("مۇشتەرىلىكتىن چېكىنىش", "تەڭشەكلىرىڭىزنى ئۆزگەرتىڭ", "توركۆرگۈچىڭىزدە كۆرۈڭ")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_uyghur_readers_campaign_mail_is_uyghur_and_right_to_left_around_the_body(
    visit, worker, smtp_sink, db, scheme
):
    """A campaign with a Uyghur translation, sent by the worker: the Uyghur reader's mail, as a mail client shows it,
    runs right to left with its brand, footer links (their own) and promise in Uyghur, and passes axe-core."""
    subscriber = make_subscriber(f"campaign.ug.{scheme}@example.org", name="گۈلنار", lists=[newsletter()])
    subscriber.locale = "ug"
    db.session.commit()
    campaign = make_campaign()
    fields = translations.TranslationFields(subject="ئۇيغۇرلار بىلەن ھەمكارلىق", body=UYGHUR_BODY)
    translations.save_translation(campaign, "ug", fields, "test")
    db.session.commit()
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT)
    (mail,) = smtp_sink.to(subscriber.email)
    assert mail_language(mail) == ("ug", "rtl")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, size in (("phone", PHONE), ("desktop", {"width": 700, "height": 900})):
        page = visit(viewport=size, color_scheme=scheme).page
        page.route("**/*", lambda route: route.abort())
        page.set_content(mail.html())
        footer = page.locator(".footer")
        unsubscribe = footer.get_by_role("link", name=UYGHUR_FOOTER[0])
        expect(unsubscribe).to_have_attribute("href", mail.message["List-Unsubscribe"].strip("<>"))
        for words in UYGHUR_FOOTER[1:]:
            expect(footer.get_by_role("link", name=words)).to_be_visible()
        assert english_left(page.locator("body").inner_text(), "news@uscuk.test") == []
        # Mirrored: the footer's first link starts at the right edge of the card, the brand too.
        card, brand = page.locator(".card").bounding_box(), page.locator(".brand").bounding_box()
        first = unsubscribe.bounding_box()
        assert first["x"] + first["width"] > card["x"] + card["width"] - 40, (first, card)
        assert page.evaluate("getComputedStyle(document.querySelector('.brand')).direction") == "rtl", brand
        assert axe_violations(page) == []
        page.screenshot(path=SCREENSHOTS / f"lang-ug-campaign-{viewport}-{scheme}.png", full_page=True)
