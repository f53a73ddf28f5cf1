"""Celery tasks of the supporter journey; thin wrappers that reload rows and call services."""

import logging
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from ..bounces import returnpath
from ..extensions import db
from ..mail.smtp import MessageNotSentYet, MessageRefused, SenderRefused, send_message
from ..models import MailingList, Subscriber, SubscriptionStatus
from ..outages import DatabaseAway, database_away, retry_when_database_away
from ..queueing import after_commit
from ..suppression import is_suppressed
from . import backlog, mails, services

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


def signup_message(
    subscriber: Subscriber, pending: list[MailingList], confirmed: list[MailingList], locale: str | None
) -> tuple[EmailMessage, str] | None:
    """The mail a signup asks for, and its kind: a confirmation for the lists with an open opt-in, else a notice for
    those already confirmed; None if neither."""
    if pending and subscriber.confirm_nonce:
        return mails.confirmation_message(subscriber, pending, locale), "confirmation"
    if confirmed:
        return mails.already_subscribed_message(subscriber, confirmed, locale), "already_subscribed"
    return None


def stored_signup_message(
    subscriber_id: int, list_ids: list[int], locale: str | None
) -> tuple[EmailMessage, str] | str:
    """signup_message for a signup applied earlier, read from the database; "gone" or "nothing" if there is none."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return "gone"
    pending = services.open_consent_list_ids(subscriber, list_ids)
    if pending and subscriber.confirm_nonce:
        return signup_message(subscriber, mails.lists_by_id(pending), [], locale)
    confirmed = [
        s.list_id
        for s in subscriber.subscriptions
        if s.list_id in list_ids and s.status is SubscriptionStatus.CONFIRMED
    ]
    return signup_message(subscriber, [], mails.lists_by_id(confirmed) if confirmed else [], locale) or "nothing"


@shared_task(**SMTP_RETRY, soft_time_limit=60, time_limit=90)
@retry_when_database_away
def send_signup_mail(subscriber_id: int, list_ids: list[int], locale: str | None = None) -> str:
    """A confirmation mail, or an "already subscribed" notice, in the signup's language: for a signup from the API
    or an import, or one whose mail the relay could not take at once (apply_signup hands it here to be retried).

    The per-address limit is counted before this task is queued (services.claim_signup_mail).
    """
    found = stored_signup_message(subscriber_id, list_ids, locale)
    if isinstance(found, str):
        return found
    message, outcome = found
    send_message(message, returnpath.for_subscriber(subscriber_id))
    log.info("signup mail (%s) sent to subscriber %s", outcome, subscriber_id)
    return outcome


def claim_signup_mails(results: list[services.SignupResult]) -> list[bool]:
    """Whether each signup applied just now may have its mail under the per-address limit, counted in one UPDATE
    for the first signup of each address (a second of one address, rare, is counted after it)."""
    first = {}
    for result in results:
        if result.subscriber_id is not None:
            first.setdefault(result.subscriber_id, result)
    allowed = services.claim_signup_mails(list(first)) if first else set()
    return [
        result.subscriber_id is not None
        and (
            result.subscriber_id in allowed
            if first[result.subscriber_id] is result
            else services.claim_signup_mail(result.subscriber_id)
        )
        for result in results
    ]


def fresh_signup_mail(result: services.SignupResult, allowed: bool) -> tuple[EmailMessage, str] | str:
    """The mail for a signup applied just now, written from what applying it loaded, if the per-address limit
    `allowed` it (claim_signup_mails); or why there is none ("nothing", "limited")."""
    if result.subscriber_id is None:  # an address on the suppression list: nothing was recorded
        return "nothing"
    if not allowed:
        log.info("signup mail for subscriber %s withheld: per-address limit", result.subscriber_id)
        return "limited"
    pending = [mailing_list for mailing_list in result.lists if mailing_list.id in result.pending_list_ids]
    confirmed = [mailing_list for mailing_list in result.lists if mailing_list.id not in result.pending_list_ids]
    return signup_message(result.subscriber, pending, confirmed, result.locale) or "nothing"


def hand_to_mail_task(result: services.SignupResult, error: OSError) -> None:
    """A signup mail the relay could not take now goes to send_signup_mail, which retries it with backoff (queued
    at the next commit)."""
    log.info("signup mail for subscriber %s handed to its own task: %s", result.subscriber_id, type(error).__name__)
    after_commit(send_signup_mail, result.subscriber_id, result.list_ids, result.locale)


# The database out of reach: tried again soon (apply_stale_signups would also find it, a minute later).
@shared_task(autoretry_for=(DatabaseAway,), retry_backoff=2, max_retries=6, soft_time_limit=60, time_limit=90)
@retry_when_database_away
def apply_signup(request_id: int) -> str:
    """Apply a stored signup (pending subscriptions and consent) and send its mail within the per-address limit:
    for the sweeper, and where signups do not wait in a backlog (no Redis; see apply_signups).

    One task for both: the signup's row stays, marked with its subscriber, from the commit that applies it until the
    relay has taken the mail, so a worker lost in between leaves the mail owed (the task's redelivery or the sweeper
    sends it) and never applies the signup twice. A relay that cannot take the mail now (a refusal to try again, or
    out of reach) hands it to send_signup_mail, which retries it with backoff; a relay that refuses it for good ends
    the signup, as the mail task's own refusal would.
    """
    result = services.apply_signup_request(request_id)
    if result is None:
        db.session.commit()
        return "nothing to send"
    if result.subscriber is not None or result.subscriber_id is None:  # applied just now
        found = fresh_signup_mail(result, *claim_signup_mails([result]))
        db.session.commit()
    else:  # applied before, by a worker lost before the mail went
        found = stored_signup_message(result.subscriber_id, result.list_ids, result.locale)
    if isinstance(found, str):
        services.forget_signup_request(request_id)
        db.session.commit()
        return found
    message, outcome = found
    try:
        send_message(message, returnpath.for_subscriber(result.subscriber_id))
    except OSError as exc:
        db.session.rollback()
        hand_to_mail_task(result, exc)
        services.forget_signup_request(request_id)
        db.session.commit()
        return "queued"
    except (MessageRefused, SenderRefused):
        db.session.rollback()
        services.forget_signup_request(request_id)
        db.session.commit()
        raise
    services.forget_signup_request(request_id)
    db.session.commit()
    log.info("signup mail (%s) sent to subscriber %s", outcome, result.subscriber_id)
    return outcome


# The most signups one drain applies: one transaction and one relay connection serve them all.
SIGNUP_BATCH = 200
# A drain forgets the signups whose mail has gone this many at a time: a worker lost while it sends leaves at most
# this many mails that went but are still owed (the sweeper sends them again), for one DELETE and commit each time.
FORGET_EVERY = 10


@shared_task(autoretry_for=(DatabaseAway,), retry_backoff=2, max_retries=6, soft_time_limit=120, time_limit=150)
@retry_when_database_away
def apply_signups() -> dict[str, int]:
    """Apply the signups waiting in the backlog (subscriptions.backlog) and send their mail: apply_signup's work for
    a batch, each signup's row kept, marked, until the relay has its mail, as there.

    The batch is applied and its mail written in one transaction, committed before any mail goes. Then the mail
    goes over one connection: one the relay cannot take now goes to send_signup_mail to be retried, and once the
    relay is out of reach, the rest follow it untried; one refused for good ends its signup. Two signups of one new
    address applied by two drains at once: the later drain's batch fails as a whole (the address is taken) and its
    signups are applied one by one instead; so is a batch with a signup that cannot be applied, which is kept and
    reported while the rest go ahead.
    """
    request_ids = backlog.take(SIGNUP_BATCH)
    if len(request_ids) == SIGNUP_BATCH and backlog.schedule_again():
        apply_signups.delay()  # more are waiting: the next batch need not wait for this one
    try:
        applied = services.apply_signup_requests(request_ids)
        allowed = claim_signup_mails([result for _, result in applied])
        found = [
            (request_id, result, fresh_signup_mail(result, permitted))
            for (request_id, result), permitted in zip(applied, allowed, strict=True)
        ]
        db.session.commit()
    except Exception as exc:
        if not signups_own_fault(exc):
            raise
        db.session.rollback()
        if isinstance(exc, sa.exc.IntegrityError):
            why = "an address in it was taken meanwhile"
        else:
            why = f"applying them together failed ({type(exc).__name__})"
        log.info("a batch of %d signups is applied one by one: %s", len(request_ids), why)
        return dict(apply_one_by_one(request_ids))
    outcomes = Counter(mail for _, _, mail in found if isinstance(mail, str))
    done = [request_id for request_id, _, mail in found if isinstance(mail, str)]
    relay_away = None
    for request_id, result, mail in found:
        if isinstance(mail, str):
            continue
        message, outcome = mail
        if relay_away is not None:
            hand_to_mail_task(result, relay_away)
            outcome = "queued"
        else:
            try:
                send_message(message, returnpath.for_subscriber(result.subscriber_id))
            except MessageNotSentYet as exc:  # this message, this time: the next may go
                hand_to_mail_task(result, exc)
                outcome = "queued"
            except OSError as exc:  # the connection: the rest would wait on it too
                relay_away = exc
                hand_to_mail_task(result, exc)
                outcome = "queued"
            except (MessageRefused, SenderRefused) as exc:
                log.warning("signup mail for subscriber %s refused for good: %s", result.subscriber_id, exc)
                outcome = "refused"
        outcomes[outcome] += 1
        done.append(request_id)
        if len(done) >= FORGET_EVERY:  # so a worker lost later owes the mail of a few signups, not of the batch
            services.forget_signup_requests(done)
            db.session.commit()
            done = []
    services.forget_signup_requests(done)
    db.session.commit()
    log.info("signups applied: %s", dict(outcomes))
    return dict(outcomes)


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
    """Beat task: apply signups whose task was lost (a broker restart, say), and send the mail of those whose worker
    was lost after applying them; each is applied once."""
    return sum(apply_one_by_one(services.stale_signup_request_ids(timedelta(minutes=1))).values())


def signups_own_fault(error: Exception) -> bool:
    """Whether an error raised while applying signups is theirs (one stored signup that cannot be applied, say a
    consent wording an upgrade removed), so that the others can go on without it, rather than the database or the
    worker going away, which stops them all."""
    if isinstance(error, (DatabaseAway, SoftTimeLimitExceeded)):
        return False
    return not (isinstance(error, sa.exc.DBAPIError) and database_away(error))


def apply_one_by_one(request_ids: list[int]) -> Counter:
    """apply_signup for each signup, here, each in its own transaction; their outcomes counted.

    A signup that cannot be applied is rolled back, kept (its row is the record of it) and reported, and the rest go
    on: one bad row must not hold up every signup after it, sweep after sweep. The sweeper tries it again each
    minute, reporting it each time, until an operator mends it or the code that refused it."""
    outcomes = Counter()
    for request_id in request_ids:
        try:
            outcomes[apply_signup(request_id)] += 1
        except (MessageRefused, SenderRefused):  # refused for good (apply_signup ended that signup); the rest go on
            log.warning("signup %s: the relay refused its mail for good", request_id)
            outcomes["refused"] += 1
        except Exception as exc:
            if not signups_own_fault(exc):
                raise
            db.session.rollback()
            # The error's type only: a database error's text can quote the address.
            log.error("signup %s could not be applied (%s); it is kept and tried again", request_id, type(exc).__name__)
            log.debug("signup %s could not be applied", request_id, exc_info=True)
            outcomes["failed"] += 1
    return outcomes


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
