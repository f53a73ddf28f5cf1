"""Queue Celery tasks only once the rows they act on are committed.

`after_commit(task, *args)` keeps the call on the current database session and makes it (`task.apply_async`) right
after that session's next successful commit; a rollback drops it. So a worker never looks for a row that is not there
yet, and a request that fails queues nothing. Views, tasks and services call it wherever they decide a task is
needed; whoever commits (the edge: a view, a task, the CLI) sets it off.
"""

from collections.abc import Sequence
from typing import Any

from celery import Task
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .extensions import db

PENDING = "uscmail.after_commit"


def after_commit(task: Task, *args: Any, **options: Any) -> None:
    """Queue `task` with `args` (and apply_async `options`, e.g. countdown or argsrepr) after the next commit."""
    db.session().info.setdefault(PENDING, []).append((task, args, options))


def _queue_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released; the transaction is still open
        return
    pending: Sequence[tuple[Task, tuple, dict]] = session.info.pop(PENDING, ())
    for task, args, options in pending:
        task.apply_async(args, **options)


def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(PENDING, None)


event.listen(Session, "after_commit", _queue_pending)
event.listen(Session, "after_soft_rollback", _drop_pending)
