"""CSV import (CLI and page) and export: file formats, skipped rows and their report, consent evidence, audit, roles."""

import csv
import io
import re

import sqlalchemy as sa

from tests.conftest import form_fields
from tests.pages import wait_for_job
from uscmail.imports.services import spreadsheet_safe
from uscmail.models import (
    Consent,
    ConsentMethod,
    MailingList,
    StatusReason,
    Subscriber,
    Subscription,
    SuppressionReason,
)
from uscmail.organisers.models import AuditEvent
from uscmail.subscriptions import services as journey
from uscmail.subscriptions.consent import CURRENT_VERSION, WORDINGS, wording_sha256
from uscmail.suppression import suppress

NOTE = "Signed the paper list at the 5 October vigil"
LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")


def run_import(app, tmp_path, content: bytes, *options: str, lists=("newsletter",), basis="prior_consent"):
    """Run `flask subscribers import` on a file with these bytes; return (result, report rows as dicts)."""
    source = tmp_path / "people.csv"
    source.write_bytes(content)
    report = tmp_path / "report.csv"
    report.unlink(missing_ok=True)
    args = ["subscribers", "import", str(source), "--basis", basis, "--note", NOTE, "--report", str(report)]
    for slug in lists:
        args += ["--list", slug]
    result = app.test_cli_runner().invoke(args=[*args, *options])
    rows = (
        list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8"), newline=""))) if report.exists() else None
    )
    return result, rows


def emails(db):
    db.session.rollback()
    return sorted(db.session.scalars(sa.select(Subscriber.email)))


def statuses(db, slug="newsletter"):
    db.session.rollback()
    rows = db.session.execute(
        sa.select(Subscriber.email, Subscription.status)
        .join(Subscription)
        .join(MailingList)
        .where(MailingList.slug == slug)
    )
    return dict(rows.all())


def count_row(html: str, label: str) -> str:
    """The number beside `label` in a job page's table of counts."""
    match = re.search(rf'<th scope="row">\s*{re.escape(label)}\s*</th>\s*<td class="number">(\d+)</td>', html)
    return match.group(1) if match else ""


def import_events(db):
    db.session.rollback()
    return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "subscribers.import")).all()


def test_prior_consent_subscribes_at_once_with_the_basis_on_every_consent_row(app, db, tmp_path):
    content = b"email,name\nAmina@Example.org,Amina\nbilal@example.org,\n"
    result, report = run_import(app, tmp_path, content, lists=("newsletter", "london-protest-reminders"))
    assert result.exit_code == 0, result.output
    assert "rows read: 2" in result.output and "new subscribers: 2" in result.output
    assert "subscriptions added or changed: 4" in result.output
    assert report == []
    assert statuses(db) == {"amina@example.org": "confirmed", "bilal@example.org": "confirmed"}
    assert statuses(db, "london-protest-reminders") == statuses(db)
    amina = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "amina@example.org"))
    assert amina.name == "Amina" and amina.confirm_nonce is None and len(amina.public_id) >= 20
    assert {s.status_reason for s in amina.subscriptions} == {StatusReason.ORGANISER}
    consents = db.session.scalars(sa.select(Consent)).all()
    assert len(consents) == 4
    for consent in consents:
        assert consent.method is ConsentMethod.IMPORT
        assert consent.basis == NOTE
        assert consent.wording_version == CURRENT_VERSION
        assert consent.wording_sha256 == wording_sha256(WORDINGS[CURRENT_VERSION])
        assert consent.confirmed_at == consent.created_at
    [event] = import_events(db)
    assert event.actor == "cli"
    assert event.details["lists"] == ["newsletter", "london-protest-reminders"]
    assert event.details["basis"] == "prior_consent" and event.details["note"] == NOTE
    assert event.details["rows"] == 2 and event.details["imported"] == 2 and event.details["skipped"] == {}
    assert "example.org" not in str(event.details)


