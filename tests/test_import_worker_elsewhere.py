"""An import started on the web server runs on a worker that shares nothing with it but the database and the broker.

The worker is a stand-in for another machine, as in tests/test_scale_out.py: a `celery -A worker worker` process in a
folder of its own, with an environment built from scratch, on a queue of its own. The web side (this process) gets an
instance folder of its own for the test, so the worker's instance folder (the project's) is not the one the web
server would write an upload or read a report in: if either went through a folder, the import would fail or its report
would be missing. It runs on both backends: on SQLite the "database" is the shared SQLite file and the broker the
embedded one, which is all such a worker shares there.
"""

import csv
import io
import re
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import BACKEND, PROJECT_DIR, REDIS_URL, TEST_ENV, CeleryProcess, form_fields
from tests.pages import wait_for_job
from tests.test_imports import NOTE, count_row, statuses
from tests.waiting import wait_until
from uscmail.imports import tasks
from uscmail.imports.models import ImportFile

SHARED_SETTINGS = (
    "USCMAIL_ENV", "SECRET_KEY", "DATABASE_URL", "MAIL_SERVER", "MAIL_PORT", "MAIL_DEFAULT_SENDER", "MAIL_SENDERS",
    "BASE_URL", "RATELIMIT_KEY_PREFIX",
)  # fmt: skip


@pytest.fixture
def elsewhere(app, tmp_path, monkeypatch):
    """A worker in its own folder with its own environment and queue, to which this test's tasks are published; the
    web side's instance folder moved to a fresh, empty folder of the test's. Returns (worker, web instance folder)."""
    queue = f"imports-elsewhere-{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "worker-machine"
    folder.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(PROJECT_DIR),
        **{name: TEST_ENV[name] for name in SHARED_SETTINGS},
        "REDIS_URL": REDIS_URL,
        "CELERY_QUEUE": queue,
        "SEND_JOURNAL_DIR": str(folder / "send-journal"),
        "MEDIA_DIR": str(folder / "media"),
        "DEV_MAIL_DIR": str(folder / "devmail"),
        "BACKUP_DIR": str(folder / "backups"),
    }
    worker = CeleryProcess.worker(
        f"imports-elsewhere-{uuid.uuid4().hex[:6]}", concurrency=1, cwd=folder, inherit_env=False, **env
    )
    web_instance = tmp_path / "web-instance"
    web_instance.mkdir()
    monkeypatch.setattr(app, "instance_path", str(web_instance))
    # The router reads the default queue when each task is published, so the page's tasks go to this worker alone.
    # The Celery app the tasks publish through is the latest one made (another test may have made an app since).
    monkeypatch.setitem(tasks.run_import.app.conf, "task_default_queue", queue)
    try:
        yield worker, web_instance
    finally:
        worker.kill()
        if BACKEND == "postgres":
            from tests.test_scale_out import forget_queue

            forget_queue(queue)


def test_a_dry_run_and_its_real_import_run_on_a_worker_without_the_web_servers_files(app, db, sign_in_as, elsewhere):
    worker, web_instance = elsewhere
    assert Path(app.instance_path) == web_instance != PROJECT_DIR / "instance"
    browser = sign_in_as("editor")
    page = browser.get("/organisers/import").get_data(as_text=True)
    upload = b"email,name\nfar@example.org,Far\nnot-an-address,Bad\n"
    data = {
        **form_fields(page),
        "file": (io.BytesIO(upload), "people.csv"),
        "lists": ["newsletter"],
        "basis": "prior_consent",
        "note": NOTE,
        "dry_run": "y",
    }
    answer = browser.post("/organisers/import", data=data, content_type="multipart/form-data")
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    dry_location = answer.headers["Location"]
    dry = wait_for_job(browser, dry_location).get_data(as_text=True)
    assert '<dd id="import-status">Done</dd>' in dry, re.sub(r"\s+", " ", dry)[:2000] + worker.log()[-3000:]
    assert count_row(dry, "Would be subscribed") == "1"
    report = browser.get(dry_location + "/report.csv", buffered=True)
    assert report.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(report.get_data(as_text=True))))
    assert (row["row"], row["email"], row["reason"]) == ("3", "not-an-address", "invalid_address")

    real = browser.post(dry_location + "/import", data=form_fields(dry))
    assert real.status_code == 303
    done = wait_for_job(browser, real.headers["Location"]).get_data(as_text=True)
    assert count_row(done, "Subscribed") == "1", worker.log()[-3000:]
    assert statuses(db) == {"far@example.org": "confirmed"}
    assert browser.get(real.headers["Location"] + "/report.csv", buffered=True).status_code == 200

    # The worker on the other "machine" ran both (it logs each once the task has returned, a moment after the commit
    # the page saw), and nothing went through the web side's folder.
    succeeded = re.compile(r"run_import\[[0-9a-f-]+\] succeeded")
    wait_until(lambda: len(succeeded.findall(worker.log())) == 2, 10, "the worker to log both imports")
    assert [path for path in web_instance.rglob("*") if path.is_file()] == []
    # What is left in the database is the two reports; the upload went when the real import had read it.
    db.session.rollback()
    kinds = db.session.execute(sa.select(ImportFile.kind, sa.func.count()).group_by(ImportFile.kind)).all()
    assert dict(kinds) == {"report": 2}
