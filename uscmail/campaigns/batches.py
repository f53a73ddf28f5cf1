"""Sending one batch (DESIGN.md "Campaign send"): claim rows, build each message once the campaign is prepared,
send over this process's reused connection, journal each answer, and write the outcomes in bulk when the batch ends.

A batch ends by itself after CAMPAIGN_BATCH_SECONDS; pause, cancel and unsubscribes take effect within it; if the
relay cannot be reached the campaign waits for it, and pauses once it has been out of reach for
CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS.
"""

import contextlib
import logging
import smtplib
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import redis
import sqlalchemy as sa
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app

from ..bounces import returnpath
from ..extensions import db
from ..mail import smtp
from ..mail.ratelimit import SendRateLimit
from ..mail.smtp import ConnectionLost, SenderRefused, drop_connection, safe_detail, smtp_connection
from ..models import utcnow
from ..templating import TemplateRefused
from .builder import PreparedLanguages, Recipient, prepare
from .journal import send_journal
from .lanes import Lane
from .models import Campaign, CampaignStatus, Delivery
from .outcomes import BEGIN_ENTRY, Leftover, Outcome, OutcomeKind, apply_outcomes, held_by
from .sending import Batch, claim_batch, maybe_finish, next_retry_at, recipients_of
from .services import cancel

log = logging.getLogger(__name__)

# Sends taken from the rate limiter at a time: at most 1/20 of the per-second limit, since permits taken at once are
# spent over the next moments and a big chunk would let a window hold more than the limit.
PERMIT_CHUNK = 20
# A batch re-reads the campaign's status and its recipients' subscriptions this often (seconds) as it goes.
CHECKPOINT_SECONDS = 0.5
# A lane that finds no row while the snapshot is still writing rows looks again this soon (seconds).
SNAPSHOT_WAIT_SECONDS = 0.1
# After the send journal failed (Redis away), the lane's next batch waits this long.
JOURNAL_FAILED_WAIT_SECONDS = 2.0
# How a sending campaign's status detail begins while the relay is out of reach.
RELAY_WAIT_PREFIX = "Waiting for the mail server:"


_prepared: dict[tuple, PreparedLanguages] = {}


def prepared_campaign(campaign: Campaign) -> PreparedLanguages:
    """The campaign rendered once per worker process; its content cannot change once sending has begun."""
    key = (campaign.id, campaign.started_at)
    if key not in _prepared:
        if len(_prepared) > 8:
            _prepared.clear()
        _prepared[key] = prepare(campaign)
    return _prepared[key]


@dataclass
class BatchResult:
    """How a batch ended: `again_in` seconds until this campaign's next batch should run (None: no more now)."""

    sent: int = 0
    again_in: float | None = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    # The delivery being built or on the wire, if any: in doubt if the batch is stopped from outside.
    in_flight: int | None = None
    # The highest delivery id this batch claimed: where the lane's next claim starts looking (0: from the first).
    claimed_up_to: int = 0


def campaign_status(campaign_id: int) -> CampaignStatus | None:
    """The campaign's status as committed now (another process may have paused it)."""
    status = db.session.scalar(sa.select(Campaign.status).where(Campaign.id == campaign_id))
    db.session.commit()
    return status


def _heartbeat(batch: Batch) -> bool:
    """Extend the claim's lease: its worker is alive. False if the claim is no longer held (its lease lapsed while
    this batch waited, e.g. on a relay that hung, and the reaper took its rows back): the batch must send no more."""
    lease = utcnow() + timedelta(seconds=current_app.config["CAMPAIGN_LEASE_SECONDS"])
    result = db.session.execute(
        sa.update(Delivery)
        .where(held_by(batch.claim, batch.span))
        .values(lease_until=lease)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount > 0


def record_connection_failure(campaign_id: int, error: str) -> float | None:
    """Count a failed connection to the relay. Once it has been out of reach for CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS
    and CAMPAIGN_CONNECTION_FAILURES tries, pause the campaign with the reason; until then the campaign page says it
    is waiting for the relay, and the lane tries again after a wait that grows with the outage (2 s to a minute),
    however many lanes are trying.

    Returns the seconds to wait before trying again, or None if the campaign is now paused.
    """
    now = utcnow()
    row = db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(
            connection_failures=Campaign.connection_failures + 1,
            connection_failing_since=sa.func.coalesce(Campaign.connection_failing_since, now),
        )
        .returning(Campaign.connection_failures, Campaign.connection_failing_since)
    ).one_or_none()
    if row is None:
        db.session.commit()
        return None
    failures, since = row
    down_for = max(0.0, (now - since).total_seconds())
    config = current_app.config
    if failures >= config["CAMPAIGN_CONNECTION_FAILURES"] and down_for >= config["CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS"]:
        reason = (
            f"Paused: the mail server could not be reached {failures} times in a row over {down_for / 60:.0f} "
            f"minutes ({error[:200]}). Check the mail server settings, then resume."
        )
        db.session.execute(
            sa.update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
            .values(status=CampaignStatus.PAUSED, status_detail=reason)
        )
        db.session.commit()
        log.warning("campaign %s paused after %s connection failures", campaign_id, failures)
        return None
    waiting = f"{RELAY_WAIT_PREFIX} it has been out of reach since {since:%H:%M:%S} UTC ({failures} tries): {error}"
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
        .values(status_detail=waiting[:500])
    )
    db.session.commit()
    return min(60.0, max(2.0, down_for / 2))


