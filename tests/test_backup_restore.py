"""Backups (`flask --app uscmail backup create|restore|verify`, run as an operator runs them, in a subprocess): a
database filled through the services is backed up, restored into a fresh database, and every subscriber, consent
record, suppression, delivery, organiser, audit event and media file is found there, identical. On the SQLite run
the SQLite path (the backup API) is tested the same way; on the PostgreSQL run, pg_dump and pg_restore."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import BACKEND, PG_ADMIN_URL, PROJECT_DIR, RUN_ID
from tests.media_support import image_bytes, jpeg_with_gps
from uscmail.backups.files import BackupError
from uscmail.backups.services import resolve_target, verify_backup
from uscmail.campaigns import sending
from uscmail.campaigns.models import Delivery, DeliveryStatus
from uscmail.media import services as media_services
from uscmail.media.models import MediaImage
from uscmail.models import Consent, StatusReason, Subscriber, Subscription, Suppression, SuppressionReason
from uscmail.organisers.models import AuditEvent, Organiser
from uscmail.subscriptions import services as subscription_services
from uscmail.suppression import suppress

# Every row of these tables must come back identical.
COMPARED = [Subscriber, Subscription, Consent, Suppression, Delivery, MediaImage, Organiser, AuditEvent]
ADDRESSES = ["amina@example.org", "ilham@example.org", "pending@example.org", "left@example.org", "erased@example.org"]


def flask(*arguments: str) -> subprocess.CompletedProcess:
    """Run `flask --app uscmail ...` with this run's settings, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "uscmail", *arguments],
        cwd=PROJECT_DIR, env=os.environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def restored_database(tmp_path):
    """Where a restore goes: a database name that does not exist yet (PostgreSQL, dropped afterwards), or a new
    SQLite file; yields (what --database takes, its SQLAlchemy URL)."""
    if BACKEND == "sqlite":
        path = tmp_path / "restored.sqlite"
        yield str(path), f"sqlite:///{path}"
        return
    name = f"uscmail_test_{RUN_ID}_restored"
    yield name, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def filled(db, app):
    """A database with a bit of everything, made through the services; returns the media files' bytes by name."""
    # This run's media directory: earlier tests' files (their rows are gone) would be backed up too.
    shutil.rmtree(app.config["MEDIA_DIR"], ignore_errors=True)
    factories.sign_up_subscriber(ADDRESSES[0], lists=["newsletter", "london-protest-reminders"], name="Amina")
    factories.add_subscriber(ADDRESSES[1], name="ئىلھام توختى", basis="prior_consent", note="stall, Portland Place")
    factories.sign_up_subscriber(ADDRESSES[2], confirmed=False)
    left = factories.sign_up_subscriber(ADDRESSES[3], name="Left 'quote\" \\ back")
    subscription_services.unsubscribe(left.id, None, StatusReason.UNSUBSCRIBE_LINK)
    erased = factories.sign_up_subscriber(ADDRESSES[4])
    subscription_services.erase_subscriber(erased)
    suppress("complained@example.net", SuppressionReason.COMPLAINT)
    factories.add_confirmed(40)
    admin = factories.make_organiser("admin@example.org", "admin")
    image = media_services.upload_image(jpeg_with_gps((900, 300)), "A banner: stand with the Uyghurs", admin)
    media_services.upload_image(image_bytes("PNG"), "A small square", admin)
    db.session.commit()
    campaign = factories.make_campaign(body=f"Hello\n\n![banner]({media_services.image_url(image)})\n")
    sending.snapshot_chunk(campaign, 0, 1000)
    first = db.session.scalars(sa.select(Delivery.id).order_by(Delivery.id).limit(5)).all()
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id.in_(first))
        .values(status=DeliveryStatus.SENT, sent_at=factories.utc(2027, 1, 5, 9))
    )
    db.session.commit()
    media_dir = app.config["MEDIA_DIR"]
    files = {}
    for each in db.session.scalars(sa.select(MediaImage)):
        for name in each.file_names():
            if name:
                with open(os.path.join(media_dir, name), "rb") as stream:
                    files[name] = stream.read()
    return files


def rows(connection, model) -> list[tuple]:
    """Every row of the model's table, every column, in primary-key order."""
    table = model.__table__
    return [tuple(row) for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))]


