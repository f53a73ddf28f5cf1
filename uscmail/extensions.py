"""Flask extensions, created unbound; create_app() binds them."""

import hashlib
import hmac
import sqlite3

from flask import current_app, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

# Stable constraint names so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def client_key() -> str:
    """Rate-limit key for the client: a keyed hash of its IP address, so no raw IP reaches the counter store."""
    address = (request.remote_addr or "unknown").encode()
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), address, hashlib.sha256)
    return digest.hexdigest()[:32]


@event.listens_for(Engine, "connect")
def sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """On SQLite, enforce foreign keys (for ON DELETE CASCADE) and let readers and one writer work at once."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


babel = Babel()
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
csrf = CSRFProtect()
limiter = Limiter(key_func=client_key, default_limits=[], headers_enabled=False)


def upsert_insert(table):
    """An INSERT that supports ON CONFLICT (and RETURNING) on this app's database, PostgreSQL or SQLite."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def statements_stand_alone() -> None:
    """For a request whose statements each stand alone (reads, and at most one write): on PostgreSQL the session's
    connection runs each in a transaction of its own, so the request costs no BEGIN and COMMIT (or ROLLBACK) round
    trips, and PostgreSQL no statements for them. It acts before the request's first statement; once the session has
    begun a transaction (a test's own, sharing the app context), or on SQLite, nothing changes."""
    if db.engine.dialect.name == "postgresql" and not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