def relay_reached(campaign_id: int) -> None:
    """The relay answers again: forget the failures, and the waiting notice."""
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(
            connection_failures=0,
            connection_failing_since=None,
            status_detail=sa.case(
                (Campaign.status_detail.startswith(RELAY_WAIT_PREFIX), None), else_=Campaign.status_detail
            ),
        )
    )
    db.session.commit()


def pause_for_sender(campaign_id: int, detail: str) -> None:
    """The relay refuses our sender address: pause with the relay's answer, since every message would fail."""
    reason = f"Paused: the mail server refuses the sender address ({detail}). Fix the sender, then resume."
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
        .values(status=CampaignStatus.PAUSED, status_detail=reason[:500])
    )
    db.session.commit()


def stop_for_template(campaign_id: int, reason: str) -> None:
    """The body can't be filled in at all: cancel the campaign with the reason shown on its page (nothing was or
    will be sent; retrying could only fail again)."""
    db.session.rollback()
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status is not CampaignStatus.SENDING:
        return
    cancel(campaign, "sender")
    campaign.status_detail = f"Stopped: nothing was sent because the body could not be filled in. {reason}"[:500]
    db.session.commit()
    log.warning("campaign %s stopped: its template could not be filled in", campaign_id)


def template_failure(delivery_id: int, campaign_id: int, error: TemplateRefused, first: bool) -> Outcome:
    """One message whose body could not be filled in (a template that fails for some names): failed, with the
    reason, and on the first in a batch, a note on the campaign page if it has none."""
    detail = safe_detail(f"not sent: {error}")
    if first:
        note = f"Some messages could not be filled in and are marked failed: {error}"
        db.session.execute(
            sa.update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status_detail.is_(None))
            .values(status_detail=" ".join(note.split())[:500])
        )
        db.session.commit()
    return Outcome(delivery_id, OutcomeKind.FAILED, detail)


def send_one(connection: smtplib.SMTP, prepared: PreparedLanguages, recipient: Recipient) -> Outcome:
    """Build one recipient's message and hand it to the mail layer. TemplateRefused before any SMTP command;
    ConnectionLost and SenderRefused as mail.smtp.send raises them."""
    data = prepared.build(recipient)
    smtputf8 = prepared.needs_smtputf8(recipient)
    envelope_from = returnpath.for_delivery(recipient.delivery_id)
    reply = smtp.send(connection, envelope_from, recipient.email, data, smtputf8=smtputf8)
    return Outcome(recipient.delivery_id, OutcomeKind(reply.answer), reply.detail)


def send_batch(lane: Lane, after: int = 0) -> BatchResult:
    """Claim one batch of the lane's campaign (rows above `after` first, then any) and send it. Pause and cancel are
    honoured between messages.

    A batch ends by itself after CAMPAIGN_BATCH_SECONDS; if Celery's soft time limit stops it anyway, what it sent
    is written, the message in flight becomes `unknown` and the rest go back to pending.
    """
    campaign_id = lane.campaign_id
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status is not CampaignStatus.SENDING:
        return BatchResult(again_in=None)
    try:
        prepared = prepared_campaign(campaign)
    except TemplateRefused as exc:
        stop_for_template(campaign_id, str(exc))
        return BatchResult(again_in=None)
    limiter = SendRateLimit()
    batch = _claim(campaign_id, limiter, after)
    if batch is None:
        return _nothing_to_claim(lane)
    sender = BatchSender(batch, campaign, prepared, limiter, lane)
    try:
        return sender.run()
    except SoftTimeLimitExceeded:
        return _out_of_time(batch, lane, sender.result)


def _claim(campaign_id: int, limiter: SendRateLimit, after: int) -> Batch | None:
    """Claim a batch no larger than the rate limit allows in a second, journalling the claim before it is made: rows
    above `after`, or if none is left there, from the first (rows given back or due for a retry)."""
    size = current_app.config["CAMPAIGN_BATCH_SIZE"]
    if limiter.per_second:
        size = min(size, limiter.per_second)
    journal = send_journal()
    claim = uuid.uuid4().hex
    # Journalled before the claim: a dead worker's claim whose journal lacks this entry has lost its journal.
    journal.record(claim, (BEGIN_ENTRY,))
    batch = claim_batch(campaign_id, size, claim, after)
    if batch is None and after:
        batch = claim_batch(campaign_id, size, claim)
    if batch is None:
        journal.discard(claim)
    return batch