def snapshot(url) -> dict[str, list[tuple]]:
    """The compared tables' rows in the database at `url`."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return {model.__tablename__: rows(connection, model) for model in COMPARED}
    finally:
        engine.dispose()


def test_a_backup_restores_into_a_fresh_database_with_everything_identical(
    filled, db, app, tmp_path, restored_database
):
    target, target_url = restored_database
    before = snapshot(db.engine.url)
    assert len(before["subscribers"]) == 44 and len(before["suppressions"]) == 2
    assert len(before["consents"]) >= 5 and len(before["deliveries"]) == 42 and len(before["media_images"]) == 2

    made = flask("backup", "create", "--to", str(tmp_path / "backups"))
    assert made.returncode == 0, made.stderr
    [backup] = list((tmp_path / "backups").iterdir())
    assert backup.name.startswith("uscmail-") and f"backup written to {backup}" in made.stdout
    assert "subscribers 44" in made.stdout and "media files: 3" in made.stdout

    # Private: the directory 0700, every file 0600; and nothing printed or in the manifest names a person.
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in backup.iterdir()} == {
        name: 0o600
        for name in ("manifest.json", "media.tar", "database.dump" if BACKEND == "postgres" else "database.sqlite")
    }
    manifest_text = (backup / "manifest.json").read_text()
    for address in ADDRESSES:
        assert address not in made.stdout + made.stderr + manifest_text
    manifest = json.loads(manifest_text)
    assert manifest["database"]["row_counts"]["subscribers"] == 44
    assert manifest["database"]["row_counts"]["consents"] == len(before["consents"])
    assert set(manifest["media"]["files"]) == set(filled)

    # Changes after the backup are not in it.
    factories.add_subscriber("after-the-backup@example.org")

    media_dir = tmp_path / "restored-media"
    done = flask("backup", "restore", str(backup), "--database", target, "--media-dir", str(media_dir))
    assert done.returncode == 0, done.stderr
    assert "every table's rows match the manifest" in done.stdout and "media files written: 3" in done.stdout
    for address in ADDRESSES:
        assert address not in done.stdout + done.stderr

    after = snapshot(target_url)
    assert after == before
    assert {p.name: p.read_bytes() for p in media_dir.iterdir()} == filled
    email = list(Subscriber.__table__.columns.keys()).index("email")
    emails = {row[email] for row in after["subscribers"]}
    assert ADDRESSES[0] in emails
    assert "after-the-backup@example.org" not in emails and ADDRESSES[4] not in emails


def test_restore_refuses_a_database_that_holds_tables_unless_forced(filled, db, tmp_path, restored_database):
    target, target_url = restored_database
    assert flask("backup", "create", "--to", str(tmp_path / "backups")).returncode == 0
    [backup] = list((tmp_path / "backups").iterdir())
    media = ["--media-dir", str(tmp_path / "media")]
    assert flask("backup", "restore", str(backup), "--database", target, *media).returncode == 0

    engine = sa.create_engine(target_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.delete(Suppression.__table__))
    again = flask("backup", "restore", str(backup), "--database", target, *media)
    assert again.returncode == 1
    assert "is not empty" in again.stderr and "--force" in again.stderr and "Traceback" not in again.stderr
    with engine.connect() as connection:  # refused: nothing was touched
        assert connection.scalar(sa.select(sa.func.count()).select_from(Suppression.__table__)) == 0

    forced = flask("backup", "restore", str(backup), "--database", target, *media, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "media files written: 0, already there: 3" in forced.stdout
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Suppression.__table__)) == 2
    engine.dispose()
    assert snapshot(target_url) == snapshot(db.engine.url)

    # The live database is not empty either: the same refusal, and it is left alone.
    live = str(db.engine.url.database)  # a bare name on PostgreSQL, the file on SQLite
    refused = flask("backup", "restore", str(backup), "--database", live, *media)
    assert refused.returncode == 1 and "is not empty" in refused.stderr


def test_a_damaged_or_hostile_backup_is_refused_before_anything_is_written(filled, db, tmp_path, restored_database):
    target, target_url = restored_database
    assert flask("backup", "create", "--to", str(tmp_path / "backups")).returncode == 0
    [backup] = list((tmp_path / "backups").iterdir())
    dump = backup / ("database.dump" if BACKEND == "postgres" else "database.sqlite")
    original = dump.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    dump.write_bytes(bytes(damaged))

    checked = flask("backup", "verify", str(backup))
    assert checked.returncode == 1 and "does not match the SHA-256" in checked.stderr
    restored = flask("backup", "restore", str(backup), "--database", target, "--media-dir", str(tmp_path / "m"))
    assert restored.returncode == 1 and "does not match the SHA-256" in restored.stderr
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
    if BACKEND == "sqlite":
        assert not os.path.exists(target)
    else:
        admin = sa.create_engine(PG_ADMIN_URL, poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            exists = connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target})
        admin.dispose()
        assert exists is None
    dump.write_bytes(original)

    manifest_path = backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    hostile = [
        ({**manifest, "database": {**manifest["database"], "file": "../../etc/passwd"}}, "outside the backup"),
        ({**manifest, "format": 99}, "not a manifest this version"),
        ({**manifest, "media": {**manifest["media"], "files": {}}}, "does not list"),
    ]
    for changed, message in hostile:
        manifest_path.write_text(json.dumps(changed))
        with pytest.raises(BackupError, match=message):
            verify_backup(backup)
    manifest_path.write_bytes(b"\x00not json\xff")
    answer = flask("backup", "verify", str(backup))
    assert answer.returncode == 1 and "not a readable manifest" in answer.stderr
    assert "Traceback" not in answer.stderr

    kind = "postgresql" if BACKEND == "postgres" else "sqlite"
    for bad in ("db; DROP TABLE subscribers", "x" * 64, "../etc", "a\x00b"):
        if kind == "postgresql":
            with pytest.raises(BackupError, match="not a database name"):
                resolve_target(bad, kind)
    with pytest.raises(BackupError, match="not mysql"):
        resolve_target("mysql://root@localhost/x", kind)
    with pytest.raises(BackupError, match="can only be restored into one"):
        resolve_target("postgresql://someone@localhost/x" if kind == "sqlite" else "sqlite:////tmp/x.sqlite", kind)


def test_a_backup_that_cannot_be_made_says_why_and_leaves_nothing_behind(db, tmp_path):
    if BACKEND == "postgres":
        # No pg_dump on PATH (a machine without PostgreSQL's client programs).
        env, message = {"PATH": str(tmp_path / "empty")}, "pg_dump is not installed"
    else:
        env, message = {"DATABASE_URL": f"sqlite:///{tmp_path / 'missing.sqlite'}"}, "does not exist"
    failed = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "uscmail", "backup", "create", "--to", str(tmp_path / "backups")],
        cwd=PROJECT_DIR, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1 and message in failed.stderr and "Traceback" not in failed.stderr
    assert list((tmp_path / "backups").iterdir()) == []