def test_bom_semicolons_and_quoted_newlines(app, db, tmp_path):
    content = (
        "\ufeffName;Email;Notes\n"
        '"Rahima; de Groot";rahima@example.org;"met at the stall\nwants leaflets"\n'
        '"Two\nlines";twolines@example.org;\n'
        ";not an address;\n"
        "Erkin;erkin@example.org;\n"
    ).encode()
    result, report = run_import(app, tmp_path, content)
    assert result.exit_code == 0, result.output
    assert emails(db) == ["erkin@example.org", "rahima@example.org"]
    names = dict(db.session.execute(sa.select(Subscriber.email, Subscriber.name)).all())
    assert names["rahima@example.org"] == "Rahima; de Groot"
    # Rows are numbered as a spreadsheet shows them: a cell with a line break is still one row.
    assert [(r["row"], r["reason"]) for r in report] == [("3", "invalid_name"), ("4", "invalid_address")]
    assert report[0]["email"] == "twolines@example.org" and "line breaks" in report[0]["detail"]
    assert report[1]["email"] == "not an address"


def test_a_10_mb_line_is_skipped_with_a_reason_and_the_rest_imported(app, db, tmp_path):
    huge = b"x" * (10 * 1024 * 1024)
    content = b"email,name\nfirst@example.org,A\n" + huge + b"@example.org,B\nlast@example.org,C\n"
    result, report = run_import(app, tmp_path, content)
    assert result.exit_code == 0, result.output
    assert emails(db) == ["first@example.org", "last@example.org"]
    [skipped] = report
    assert skipped["row"] == "3" and skipped["reason"] == "unreadable_row"
    assert "longer than 64 KB" in skipped["detail"] and skipped["email"] == ""


def test_a_latin1_file_is_refused_whole_even_when_the_bad_byte_comes_late(app, db, tmp_path):
    good = "".join(f"person{i}@example.org,Person {i}\n" for i in range(3500))
    content = ("email,name\n" + good + "gulnar@example.org,Gülnar\n").encode("latin-1")
    result, report = run_import(app, tmp_path, content)
    assert result.exit_code != 0
    assert "not UTF-8" in result.output and "line 3502" in result.output and "nothing was imported" in result.output
    assert report is None  # no half-written report either
    assert emails(db) == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Consent)) == 0
    assert import_events(db) == []


def test_whole_file_errors_are_clear(app, db, tmp_path):
    result, _ = run_import(app, tmp_path, b"address,name\na@example.org,A\n")
    assert result.exit_code != 0 and "header with an 'email' column" in result.output
    result, _ = run_import(app, tmp_path, b"")
    assert result.exit_code != 0 and "The file is empty" in result.output
    result, _ = run_import(app, tmp_path, b"email\na@example.org\n", lists=("no-such-list",))
    assert result.exit_code != 0 and "There is no list called 'no-such-list'" in result.output
    assert emails(db) == []


