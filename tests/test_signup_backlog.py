"""Signups wait in a Redis backlog so that one task applies all that arrive together (subscriptions/backlog.py).

Redis runs beside both test runs; the SQLite run's app is set up without it (so its other signup tests exercise a
task per signup), and these tests point the app's backlog at it.
"""

import secrets
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.bounce_support import free_port
from tests.conftest import TEST_REDIS_URL, form_fields, isolated_client, recorded_statements, wait_for_signups
from tests.signup_support import put_in_state
from uscmail.mail.smtp import drop_connection
from uscmail.models import Consent, ConsentMethod, SignupRequest, Subscriber, SubscriptionStatus
from uscmail.subscriptions import backlog, services, tasks
from uscmail.subscriptions.consent import CURRENT_VERSION


@pytest.fixture
def empty_backlog(app):
    """A backlog of this test's own (under a key prefix of its own): the session's worker, draining the backlog of
    other tests' signups, never takes its ids; emptied afterwards."""
    prefix, url = app.config["RATELIMIT_KEY_PREFIX"], app.config["REDIS_URL"]
    app.config["RATELIMIT_KEY_PREFIX"] = f"{prefix}:backlog-test-{secrets.token_hex(4)}"
    app.config["REDIS_URL"] = url or TEST_REDIS_URL
    try:
        yield
        with app.app_context():
            backlog.take(100_000)
    finally:
        app.config["RATELIMIT_KEY_PREFIX"], app.config["REDIS_URL"] = prefix, url
        drop_connection()  # the mail this test's drains sent from this process went over its own connection


def stored(emails: list[str]) -> list[int]:
    lists = services.public_lists_by_slug(["newsletter"])
    return [services.record_signup_request(email, None, lists, ConsentMethod.FORM, CURRENT_VERSION) for email in emails]


def test_the_first_signup_schedules_a_drain_and_each_waiting_id_is_taken_once(app, db, empty_backlog):
    assert [backlog.push(request_id) for request_id in (11, 12, 13, 14, 15)] == [True, False, False, False, False]
    assert backlog.take(3) == [11, 12, 13]
    # Taking clears the mark: a signup stored from now on schedules a drain of its own.
    assert backlog.push(16) is True
    assert backlog.take(10) == [14, 15, 16]
    assert backlog.take(10) == []
    assert backlog.schedule_again() is True and backlog.schedule_again() is False


def test_one_drain_applies_the_waiting_signups_in_one_transaction_and_sends_each_its_mail(
    app, db, smtp_sink, empty_backlog
):
    emails = [f"together{number}@example.org" for number in range(5)]
    request_ids = stored(emails)
    db.session.commit()
    for request_id in request_ids:
        backlog.push(request_id)
    with recorded_statements(db.engine) as seen:
        assert tasks.apply_signups.run() == {"confirmation": 5}
    for email in emails:
        [mail] = smtp_sink.wait_for(email)
        assert "/confirm/" in mail.text()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) == 0
    subscribers = db.session.scalars(sa.select(Subscriber).where(Subscriber.email.in_(emails))).all()
    assert len(subscribers) == 5
    pending = [SubscriptionStatus.PENDING]
    assert all([s.status for s in subscriber.subscriptions] == pending for subscriber in subscribers)
    assert all(subscriber.signup_mail_count == 1 for subscriber in subscribers)
    # Per batch, not per signup: the rows locked, the lists read, the rows deleted.
    assert sum(statement.startswith("SELECT") and "FROM signup_requests" in statement for statement in seen) == 1
    assert sum("FROM mailing_lists" in statement for statement in seen) == 1
    assert sum(statement.startswith("DELETE FROM signup_requests") for statement in seen) == 1
    assert backlog.push(request_ids[-1] + 1000) is True  # the drain left no mark behind


