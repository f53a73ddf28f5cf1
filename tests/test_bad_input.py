"""Input that no page or API may store (NUL bytes, lone surrogates, ids beyond the database's range, JSON nested
thousands deep) is refused with a 4xx and a clear message, never a 500, and nothing is stored.

Most of these reached the database and came back as 500s on PostgreSQL (which refuses NUL in text and overflows its
integers) or SQLite (which overflows past 2**63)."""

import io
import re

import pytest
import sqlalchemy as sa

from tests.conftest import form_fields
from tests.factories import make_subscriber
from tests.pages import wait_for_job
from uscmail.models import MailingList

DEEP_JSON = "[" * 32000 + "]" * 32000
UNSTORABLE = "a character that can"


def count_lists(db) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(MailingList))


@pytest.mark.parametrize(
    "path",
    [
        "/organisers/subscribers?q=%00",
        "/organisers/subscribers?q=a%00b",
        "/organisers/audit?before=99999999999999999999",
        "/organisers/audit?action=%00",
        "/organisers/audit?actor=%00",
        "/organisers/subscribers?after=99999999999",
        "/organisers/import/%00",
    ],
)
def test_pages_answer_bad_queries_without_a_500(sign_in_as, path):
    admin = sign_in_as("admin")

    response = admin.get(path)

    assert response.status_code in (200, 400, 404), response.status_code
    if "%00" in path:
        assert response.status_code == 400 and UNSTORABLE in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "fields", [{"name": "Core\x00team", "slug": "core"}, {"name": "Core", "slug": "core", "description": "a\x00b"}]
)
def test_a_nul_in_a_list_is_refused_and_nothing_is_stored(sign_in_as, db, fields):
    admin = sign_in_as("admin")
    before = count_lists(db)
    page = admin.get("/organisers/lists/new").get_data(as_text=True)

    response = admin.post("/organisers/lists/new", data={**form_fields(page), **fields})

    assert response.status_code == 400 and UNSTORABLE in response.get_data(as_text=True)
    assert count_lists(db) == before


def test_a_nul_in_an_event_form_is_refused_and_nothing_is_stored(sign_in_as, db):
    from uscmail.reminders.models import Event, OccurrenceOverride

    editor = sign_in_as("editor")
    event_id = db.session.scalar(sa.select(Event.id))
    db.session.rollback()
    page = editor.get(f"/organisers/events/{event_id}/edit").get_data(as_text=True)

    body = editor.post(
        f"/organisers/events/{event_id}/edit",
        data={**form_fields(page), "body_template": "Dear {{ subscriber.name }}\x00"},
    )
    note = editor.post(
        f"/organisers/events/{event_id}/dates/2027-01-05", data={**form_fields(page), "note": "Meet\x00here"}
    )

    for response in (body, note):
        assert response.status_code == 400 and UNSTORABLE in response.get_data(as_text=True)
    db.session.rollback()
    assert "\x00" not in db.session.scalar(sa.select(Event.body_template).where(Event.id == event_id))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OccurrenceOverride)) == 0


def test_an_out_of_range_list_on_a_subscriber_page_is_refused(sign_in_as, db):
    from uscmail.models import ConsentMethod, StatusReason
    from uscmail.subscriptions import services

    subscriber = make_subscriber("range@example.org")
    services.subscribe_confirmed(subscriber, 1, StatusReason.ORGANISER, ConsentMethod.IMPORT, basis="test")
    db.session.commit()
    admin = sign_in_as("admin")
    page = admin.get(f"/organisers/subscribers/{subscriber.id}").get_data(as_text=True)

    response = admin.post(
        f"/organisers/subscribers/{subscriber.id}/subscriptions",
        data={**form_fields(page), "list_id": "9999999999", "subscribed": "1"},
    )

    assert response.status_code in (302, 400, 404), response.status_code


def test_an_out_of_range_list_on_a_new_campaign_is_refused(sign_in_as, db):
    editor = sign_in_as("editor")
    page = editor.get("/organisers/campaigns/new").get_data(as_text=True)

    response = editor.post(
        "/organisers/campaigns/new",
        data={**form_fields(page), "subject": "S", "body": "B", "body_format": "markdown", "lists": "99999999999"},
    )

    assert 400 <= response.status_code < 500
    assert "does not exist" in response.get_data(as_text=True)