def test_skipped_rows_are_reported_with_row_and_reason(app, db, tmp_path):
    suppress("erased@example.org", SuppressionReason.ERASED)
    db.session.commit()
    first, _ = run_import(app, tmp_path, b"email\nkept@example.org\nleft@example.org\n")
    assert first.exit_code == 0, first.output
    left = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "left@example.org"))
    journey.unsubscribe(left.id, None, StatusReason.UNSUBSCRIBE_LINK)
    db.session.commit()
    content = (
        b"email,name\n"
        b"new@example.org,New\n"
        b"not-an-address,Nobody\n"
        b"NEW@example.org,Again\n"
        b"erased@example.org,Gone\n"
        b"kept@example.org,Kept\n"
        b"left@example.org,Left\n"
        b"new@example.org,Third time\n"
    )
    result, report = run_import(app, tmp_path, content)
    assert result.exit_code == 0, result.output
    assert [(r["row"], r["email"], r["list"], r["reason"]) for r in report] == [
        ("3", "not-an-address", "", "invalid_address"),
        ("4", "new@example.org", "", "duplicate_in_file"),
        ("5", "erased@example.org", "", "suppressed"),
        ("6", "kept@example.org", "newsletter", "already_subscribed"),
        ("7", "left@example.org", "newsletter", "unsubscribed_earlier"),
        ("8", "new@example.org", "", "duplicate_in_file"),
    ]
    assert report[1]["detail"] == "same address as row 2" and report[5]["detail"] == "same address as row 2"
    assert statuses(db) == {
        "kept@example.org": "confirmed",
        "left@example.org": "unsubscribed",
        "new@example.org": "confirmed",
    }
    assert db.session.scalar(sa.select(Subscriber.name).where(Subscriber.email == "new@example.org")) == "New"
    assert "erased@example.org" not in emails(db)
    *_, event = import_events(db)
    assert event.details["skipped"] == {
        "invalid_address": 1,
        "duplicate_in_file": 2,
        "suppressed": 1,
        "already_subscribed": 1,
        "unsubscribed_earlier": 1,
    }
    assert event.details["imported"] == 1 and event.details["new_subscribers"] == 1


def test_prior_consent_confirms_a_pending_signup(app, db, tmp_path):
    newsletter = db.session.scalar(sa.select(MailingList).where(MailingList.slug == "newsletter"))
    journey.request_subscription("waiting@example.org", None, [newsletter], ConsentMethod.FORM, CURRENT_VERSION)
    db.session.commit()
    result, report = run_import(app, tmp_path, b"email\nwaiting@example.org\n")
    assert result.exit_code == 0 and report == []
    assert statuses(db) == {"waiting@example.org": "confirmed"}
    methods = db.session.scalars(sa.select(Consent.method).order_by(Consent.id)).all()
    assert methods == [ConsentMethod.FORM, ConsentMethod.IMPORT]


def test_dry_run_reports_and_writes_nothing(app, db, tmp_path):
    content = b"email\na@example.org\nb@example.org\nb@example.org\nbad\n"
    result, report = run_import(app, tmp_path, content, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run, nothing written" in result.output
    assert "rows that would be subscribed: 2" in result.output and "new subscribers: 2" in result.output
    assert [(r["row"], r["reason"]) for r in report] == [("4", "duplicate_in_file"), ("5", "invalid_address")]
    assert emails(db) == []
    for model in (Subscription, Consent, AuditEvent):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0
    # The staging tables went with it: the same import for real works on the same connection pool.
    result, _ = run_import(app, tmp_path, content)
    assert result.exit_code == 0 and emails(db) == ["a@example.org", "b@example.org"]


def test_formula_cells_are_defused_in_the_report_and_the_export(app, db, tmp_path):
    content = b'email,name\n"=HYPERLINK(""http://evil"")",x\n=1+2@example.org,@SUM(A1)\n'
    result, report = run_import(app, tmp_path, content)
    assert result.exit_code == 0, result.output
    assert report[0]["email"] == '\'=HYPERLINK("http://evil")'
    out = tmp_path / "export.csv"
    result = app.test_cli_runner().invoke(args=["subscribers", "export", str(out)])
    assert result.exit_code == 0 and "exported 1 subscribers" in result.output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["email", "name", "locale", "created_at", "newsletter", "london-protest-reminders"]
    assert rows[1][:2] == ["'=1+2@example.org", "'@SUM(A1)"] and rows[1][4:] == ["confirmed", ""]
    [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "subscribers.export")).all()
    assert event.actor == "cli" and event.details == {"subscribers": 1}


def test_every_risky_first_character_is_defused():
    for risky in ("=1", "+1", "-1", "@x", "\tx", "\rx", "\0x"):
        assert spreadsheet_safe(risky) == "'" + risky
    assert spreadsheet_safe("Amina") == "Amina" and spreadsheet_safe(None) == "" and spreadsheet_safe(7) == "7"


