"""Composing in a real browser, as an organiser does it: autosave (type, wait, reload, the text is there), the
warning before leaving with changes not saved, duplicating, templates (create one, start a campaign from it),
deleting a draft through its confirmation, and the campaigns table fitting its box at 1280 px and on a phone.

Pages are checked with axe-core (WCAG 2.2 A/AA) in light and dark, and saved as screenshots under
/tmp/shots-compose/ for a person to look at.
"""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, create_editor, heading, sign_in_editor
from tests.factories import add_confirmed, make_campaign, newsletter
from tests.waiting import wait_until
from uscmail.campaigns import services
from uscmail.campaigns.models import Campaign, CampaignStatus, SavedTemplate
from uscmail.extensions import db as database
from uscmail.models import utcnow

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-compose")  # noqa: S108 - where the screenshots are looked at
PHONE = {"width": 390, "height": 844}
WIDTHS = {"desktop": VIEWPORTS["desktop"], "phone": PHONE}
LONG_SUBJECT = (
    "Stand with Uyghur families: the March protest outside the embassy on Portland Place, and what comes next"
)


def stored_campaigns() -> list[Campaign]:
    database.session.rollback()
    campaigns = database.session.scalars(sa.select(Campaign).order_by(Campaign.id)).all()
    return campaigns


def signed_in_page(visit, viewport: str = "desktop", scheme: str = "light"):
    secret = create_editor()
    browser_visit = visit(viewport=WIDTHS[viewport], color_scheme=scheme)
    sign_in_editor(browser_visit.page, secret)
    return browser_visit, browser_visit.page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def test_a_new_campaign_saves_itself_and_is_there_after_a_reload(visit, db):
    add_confirmed(2)
    browser_visit, page = signed_in_page(visit)
    page.goto("/organisers/campaigns/new")
    page.get_by_label("Subject").fill("Typed and left alone")
    page.get_by_label("Newsletter").check()
    page.get_by_label("Body", exact=True).press_sequentially("In solidarity,\nUSC-UK", delay=10)

    status = page.locator("#autosave-status")
    expect(status).to_have_text(re.compile(r"^Saved at \d\d:\d\d\.$"), timeout=20_000)
    [campaign] = stored_campaigns()
    expect(page).to_have_url(f"{browser_visit.origin}/organisers/campaigns/{campaign.id}/edit")
    shot(page, "compose-autosaved")

    page.get_by_label("Body", exact=True).press("End")
    page.get_by_label("Body", exact=True).press_sequentially("\n\nA second paragraph.", delay=10)
    wait_until(lambda: stored_campaigns()[0].body.endswith("A second paragraph."), 20, "the second autosave")
    expect(status).to_have_text(re.compile(r"^Saved at"))
    page.reload()
    expect(page.get_by_label("Body", exact=True)).to_have_value("In solidarity,\nUSC-UK\n\nA second paragraph.")
    expect(page.get_by_label("Subject")).to_have_value("Typed and left alone")
    assert len(stored_campaigns()) == 1  # later autosaves changed the same draft
    # The preview shows the sign-off on two lines.
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("p", has_text="In solidarity,")).to_have_count(1)
    assert "In solidarity,<br>" in frame.locator("p", has_text="In solidarity,").inner_html()
    assert browser_visit.server_errors == [] and browser_visit.foreign_requests() == []


def test_leaving_with_changes_not_saved_asks_first(visit, db):
    add_confirmed(1)
    campaign = make_campaign("Leave me carefully")
    services.schedule(campaign, utcnow().replace(year=utcnow().year + 1), "test")  # scheduled: no autosave
    database.session.commit()
    browser_visit, page = signed_in_page(visit)
    page.goto(f"/organisers/campaigns/{campaign.id}/edit")
    dialogs, accept = [], {"leave": False}

    def answer(dialog):
        dialogs.append(dialog.type)
        if accept["leave"]:
            dialog.accept()
        else:
            dialog.dismiss()

    # Nothing changed yet: leaving asks nothing.
    page.on("dialog", answer)
    page.get_by_role("link", name="Back to the campaign").click()
    expect(heading(page)).to_have_text("Leave me carefully")
    assert dialogs == []

    page.goto(f"/organisers/campaigns/{campaign.id}/edit")
    page.get_by_label("Subject").press("End")
    page.get_by_label("Subject").press_sequentially(" (changed)")
    page.get_by_role("link", name="Back to the campaign").click()
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    expect(heading(page)).to_have_text("Edit “Leave me carefully”")  # stayed, with the change
    expect(page.get_by_label("Subject")).to_have_value("Leave me carefully (changed)")
    assert "data-autosave-url" not in page.content()  # a scheduled campaign is never autosaved

    dialogs.clear()
    accept["leave"] = True
    page.get_by_role("button", name="Save changes").click()  # saving is not leaving: no question
    expect(heading(page)).to_have_text("Leave me carefully (changed)")
    assert dialogs == []
    assert stored_campaigns()[0].subject == "Leave me carefully (changed)"
    assert browser_visit.server_errors == []