def _nothing_to_claim(lane: Lane) -> BatchResult:
    """No row is ready: finish the campaign if it is done; while its snapshot is still writing rows, look again in a
    moment (the lanes outran it); else come back when the earliest retry is due."""
    campaign_id = lane.campaign_id
    if maybe_finish(campaign_id):
        return BatchResult(again_in=None)
    if not db.session.scalar(sa.select(Campaign.snapshot_done).where(Campaign.id == campaign_id)):
        again_in = SNAPSHOT_WAIT_SECONDS
    else:
        retry_at = next_retry_at(campaign_id)
        again_in = max(1.0, (retry_at - utcnow()).total_seconds()) if retry_at else None
    if again_in is not None:
        lane.expect_progress(again_in)
    db.session.commit()
    return BatchResult(again_in=again_in)


def _out_of_time(batch: Batch, lane: Lane, result: BatchResult) -> BatchResult:
    """Celery's soft time limit stopped the batch: keep every outcome so far, mark the message that may have been on
    the wire `unknown` (never sent twice), and give the rest back (nothing lost)."""
    db.session.rollback()
    drop_connection()  # it may be in the middle of a transaction
    if result.in_flight is not None and all(outcome.delivery_id != result.in_flight for outcome in result.outcomes):
        doubt = Outcome(result.in_flight, OutcomeKind.UNKNOWN, "its batch ran out of time while sending it")
        send_journal().record(batch.claim, (doubt.entry(),))
        result.outcomes.append(doubt)
    log.warning("a batch of campaign %s ran out of time; its rows not sent go back to pending", lane.campaign_id)
    return _stop(batch, lane, result, wait=0.0)


class StopBatch(Exception):
    """The batch ends here; `wait` is what BatchResult.again_in becomes (0: the next batch at once, None: no more)."""

    def __init__(self, wait: float | None):
        super().__init__(wait)
        self.wait = wait


class BatchSender:
    """Sends one claimed batch over this process's connection, journalling each outcome. Every way a batch can end
    (time up, paused, cancelled, rate limit, relay unreachable, sender refused) raises StopBatch, and `run()` writes
    the outcomes in one place."""

    def __init__(
        self, batch: Batch, campaign: Campaign, prepared: PreparedLanguages, limiter: SendRateLimit, lane: Lane
    ):
        self.batch, self.campaign, self.prepared, self.limiter, self.lane = batch, campaign, prepared, limiter, lane
        self.campaign_id = campaign.id
        self.result = BatchResult(claimed_up_to=batch.span[1])
        self.journal = send_journal()
        self.started = self.last_heartbeat = self.last_checkpoint = time.monotonic()
        self.heartbeat_every = max(1.0, current_app.config["CAMPAIGN_LEASE_SECONDS"] / 3)
        self.stall_seconds = current_app.config["CAMPAIGN_STALL_SECONDS"]
        self.last_progress = 0.0  # when this batch last told the reaper it is alive (monotonic)
        self.batch_seconds = current_app.config["CAMPAIGN_BATCH_SECONDS"]
        self.permits = 0
        self.template_failed = False
        self.dropped: set[int] = set()
        self.connection: smtplib.SMTP | None = None

    def run(self) -> BatchResult:
        """Send every recipient of the batch, or as many as the batch may; then write the outcomes."""
        try:
            recipients = self._begin()
            for position, recipient in enumerate(recipients):
                self._checkpoint(recipient)
                if recipient.delivery_id in self.dropped:
                    continue
                self._take_permit(len(recipients) - position)
                self._send(recipient)
            wait = 0.0
        except StopBatch as stop:
            wait = stop.wait
        except redis.RedisError as exc:
            # Redis went away (restarted, say) while the journal was being written. This process still knows every
            # outcome, and the database takes them now; the journal would only be read had this worker died. Going
            # on instead would send messages whose journal entries may be lost with Redis's unread input, and a
            # worker dying later would then send them again.
            log.warning("campaign %s: the send journal failed (%s); ending the batch", self.campaign_id, exc)
            wait = JOURNAL_FAILED_WAIT_SECONDS
        return _stop(self.batch, self.lane, self.result, wait)

    def _record(self, outcomes: list[Outcome]) -> None:
        """Keep the outcomes (the batch writes them to the database when it ends) and journal them."""
        outcomes = list(outcomes)
        self.result.outcomes.extend(outcomes)
        self.journal.record(self.batch.claim, (outcome.entry() for outcome in outcomes))

    def _begin(self) -> list[Recipient]:
        """The recipients still to be mailed (the others recorded as skipped), and a connection to the relay."""
        recipients, skipped = recipients_of(self.batch, self.campaign)
        self._record(skipped)
        self._connect()
        if self.campaign.connection_failures:
            relay_reached(self.campaign_id)
        return recipients

    def _connect(self, failure: str | None = None) -> None:
        """(Re)connect to the relay; if that fails, count it (pausing the campaign after too many) and stop."""
        try:
            self.connection = smtp_connection()
        except (smtplib.SMTPException, OSError) as exc:
            raise StopBatch(record_connection_failure(self.campaign_id, failure or str(exc))) from None

    def _checkpoint(self, recipient: Recipient) -> None:
        """Stop when the batch has run long enough or the campaign left SENDING; every CHECKPOINT_SECONDS re-read
        the status and the recipients' subscriptions, so pause, cancel and unsubscribes take effect within a batch."""
        if time.monotonic() - self.started >= self.batch_seconds:
            raise StopBatch(0.0)  # long enough: the next batch carries on, well within the task's time limit
        if time.monotonic() - self.last_checkpoint < CHECKPOINT_SECONDS:
            return
        if time.monotonic() - self.last_heartbeat >= self.heartbeat_every:
            if not _heartbeat(self.batch):
                raise StopBatch(0.0)  # the reaper took the rows back; the next batch claims afresh
            self.last_heartbeat = time.monotonic()
        if time.monotonic() - self.last_progress >= self.stall_seconds / 3:
            if not self.lane.expect_progress():
                db.session.commit()
                raise StopBatch(None)  # the lane was restarted: its new chain carries on
            self.last_progress = time.monotonic()
        if campaign_status(self.campaign_id) is not CampaignStatus.SENDING:
            raise StopBatch(None)
        _, gone = recipients_of(self.batch, self.campaign, from_id=recipient.delivery_id)
        db.session.commit()
        self.dropped = {outcome.delivery_id for outcome in gone}
        self._record(gone)
        self.last_checkpoint = time.monotonic()

    def _take_permit(self, remaining: int) -> None:
        """One send from the rate limiter, taken a few at a time; stop (to come back later) when there is none."""
        if self.permits == 0:
            chunk = max(1, min(PERMIT_CHUNK, (self.limiter.per_second or 20 * PERMIT_CHUNK) // 20))
            self.permits, wait = self.limiter.acquire(min(chunk, remaining))
            if self.permits == 0:
                raise StopBatch(wait)
        self.permits -= 1

    def _send(self, recipient: Recipient) -> None:
        """Send one message and record its outcome; a fresh connection after one that broke or was closed (421)."""
        self.result.in_flight = recipient.delivery_id
        try:
            outcome = send_one(self.connection, self.prepared, recipient)
        except TemplateRefused as exc:  # before any SMTP command: the connection is untouched
            outcome = template_failure(recipient.delivery_id, self.campaign_id, exc, first=not self.template_failed)
            self.template_failed = True
        except ConnectionLost as exc:
            drop_connection(self.connection)
            self._connect(failure=str(exc))
            # Lost before DATA: this message was not sent; a later batch sends it.
            self._record([Outcome(recipient.delivery_id, OutcomeKind.REQUEUE)])
            return
        except SenderRefused as exc:
            pause_for_sender(self.campaign_id, str(exc))
            raise StopBatch(None) from None
        self._record([outcome])
        self.result.in_flight = None
        if outcome.kind == OutcomeKind.SENT:
            self.result.sent += 1
        elif outcome.kind == OutcomeKind.UNKNOWN or outcome.detail.startswith("421"):
            drop_connection(self.connection)
            self._connect()


def _stop(batch: Batch, lane: Lane, result: BatchResult, wait: float | None) -> BatchResult:
    """Write the batch's outcomes in bulk (rows not attempted go back to pending, or are skipped if the campaign was
    cancelled), then forget its journal."""
    campaign_id = lane.campaign_id
    status = campaign_status(campaign_id)
    cancelled = status is CampaignStatus.CANCELLED
    apply_outcomes(batch.claim, result.outcomes, Leftover.REQUEUE, cancelled=cancelled, span=batch.span)
    # The next batch runs after `wait` (a rate limit, a relay that could not be reached): no stall till then; unless
    # the lane was restarted meanwhile, and its new chain carries on instead.
    if status is CampaignStatus.SENDING and wait is not None and not lane.expect_progress(wait):
        wait = None
    db.session.commit()
    with contextlib.suppress(redis.RedisError):  # the outcomes are written; an unread journal expires by itself
        send_journal().discard(batch.claim)
    if status is not CampaignStatus.SENDING:
        wait = None
    elif wait == 0.0 and len(batch.rows) < batch.requested:
        # A short batch: perhaps the campaign's last. (After a full one, the lane's next claim finds out.)
        maybe_finish(campaign_id)
    result.again_in = wait
    return result