def test_export_is_a_post_from_a_page_for_admins_streamed_escaped_and_audited(app, db, tmp_path, sign_in_as):
    run_import(app, tmp_path, b"email,name\nzed@example.org,-Zed\nyan@example.org,+Yan\n")
    for role in ("viewer", "editor"):
        browser = sign_in_as(role)
        assert browser.get("/organisers/export").status_code == 403
        home = browser.get("/organisers/").get_data(as_text=True)
        assert browser.post("/organisers/export", data=form_fields(home)).status_code == 403
    admin = sign_in_as("admin")
    # The old link and the page download nothing; a POST without the CSRF token neither.
    old = admin.get("/organisers/export.csv")
    assert old.status_code == 303 and old.headers["Location"].endswith("/organisers/export")
    page = admin.get("/organisers/export")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html" and "could be put in danger" in html
    assert admin.post("/organisers/export", data={}).status_code == 400
    assert export_events(db) == []
    # buffered: the test browser gives each request its own context, so the body is read inside it.
    response = admin.post("/organisers/export", data=form_fields(html), buffered=True)
    assert response.status_code == 200 and "Content-Length" not in response.headers  # streamed, not built whole
    assert response.headers["Content-Disposition"] == 'attachment; filename="uscmail-subscribers.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert [row[:2] for row in rows[1:]] == [["zed@example.org", "'-Zed"], ["yan@example.org", "'+Yan"]]
    assert [(e.actor, e.details) for e in export_events(db)] == [("admin@example.org", {"subscribers": 2})]


def export_events(db):
    db.session.rollback()
    return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "subscribers.export")).all()


def test_export_filters_by_list_status_and_date_and_refuses_bad_ones(app, db, tmp_path, sign_in_as):
    from datetime import timedelta

    from uscmail.models import utcnow

    run_import(app, tmp_path, b"email\nold@example.org\nnew@example.org\ngone@example.org\n")
    run_import(app, tmp_path, b"email\nreminded@example.org\n", lists=("london-protest-reminders",))
    people = {s.email: s for s in db.session.scalars(sa.select(Subscriber))}
    people["old@example.org"].created_at = utcnow() - timedelta(days=400)
    journey.unsubscribe(people["gone@example.org"].id, None, StatusReason.UNSUBSCRIBE_LINK)
    db.session.commit()
    newsletter_id = db.session.scalar(sa.select(MailingList.id).where(MailingList.slug == "newsletter"))
    admin = sign_in_as("admin")
    fields = form_fields(admin.get("/organisers/export").get_data(as_text=True))

    def export(**filters):
        return admin.post("/organisers/export", data={**fields, **filters}, buffered=True)

    since = (utcnow() - timedelta(days=30)).date().isoformat()
    answer = export(lists=[str(newsletter_id)], status="confirmed", joined_from=since)
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows == [["email", "name", "locale", "created_at", "newsletter"], [*rows[1][:4], "confirmed"]]
    assert rows[1][0] == "new@example.org"
    [event] = export_events(db)
    assert event.details == {
        "subscribers": 1, "lists": ["newsletter"], "status": "confirmed", "joined_from": since, "joined_to": None,
    }  # fmt: skip
    assert "new@example.org" not in str(event.details)
    for bad, message in [
        ({"joined_from": "2026-05-02", "joined_to": "2026-05-01"}, "before its start"),
        ({"joined_from": "99999-01-01"}, "Not a valid date"),
        ({"lists": ["99999999999999999999"]}, "not a valid choice"),
        ({"lists": ["x\x00"]}, ""),
        ({"status": "erased"}, "Not a valid choice"),
    ]:
        refused = export(**bad)
        assert refused.status_code == 400 and refused.mimetype == "text/html", bad
        assert message in refused.get_data(as_text=True), bad
    assert len(export_events(db)) == 1