def test_duplicate_then_delete_the_copy_through_its_confirmation(visit, db):
    add_confirmed(1)
    original = make_campaign("Sent in March", body="Dear {{ subscriber.name }},\n\nIn solidarity,\nUSC-UK")
    database.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == original.id)
        .values(status=CampaignStatus.SENT, started_at=utcnow(), finished_at=utcnow(), snapshot_done=True)
    )
    database.session.commit()
    browser_visit, page = signed_in_page(visit)
    page.goto(f"/organisers/campaigns/{original.id}")
    page.get_by_role("button", name="Duplicate").click()

    expect(heading(page)).to_have_text("Edit “Sent in March”")
    expect(page.get_by_role("status").first).to_contain_text("new draft copied from the campaign")
    _, copy = stored_campaigns()
    assert copy.status is CampaignStatus.DRAFT and copy.body == original.body and copy.list_ids == [newsletter().id]
    page.get_by_label("Subject").fill("April, copied from March")
    page.get_by_role("button", name="Save changes").click()
    expect(heading(page)).to_have_text("April, copied from March")

    page.get_by_role("link", name="Delete draft…").click()
    expect(heading(page)).to_have_text("Delete the draft “April, copied from March”?")
    shot(page, "confirm-delete-draft")
    assert len(stored_campaigns()) == 2  # the question deletes nothing
    page.get_by_role("button", name="Delete the draft").click()
    expect(heading(page)).to_have_text("Campaigns")
    expect(page.get_by_role("status").first).to_contain_text("The draft “April, copied from March” is deleted.")
    assert [c.subject for c in stored_campaigns()] == ["Sent in March"]
    assert browser_visit.server_errors == []


def test_create_a_template_and_start_a_campaign_from_it(visit, db):
    add_confirmed(3)
    browser_visit, page = signed_in_page(visit)
    page.goto("/organisers/campaigns")
    page.get_by_role("link", name="Templates").click()
    expect(heading(page)).to_have_text("Campaign templates")
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Template name").fill("Monthly newsletter")
    page.get_by_label("Starting subject (optional)").fill("News from USC-UK")
    page.get_by_label("Starting body").fill("Dear {{ subscriber.name }},\n\n## This month\n\nIn solidarity,\nUSC-UK")
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("status").first).to_contain_text("The template “Monthly newsletter” is saved.")
    database.session.rollback()
    assert database.session.scalar(sa.select(SavedTemplate.name)) == "Monthly newsletter"

    page.get_by_role("link", name="New campaign from “Monthly newsletter”").click()
    expect(heading(page)).to_have_text("New campaign")
    expect(page.get_by_label("Subject")).to_have_value("News from USC-UK")
    page.get_by_label("Newsletter").check()
    expect(page.frame_locator("#preview-frame").locator("h2")).to_have_text("This month")
    page.get_by_role("button", name="Save draft").click()
    expect(heading(page)).to_have_text("News from USC-UK")
    [campaign] = stored_campaigns()
    assert campaign.body.replace("\r\n", "\n").endswith("In solidarity,\nUSC-UK")  # forms send CRLF
    assert browser_visit.server_errors == [] and browser_visit.foreign_requests() == []


# Fitting the screen, and axe


# Every cell of the table inside the table's box, and the box inside the page's main card.
CELLS_OUTSIDE = """
() => {
  const box = document.querySelector("#campaigns").closest(".table-scroll").getBoundingClientRect();
  const main = document.querySelector("main").getBoundingClientRect();
  const outside = [];
  if (box.right > main.right + 0.5 || box.left < main.left - 0.5) outside.push(`the table's box (${box.right})`);
  for (const cell of document.querySelectorAll("#campaigns th, #campaigns td")) {
    const r = cell.getBoundingClientRect();
    const head = cell.closest("thead");
    if (r.width === 0 || (head && head.getBoundingClientRect().width <= 1)) continue; // headings hidden on phones
    const where = `${cell.textContent.trim()} (${r.left}–${r.right})`;
    if (r.left < box.left - 0.5 || r.right > box.right + 0.5) outside.push(where);
    if (cell.scrollWidth > cell.clientWidth + 1) outside.push(`${cell.textContent.trim()} overflows itself`);
  }
  return outside;
}
"""


