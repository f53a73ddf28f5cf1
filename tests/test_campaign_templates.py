"""Saved templates through the test client: editors list, create, edit and delete them (after a confirmation), save
a campaign as one, and start a campaign from one; their bodies meet the campaign rules; viewers only read."""

import re

import sqlalchemy as sa

from tests.api_support import audit_actions
from tests.conftest import form_fields
from tests.factories import make_campaign
from tests.pages import alert, compose_data, flashed, fresh, post_from, text
from uscmail.campaigns.models import BodyFormat, Campaign, SavedTemplate

BASE = "/organisers/campaigns/templates"
SIGN_OFF = "Dear {{ subscriber.name }},\n\n## This month\n\nWrite here.\n\nIn solidarity,\nUSC-UK"


def template_data(**changes) -> dict:
    data = {"name": "Monthly newsletter", "subject": "USC-UK news", "preheader": "", "body_format": "markdown",
            "body": SIGN_OFF}  # fmt: skip
    data.update(changes)
    return data


def templates(db) -> list[SavedTemplate]:
    return fresh(db).scalars(sa.select(SavedTemplate).order_by(SavedTemplate.id)).all()


def test_editors_create_edit_and_delete_templates(db, sign_in_as):
    editor = sign_in_as("editor")
    assert "There are no templates yet." in text(editor.get(BASE))

    created = post_from(editor, f"{BASE}/new", f"{BASE}/new", **template_data())

    assert created.status_code == 302 and created.headers["Location"] == BASE
    [template] = templates(db)
    template_id = template.id
    assert (template.name, template.subject, template.body_format, template.body) == (
        "Monthly newsletter", "USC-UK news", BodyFormat.MARKDOWN, SIGN_OFF,
    )  # fmt: skip
    listing = text(editor.get(BASE))
    assert "The template “Monthly newsletter” is saved." in flashed(listing)
    assert f'href="/organisers/campaigns/new?template={template.id}"' in listing

    edited = post_from(
        editor, f"{BASE}/{template.id}/edit", f"{BASE}/{template.id}/edit", **template_data(name="Monthly (v2)")
    )
    assert edited.status_code == 302 and templates(db)[0].name == "Monthly (v2)"

    question = editor.get(f"{BASE}/{template.id}/delete")
    assert "Delete the template “Monthly (v2)”?" in text(question) and len(templates(db)) == 1
    deleted = post_from(editor, f"{BASE}/{template.id}/delete", f"{BASE}/{template.id}/delete")
    assert deleted.status_code == 302 and templates(db) == []
    assert [action for action, *_ in audit_actions(db, "campaign_template.")] == [
        "campaign_template.create", "campaign_template.update", "campaign_template.delete",
    ]  # fmt: skip
    assert editor.get(f"{BASE}/{template_id}/edit").status_code == 404


def test_template_bodies_meet_the_campaign_rules(db, sign_in_as):
    editor = sign_in_as("editor")
    post_from(editor, f"{BASE}/new", f"{BASE}/new", **template_data(name="Taken"))
    refusals = [
        (template_data(body="Hi {{ config }}"), "config"),
        (template_data(body="<img src='https://tracker.example/p.gif'>", body_format="html"), "tracker.example"),
        (template_data(body='<a href="https://x.example/?u={{ subscriber.name }}">x</a>', body_format="html"),
         "personal details can only appear in the text"),
        (template_data(subject="Hello {{ config }}"), "config"),
        (template_data(name=""), "Please give the template a name."),
        (template_data(name="taken"), "There is already a template called “taken”"),
        (template_data(name="Two\nlines"), "line breaks"),
        (template_data(body="   "), "Please write the starting body"),
        (template_data(body_format="rtf"), "markdown or html"),
    ]  # fmt: skip
    for data, message in refusals:
        response = post_from(editor, f"{BASE}/new", f"{BASE}/new", **data)
        assert response.status_code == 400, data["name"]
        assert message in alert(text(response)), (message, alert(text(response)))
    nul = post_from(editor, f"{BASE}/new", f"{BASE}/new", **template_data(name="NUL", body="a\x00b"))
    assert nul.status_code == 400
    assert [template.name for template in templates(db)] == ["Taken"]