def test_needs_confirmation_queues_a_confirmation_mail_through_the_worker(app, db, tmp_path, worker, smtp_sink):
    content = b"email,name\nmihrigul@example.org,Mihrigul\n"
    result, report = run_import(app, tmp_path, content, basis="needs_confirmation")
    assert result.exit_code == 0, result.output
    assert "confirmation mails queued: 1" in result.output and report == []
    assert statuses(db) == {"mihrigul@example.org": "pending"}
    [consent] = db.session.scalars(sa.select(Consent)).all()
    assert consent.method is ConsentMethod.IMPORT and consent.basis == NOTE and consent.confirmed_at is None
    [mail] = smtp_sink.wait_for("mihrigul@example.org")
    confirm_path = LINK.search(mail.text()).group(1)
    browser = app.test_client()
    page = browser.get(confirm_path)
    assert browser.post(confirm_path, data=form_fields(page.get_data(as_text=True))).status_code == 200
    smtp_sink.wait_for("mihrigul@example.org", count=2)  # the welcome mail
    assert statuses(db) == {"mihrigul@example.org": "confirmed"}
    assert db.session.scalar(sa.select(Consent.confirmed_at)) is not None


def test_upload_page_runs_the_import_in_the_worker_and_offers_the_report(
    app, db, worker, smtp_sink, sign_in_as, tmp_path
):
    browser = sign_in_as("editor")
    page = browser.get("/organisers/import")
    assert page.status_code == 200 and "<form" in page.get_data(as_text=True)
    assert sign_in_as("viewer").get("/organisers/import").status_code == 403
    upload = b"email,name\nupload@example.org,Up\nbad-address,Bad\n"
    data = {
        **form_fields(page.get_data(as_text=True)),
        "file": (io.BytesIO(upload), "people.csv"),
        "lists": ["newsletter"],
        "basis": "prior_consent",
        "note": NOTE,
    }
    answer = browser.post("/organisers/import", data=data, content_type="multipart/form-data")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    location = answer.headers["Location"]
    done = wait_for_job(browser, location)
    html = done.get_data(as_text=True)
    assert "Refresh" not in done.headers and '<dd id="import-status">Done</dd>' in html
    assert "<progress" not in html  # the bar shows only while it runs
    assert count_row(html, "Rows read") == "2" and count_row(html, "Subscribed") == "1"
    assert count_row(html, "Left out: Not a valid email address") == "1" and "invalid_address" not in html
    assert statuses(db) == {"upload@example.org": "confirmed"}
    report = browser.get(location + "/report.csv", buffered=True)
    assert report.status_code == 200 and report.headers["Content-Disposition"].startswith("attachment")
    [row] = list(csv.DictReader(io.StringIO(report.get_data(as_text=True))))
    assert (row["row"], row["email"], row["reason"]) == ("3", "bad-address", "invalid_address")
    # Another editor cannot see this job or its report.
    other = sign_in_as("editor", email="other-editor@example.org")
    assert other.get(location).status_code == 404
    assert other.get(location + "/report.csv", buffered=True).status_code == 404
    [event] = import_events(db)
    assert event.actor == "editor@example.org"


def test_upload_page_dry_run_and_a_file_that_fails(app, db, worker, smtp_sink, sign_in_as):
    browser = sign_in_as("editor")

    def upload(content: bytes, **extra):
        page = browser.get("/organisers/import").get_data(as_text=True)
        data = {**form_fields(page), "file": (io.BytesIO(content), "x.csv"), "lists": ["newsletter"]}
        data.update({"basis": "prior_consent", "note": NOTE, **extra})
        return browser.post("/organisers/import", data=data, content_type="multipart/form-data")

    dry = wait_for_job(browser, upload(b"email\ndry@example.org\n", dry_run="y").headers["Location"])
    assert "This was a dry run: nothing was written." in dry.get_data(as_text=True)
    assert count_row(dry.get_data(as_text=True), "Would be subscribed") == "1"
    latin1 = wait_for_job(browser, upload("email,name\nx@example.org,Gülnar\n".encode("latin-1")).headers["Location"])
    html = latin1.get_data(as_text=True)
    assert '<dd id="import-status">Failed</dd>' in html and "not UTF-8" in html
    assert emails(db) == []
    missing = upload(b"email\na@example.org\n", note="")
    assert missing.status_code == 400 and "State the consent basis." in missing.get_data(as_text=True)


