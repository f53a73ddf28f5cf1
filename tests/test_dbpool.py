"""Pooled database connections are checked before they are lent only once they have lain idle (uscmail.dbpool)."""

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from tests.conftest import BACKEND, DATABASE_URL, PG_ADMIN_URL
from uscmail.dbpool import IDLE_SECONDS, ping_after_idle

needs_postgres = pytest.mark.skipif(BACKEND != "postgres", reason="ending a connection from outside needs PostgreSQL")


@pytest.fixture
def engine(app):
    """An engine of its own on the test database (the app fixture creates it)."""
    made = sa.create_engine(DATABASE_URL)
    yield made
    made.dispose()


def counted_pings(engine, monkeypatch) -> list:
    pings = []
    real = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or real(connection))
    return pings


def backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def end_backend(pid: int) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


def test_a_connection_lent_again_at_once_is_not_checked_and_one_left_idle_is(engine, monkeypatch):
    ping_after_idle(engine, idle_seconds=0.3)
    pings = counted_pings(engine, monkeypatch)
    for _ in range(10):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    assert pings == [], "a connection back in the pool for less than the idle time is lent without a round trip"
    time.sleep(0.35)
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    assert pings == [1]


@needs_postgres
def test_a_connection_the_database_ended_while_it_lay_idle_is_replaced_before_it_is_lent(engine):
    ping_after_idle(engine, idle_seconds=0.2)
    ended = backend_pid(engine)
    end_backend(ended)
    time.sleep(0.3)
    assert backend_pid(engine) != ended


@needs_postgres
def test_without_the_check_the_ended_connection_reaches_its_user(engine):
    """The counterpart of the test above: what the check saves a caller from (and the one case it leaves, a
    connection ended within the idle time of its last use)."""
    ping_after_idle(engine, idle_seconds=60)
    end_backend(backend_pid(engine))
    time.sleep(0.3)
    with pytest.raises(OperationalError):
        backend_pid(engine)


@needs_postgres
def test_the_app_checks_its_connections_after_idle_so_a_page_after_a_restart_answers(app, db, client):
    """The app's own engine has the check: its one pooled connection ended (as a database restart ends it), the next
    page after the idle time still answers 200."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
        ended = backend_pid(db.engine)
    end_backend(ended)
    time.sleep(IDLE_SECONDS + 0.1)
    assert client.get("/subscribe").status_code == 200
    with app.app_context():
        assert backend_pid(db.engine) != ended