def test_a_campaign_started_from_a_template_is_filled_in_and_stored_only_when_saved(db, sign_in_as):
    editor = sign_in_as("editor")
    post_from(
        editor, f"{BASE}/new", f"{BASE}/new", **template_data(body_format="html", body="<p>Hi</p><script>x()</script>")
    )
    [template] = templates(db)
    new_page = text(editor.get("/organisers/campaigns/new"))
    assert f'<option value="{template.id}">Monthly newsletter</option>' in new_page

    page = text(editor.get(f"/organisers/campaigns/new?template={template.id}"))

    assert "Started from the template “Monthly newsletter”" in page
    assert 'value="USC-UK news"' in page and "&lt;p&gt;Hi&lt;/p&gt;" in page
    assert re.search(r'<input checked id="body_format-1" name="body_format" type="radio" value="html">', page)
    assert fresh(db).scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0
    for bad in ("abc", "0", "99999999999", "2147483647"):
        assert editor.get(f"/organisers/campaigns/new?template={bad}").status_code == 404, bad
    saved = editor.post(
        "/organisers/campaigns/new",
        data={**form_fields(page), **compose_data(subject="USC-UK news", body_format="html",
                                                  body="<p>Hi</p><script>x()</script>")},
    )  # fmt: skip
    assert saved.status_code == 302
    [campaign] = fresh(db).scalars(sa.select(Campaign)).all()
    preview = text(editor.get(f"/organisers/campaigns/{campaign.id}/preview"))
    assert "Hi" in preview and "<script" not in preview  # sanitised as every campaign body is


def test_a_campaign_is_saved_as_a_template_from_its_page(db, sign_in_as):
    campaign = make_campaign("Vigil news", body=SIGN_OFF, preheader="Friday")
    editor = sign_in_as("editor")
    page = f"/organisers/campaigns/{campaign.id}"

    response = post_from(editor, page, f"{page}/save-as-template", name="Vigil layout")

    [template] = templates(db)
    assert response.status_code == 302 and response.headers["Location"] == f"{BASE}/{template.id}/edit"
    assert (template.name, template.subject, template.preheader, template.body) == (
        "Vigil layout", "Vigil news", "Friday", SIGN_OFF,
    )  # fmt: skip
    taken = post_from(editor, page, f"{page}/save-as-template", name="VIGIL LAYOUT")
    assert taken.status_code == 400 and "There is already a template called" in alert(text(taken))
    empty = post_from(editor, page, f"{page}/save-as-template", name="")
    assert empty.status_code == 400 and "Please give the template a name." in alert(text(empty))
    assert len(templates(db)) == 1


def test_viewers_read_templates_but_cannot_change_them(db, sign_in_as):
    editor = sign_in_as("editor")
    post_from(editor, f"{BASE}/new", f"{BASE}/new", **template_data())
    [template] = templates(db)
    viewer = sign_in_as("viewer")
    listing = text(viewer.get(BASE))
    assert "Monthly newsletter" in listing and "New template" not in listing and "Delete" not in listing
    token = form_fields(listing)
    assert viewer.get(f"{BASE}/new").status_code == 403
    assert viewer.post(f"{BASE}/new", data={**token, **template_data(name="Mine")}).status_code == 403
    assert viewer.post(f"{BASE}/{template.id}/edit", data={**token, **template_data()}).status_code == 403
    assert viewer.post(f"{BASE}/{template.id}/delete", data=token).status_code == 403
    assert viewer.get(f"/organisers/campaigns/new?template={template.id}").status_code == 403
    assert [t.name for t in templates(db)] == ["Monthly newsletter"]