def test_housekeeping_deletes_old_reports_and_fails_imports_whose_worker_died(app, db, sign_in_as):
    from datetime import timedelta

    from uscmail.imports import jobs, storage
    from uscmail.imports.models import ImportFileKind, ImportJob, ImportStatus
    from uscmail.models import utcnow
    from uscmail.organisers.models import Organiser

    sign_in_as("editor")
    organiser_id = db.session.scalar(sa.select(Organiser.id))
    now = utcnow()
    upload, report = ImportFileKind.UPLOAD, ImportFileKind.REPORT

    def job(kind: ImportFileKind | None = None, **values):
        row = ImportJob(organiser_id=organiser_id, basis="prior_consent", basis_note="test", **values)
        db.session.add(row)
        db.session.flush()
        if kind is not None:
            storage.store(row.id, kind, io.BytesIO(b"email\nperson@example.org\n"))
        return row

    old = job(report, status=ImportStatus.DONE, report_name="old", finished_at=now - timedelta(days=8))
    recent = job(report, status=ImportStatus.DONE, report_name="recent", finished_at=now - timedelta(days=6))
    stuck = job(upload, status=ImportStatus.RUNNING, upload_name="stuck", started_at=now - timedelta(hours=7))
    running = job(upload, status=ImportStatus.RUNNING, upload_name="running", started_at=now - timedelta(minutes=5))
    # Dry runs keep their upload for "Import for real" for IMPORT_DRY_RUN_KEEP_HOURS (24), then it is deleted.
    old_dry = job(
        upload, status=ImportStatus.DONE, dry_run=True, upload_name="old-dry", finished_at=now - timedelta(hours=25)
    )
    recent_dry = job(
        upload, status=ImportStatus.DONE, dry_run=True, upload_name="recent-dry", finished_at=now - timedelta(hours=23)
    )
    db.session.commit()

    def kept(row, kind) -> bool:
        return storage.is_stored(row.id, kind)

    assert jobs.housekeep(now) == {"reports_deleted": 1, "uploads_deleted": 1, "jobs_failed": 1}
    db.session.commit()
    assert not kept(old_dry, upload) and old_dry.upload_name is None
    assert kept(recent_dry, upload) and recent_dry.upload_name == "recent-dry"
    assert not kept(old, report) and old.report_name is None and old.counts == {}
    assert kept(recent, report) and recent.report_name == "recent"
    assert not kept(stuck, upload) and stuck.status is ImportStatus.FAILED and "start it again" in stuck.error
    assert kept(running, upload) and running.status is ImportStatus.RUNNING
    assert jobs.housekeep(now) == {"reports_deleted": 0, "uploads_deleted": 0, "jobs_failed": 0}


def test_the_form_needs_one_list_not_every_list(app, db, sign_in_as):
    browser = sign_in_as("editor")
    page = browser.get("/organisers/import").get_data(as_text=True)
    boxes = re.findall(r'<input[^>]*name="lists"[^>]*>', page)
    assert len(boxes) >= 2 and not any("required" in box for box in boxes)
    assert "prior_consent" not in re.sub(r'value="prior_consent"', "", page)  # codes only as form values
    data = {**form_fields(page), "file": (io.BytesIO(b"email\na@example.org\n"), "a.csv"), "basis": "prior_consent"}
    answer = browser.post("/organisers/import", data={**data, "note": NOTE}, content_type="multipart/form-data")
    assert answer.status_code == 400 and "Choose at least one list to import into." in answer.get_data(as_text=True)
    data = {**form_fields(page), "file": (io.BytesIO(b"email\na@example.org\n"), "a.csv"), "basis": "prior_consent"}
    unknown = browser.post(
        "/organisers/import", data={**data, "note": NOTE, "lists": ["no-such-list"]}, content_type="multipart/form-data"
    )
    assert unknown.status_code == 400 and "not a valid choice" in unknown.get_data(as_text=True)
    assert emails(db) == []


