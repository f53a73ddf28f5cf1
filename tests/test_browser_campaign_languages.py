"""Writing campaigns and reminders in Uyghur and Chinese, in a real browser: an editor translates a campaign and an
event's reminders through the pages, sees the right-to-left preview, and the pages pass axe-core and fit the screen.
Screenshots go to /tmp/uscmail-campaign-language-screenshots/ for a person to look at."""

import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, create_editor, sign_in_editor
from tests.factories import add_confirmed, make_campaign, make_event
from uscmail.campaigns.models import CampaignTranslation
from uscmail.extensions import db as database
from uscmail.reminders.models import EventTranslation
from uscmail.reminders.planning import DEFAULT_TEMPLATES

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "uscmail-campaign-language-screenshots"
UYGHUR_SUBJECT = "ئۇيغۇرلار بىلەن ھەمكارلىق"
UYGHUR_BODY = "ھۆرمەتلىك {{ subscriber.name }}،\n\nھەر ئاينىڭ 5-كۈنى **پورتلاند پلەيس**تا كۆرۈشەيلى."


@pytest.mark.parametrize(("scheme", "viewport"), [("light", "desktop"), ("dark", "phone")])
def test_an_editor_translates_a_campaign_and_an_events_reminders(visit, db, scheme, viewport):
    secret = create_editor()
    add_confirmed(3)
    campaign = make_campaign("Solidarity news")
    event = make_event()
    browser_visit = visit(viewport=VIEWPORTS[viewport], color_scheme=scheme)
    page = browser_visit.page
    inspect = Inspector(page, scheme, viewport, SCREENSHOTS, "languages")
    sign_in_editor(page, secret)

    page.goto(f"/organisers/campaigns/{campaign.id}")
    expect(page.locator("#campaign-languages")).to_contain_text("English")
    page.get_by_role("link", name="Translate…").click()
    inspect("campaign-languages", "Languages of “Solidarity news”")
    page.get_by_role("link", name="Translate into Uyghur (ئۇيغۇرچە)").click()
    page.get_by_label("Subject").fill(UYGHUR_SUBJECT)
    page.get_by_label("Body", exact=True).fill(UYGHUR_BODY)
    inspect("campaign-translation-filled", "Uyghur (ئۇيغۇرچە) translation of “Solidarity news”")
    page.get_by_role("button", name="Save the translation").click()
    expect(page.get_by_role("status")).to_contain_text("The Uyghur (ئۇيغۇرچە) translation is saved.")
    expect(page.locator("#campaign-languages")).to_contain_text("English, Uyghur (ئۇيغۇرچە)")
    page.get_by_role("link", name="Translate…").click()
    page.get_by_role("link", name="Edit").click()
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("html")).to_have_attribute("dir", "rtl")
    expect(frame.locator("body")).to_contain_text("ھۆرمەتلىك Alex،")
    inspect("campaign-translation-saved", "Uyghur (ئۇيغۇرچە) translation of “Solidarity news”")
    database.session.rollback()
    saved = database.session.scalars(sa.select(CampaignTranslation)).one()
    assert (saved.locale, saved.subject) == ("ug", UYGHUR_SUBJECT)

    page.goto(f"/organisers/events/{event.id}")
    page.get_by_role("link", name="Add Chinese (简体中文)").click()
    expect(page.get_by_label("Body", exact=True)).to_have_value(DEFAULT_TEMPLATES["zh"][1])
    inspect("event-translation", "Chinese (简体中文) reminders of “Monthly protest at the Chinese Embassy”")
    page.get_by_role("button", name="Save the Chinese (简体中文) templates").click()
    expect(page.get_by_role("status")).to_contain_text("The Chinese (简体中文) reminder templates are saved.")
    expect(page.locator("#event-languages")).to_contain_text("English, Chinese (简体中文)")
    database.session.rollback()
    assert database.session.scalars(sa.select(EventTranslation.locale)).all() == ["zh"]

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []
