"""Celery tasks of the supporter journey; thin wrappers that reload rows and call services."""

import logging
from datetime import timedelta

from celery import shared_task

from ..bounces import returnpath
from ..extensions import db
from ..mail.smtp import send_message
from ..models import Subscriber, SubscriptionStatus
from ..outages import DatabaseAway, retry_when_database_away
from ..queueing import after_commit
from ..suppression import is_suppressed
from . import mails, services

log = logging.getLogger(__name__)

# Retried: a transient refusal (MessageNotSentYet), a broken or refused connection, the database out of reach
# (DatabaseAway, with @retry_when_database_away): all OSErrors. Not retried: a
# permanent refusal (MessageRefused, SenderRefused: not OSErrors). No dont_autoretry_for: Celery checks it first, and
# MessageNotSentYet is also a MessageRefused, so listing that would stop every transient refusal being retried.
SMTP_RETRY = {
    "autoretry_for": (OSError,),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "max_retries": 8,
}


@shared_task(**SMTP_RETRY, soft_time_limit=60, time_limit=90)
@retry_when_database_away
def send_signup_mail(subscriber_id: int, list_ids: list[int], locale: str | None = None) -> str:
    """After a signup request: a confirmation mail, or an "already subscribed" notice, in the signup's language.

    The per-address limit is counted before this task is queued (services.claim_signup_mail).
    """
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return "gone"
    pending = services.open_consent_list_ids(subscriber, list_ids)
    if pending and subscriber.confirm_nonce:
        message = mails.confirmation_message(subscriber, pending, locale)
        outcome = "confirmation"
    else:
        confirmed = [
            s.list_id
            for s in subscriber.subscriptions
            if s.list_id in list_ids and s.status is SubscriptionStatus.CONFIRMED
        ]
        if not confirmed:
            return "nothing"
        message = mails.already_subscribed_message(subscriber, confirmed, locale)
        outcome = "already_subscribed"
    send_message(message, returnpath.for_subscriber(subscriber.id))
    log.info("signup mail (%s) sent to subscriber %s", outcome, subscriber_id)
    return outcome


# The database out of reach: tried again soon (apply_stale_signups would also find it, a minute later).
@shared_task(autoretry_for=(DatabaseAway,), retry_backoff=2, max_retries=6, soft_time_limit=60, time_limit=90)
@retry_when_database_away
def apply_signup(request_id: int) -> str:
    """Apply a stored signup (pending subscriptions and consent), then queue its mail within the per-address limit.

    Split from the sending, so an SMTP retry never applies a signup twice and a lost mail task loses no signup.
    """
    result = services.apply_signup_request(request_id)
    if result is None or result.subscriber_id is None:
        db.session.commit()
        return "nothing to send"
    allowed = services.claim_signup_mail(result.subscriber_id)
    if allowed:
        after_commit(send_signup_mail, result.subscriber_id, result.list_ids, result.locale)
    db.session.commit()
    if not allowed:
        log.info("signup mail for subscriber %s withheld: per-address limit", result.subscriber_id)
        return "limited"
    return "queued"


@shared_task(**SMTP_RETRY, soft_time_limit=60, time_limit=90)
@retry_when_database_away
def send_preferences_link(subscriber_ref: int | str) -> str:
    """Mail a subscriber (by public id; a row id from tasks queued by older versions) their preference link, within
    the per-address limit shared with signup mails; never to an address on the suppression list (a complaint or a
    hard bounce). Nothing for a subscriber who has been erased."""
    if isinstance(subscriber_ref, str):
        subscriber = services.subscriber_by_public_id(subscriber_ref)
    else:
        subscriber = db.session.get(Subscriber, subscriber_ref)
    if subscriber is None:
        return "gone"
    subscriber_id = subscriber.id
    if is_suppressed(subscriber.email):
        return "suppressed"
    allowed = services.claim_signup_mail(subscriber_id)
    db.session.commit()
    if not allowed:
        log.info("preferences link for subscriber %s withheld: per-address limit", subscriber_id)
        return "limited"
    send_message(mails.preferences_link_message(subscriber), returnpath.for_subscriber(subscriber.id))
    return "sent"


@shared_task(soft_time_limit=300, time_limit=330)
def apply_stale_signups() -> int:
    """Beat task: apply signups whose task was lost (a broker restart, say); each is applied once."""
    applied = 0
    for request_id in services.stale_signup_request_ids(timedelta(minutes=1)):
        apply_signup(request_id)
        applied += 1
    return applied


@shared_task(**SMTP_RETRY, soft_time_limit=60, time_limit=90)
@retry_when_database_away
def send_welcome_mail(subscriber_id: int, list_ids: list[int]) -> str:
    """The welcome mail for lists just confirmed."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or not list_ids:
        return "gone"
    send_message(mails.welcome_message(subscriber, list_ids), returnpath.for_subscriber(subscriber.id))
    return "welcome"


@shared_task(soft_time_limit=1800, time_limit=1860)
def purge_unconfirmed() -> int:
    """Beat task: remove signups left unconfirmed past the retention period."""
    removed = services.purge_unconfirmed()
    db.session.commit()
    log.info("purged %d unconfirmed subscribers", removed)
    return removed


@shared_task(soft_time_limit=1800, time_limit=1860)
def purge_unsubscribed() -> int:
    """Beat task: erase records of people unsubscribed from everything for longer than the retention period."""
    removed = services.purge_unsubscribed()
    db.session.commit()
    log.info("purged %d long-unsubscribed subscribers", removed)
    return removed