def test_a_nul_in_a_token_name_on_revoke_is_refused(sign_in_as, db):
    admin = sign_in_as("admin")
    page = admin.get("/organisers/accounts").get_data(as_text=True)
    from uscmail.organisers.services import organiser_by_email

    organiser_id = organiser_by_email("admin@example.org").id
    db.session.rollback()

    response = admin.post(
        f"/organisers/accounts/{organiser_id}/tokens/revoke", data={**form_fields(page), "name": "x\x00"}
    )

    assert response.status_code == 400 and UNSTORABLE in response.get_data(as_text=True)


@pytest.mark.parametrize(("note", "filename"), [("Sheet\x00", "people.csv"), ("Sheet", "peo\x00ple.csv")])
def test_a_nul_in_an_import_note_or_file_name_is_refused_and_leaves_no_upload(sign_in_as, db, app, note, filename):
    from pathlib import Path

    from uscmail.imports.models import ImportFile, ImportJob

    editor = sign_in_as("editor")
    page = editor.get("/organisers/import").get_data(as_text=True)
    uploads = Path(app.instance_path)
    before = {path for path in uploads.rglob("*") if path.is_file()}

    def stored() -> tuple[int, ...]:
        """Import jobs, and chunks of uploaded files, in the database."""
        db.session.rollback()
        return tuple(db.session.scalar(sa.select(sa.func.count()).select_from(t)) for t in (ImportJob, ImportFile))

    assert stored() == (0, 0)

    response = editor.post(
        "/organisers/import",
        data={
            **form_fields(page),
            "file": (io.BytesIO(b"email\nsomeone@example.org\n"), filename),
            "lists": "1",
            "basis": "needs_confirmation",
            "note": note,
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 400 and UNSTORABLE in response.get_data(as_text=True)
    assert {path for path in uploads.rglob("*") if path.is_file()} == before
    assert stored() == (0, 0)  # uploads are kept in the database: no job, no chunk of the file


def test_deep_json_is_refused_by_the_public_and_the_organiser_api(api, db):
    from tests.factories import make_organiser
    from uscmail.organisers import api_tokens

    organiser = make_organiser("api.admin@example.org", "admin")
    db.session.flush()
    raw = api_tokens.create_token(organiser, "deep", "test")
    db.session.commit()
    headers = {"Content-Type": "application/json"}

    public = api("POST", "/api/v1/public/subscribe", data=DEEP_JSON, headers=headers)
    assert public.status_code == 400 and "error" in public.get_json()
    private = api("POST", "/api/v1/subscribers", token=raw, data=DEEP_JSON, headers=headers)
    assert private.status_code == 400 and "error" in private.get_json()


@pytest.mark.parametrize("body", ['{"email": "a\\u0000@example.org"}', '{"email": "\\ud800@example.org"}'])
def test_unstorable_characters_in_json_are_refused(api, db, body):
    response = api("POST", "/api/v1/public/subscribe", data=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400 and "error" in response.get_json()


def test_a_nul_in_a_csv_email_cell_skips_that_row_finishes_the_job_and_logs_no_address(app, db, worker, sign_in_as):
    import csv

    from tests.conftest import RUN_DIR

    editor = sign_in_as("editor")
    page = editor.get("/organisers/import").get_data(as_text=True)
    upload = b"email,name\nkept.row@example.org,Kept\nnul\x00cell@example.org,Nul\n"
    answer = editor.post(
        "/organisers/import",
        data={
            **form_fields(page),
            "file": (io.BytesIO(upload), "people.csv"),
            "lists": ["newsletter"],
            "basis": "prior_consent",
            "note": "Stall sign-up sheet",
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    location = answer.headers["Location"]
    done = wait_for_job(editor, location)

    html = done.get_data(as_text=True)
    assert '<dd id="import-status">Done</dd>' in html, html
    assert re.search(r'Rows read</th>\s*<td class="number">2</td>', html), html
    report = editor.get(location + "/report.csv", buffered=True).get_data(as_text=True)
    [row] = list(csv.DictReader(io.StringIO(report)))
    assert (row["row"], row["email"], row["reason"]) == ("3", "", "unreadable_row")
    assert "can't be stored" in row["detail"]
    log = (RUN_DIR / "worker.log").read_text(errors="replace")
    assert "cell@example.org" not in log and "kept.row@example.org" not in log