def test_a_drain_leaves_signups_another_worker_applied_to_it_and_gets_none_twice(app, db, smtp_sink, empty_backlog):
    [owed, fresh] = stored(["owed-elsewhere@example.org", "fresh@example.org"])
    db.session.commit()
    services.apply_signup_request(owed)  # applied by a worker that was lost before its mail went: the sweeper's
    db.session.commit()
    backlog.push(owed)
    backlog.push(fresh)
    assert tasks.apply_signups.run() == {"confirmation": 1}
    smtp_sink.wait_for("fresh@example.org")
    assert not smtp_sink.to("owed-elsewhere@example.org")
    assert db.session.scalars(sa.select(SignupRequest.id)).all() == [owed]


def test_with_the_relay_out_of_reach_the_drain_hands_every_mail_to_its_retried_task(
    app, db, worker, smtp_sink, empty_backlog
):
    """Applied and committed all the same; the first failed connection sends the rest to send_signup_mail untried,
    and the worker's retries deliver them once the relay answers (here: the worker's relay is the sink)."""
    emails = [f"relay-away{number}@example.org" for number in range(3)]
    for request_id in stored(emails):
        backlog.push(request_id)
    db.session.commit()
    drop_connection()
    port = app.config["MAIL_PORT"]
    app.config["MAIL_PORT"] = free_port()  # nothing listens there
    try:
        assert tasks.apply_signups.run() == {"queued": 3}
    finally:
        app.config["MAIL_PORT"] = port
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) == 0
    for email in emails:
        [mail] = smtp_sink.wait_for(email)
        assert "/confirm/" in mail.text()


