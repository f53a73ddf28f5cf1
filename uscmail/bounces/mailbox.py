"""Bounces and complaints delivered to a mailbox (BOUNCE_MAILBOX_URL), polled over IMAP or POP3 by beat: each
message is read, handed to the intake, committed, and only then deleted from the mailbox (or, over IMAP, moved to
BOUNCE_MAILBOX_DONE_FOLDER).

Nothing is lost. The intake sets aside what it cannot read, and the poll sets aside a message the intake fails on for
any reason but the database, or whose record the database refuses as data; any other database error stops the poll
and leaves that message and the ones after it in the mailbox for the next poll. A message can be taken twice, never
lost: if the connection breaks between the commit and the deletion (POP3 deletes at the end of the session), the next
poll reads it again, and recording a bounce twice changes nothing (the address is already suppressed, or a soft
bounce scores once a day).

One poll at a time: a lock in Redis (a file lock without Redis, when every worker is on one machine).
"""

import contextlib
import enum
import fcntl
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from ..extensions import db
from ..mail.smtp import safe_detail
from . import intake
from .mailstore import (
    FAULTS,
    LoginRefused,
    MailboxAccess,
    MailboxMisconfigured,
    fault_words,
    mailbox_access,
    open_mailbox,
)
from .models import BounceSource
from .services import Result, set_aside

log = logging.getLogger(__name__)

# Celery's limits of one poll, and the lock's lifetime: longer than a poll can last, so a poll never loses its lock;
# a worker killed mid-poll holds it until it lapses.
POLL_SOFT_TIME_LIMIT = 300
POLL_TIME_LIMIT = 330
LOCK_SECONDS = POLL_TIME_LIMIT + 30


class PollOutcome(enum.StrEnum):
    """How a poll ended."""

    DONE = "done"  # every message it looked at was taken (beyond BOUNCE_MAILBOX_MAX_MESSAGES wait for the next poll)
    OFF = "off"  # no BOUNCE_MAILBOX_URL
    BUSY = "busy"  # another poll is running
    MISCONFIGURED = "misconfigured"  # BOUNCE_MAILBOX_URL cannot be used
    LOGIN_REFUSED = "login_refused"  # the server refused the user name or password
    FAILED = "failed"  # no connection, TLS failed, or the server answered wrongly: what is left stays
    STOPPED = "stopped"  # the database failed: that message and the ones after it stay for the next poll


@dataclass
class PollReport:
    """What a poll did: how it ended, the messages it took (committed; deleted unless the connection broke just
    after), the messages it left in the mailbox, and what the intake made of the ones it took."""

    outcome: PollOutcome
    taken: int = 0
    left: int = 0
    results: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        """The report as plain data (the task's return value)."""
        return {"outcome": str(self.outcome), "taken": self.taken, "left": self.left, **self.results}


def poll() -> PollReport:
    """Take up to BOUNCE_MAILBOX_MAX_MESSAGES messages from the mailbox, each committed before it is deleted; a
    no-op while another poll runs. Never raises for the mailbox's faults (they are logged and reported)."""
    config = current_app.config
    try:
        access = mailbox_access(config)
    except MailboxMisconfigured as problem:
        log.error("bounce mailbox not polled: %s", problem)
        return PollReport(PollOutcome.MISCONFIGURED)
    if access is None:
        return PollReport(PollOutcome.OFF)
    with poll_lock() as held:
        if not held:
            log.info("bounce mailbox: another poll is running, so this one stops")
            return PollReport(PollOutcome.BUSY)
        report = _poll(access, config)
    quiet = report.outcome is PollOutcome.DONE and not report.taken and not report.left
    log.log(
        logging.DEBUG if quiet else logging.INFO,
        "bounce mailbox %s: %s, %d taken, %d left%s", access.where(), report.outcome, report.taken, report.left,
        "".join(f", {result} {count}" for result, count in sorted(report.results.items())),
    )  # fmt: skip
    return report


def _poll(access: MailboxAccess, config) -> PollReport:
    report = PollReport(PollOutcome.DONE)
    max_bytes = config["BOUNCE_MAILBOX_MAX_BYTES"]
    try:
        mailbox = open_mailbox(access, config["BOUNCE_MAILBOX_TIMEOUT"])
    except LoginRefused as refusal:
        log.warning("bounce mailbox %s refused the login: %s", access.where(), refusal)
        return PollReport(PollOutcome.LOGIN_REFUSED)
    except FAULTS as fault:
        log.warning("bounce mailbox %s could not be opened: %s", access.where(), fault_words(fault))
        return PollReport(PollOutcome.FAILED)
    try:
        waiting = mailbox.waiting()
        report.left = len(waiting)
        for handle in waiting[: config["BOUNCE_MAILBOX_MAX_MESSAGES"]]:
            raw = mailbox.read(handle, max_bytes)
            if raw is None:  # gone meanwhile (someone else's session)
                report.left -= 1
                continue
            if len(raw) > max_bytes:
                log.info("bounce mailbox: a message over %d bytes is read as its first %d", max_bytes, max_bytes)
                raw = raw[:max_bytes]
            results = take(raw)
            if results is None:
                report.outcome = PollOutcome.STOPPED
                break
            report.taken += 1
            report.left -= 1
            report.results.update(str(result) for result in results)
            mailbox.remove(handle)
    except FAULTS as fault:
        log.warning("bounce mailbox %s failed during the poll: %s", access.where(), fault_words(fault))
        report.outcome = PollOutcome.FAILED
    finally:
        try:
            mailbox.close()
        except FAULTS as fault:
            # IMAP: the taken messages stay flagged \Deleted (skipped, then expunged, by the next poll); POP3: the
            # next poll reads them again.
            log.warning("bounce mailbox %s: the session did not end cleanly: %s", access.where(), fault_words(fault))
            report.outcome = PollOutcome.FAILED
    return report


def take(raw: bytes) -> list[Result] | None:
    """Hand one message to the intake and commit; None if the database failed (rolled back: the message stays in
    the mailbox for the next poll). A message the intake fails on for any other reason, or whose record the database
    refuses as data (a constraint, a value it cannot hold: it would fail the same way at every poll), is set aside."""
    try:
        results = intake.take(raw, BounceSource.MAILBOX)
        db.session.commit()
        return results
    except SoftTimeLimitExceeded:
        db.session.rollback()
        raise
    except (IntegrityError, DataError) as fault:
        db.session.rollback()
        log.error("bounce mailbox: the database refused a message's record; it is set aside: %s", _db_words(fault))
        reason = f"the database refused its record: {type(fault).__name__}"
    except SQLAlchemyError as fault:
        db.session.rollback()
        log.error("bounce mailbox: the database failed, the message stays for the next poll: %s", _db_words(fault))
        return None
    except Exception as fault:  # noqa: BLE001 - a fault in the intake must neither lose the message nor stop the poll
        db.session.rollback()
        log.error("bounce mailbox: the intake failed on a message, which is set aside: %s", fault_words(fault))
        log.debug("the intake's failure", exc_info=True)
        reason = f"the intake failed: {type(fault).__name__}"
    try:
        result = set_aside(raw, BounceSource.MAILBOX, reason)
        db.session.commit()
    except SQLAlchemyError as fault:
        db.session.rollback()
        log.error("bounce mailbox: the database failed, the message stays for the next poll: %s", _db_words(fault))
        return None
    return [result]


def _db_words(fault: SQLAlchemyError) -> str:
    # The driver's words, not SQLAlchemy's, which quote the statement's parameters (addresses, the message).
    return safe_detail(f"{type(fault).__name__}: {getattr(fault, 'orig', None) or fault}")


@contextlib.contextmanager
def poll_lock() -> Iterator[bool]:
    """Hold the mailbox's poll lock while the block runs, if no one else does: yields whether it is held. In Redis
    when configured (lapsing after LOCK_SECONDS, should its worker die), else a file lock in the instance folder
    (released by the system with its process)."""
    config = current_app.config
    name = f"{config['RATELIMIT_KEY_PREFIX']}:bounce-mailbox-poll"
    if config["REDIS_URL"]:
        with redis.Redis.from_url(config["REDIS_URL"]) as client:
            lock = client.lock(name, timeout=LOCK_SECONDS, blocking=False)
            held = lock.acquire()
            try:
                yield held
            finally:
                if held:
                    with contextlib.suppress(redis.exceptions.LockError):  # lapsed: nothing left to release
                        lock.release()
        return
    path = Path(current_app.instance_path) / f"{name.replace(':', '-')}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
