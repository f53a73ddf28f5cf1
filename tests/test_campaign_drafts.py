"""Drafts through the test client: autosave (JSON, CSRF, revisions that refuse a save based on an older one, never a
campaign that is not a draft), saving the form over a newer revision, duplicating, and deleting after a
confirmation. Hostile input gets a 4xx with a message and stores nothing."""

import re

import pytest
import sqlalchemy as sa

from tests.api_support import audit_actions
from tests.conftest import form_fields
from tests.factories import make_campaign, make_list, newsletter
from tests.pages import alert, compose_data, flashed, fresh, post_from, text
from uscmail.campaigns.models import Campaign, CampaignKind, CampaignStatus
from uscmail.extensions import db as database
from uscmail.models import utcnow

BASE = "/organisers/campaigns"
JSON = {"Accept": "application/json"}


def campaign_rows(db) -> list[Campaign]:
    return fresh(db).scalars(sa.select(Campaign).order_by(Campaign.id)).all()


def revision_on_page(page: str) -> str:
    return re.search(r'id="revision" name="revision" type="hidden" value="(\d+)"', page).group(1)


def autosave(browser, path: str, page: str, **changes):
    """What campaigns.js sends: the whole form, with its CSRF token and revision, asking for JSON."""
    data = {**form_fields(page), **compose_data(**changes)}
    stored = re.search(r'id="revision" name="revision" type="hidden" value="(\d+)"', page)
    if "revision" not in changes and stored:
        data["revision"] = stored.group(1)
    return browser.post(path, data=data, headers=JSON)


def test_the_first_autosave_makes_the_draft_and_later_ones_change_it(db, sign_in_as):
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/new"))
    assert f'data-autosave-url="{BASE}/autosave"' in page and 'id="autosave-status" role="status"' in page

    first = autosave(editor, f"{BASE}/autosave", page, subject="Typed, not saved by hand")

    assert first.status_code == 200 and first.mimetype == "application/json"
    [campaign] = campaign_rows(db)
    assert campaign.subject == "Typed, not saved by hand" and campaign.status is CampaignStatus.DRAFT
    assert first.json["campaign_id"] == campaign.id and first.json["revision"] == 1
    assert re.fullmatch(r"\d\d:\d\d", first.json["saved_at"])
    assert first.json["edit_url"] == f"{BASE}/{campaign.id}/edit"
    assert first.json["autosave_url"] == f"{BASE}/{campaign.id}/autosave"

    second = autosave(editor, first.json["autosave_url"], page, subject="Changed by autosave", revision="1")
    assert second.status_code == 200 and second.json["revision"] == 2
    [campaign] = campaign_rows(db)
    assert (campaign.subject, campaign.revision) == ("Changed by autosave", 2)
    assert [action for action, *_ in audit_actions(db, "campaign.")] == ["campaign.create", "campaign.update"]
    assert audit_actions(db, "campaign.update")[0][3] == {"autosave": True}


def test_two_tabs_cannot_silently_overwrite_each_other(db, sign_in_as):
    campaign = make_campaign("Opened in two tabs")
    editor = sign_in_as("editor")
    tab_one = text(editor.get(f"{BASE}/{campaign.id}/edit"))
    tab_two = text(editor.get(f"{BASE}/{campaign.id}/edit"))
    assert revision_on_page(tab_one) == revision_on_page(tab_two) == "1"

    assert autosave(editor, f"{BASE}/{campaign.id}/autosave", tab_one, subject="Tab one's words").status_code == 200
    late = autosave(editor, f"{BASE}/{campaign.id}/autosave", tab_two, subject="Tab two's words")

    assert late.status_code == 409 and late.json["stop"] is True
    assert "changed in another tab or by another organiser" in late.json["error"]
    assert "reload the page" in late.json["error"]
    # Saving the whole form from the stale tab is refused the same way, and shows the organiser their own text.
    refused = editor.post(
        f"{BASE}/{campaign.id}/edit",
        data={**form_fields(tab_two), **compose_data(subject="Tab two, saved by hand"), "revision": "1"},
    )
    assert refused.status_code == 409
    assert "changed in another tab or by another organiser" in alert(text(refused))
    assert 'value="Tab two, saved by hand"' in text(refused) and 'data-unsaved="true"' in text(refused)
    [stored] = campaign_rows(db)
    assert (stored.subject, stored.revision) == ("Tab one's words", 2)
    # A fresh page carries the new revision and saves.
    fresh_page = text(editor.get(f"{BASE}/{campaign.id}/edit"))
    saved = editor.post(
        f"{BASE}/{campaign.id}/edit",
        data={**form_fields(fresh_page), **compose_data(subject="Saved after reloading"), "revision": "2"},
    )
    assert saved.status_code == 302
    assert campaign_rows(db)[0].subject == "Saved after reloading"