@pytest.mark.parametrize(("viewport", "scheme"), [("desktop", "light"), ("phone", "dark"), ("phone", "light")])
def test_the_campaigns_table_fits_and_the_new_pages_pass_axe(visit, db, viewport, scheme):
    add_confirmed(12)
    draft = make_campaign(LONG_SUBJECT, lists=[newsletter()])
    sent = make_campaign("Sent with numbers")
    database.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == sent.id)
        .values(status=CampaignStatus.SENT, started_at=utcnow(), finished_at=utcnow(), sent_count=12_345_678,
                failed_count=1_234, unsubscribe_count=7)
    )  # fmt: skip
    database.session.commit()
    browser_visit, page = signed_in_page(visit, viewport, scheme)
    inspect = Inspector(page, scheme, viewport, SHOTS, "compose")

    page.goto("/organisers/campaigns")
    inspect("campaigns-table", "Campaigns")
    assert page.evaluate(CELLS_OUTSIDE) == []
    expect(page.locator("#campaigns")).to_contain_text("12,345,678")
    page.goto(f"/organisers/campaigns/{sent.id}")
    expect(page.locator('[data-stat="unsubscribes"]')).to_have_text("7")
    inspect("campaign-sent", "Sent with numbers")
    page.goto(f"/organisers/campaigns/{draft.id}")
    inspect("campaign-draft", LONG_SUBJECT)
    page.get_by_role("link", name="Delete draft…").click()
    inspect("confirm-delete", f"Delete the draft “{LONG_SUBJECT}”?")
    page.goto("/organisers/campaigns/templates/new")
    page.get_by_label("Template name").fill("   ")  # blank to the server, though not to the browser's check
    page.get_by_label("Starting body").fill("## Protest")
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("alert")).to_contain_text("Please give the template a name.")
    inspect("template-error", "New template")
    page.get_by_label("Template name").fill("Protest reminder layout")
    page.get_by_label("Starting body").fill("## Protest\n\nIn solidarity,\nUSC-UK")
    page.get_by_role("button", name="Save template").click()
    inspect("templates", "Campaign templates")
    page.locator("#templates").get_by_role("link", name=re.compile("^Delete")).click()
    inspect("template-delete", "Delete the template “Protest reminder layout”?")
    page.goto("/organisers/campaigns/new")
    page.get_by_label("Subject").fill("Autosaved on this screen")
    page.get_by_label("Newsletter").check()
    page.get_by_label("Body", exact=True).fill("Hello")
    expect(page.locator("#autosave-status")).to_contain_text("Saved at", timeout=20_000)
    inspect("compose-saved", "New campaign")

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    assert browser_visit.server_errors == [] and browser_visit.foreign_requests() == []


@pytest.mark.parametrize("autosave_answers", [True, False], ids=["autosave-answers", "autosave-never-answers"])
def test_save_pressed_while_an_autosave_is_under_way(visit, db, autosave_answers):
    """Save waits for the autosave under way, so the form goes with the revision it made (one draft, no conflict);
    an autosave that does not answer is given up after a few seconds, and Save still saves."""
    browser_visit, page = signed_in_page(visit)
    held = []
    browser_visit.context.route("**/autosave", lambda route: held.append(route))  # let go by the test, or not
    page.goto("/organisers/campaigns/new")
    page.get_by_label("Subject").fill("Saved while saving")
    page.get_by_label("Newsletter").check()
    page.get_by_label("Body", exact=True).fill("In solidarity,\nUSC-UK")
    expect(page.locator("#autosave-status")).to_have_text("Saving…", timeout=20_000)
    assert len(held) == 1 and stored_campaigns() == []

    page.get_by_role("button", name="Save draft").click()
    page.wait_for_timeout(1000)
    expect(page.locator("#autosave-status")).to_have_text("Saving…")  # still waiting for the autosave
    if autosave_answers:
        held.pop().continue_()
    expect(page.get_by_role("status").filter(has_text="saved")).to_contain_text("The campaign is saved.")
    [campaign] = stored_campaigns()
    assert (campaign.subject, campaign.body) == ("Saved while saving", "In solidarity,\nUSC-UK")
    assert campaign.revision == (2 if autosave_answers else 1)  # the autosave's draft, then the Save on top of it
    expect(page).to_have_url(re.compile(rf"/organisers/campaigns/{campaign.id}$"))
    for route in held:
        route.abort()
    assert browser_visit.server_errors == []
