"""The signup request does the same work for every address; the worker applies stored signups exactly once."""

import re
from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import form_fields, isolated_client, recorded_statements, wait_for_signups
from uscmail.models import (
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


def test_applying_a_signup_twice_changes_nothing_the_second_time(app, db):
    lists = services.public_lists_by_slug(["newsletter"])
    request_id = services.record_signup_request("twice@example.org", None, lists, ConsentMethod.FORM, CURRENT_VERSION)
    db.session.commit()
    assert services.apply_signup_request(request_id).subscriber_id is not None
    db.session.commit()
    assert services.apply_signup_request(request_id) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) == 0


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