def test_a_body_is_stored_with_lf_line_endings_however_it_was_posted(db, sign_in_as):
    """A browser posts the form's textarea with CRLF and the autosave's FormData with LF: stored the same."""
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/new"))
    saved = autosave(editor, f"{BASE}/autosave", page, body="Dear {{ subscriber.name }},\nSee you\non the 5th.")
    assert saved.status_code == 200
    edit_page = text(editor.get(saved.json["edit_url"]))
    posted = editor.post(
        saved.json["edit_url"],
        data={**form_fields(edit_page), **compose_data(body="Dear {{ subscriber.name }},\r\nSee you\ron the 5th.")},
    )
    assert posted.status_code == 302
    [campaign] = campaign_rows(db)
    assert (campaign.body, campaign.revision) == ("Dear {{ subscriber.name }},\nSee you\non the 5th.", 2)


@pytest.mark.parametrize("status", [CampaignStatus.SCHEDULED, CampaignStatus.SENT])
def test_a_campaign_that_is_not_a_draft_is_never_autosaved(db, sign_in_as, status):
    campaign = make_campaign("Not a draft any more")
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/{campaign.id}/edit"))
    database.session.execute(
        sa.update(Campaign).where(Campaign.id == campaign.id).values(status=status, scheduled_at=utcnow())
    )
    database.session.commit()
    if status is CampaignStatus.SCHEDULED:
        assert "data-autosave-url" not in text(editor.get(f"{BASE}/{campaign.id}/edit"))

    response = autosave(editor, f"{BASE}/{campaign.id}/autosave", page, subject="Should not be stored")

    assert response.status_code == 409 and response.json["stop"] is True
    expected = "not saved automatically" if status is CampaignStatus.SCHEDULED else "can no longer be changed"
    assert expected in response.json["error"]
    assert campaign_rows(db)[0].subject == "Not a draft any more"


def test_autosave_refuses_bad_input_with_a_message_and_stores_nothing(db, sign_in_as):
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/new"))
    cases = [
        ({"lists": []}, 400, "Choose at least one list"),
        ({"body": "Hello {{ config }}"}, 400, "config"),
        ({"body": "NUL \x00 here"}, 400, ""),
        ({"lists": ["99999999999"]}, 400, "does not exist"),
        ({"subject": "x" * 300}, 400, "under 255 characters"),
    ]
    for changes, status, fragment in cases:
        response = autosave(editor, f"{BASE}/autosave", page, **changes)
        assert response.status_code == status, changes
        assert response.mimetype == "application/json" and fragment in response.json["error"], changes
    assert campaign_rows(db) == []
    campaign = make_campaign("Existing draft")
    for revision in ("abc", "99999999999", "-1"):
        response = autosave(editor, f"{BASE}/{campaign.id}/autosave", page, revision=revision)
        assert response.status_code == 400 and "reload it" in response.json["error"], revision
    missing = autosave(editor, f"{BASE}/2147483647/autosave", page)
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    no_token = editor.post(f"{BASE}/{campaign.id}/autosave", data=compose_data(), headers=JSON)
    assert no_token.status_code == 400 and "form expired" in no_token.json["error"]
    assert campaign_rows(db)[0].revision == 1


