"""SQLite: copy the database file with SQLite's online backup API (a consistent copy even while the app writes), and
restore it the same way into a new file (refused if that file holds tables, unless forced)."""

import contextlib
import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL

from .files import BackupError


def database_path(url: URL) -> Path:
    """The file of a sqlite:/// URL; BackupError for an in-memory database."""
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)


def row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """The number of rows of every table (SQLite's own tables left out), by name."""
    tables = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    # The names come from sqlite_master, quoted as identifiers.
    quoted = {table: '"' + table.replace('"', '""') + '"' for table in tables}
    return {table: connection.execute(f"SELECT count(*) FROM {quoted[table]}").fetchone()[0] for table in tables}  # noqa: S608


def _revision(connection: sqlite3.Connection, counts: dict[str, int]) -> str | None:
    if "alembic_version" not in counts:
        return None
    return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def _copy(source: Path, target: Path) -> None:
    """Copy one database file into another with the backup API (the target file is created 0600)."""
    if not target.exists():
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with contextlib.closing(sqlite3.connect(source)) as reader, contextlib.closing(sqlite3.connect(target)) as writer:
        reader.backup(writer)


def dump(url: URL, target: Path) -> dict:
    """Copy the database to `target` (0600); return the row counts per table and the schema revision of the copy."""
    source = database_path(url)
    if not source.is_file():
        raise BackupError(f"the SQLite database {source} does not exist")
    _copy(source, target)
    with contextlib.closing(sqlite3.connect(target)) as copy:
        counts = row_counts(copy)
        return {"row_counts": counts, "schema_revision": _revision(copy, counts)}


def prepare_target(url: URL, force: bool) -> bool:
    """Refuse a target file that holds tables unless `force`. Returns True if the file is new."""
    path = database_path(url)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return True
    try:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            tables = row_counts(connection)
    except sqlite3.DatabaseError:
        raise BackupError(f"{path} exists and is not a SQLite database: choose another file") from None
    if tables and not force:
        raise BackupError(
            f"the database {path} is not empty ({len(tables)} tables): restore into a new file, "
            "or add --force to replace everything in it"
        )
    return False


def restore(copy: Path, url: URL) -> dict[str, int]:
    """Copy the backup's database over the target file; return the row counts per table found there afterwards."""
    target = database_path(url)
    _copy(copy, target)
    with contextlib.closing(sqlite3.connect(target)) as connection:
        return row_counts(connection)
