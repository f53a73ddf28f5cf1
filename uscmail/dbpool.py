"""Checking a pooled database connection before it is lent, only once it has lain idle.

SQLAlchemy's `pool_pre_ping` checks every connection with a round trip each time it is lent: one more round trip for
every page and every task, a fifth of a busy page's. A connection lent again within IDLE_SECONDS of its return was
working a moment ago, so it is lent as it is; one idle for longer (a quiet site, a database restarted meanwhile) is
checked first, and replaced if the check fails, so a restart still costs no visitor an error. The one way a dead
connection can still reach a caller is a restart in the second after it was last used: its statement then fails,
SQLAlchemy invalidates the process's pool, and the page answers 503 or the task is tried again (uscmail.outages).
"""

import time

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

IDLE_SECONDS = 1.0


def ping_after_idle(engine: Engine, idle_seconds: float = IDLE_SECONDS) -> None:
    """Check each connection `engine` lends if it has been back in the pool for `idle_seconds` or more."""

    def returned(dbapi_connection, connection_record) -> None:
        # The record's info is cleared whenever its connection is closed or replaced, so a new one is never checked;
        # one invalidated on its way back (no connection) has nothing to note.
        if dbapi_connection is not None:
            connection_record.info["returned_at"] = time.monotonic()

    def lent(dbapi_connection, connection_record, connection_proxy) -> None:
        returned_at = connection_record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool closes this connection and lends a new one in its place.
            raise DisconnectionError("a pooled connection failed its check") from exc

    event.listen(engine, "checkin", returned)
    event.listen(engine, "checkout", lent)