def test_viewers_cannot_autosave_duplicate_or_delete(db, sign_in_as):
    campaign = make_campaign("Read only")
    viewer = sign_in_as("viewer")
    token = form_fields(text(viewer.get(f"{BASE}/{campaign.id}")))
    for path in ("autosave", "duplicate", "delete", "save-as-template"):
        assert viewer.post(f"{BASE}/{campaign.id}/{path}", data={**token, **compose_data()}).status_code == 403
    assert viewer.get(f"{BASE}/{campaign.id}/delete").status_code == 403
    assert len(campaign_rows(db)) == 1


def test_duplicating_makes_a_new_draft_and_opens_it(db, sign_in_as):
    reminders = make_list("reminders-copy")
    original = make_campaign(
        "March newsletter",
        body="In solidarity,\nUSC-UK",
        lists=[newsletter(), reminders],
        preheader="News",
        reply_to="info@example.org",
    )
    database.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == original.id)
        .values(status=CampaignStatus.SENT, started_at=utcnow(), finished_at=utcnow(), kind=CampaignKind.REMINDER)
    )
    database.session.commit()
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/{original.id}"))
    assert f'action="{BASE}/{original.id}/duplicate"' in page
    assert editor.get(f"{BASE}/{original.id}/duplicate").status_code == 405  # GET changes nothing

    response = editor.post(f"{BASE}/{original.id}/duplicate", data=form_fields(page))

    original_row, copy = campaign_rows(db)
    assert response.status_code == 302 and response.headers["Location"] == f"{BASE}/{copy.id}/edit"
    assert copy.status is CampaignStatus.DRAFT and copy.kind is CampaignKind.NEWSLETTER
    for field in ("subject", "preheader", "body", "body_format", "from_name", "from_email", "reply_to", "list_ids"):
        assert getattr(copy, field) == getattr(original_row, field), field
    assert copy.started_at is None and copy.public_id != original_row.public_id
    opened = editor.get(response.headers["Location"])
    assert "copied from the campaign" in flashed(text(opened))
    assert "Edit “March newsletter”" in text(opened)
    assert audit_actions(db, "campaign.duplicate")[0][2:] == (str(copy.id), {"original": original.id})
    assert editor.post(f"{BASE}/2147483647/duplicate", data=form_fields(page)).status_code == 404


def test_a_draft_is_deleted_only_after_the_confirmation(db, sign_in_as):
    draft = make_campaign("Throwaway draft")
    draft_id = draft.id
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/{draft.id}"))
    assert f'href="{BASE}/{draft.id}/delete">Delete draft…</a>' in page

    confirm = editor.get(f"{BASE}/{draft.id}/delete")

    assert confirm.status_code == 200
    assert "Delete the draft “Throwaway draft”?" in text(confirm)
    assert len(campaign_rows(db)) == 1  # looking at the question deletes nothing
    deleted = post_from(editor, f"{BASE}/{draft.id}/delete", f"{BASE}/{draft.id}/delete")
    assert deleted.status_code == 302 and deleted.headers["Location"] == BASE
    assert campaign_rows(db) == []
    assert [action for action, *_ in audit_actions(db, "campaign.delete")] == ["campaign.delete"]
    assert editor.get(f"{BASE}/{draft_id}/delete").status_code == 404


def test_the_confirmation_is_not_offered_for_a_sent_campaign(db, sign_in_as):
    sent = make_campaign("Sent already")
    database.session.execute(
        sa.update(Campaign).where(Campaign.id == sent.id).values(status=CampaignStatus.SENT, started_at=utcnow())
    )
    database.session.commit()
    editor = sign_in_as("editor")
    response = editor.get(f"{BASE}/{sent.id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == f"{BASE}/{sent.id}"
    assert "only drafts can be deleted" in flashed(text(editor.get(f"{BASE}/{sent.id}")))
