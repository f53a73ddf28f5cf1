"""Telling a database that is out of reach (restarting, say) from a statement it refused, so a page can answer 503
and a task can try again later, while a real fault still surfaces as one."""

import functools
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, OperationalError


class DatabaseAway(OSError):
    """The database could not be reached while a task ran: an OSError, so the task's SMTP retries cover it too."""


def database_away(error: DBAPIError) -> bool:
    """Whether the driver's error says the server can't be reached or went away: SQLAlchemy saw the connection
    invalidated, SQLSTATE class 08 or a server shutting down (57P01–57P03), a PostgreSQL connection that failed
    before any SQLSTATE (refused, reset), or SQLite's locked or unopenable file."""
    if error.connection_invalidated:
        return True
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")
    if type(original).__module__.startswith("psycopg"):
        return isinstance(error, OperationalError)
    return isinstance(error, OperationalError) and any(
        words in str(original) for words in ("database is locked", "unable to open database")
    )


def retry_when_database_away(task: Callable) -> Callable:
    """Wrap a task's function: a database out of reach raises DatabaseAway (which the task retries, like a relay
    out of reach) instead of failing the task for good; any other database error is raised as it was."""

    @functools.wraps(task)
    def run(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except DBAPIError as exc:
            if database_away(exc):
                raise DatabaseAway(f"the database is out of reach: {type(exc.orig).__name__}") from exc
            raise

    return run
