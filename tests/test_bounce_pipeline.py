"""The bounce service's pipelined writes (services.pipelined): on PostgreSQL they go in one round trip, and an error
in any of them must still come out as SQLAlchemy's, with the transaction rolled back and the session usable; a lost
connection must not go back to the pool."""

import pytest
import sqlalchemy as sa

from tests.conftest import BACKEND
from uscmail.bounces.models import BounceSource, SetAsideMail
from uscmail.bounces.services import INSERT_SET_ASIDE, pipelined
from uscmail.models import utcnow


def row(reason: str | None) -> dict:
    return {"source": BounceSource.RECEIVER, "reason": reason, "size": 1, "content": b"x", "created_at": utcnow()}


def test_the_statements_in_the_block_are_all_written(db):
    with pipelined():
        db.session.connection().execute(INSERT_SET_ASIDE, [row("one"), row("two")])
        db.session.connection().execute(INSERT_SET_ASIDE, row("three"))
    db.session.commit()
    assert sorted(db.session.scalars(sa.select(SetAsideMail.reason))) == ["one", "three", "two"]


def test_an_error_in_the_block_is_sqlalchemys_and_nothing_of_the_block_is_kept(db):
    db.session.connection().execute(INSERT_SET_ASIDE, row("before"))
    with pytest.raises(sa.exc.IntegrityError), pipelined():
        db.session.connection().execute(INSERT_SET_ASIDE, row("in the block"))
        db.session.connection().execute(INSERT_SET_ASIDE, row(None))  # reason is NOT NULL
    db.session.rollback()
    assert db.session.scalars(sa.select(SetAsideMail.reason)).all() == []
    db.session.connection().execute(INSERT_SET_ASIDE, row("after"))
    db.session.commit()
    assert db.session.scalars(sa.select(SetAsideMail.reason)).all() == ["after"]


@pytest.mark.skipif(BACKEND != "postgres", reason="a server-side disconnect needs PostgreSQL")
def test_a_connection_lost_in_the_block_is_not_used_again(db):
    backend_pid = db.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with db.engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({backend_pid})")
    with pytest.raises(sa.exc.OperationalError), pipelined():
        db.session.connection().execute(INSERT_SET_ASIDE, row("lost"))
    db.session.rollback()
    assert db.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar() != backend_pid
    assert db.session.scalars(sa.select(SetAsideMail.reason)).all() == []
