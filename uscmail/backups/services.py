"""Make a backup, check one, restore one. Called by the CLI (`flask --app uscmail backup ...`) and the tests.

A backup is one directory, `<BACKUP_DIR>/uscmail-<UTC time>`, mode 0700, whose files are 0600: database.dump
(pg_dump's custom format) or database.sqlite, media.tar (the library's files), and manifest.json (the row count of
every table, read in the dump's own snapshot; the schema revision; the SHA-256 of every file). It is written under a
hidden name and renamed when complete, so a directory with the final name is a finished backup.
"""

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app
from sqlalchemy.engine import URL, make_url

from ..extensions import db
from ..media.storage import LocalMediaStore, MediaStore, media_store
from . import postgres, sqlite
from .files import (
    MANIFEST_FORMAT,
    MEDIA_ARCHIVE,
    BackupError,
    archive_media,
    check_file,
    media_clashes,
    media_files,
    private_directory,
    private_file,
    read_manifest,
    restore_media,
    sha256_of,
    write_manifest,
)

DATABASE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")


@dataclass
class Restored:
    """What a restore did: where the data went, the rows checked, the media files written or already there."""

    database: str
    created: bool
    row_counts: dict[str, int]
    media_written: int
    media_present: int


def _kind(url: URL) -> str:
    """postgresql or sqlite; BackupError for any other database."""
    if url.get_backend_name() in ("postgresql", "sqlite"):
        return url.get_backend_name()
    raise BackupError(f"backups support PostgreSQL and SQLite, not {url.get_backend_name()}")


def _new_directory(parent: Path, now: datetime) -> tuple[Path, Path]:
    """The final path of a new backup in `parent` (unique) and the hidden path it is written under first."""
    private_directory(parent)
    stem = "uscmail-" + now.strftime("%Y%m%d-%H%M%SZ")
    final, number = parent / stem, 1
    while final.exists():
        number += 1
        final = parent / f"{stem}-{number}"
    return final, parent / f".partial-{final.name}"


def create_backup(parent: Path | None = None, now: datetime | None = None) -> tuple[Path, dict]:
    """Back up the app's database and media files into a new directory under `parent` (BACKUP_DIR by default);
    return its path and manifest. The database comes first: a file uploaded meanwhile is kept, harmlessly, anyway."""
    config = current_app.config
    now = now or datetime.now(UTC)
    final, partial = _new_directory(Path(parent or config["BACKUP_DIR"]), now)
    url = db.engine.url
    kind = _kind(url)
    try:
        private_directory(partial)
        name = "database.dump" if kind == "postgresql" else "database.sqlite"
        if kind == "postgresql":
            with private_file(partial / name) as stream:
                database = postgres.dump(db.engine, stream)
        else:
            database = sqlite.dump(url, partial / name)
        database.update(
            kind=kind, file=name, sha256=sha256_of(partial / name), size_bytes=(partial / name).stat().st_size
        )
        if config.get("MEDIA_S3_BUCKET"):
            media = {"kind": "s3", "bucket": config["MEDIA_S3_BUCKET"], "prefix": config.get("MEDIA_S3_PREFIX", "")}
        else:
            checksums = archive_media(Path(config["MEDIA_DIR"]), partial / MEDIA_ARCHIVE)
            media = {"kind": "files", "file": MEDIA_ARCHIVE, "sha256": sha256_of(partial / MEDIA_ARCHIVE)}
            media["files"] = checksums
        manifest = {"format": MANIFEST_FORMAT, "created_at": now.isoformat(), "database": database, "media": media}
        write_manifest(partial, manifest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # half a backup is no backup, and it holds part of the list
        raise
    partial.rename(final)
    return final, manifest


def verify_backup(directory: Path) -> dict:
    """Check every file of a backup against its manifest's SHA-256 (and the media archive entry by entry); return
    the manifest. BackupError says what is wrong."""
    manifest = read_manifest(directory)
    database = manifest.get("database") or {}
    if database.get("kind") not in ("postgresql", "sqlite") or not isinstance(database.get("row_counts"), dict):
        raise BackupError(f"{directory}: the manifest does not describe a database")
    check_file(directory, database)
    media = manifest.get("media") or {}
    if media.get("kind") == "files":
        for _ in media_files(check_file(directory, media), media.get("files") or {}):
            pass
    return manifest


def resolve_target(target: str, kind: str) -> URL:
    """The database a restore goes into: a URL as is; for PostgreSQL, a bare name means that database on the server
    of DATABASE_URL; for SQLite, a bare value is a file path."""
    if "://" in target:
        url = make_url(target)
    elif kind == "postgresql":
        if not DATABASE_NAME.match(target):
            raise BackupError(f"{target!r} is not a database name (letters, digits, _ and -, at most 63)")
        url = db.engine.url.set(database=target)
    else:
        url = make_url(f"sqlite:///{Path(target).resolve()}")
    if _kind(url) != kind:
        raise BackupError(f"this backup is of a {kind} database and can only be restored into one")
    return postgres.engine_url(url) if kind == "postgresql" else url


def restore_backup(directory: Path, target: str, media_dir: Path | None = None, force: bool = False) -> Restored:
    """Restore a backup into the database `target` (created if missing; refused if it holds tables, unless `force`)
    and its media files into `media_dir` (the app's media store by default), then check the restored rows and files
    against the manifest."""
    manifest = verify_backup(directory)
    database, media = manifest["database"], manifest["media"]
    url = resolve_target(target, database["kind"])
    store: MediaStore = LocalMediaStore(private_directory(media_dir)) if media_dir else media_store()
    expected_media = (media.get("files") or {}) if media.get("kind") == "files" else {}
    archive = directory / MEDIA_ARCHIVE
    if expected_media and media_clashes(archive, expected_media, store) and not force:
        raise BackupError("media files of the same names exist with other contents: add --force to replace them")
    module = postgres if database["kind"] == "postgresql" else sqlite
    created = module.prepare_target(url, force)
    counts = module.restore(directory / database["file"], url)
    if counts != database["row_counts"]:
        different = sorted(set(counts) ^ set(database["row_counts"]) | {
            table for table in counts if counts.get(table) != database["row_counts"].get(table)
        })  # fmt: skip
        raise BackupError(f"the restored database does not match the manifest (tables: {', '.join(different)})")
    written, present = restore_media(archive, expected_media, store) if expected_media else (0, 0)
    return Restored(url.render_as_string(hide_password=True), created, counts, written, present)