def test_a_dry_run_is_imported_for_real_once_from_its_page(app, db, worker, smtp_sink, sign_in_as):
    browser = sign_in_as("editor")
    page = browser.get("/organisers/import").get_data(as_text=True)
    data = {
        **form_fields(page),
        "file": (io.BytesIO(b"email,name\nreal@example.org,Real\nreal@example.org,Again\n"), "people.csv"),
        "lists": ["newsletter"],
        "basis": "prior_consent",
        "note": NOTE,
        "dry_run": "y",
    }
    dry_location = browser.post("/organisers/import", data=data, content_type="multipart/form-data").headers["Location"]
    dry = wait_for_job(browser, dry_location).get_data(as_text=True)
    assert count_row(dry, "Would be subscribed") == "1" and count_row(dry, "Left out: Appears twice in the file") == "1"
    assert "Import for real" in dry and emails(db) == []
    # The dry run's upload is kept (in the database) for "Import for real"; its real import takes it over.
    assert stored_files(db) == {("dry", "upload"): 1, ("dry", "report"): 1}
    action = dry_location + "/import"
    # Not without the CSRF token; not by a viewer; not by another editor (it is not their job).
    assert browser.post(action).status_code == 400
    viewer = sign_in_as("viewer")
    assert viewer.post(action, data=form_fields(viewer.get("/organisers/").get_data(as_text=True))).status_code == 403
    other = sign_in_as("editor", email="other-editor@example.org")
    other_page = other.get("/organisers/import").get_data(as_text=True)
    assert other.post(action, data=form_fields(other_page)).status_code == 404

    real = browser.post(action, data=form_fields(dry))
    assert real.status_code == 303
    done = wait_for_job(browser, real.headers["Location"]).get_data(as_text=True)
    assert count_row(done, "Subscribed") == "1" and "(dry run)" not in done
    db.session.rollback()
    assert statuses(db) == {"real@example.org": "confirmed"}
    # Read, the upload is gone; each job keeps its report.
    assert stored_files(db) == {("dry", "report"): 1, ("real", "report"): 1}
    [event] = import_events(db)
    assert event.actor == "editor@example.org" and event.details["note"] == NOTE

    # The dry run's page now links to the real import; a second press imports nothing.
    again_page = browser.get(dry_location).get_data(as_text=True)
    assert "has been imported for real" in again_page and "Import for real</button>" not in again_page
    again = browser.post(action, data=form_fields(again_page))
    assert again.status_code == 400 and "already been imported" in again.get_data(as_text=True)
    # A real import's page has no such button, and pressing it anyway is refused.
    assert browser.post(real.headers["Location"] + "/import", data=form_fields(done)).status_code == 400
    assert len(import_events(db)) == 1


def stored_files(db) -> dict[tuple[str, str], int]:
    """Chunks of import files in the database, by ("dry" or "real" job, kind)."""
    from uscmail.imports.models import ImportFile, ImportJob

    db.session.rollback()
    kind = sa.case((ImportJob.dry_run, "dry"), else_="real")
    statement = sa.select(kind, ImportFile.kind, sa.func.count()).join(ImportJob).group_by(kind, ImportFile.kind)
    return {(job, str(file_kind)): count for job, file_kind, count in db.session.execute(statement)}


