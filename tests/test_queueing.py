"""after_commit: a task is queued only once the transaction that asked for it has committed."""

from uscmail.models import MailingList
from uscmail.queueing import after_commit


class RecordingTask:
    """Stands in for a Celery task: records apply_async calls instead of talking to a broker."""

    def __init__(self):
        self.calls = []

    def apply_async(self, args, **options):
        self.calls.append((args, options))


def test_a_task_is_queued_after_the_commit_not_before(app, db):
    task = RecordingTask()
    db.session.add(MailingList(slug="queued-list", name="Queued"))
    after_commit(task, 7, [1, 2], countdown=5)
    db.session.flush()
    assert task.calls == []
    db.session.commit()
    assert task.calls == [((7, [1, 2]), {"countdown": 5})]
    db.session.commit()  # a later commit does not queue it again
    assert len(task.calls) == 1


def test_a_rollback_drops_what_was_asked_for(app, db):
    task = RecordingTask()
    db.session.add(MailingList(slug="rolled-back", name="Rolled back"))
    db.session.flush()
    after_commit(task, 1)
    db.session.rollback()
    db.session.add(MailingList(slug="next-one", name="Next"))
    db.session.commit()
    assert task.calls == []


def test_releasing_a_savepoint_does_not_queue_before_the_real_commit(app, db):
    task = RecordingTask()
    db.session.add(MailingList(slug="outer", name="Outer"))
    db.session.flush()
    with db.session.begin_nested():
        db.session.add(MailingList(slug="inner", name="Inner"))
        after_commit(task, 3)
    assert task.calls == []
    db.session.commit()
    assert task.calls == [((3,), {})]