def test_a_batch_whose_new_address_was_taken_meanwhile_is_applied_one_by_one(app, db, smtp_sink, empty_backlog):
    """Two signups of one new address applied by two drains at once: the later drain's INSERT waits for the first's
    commit and fails; its batch is rolled back and applied one by one, finding the address taken."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: no two drains apply signups at once")
    request_ids = stored(["race@example.org", "bystander@example.org"])
    db.session.commit()
    for request_id in request_ids:
        backlog.push(request_id)
    other = Session(db.engine)  # the other drain, in the middle of its transaction
    other.add(Subscriber(email="race@example.org", confirm_nonce="other-drain-nonce"))
    other.flush()
    outcome = {}

    def drain():
        with app.app_context():
            outcome.update(tasks.apply_signups.run())

    thread = threading.Thread(target=drain)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive()  # waiting on the other transaction's new address
    other.commit()
    other.close()
    thread.join(30)
    assert outcome == {"confirmation": 2}
    smtp_sink.wait_for("race@example.org")
    smtp_sink.wait_for("bystander@example.org")
    wait_for_signups(db)
    race = db.session.scalars(sa.select(Subscriber).where(Subscriber.email == "race@example.org")).all()
    assert len(race) == 1 and [s.status for s in race[0].subscriptions] == [SubscriptionStatus.PENDING]


def drained_statements(db, emails: list[str]) -> list[str]:
    """The SQL one drain runs for signups of these addresses, stored and waiting together."""
    for request_id in stored(emails):
        backlog.push(request_id)
    db.session.commit()
    with recorded_statements(db.engine) as seen:
        tasks.apply_signups.run()
    return seen


def test_a_drain_runs_as_many_statements_for_twenty_signups_as_for_two(app, db, smtp_sink, empty_backlog):
    """Beside the rows it forgets every FORGET_EVERY mails sent (so a worker lost while sending owes few). On SQLite,
    SQLAlchemy writes new rows one INSERT each where it needs their ids back in order (SQLite's RETURNING does not keep
    it): there, every other statement is counted."""
    two = drained_statements(db, [f"two{number}@example.org" for number in range(2)])
    twenty = drained_statements(db, [f"twenty{number}@example.org" for number in range(20)])

    def forgetting(statements: list[str]) -> int:
        return sum(statement.startswith("DELETE FROM signup_requests") for statement in statements)

    def counted(statements: list[str]) -> list[str]:
        if db.engine.dialect.name == "postgresql":
            return statements
        return [statement for statement in statements if not statement.startswith("INSERT")]

    assert tasks.FORGET_EVERY == 10 and (forgetting(two), forgetting(twenty)) == (1, 2)
    assert len(counted(twenty)) - 2 == len(counted(two)) - 1 <= 11, "\n".join(s[:90] for s in counted(twenty))
    smtp_sink.wait_for("twenty19@example.org")


def test_one_batch_treats_each_address_as_signups_one_after_another_would(app, db, smtp_sink, empty_backlog):
    """A confirmed subscriber hears they are subscribed, a suppressed address gets nothing and no row, and two
    signups of one new address make one subscriber with one pending subscription and two mails counted."""
    put_in_state(db, "kept@example.org", "confirmed", name="Kept")
    put_in_state(db, "erased@example.org", "suppressed")
    db.session.commit()
    drained_statements(db, ["twice@example.org", "kept@example.org", "erased@example.org", "twice@example.org"])
    [notice] = smtp_sink.wait_for("kept@example.org")
    assert notice.message["Subject"] == "You are already subscribed to USC-UK"
    assert [mail.message["Subject"] for mail in smtp_sink.wait_for("twice@example.org", count=2)] == [
        "Please confirm your subscription to USC-UK"
    ] * 2
    twice = db.session.scalars(sa.select(Subscriber).where(Subscriber.email == "twice@example.org")).one()
    assert [s.status for s in twice.subscriptions] == [SubscriptionStatus.PENDING]
    assert twice.signup_mail_count == 2
    consents = db.session.scalar(
        sa.select(sa.func.count()).select_from(Consent).where(Consent.subscriber_id == twice.id)
    )
    assert consents == 1
    smtp_sink.settle()
    assert smtp_sink.to("erased@example.org") == []
    assert db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "erased@example.org")) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) == 0


def test_a_signup_stored_while_redis_fails_is_answered_as_any_other_and_left_for_the_sweeper(app, db, empty_backlog):
    """Redis failing between the commit and the push (the backlog's own connection, here pointed at a closed port):
    the visitor still gets "check your inbox", for the signup is stored, and the sweeper applies it."""
    page = isolated_client(app, environ_base={"REMOTE_ADDR": "192.0.2.77"})
    data = {**form_fields(page.get("/subscribe").get_data(as_text=True)), "consent_version": CURRENT_VERSION}
    data.update(email="redis-away@example.org", lists=["newsletter"])
    url = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        answer = page.post("/subscribe", data=data)
    finally:
        app.config["REDIS_URL"] = url
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/subscribe/thanks")
    assert db.session.scalars(sa.select(SignupRequest.email)).all() == ["redis-away@example.org"]
    assert backlog.take(10) == []


def test_a_signup_that_cannot_be_applied_is_kept_and_reported_and_the_rest_of_its_batch_goes_ahead(
    app, db, smtp_sink, empty_backlog, caplog
):
    """One stored signup names a consent wording no longer published (an upgrade removed it): applying the batch
    together fails; applied one by one, the others are applied and mailed and that one is kept for the sweeper,
    reported by its row id only."""
    emails = ["before-bad@example.org", "bad-wording@example.org", "after-bad@example.org"]
    request_ids = stored(emails)
    bad = request_ids[1]
    db.session.execute(sa.update(SignupRequest).where(SignupRequest.id == bad).values(wording_version="withdrawn"))
    db.session.commit()
    for request_id in request_ids:
        backlog.push(request_id)
    with caplog.at_level("INFO", logger="uscmail.subscriptions.tasks"):
        assert tasks.apply_signups.run() == {"confirmation": 2, "failed": 1}
    for email in ("before-bad@example.org", "after-bad@example.org"):
        [mail] = smtp_sink.wait_for(email)
        assert "/confirm/" in mail.text()
    assert not smtp_sink.to("bad-wording@example.org")
    db.session.expire_all()
    assert db.session.scalars(sa.select(SignupRequest.id)).all() == [bad]  # kept: the record of the signup
    assert db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "bad-wording@example.org")) is None
    reported = [record for record in caplog.records if record.levelname == "ERROR"]
    assert [record.getMessage() for record in reported] == [
        f"signup {bad} could not be applied (KeyError); it is kept and tried again"
    ]
    assert not any("@" in record.getMessage() for record in caplog.records)
