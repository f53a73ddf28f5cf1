"""The signup request does the same work for every address; the worker applies stored signups exactly once."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import form_fields, isolated_client, recorded_statements, wait_for_signups
from uscmail.mail.smtp import drop_connection
from uscmail.models import (
    Consent,
    ConsentMethod,
    ConsentWording,
    SignupRequest,
    Subscriber,
    SubscriptionStatus,
    SuppressionReason,
    utcnow,
)
from uscmail.subscriptions import services, tasks
from uscmail.subscriptions.consent import CURRENT_VERSION
from uscmail.suppression import suppress

NUMBERS = re.compile(r"\b\d+\b")


def statements_of_a_signup(app, db, email: str, address: str) -> list[str]:
    """The SQL the web process runs for one accepted signup, with literal numbers blanked."""
    client = isolated_client(app, environ_base={"REMOTE_ADDR": address})
    page = client.get("/subscribe").get_data(as_text=True)
    data = {**form_fields(page), "consent_version": CURRENT_VERSION, "email": email, "lists": ["newsletter"]}
    with recorded_statements(db.engine) as seen:
        assert client.post("/subscribe", data=data).status_code == 303
    wait_for_signups(db)
    return [NUMBERS.sub("N", statement) for statement in seen]


def test_the_web_request_runs_the_same_statements_whatever_the_address_state(app, db, signup, smtp_sink):
    signup("pending@example.org")
    signup("confirmed@example.org")
    signup("left@example.org")
    for email, state in (("confirmed@example.org", "confirm"), ("left@example.org", "leave")):
        subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
        services.confirm_subscription(subscriber)
        if state == "leave":
            services.unsubscribe(subscriber.id, None, services.StatusReason.ONE_CLICK)
    suppress("erased@example.org", SuppressionReason.ERASED)
    db.session.commit()

    emails = ["brand-new", "pending", "confirmed", "left", "erased"]
    runs = {
        email: statements_of_a_signup(app, db, f"{email}@example.org", f"192.0.2.{number}")
        for number, email in enumerate(emails, start=10)
    }
    first = runs["brand-new"]
    assert any(statement.startswith("INSERT INTO signup_requests") for statement in first)
    assert not any("subscribers" in statement or "suppressions" in statement for statement in first)
    assert all(statements == first for statements in runs.values()), runs


def test_the_signup_form_reads_its_lists_once_and_shows_the_wording_without_the_database(app, db):
    """The form is the busiest page (each signup is a GET and a POST): one statement reads the lists; the wording is
    shown from the code, and showing it stores nothing (the row a consent points to is stored with the consent)."""
    client = isolated_client(app, environ_base={"REMOTE_ADDR": "192.0.2.30"})
    db.session.execute(sa.delete(ConsentWording).where(ConsentWording.version == CURRENT_VERSION))
    db.session.commit()
    with recorded_statements(db.engine) as seen:
        page = client.get("/subscribe")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    public = services.public_lists()
    assert len(public) >= 2 and all(mailing_list.name in html for mailing_list in public)
    assert "I want to receive emails from the Uyghur Solidarity Campaign UK" in html
    assert [s for s in seen if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))] == [
        s for s in seen if s.startswith("SELECT") and "FROM mailing_lists" in s
    ], seen
    assert len(seen) <= 2, seen
    db.session.rollback()
    assert db.session.get(ConsentWording, CURRENT_VERSION) is None

    services.request_subscription("stored@example.org", None, public[:1], ConsentMethod.FORM, CURRENT_VERSION)
    db.session.commit()
    stored = db.session.get(ConsentWording, CURRENT_VERSION)
    assert stored is not None and stored.text in html.replace("&#39;", "'")


def test_a_stored_signup_whose_task_was_lost_is_applied_by_the_sweeper(app, db, worker, smtp_sink):
    lists = services.public_lists_by_slug(["newsletter"])
    request_id = services.record_signup_request("lost@example.org", None, lists, ConsentMethod.FORM, CURRENT_VERSION)
    db.session.execute(
        sa.update(SignupRequest)
        .where(SignupRequest.id == request_id)
        .values(created_at=utcnow() - timedelta(minutes=5))
    )
    db.session.commit()  # and no task queued: as if the broker lost it

    tasks.apply_stale_signups.delay()
    wait_for_signups(db)
    [mail] = smtp_sink.wait_for("lost@example.org")
    assert "/confirm/" in mail.text()
    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "lost@example.org"))
    assert [s.status for s in subscriber.subscriptions] == [SubscriptionStatus.PENDING]


def counts_of(db, email: str) -> tuple[int, int, int]:
    """Subscriptions, consents and signup mails counted for an address."""
    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    consents = db.session.scalar(
        sa.select(sa.func.count()).select_from(Consent).where(Consent.subscriber_id == subscriber.id)
    )
    return len(subscriber.subscriptions), consents, subscriber.signup_mail_count


@pytest.fixture
def mail_from_this_process():
    """For tests that run a mail task here rather than in the worker: its relay connection is closed afterwards."""
    yield
    drop_connection()


def test_applying_a_signup_twice_changes_nothing_the_second_time(app, db):
    """The row stays, marked with its subscriber, until its mail is handed over: asked again, it names the
    subscriber the mail is owed to and applies nothing; once forgotten, there is nothing left to do."""
    lists = services.public_lists_by_slug(["newsletter"])
    request_id = services.record_signup_request("twice@example.org", None, lists, ConsentMethod.FORM, CURRENT_VERSION)
    db.session.commit()
    first = services.apply_signup_request(request_id)
    assert first.subscriber is not None and first.pending_list_ids == [lists[0].id]
    db.session.commit()
    again = services.apply_signup_request(request_id)
    assert (again.subscriber_id, again.subscriber, again.list_ids) == (first.subscriber_id, None, [lists[0].id])
    db.session.commit()
    assert counts_of(db, "twice@example.org")[:2] == (1, 1)
    services.forget_signup_request(request_id)
    db.session.commit()
    assert services.apply_signup_request(request_id) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) == 0


def test_one_task_applies_a_signup_and_sends_its_mail_and_the_row_goes_once_the_relay_has_it(
    app, db, smtp_sink, mail_from_this_process
):
    lists = services.public_lists_by_slug(["newsletter"])
    request_id = services.record_signup_request("once@example.org", "Ann", lists, ConsentMethod.FORM, CURRENT_VERSION)
    db.session.commit()
    with recorded_statements(db.engine) as seen:
        assert tasks.apply_signup.run(request_id) == "confirmation"  # its body, here, on this test's app
    [mail] = smtp_sink.wait_for("once@example.org")
    assert "/confirm/" in mail.text() and "Newsletter" in mail.text()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) == 0
    assert counts_of(db, "once@example.org") == (1, 1, 1)
    # Someone new: nothing of theirs is looked up but the address, and the lists the mail names are not read again.
    selects = [statement for statement in seen if statement.startswith("SELECT")]
    assert not any("FROM subscriptions" in statement or "FROM consents" in statement for statement in selects)
    assert sum("FROM mailing_lists" in statement for statement in selects) == 1


def test_a_signup_whose_worker_was_lost_after_applying_it_gets_its_mail_from_the_sweeper_once(
    app, db, worker, smtp_sink
):
    """A worker killed between the commit that applies a signup and the relay's answer: the row, marked, is found
    by the sweeper, which sends the mail owed without applying the signup again or counting the mail twice."""
    lists = services.public_lists_by_slug(["newsletter"])
    request_id = services.record_signup_request(
        "lost-worker@example.org", None, lists, ConsentMethod.FORM, CURRENT_VERSION
    )
    db.session.commit()
    applied = services.apply_signup_request(request_id)
    assert services.claim_signup_mail(applied.subscriber_id)
    db.session.execute(
        sa.update(SignupRequest)
        .where(SignupRequest.id == request_id)
        .values(created_at=utcnow() - timedelta(minutes=5))
    )
    db.session.commit()  # and then the worker is gone: no mail sent, the row left marked

    tasks.apply_stale_signups.delay()
    wait_for_signups(db)
    [mail] = smtp_sink.wait_for("lost-worker@example.org")
    assert "/confirm/" in mail.text()
    assert counts_of(db, "lost-worker@example.org") == (1, 1, 1)


def test_a_signup_mail_the_relay_refuses_for_good_ends_the_signup_and_the_sweeper_goes_on(app, db, worker, smtp_sink):
    lists = services.public_lists_by_slug(["newsletter"])
    for email in ("refused@example.org", "after@example.org"):
        services.record_signup_request(email, None, lists, ConsentMethod.FORM, CURRENT_VERSION)
    db.session.execute(sa.update(SignupRequest).values(created_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    smtp_sink.replies["refused@example.org"] = "550 5.1.1 No such user"
    try:
        tasks.apply_stale_signups.delay()
        smtp_sink.wait_for("after@example.org")
        wait_for_signups(db)
    finally:
        del smtp_sink.replies["refused@example.org"]
    assert not smtp_sink.to("refused@example.org")
    assert counts_of(db, "refused@example.org")[:2] == (1, 1)  # the signup stands; only its mail was refused


def test_the_per_address_counter_is_shared_and_resets_after_its_window(app, db):
    lists = services.public_lists_by_slug(["newsletter"])
    request_id = services.record_signup_request("count@example.org", None, lists, ConsentMethod.FORM, CURRENT_VERSION)
    subscriber_id = services.apply_signup_request(request_id).subscriber_id
    db.session.commit()
    assert [services.claim_signup_mail(subscriber_id) for _ in range(4)] == [True, True, True, False]
    db.session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(signup_mail_window_start=utcnow() - timedelta(days=1, seconds=1))
    )
    assert services.claim_signup_mail(subscriber_id) is True


def test_a_stored_signup_that_cannot_be_applied_does_not_hold_up_the_sweeper(
    app, db, smtp_sink, mail_from_this_process
):
    """The first stale row names a consent wording no longer published: it is kept and reported, and the sweeper
    goes on to the rows after it (it stopped there, every minute, for good)."""
    lists = services.public_lists_by_slug(["newsletter"])
    bad, good = (
        services.record_signup_request(email, None, lists, ConsentMethod.FORM, CURRENT_VERSION)
        for email in ("unappliable@example.org", "behind-it@example.org")
    )
    db.session.execute(sa.update(SignupRequest).values(created_at=utcnow() - timedelta(minutes=5)))
    db.session.execute(sa.update(SignupRequest).where(SignupRequest.id == bad).values(wording_version="withdrawn"))
    db.session.commit()

    assert tasks.apply_stale_signups.run() == 2  # both gone through: one applied, one failed
    [mail] = smtp_sink.wait_for("behind-it@example.org")
    assert "/confirm/" in mail.text()
    db.session.expire_all()
    assert db.session.scalars(sa.select(SignupRequest.id)).all() == [bad]
    # Tried again next time, and kept again, until it is mended.
    assert tasks.apply_stale_signups.run() == 1
    assert db.session.scalars(sa.select(SignupRequest.id)).all() == [bad]
