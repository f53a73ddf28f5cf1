"""Housekeeping: unconfirmed signups are forgotten after the retention period, through the real worker and beat."""

from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import form_fields
from tests.factories import sign_up_subscriber
from tests.waiting import wait_until
from uscmail import links
from uscmail.models import (
    Consent,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from uscmail.subscriptions import services, tasks
from uscmail.suppression import is_suppressed, suppress


def confirm(db, subscriber_id) -> None:
    services.confirm_subscription(db.session.get(Subscriber, subscriber_id))
    db.session.commit()


def leave(db, subscriber_id) -> None:
    services.unsubscribe(subscriber_id, None, StatusReason.ONE_CLICK)
    db.session.commit()


def age(db, subscriber_id, days: float) -> None:
    """Move every record of the subscriber `days` into the past, as if made then."""
    then = utcnow() - timedelta(days=days)
    for model, column in (
        (Subscriber, Subscriber.id),
        (Subscription, Subscription.subscriber_id),
        (Consent, Consent.subscriber_id),
    ):
        db.session.execute(sa.update(model).where(column == subscriber_id).values(created_at=then))
    db.session.commit()


def records(db, subscriber_id):
    """(subscriber exists, [(list slug, status)], number of consents) as the database holds it now."""
    db.session.rollback()
    exists = db.session.get(Subscriber, subscriber_id) is not None
    subscriptions = sorted(
        (s.mailing_list.slug, s.status)
        for s in db.session.scalars(sa.select(Subscription).where(Subscription.subscriber_id == subscriber_id))
    )
    consents = db.session.scalar(sa.select(sa.func.count()).where(Consent.subscriber_id == subscriber_id))
    db.session.rollback()
    return exists, subscriptions, consents


def run_purge_and_wait_for(db, gone_subscriber_id, timeout=20.0) -> None:
    """Queue the purge task for the live worker and wait until it has removed the given subscriber."""
    tasks.purge_unconfirmed.delay()
    wait_until(lambda: not records(db, gone_subscriber_id)[0], timeout, "the worker to purge the stale signup")


def test_purge_forgets_stale_signups_and_keeps_everything_else(db, worker):
    stale = sign_up_subscriber("stale@example.org", ["newsletter", "london-protest-reminders"], confirmed=False).id
    age(db, stale, 14 + 1 / 24)
    recent = sign_up_subscriber("recent@example.org", confirmed=False).id
    age(db, recent, 14 - 1 / 24)
    confirmed = sign_up_subscriber("confirmed@example.org", confirmed=False).id
    confirm(db, confirmed)
    age(db, confirmed, 60)
    unsubscribed = sign_up_subscriber("unsubscribed@example.org", confirmed=False).id
    confirm(db, unsubscribed)
    leave(db, unsubscribed)
    age(db, unsubscribed, 60)
    # A confirmed reader who asked for a second list long ago and never confirmed it.
    half = sign_up_subscriber("half@example.org", confirmed=False).id
    confirm(db, half)
    sign_up_subscriber("half@example.org", ["london-protest-reminders"], confirmed=False)
    age(db, half, 30)

    run_purge_and_wait_for(db, stale)

    assert records(db, stale) == (False, [], 0)
    assert records(db, recent) == (True, [("newsletter", SubscriptionStatus.PENDING)], 1)
    assert records(db, confirmed) == (True, [("newsletter", SubscriptionStatus.CONFIRMED)], 1)
    assert records(db, unsubscribed) == (True, [("newsletter", SubscriptionStatus.UNSUBSCRIBED)], 1)
    assert records(db, half) == (True, [("newsletter", SubscriptionStatus.CONFIRMED)], 1)
    # Running it again, as a duplicate beat would, finds nothing to do.
    assert services.purge_unconfirmed() == 0
    db.session.commit()
    assert records(db, recent)[0]


def test_a_recent_second_request_survives_the_purge_and_can_be_confirmed(client, db, worker, smtp_sink):
    subscriber_id = sign_up_subscriber("second.try@example.org", confirmed=False).id
    age(db, subscriber_id, 20)
    sign_up_subscriber("second.try@example.org", confirmed=False)
    subscriber = db.session.get(Subscriber, subscriber_id)
    confirm_path = "/confirm/" + links.make_confirm_token(subscriber.public_id, subscriber.confirm_nonce)
    marker = sign_up_subscriber("marker@example.org", confirmed=False).id
    age(db, marker, 20)

    run_purge_and_wait_for(db, marker)

    assert records(db, subscriber_id)[0]
    page = client.get(confirm_path)
    assert "Confirm my subscription" in page.get_data(as_text=True)
    assert client.post(confirm_path, data=form_fields(page.get_data(as_text=True))).status_code == 200
    assert records(db, subscriber_id) == (True, [("newsletter", SubscriptionStatus.CONFIRMED)], 1)
    smtp_sink.wait_for("second.try@example.org")


def test_the_beat_schedule_runs_the_purge_at_least_daily(app):
    schedule = app.config["CELERY"]["beat_schedule"]
    [entry] = [entry for entry in schedule.values() if entry["task"] == tasks.purge_unconfirmed.name]

    assert entry["task"] == "uscmail.subscriptions.tasks.purge_unconfirmed"
    assert entry["task"] in app.extensions["celery"].tasks
    assert 0 < entry["schedule"] <= 24 * 3600
    assert app.config["UNCONFIRMED_RETENTION_DAYS"] == 14


def unsubscribed_days_ago(db, subscriber_id, days: float) -> None:
    then = utcnow() - timedelta(days=days)
    db.session.execute(
        sa.update(Subscription).where(Subscription.subscriber_id == subscriber_id).values(unsubscribed_at=then)
    )
    db.session.commit()


def test_long_unsubscribed_records_are_erased_through_the_worker_leaving_only_a_suppression(app, db, worker):
    from uscmail.models import Suppression, SuppressionReason

    gone = sign_up_subscriber("long-gone@example.org", ("newsletter", "london-protest-reminders"), confirmed=False).id
    confirm(db, gone)
    leave(db, gone)
    unsubscribed_days_ago(db, gone, 731)
    recent = sign_up_subscriber("recently-left@example.org", confirmed=False).id
    confirm(db, recent)
    leave(db, recent)
    unsubscribed_days_ago(db, recent, 729)
    half = sign_up_subscriber("half-left@example.org", ("newsletter", "london-protest-reminders"), confirmed=False).id
    confirm(db, half)
    services.unsubscribe(half, [services.public_lists()[0].id], StatusReason.ONE_CLICK)
    db.session.commit()
    # One list left long ago; the other is still confirmed, so the record stays.
    unsubscribed_days_ago(db, half, 900)
    db.session.execute(
        sa.update(Subscription)
        .where(Subscription.subscriber_id == half, Subscription.status == SubscriptionStatus.CONFIRMED)
        .values(unsubscribed_at=None)
    )
    db.session.commit()

    tasks.purge_unsubscribed.delay()
    wait_until(lambda: not records(db, gone)[0], 20, "the worker to erase the long-unsubscribed record")
    assert records(db, gone) == (False, [], 0)
    assert records(db, recent)[0] and records(db, half)[0]
    reasons = db.session.scalars(sa.select(Suppression.reason)).all()
    assert reasons == [SuppressionReason.UNSUBSCRIBED]
    assert is_suppressed("long-gone@example.org")


def test_a_purged_unsubscriber_may_sign_up_again_and_confirming_lifts_the_suppression(app, db):
    gone = sign_up_subscriber("back-again@example.org", confirmed=False).id
    confirm(db, gone)
    leave(db, gone)
    unsubscribed_days_ago(db, gone, 800)
    assert services.purge_unsubscribed() == 1
    db.session.commit()
    again = sign_up_subscriber("back-again@example.org", confirmed=False).id
    assert again is not None
    assert services.open_consent_list_ids(db.session.get(Subscriber, again))
    confirm(db, again)
    assert not is_suppressed("back-again@example.org")


def test_erased_addresses_stay_blocked_and_a_zero_retention_keeps_records(app, db):
    from uscmail.models import SuppressionReason

    suppress("erased@example.org", SuppressionReason.ERASED)
    db.session.commit()
    assert sign_up_subscriber("erased@example.org", confirmed=False) is None
    kept = sign_up_subscriber("kept@example.org", confirmed=False).id
    confirm(db, kept)
    leave(db, kept)
    unsubscribed_days_ago(db, kept, 5000)
    app.config["UNSUBSCRIBED_RETENTION_DAYS"] = 0
    try:
        assert services.purge_unsubscribed() == 0
    finally:
        app.config["UNSUBSCRIBED_RETENTION_DAYS"] = 730
    assert records(db, kept)[0]
