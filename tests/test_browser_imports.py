"""The import page in a real browser: an editor fills the form (a CSV file, one list, the consent basis), runs a dry
run, reads its result and imports the same file for real from that page; the subscribers are then in the database.

Each page is checked with axe-core (WCAG 2.2 A/AA) in light and dark at desktop and phone widths, must not scroll
sideways, and is saved as a screenshot under /tmp/shots-fixes/ for a person to look at.
"""

import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, create_editor, heading, sign_in_editor
from uscmail.models import MailingList, Subscriber, Subscription, SubscriptionStatus

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "shots-fixes"
PEOPLE = "email,name\ngulnar@example.org,Gülnar\nli.wei@example.org,李伟\ngulnar@example.org,Twice\nnot-an-address,X\n"


def subscriptions(db) -> dict[str, dict[str, str]]:
    """Each address in the database, with its subscriptions' statuses by list slug."""
    db.session.rollback()
    rows = db.session.execute(
        sa.select(Subscriber.email, MailingList.slug, Subscription.status)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .join(MailingList, MailingList.id == Subscription.list_id)
    )
    found: dict[str, dict[str, str]] = {}
    for email, slug, status in rows:
        found.setdefault(email, {})[slug] = status
    return found


def count(page, label: str):
    """The number cell beside a row heading of the job page's table of counts."""
    return page.get_by_role("row", name=label, exact=False).get_by_role("cell")


def test_an_editor_fills_the_import_form_runs_a_dry_run_then_imports_for_real(visit, db, worker, tmp_path):
    secret = create_editor()
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(PEOPLE, encoding="utf-8")
    browser = visit(viewport=VIEWPORTS["desktop"])
    page = browser.page
    sign_in_editor(page, secret)
    page.get_by_role("link", name="Import", exact=True).click()
    expect(heading(page)).to_have_text("Import subscribers")

    page.get_by_label("CSV file").set_input_files(csv_file)
    page.get_by_role("checkbox", name="Newsletter").check()  # one list of two: the form must still go
    expect(page.get_by_role("checkbox", name="London protest reminders")).not_to_be_checked()
    page.get_by_role("radio", name="Already consented elsewhere").check()
    page.get_by_label("Where the consent comes from").fill("Sign-up sheet, Portland Place, October")
    expect(page.get_by_role("checkbox", name="Dry run")).to_be_checked()
    page.get_by_role("button", name="Start the import").click()

    expect(heading(page)).to_have_text("Import of people.csv (dry run)")
    expect(page.locator("#import-status")).to_have_text("Done", timeout=30_000)  # the page refreshes itself
    expect(page.locator("#import-summary")).to_contain_text("nothing was written")
    expect(count(page, "Rows read")).to_have_text("4")
    expect(count(page, "Would be subscribed")).to_have_text("2")
    expect(count(page, "Left out: Appears twice in the file")).to_have_text("1")
    expect(count(page, "Left out: Not a valid email address")).to_have_text("1")
    expect(page.get_by_text("Newsletter", exact=True)).to_be_visible()
    expect(page.get_by_text("Already consented elsewhere: Sign-up sheet, Portland Place, October")).to_be_visible()
    assert "duplicate_in_file" not in page.content() and "prior_consent" not in page.content()
    assert subscriptions(db) == {}

    page.get_by_role("button", name="Import for real").click()
    expect(heading(page)).to_have_text("Import of people.csv")
    expect(page.locator("#import-status")).to_have_text("Done", timeout=30_000)
    expect(count(page, "Subscribed")).to_have_text("2")
    confirmed = SubscriptionStatus.CONFIRMED
    assert subscriptions(db) == {
        "gulnar@example.org": {"newsletter": confirmed},
        "li.wei@example.org": {"newsletter": confirmed},
    }
    assert browser.server_errors == [] and browser.foreign_requests() == []


def test_the_form_says_what_is_missing_without_losing_what_was_entered(visit, db):
    secret = create_editor()
    browser = visit(viewport=VIEWPORTS["desktop"])
    page = browser.page
    sign_in_editor(page, secret)
    page.goto("/organisers/import")
    # The browser itself lets the form go without a list ticked (no `required` on each box); the server answers.
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "a.csv", "mimeType": "text/csv", "buffer": b"email\na@example.org\n"}]
    )
    page.get_by_role("radio", name="Ask each of them to confirm").check()
    page.get_by_label("Where the consent comes from").fill("Stall")
    page.get_by_role("button", name="Start the import").click()
    expect(page.locator("#import-error")).to_have_text("Choose at least one list to import into.")
    expect(page.get_by_label("Where the consent comes from")).to_have_value("Stall")
    expect(page.get_by_role("radio", name="Ask each of them to confirm")).to_be_checked()
    assert subscriptions(db) == {}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_the_import_pages_are_accessible_and_fit(visit, db, worker, tmp_path, scheme, viewport):
    secret = create_editor()
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(PEOPLE, encoding="utf-8")
    browser = visit(viewport=VIEWPORTS[viewport], color_scheme=scheme)
    page = browser.page
    check = Inspector(page, scheme, viewport, SCREENSHOTS, "import")
    sign_in_editor(page, secret)
    page.goto("/organisers/import")
    check("form", "Import subscribers")
    page.get_by_label("CSV file").set_input_files(csv_file)
    page.get_by_role("checkbox", name="Newsletter").check()
    page.get_by_role("radio", name="Already consented elsewhere").check()
    page.get_by_label("Where the consent comes from").fill("Sign-up sheet, Portland Place, October")
    page.get_by_role("button", name="Start the import").click()
    expect(page.locator("#import-status")).to_have_text("Done", timeout=30_000)
    check("dry-run", "Import of people.csv (dry run)")
    assert not check.problems, check.report()
