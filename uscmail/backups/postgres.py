"""PostgreSQL: dump with pg_dump's custom format, counting every table's rows in the very snapshot pg_dump reads, and
restore with pg_restore into a fresh database (created if missing, refused if it holds tables, unless forced).

The password never appears on a command line (other users can read those): pg_dump and pg_restore get it in
PGPASSWORD, and everything else as a libpq URI.
"""

import os
import shutil
import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from .files import BackupError

TABLES = sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")


def engine_url(url: str | URL) -> URL:
    """A PostgreSQL URL with the driver this app uses (psycopg 3), whichever way it was written."""
    url = make_url(url)
    return url.set(drivername="postgresql+psycopg") if url.drivername in ("postgresql", "postgres") else url


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The libpq URI of `url` without its password, and the environment that carries the password."""
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _program(name: str) -> str:
    """The path of pg_dump or pg_restore; BackupError naming the package that has it if neither is on PATH."""
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client programs (postgresql-client)")
    return path


def _run(arguments: list[str], env: dict[str, str], **kwargs) -> None:
    """Run a PostgreSQL client program; BackupError with its own message if it fails."""
    # pg_dump or pg_restore, found on PATH, with arguments built here (no shell).
    done = subprocess.run(arguments, env=env, stderr=subprocess.PIPE, check=False, **kwargs)  # noqa: S603
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise BackupError(f"{Path(arguments[0]).name} failed: {message}")


def row_counts(connection: Connection) -> dict[str, int]:
    """The number of rows of every table in the public schema, by name."""
    quote = connection.dialect.identifier_preparer.quote
    tables = connection.scalars(TABLES).all()
    # The names come from pg_tables, quoted as identifiers.
    statements = {table: sa.text(f"SELECT count(*) FROM public.{quote(table)}") for table in tables}  # noqa: S608
    return {table: connection.scalar(statement) for table, statement in statements.items()}


def schema_revision(connection: Connection, counts: dict[str, int]) -> str | None:
    """The migration the database is at (alembic_version), or None for a database without one."""
    if "alembic_version" not in counts:
        return None
    return connection.scalar(sa.text("SELECT version_num FROM alembic_version"))


def dump(engine: sa.Engine, target) -> dict:
    """Write pg_dump's custom format of the engine's database to the open binary file `target`; return the row
    counts per table and the schema revision, read in the same snapshot as the dump."""
    program = _program("pg_dump")
    with engine.execution_options(isolation_level="REPEATABLE READ").connect() as connection:
        connection.execute(sa.text("SET TRANSACTION READ ONLY"))
        snapshot = connection.scalar(sa.text("SELECT pg_export_snapshot()"))
        counts = row_counts(connection)
        revision = schema_revision(connection, counts)
        uri, env = _libpq(engine.url)
        # The connection stays open, holding the snapshot, while pg_dump reads through it.
        _run(
            [program, "--format=custom", f"--snapshot={snapshot}", "--no-password", f"--dbname={uri}"],
            env,
            stdout=target,
        )
        connection.rollback()
    return {"row_counts": counts, "schema_revision": revision}


def _database_exists(url: URL) -> bool:
    """True if the database can be connected to; False if the server says it does not exist."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError as error:
        if f'database "{url.database}" does not exist' in str(error.orig):
            return False
        raise BackupError(f"cannot connect to {url.render_as_string()}: {error.orig}") from None
    finally:
        engine.dispose()


def prepare_target(url: URL, force: bool) -> bool:
    """Make `url`'s database ready to restore into: create it if missing; if it holds tables, refuse unless `force`,
    then empty its public schema. Returns True if the database was created."""
    if not _database_exists(url):
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with admin.connect() as connection:
                name = connection.dialect.identifier_preparer.quote(url.database)
                connection.execute(sa.text(f"CREATE DATABASE {name}"))
        except sa.exc.DBAPIError as error:
            raise BackupError(f"cannot create the database {url.database!r}: {error.orig}") from None
        finally:
            admin.dispose()
        return True
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            tables = connection.scalars(TABLES).all()
            if tables and not force:
                raise BackupError(
                    f"the database {url.database!r} is not empty ({len(tables)} tables): restore into a new database, "
                    "or add --force to replace everything in it"
                )
            if tables:
                connection.execute(sa.text("DROP SCHEMA public CASCADE"))
                connection.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return False


def restore(dump_file: Path, url: URL) -> dict[str, int]:
    """pg_restore the dump into `url`'s (empty) database in one transaction, owned by the user restoring; return the
    row counts per table found there afterwards."""
    uri, env = _libpq(url)
    _run(
        [_program("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
         "--no-password", f"--dbname={uri}", str(dump_file)],
        env,
    )  # fmt: skip
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return row_counts(connection)
    finally:
        engine.dispose()