def test_files_are_stored_in_chunks_and_read_back_into_a_private_temporary_file(app, db):
    import os
    import stat

    from uscmail.imports import storage
    from uscmail.imports.models import ImportFile, ImportFileKind, ImportJob

    job = ImportJob(basis="prior_consent", basis_note="test")
    db.session.add(job)
    db.session.flush()
    content = os.urandom(storage.CHUNK_BYTES * 2 + 12345)
    assert storage.store(job.id, ImportFileKind.UPLOAD, io.BytesIO(content)) == len(content)
    db.session.commit()
    sizes = db.session.scalars(
        sa.select(sa.func.length(ImportFile.data)).where(ImportFile.job_id == job.id).order_by(ImportFile.sequence)
    ).all()
    assert sizes == [storage.CHUNK_BYTES, storage.CHUNK_BYTES, 12345]
    assert storage.size(job.id, ImportFileKind.UPLOAD) == len(content)
    with storage.private_copy(job.id, ImportFileKind.UPLOAD) as copy:
        assert stat.S_IMODE(os.fstat(copy.fileno()).st_mode) == 0o600 and os.fstat(copy.fileno()).st_nlink == 0
        assert copy.read() == content
    # An empty file is kept as one empty chunk, so it is told apart from a file that is not kept.
    assert not storage.is_stored(job.id, ImportFileKind.REPORT)
    assert storage.store(job.id, ImportFileKind.REPORT, io.BytesIO(b"")) == 0
    assert storage.is_stored(job.id, ImportFileKind.REPORT)
    assert list(storage.chunks(job.id, ImportFileKind.REPORT)) == [b""]


def test_a_job_whose_upload_is_not_in_the_database_fails_saying_so(app, db, worker, sign_in_as):
    # As a job queued before the upgrade that moved uploads into the database: its file was in a folder, not moved.
    from uscmail.imports import tasks
    from uscmail.imports.models import ImportJob
    from uscmail.organisers.models import Organiser

    browser = sign_in_as("editor")
    job = ImportJob(
        organiser_id=db.session.scalar(sa.select(Organiser.id)),
        basis="prior_consent",
        basis_note=NOTE,
        list_slugs=["newsletter"],
        filename="before-the-upgrade.csv",
        upload_name="0123456789abcdef0123456789abcdef.csv",
        bytes_total=100,
    )
    db.session.add(job)
    db.session.commit()
    tasks.run_import.delay(job.id)
    page = wait_for_job(browser, f"/organisers/import/{job.public_id}").get_data(as_text=True)
    assert '<dd id="import-status">Failed</dd>' in page
    assert "The uploaded file is no longer kept; nothing was imported. Please upload it again." in page
    assert stored_files(db) == {}


def test_the_upload_page_takes_a_file_far_larger_than_an_ordinary_form(app, db, worker, smtp_sink, sign_in_as):
    # 3,000 rows (about 120 kB): above the 64 kB every other form is held to, well within IMPORT_MAX_BYTES.
    upload = ("email,name\n" + "".join(f"big{i:05d}@example.org,Supporter number {i}\n" for i in range(3000))).encode()
    assert len(upload) > 100_000
    browser = sign_in_as("editor")
    page = browser.get("/organisers/import").get_data(as_text=True)
    data = {**form_fields(page), "file": (io.BytesIO(upload), "big.csv"), "lists": ["newsletter"]}
    data.update(basis="prior_consent", note=NOTE)
    answer = browser.post("/organisers/import", data=data, content_type="multipart/form-data")
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    done = wait_for_job(browser, answer.headers["Location"], timeout=120)
    assert count_row(done.get_data(as_text=True), "Subscribed") == "3000"
    app.config["IMPORT_MAX_BYTES"] = 50_000
    try:
        page = browser.get("/organisers/import").get_data(as_text=True)
        data = {**form_fields(page), "file": (io.BytesIO(upload), "big.csv"), "lists": ["newsletter"]}
        data.update(basis="prior_consent", note=NOTE)
        refused = browser.post("/organisers/import", data=data, content_type="multipart/form-data")
    finally:
        app.config["IMPORT_MAX_BYTES"] = 200 * 1024 * 1024
    assert refused.status_code == 413 and "too large" in refused.get_data(as_text=True)
