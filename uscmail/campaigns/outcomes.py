"""What became of each claimed delivery, and writing it to the database in bulk.

The same function applies the outcomes of a batch that ended normally and of one whose worker died (read back from the
send journal), so both paths agree on what every outcome means.
"""

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..bounces.models import BounceKind, BounceSource
from ..bounces.reports import status_code
from ..bounces.services import Finding, record
from ..extensions import db
from ..models import utcnow
from .models import Delivery, DeliveryStatus


class OutcomeKind(enum.StrEnum):
    """What became of one claimed delivery; the relay's answers (mail.smtp.Answer) plus two of the pipeline's own."""

    SENT = "sent"
    FAILED = "failed"  # a permanent (5xx) answer
    BOUNCED = "bounced"  # a permanent answer that says the mailbox does not exist: the address is suppressed
    RETRY = "retry"  # a transient (4xx) answer: tried again later, up to CAMPAIGN_MAX_ATTEMPTS
    SKIPPED = "skipped"  # not sent: unsubscribed or erased since the snapshot, or suppressed
    UNKNOWN = "unknown"  # on the wire when the connection or the worker died: never re-sent automatically
    REQUEUE = "requeue"  # not sent, through no fault of the message (connection lost before DATA): back to pending


class Leftover(enum.StrEnum):
    """What becomes of a claim's rows that have no outcome when its outcomes are written."""

    REQUEUE = "requeue"  # the batch stopped early on purpose: they go back to pending
    UNKNOWN = "unknown"  # its worker died: the first may have been on the wire (unknown), the rest go back
    LOST = "lost"  # its worker died and its journal is gone: any may have been sent, so all become unknown


KIND_VALUES = frozenset(OutcomeKind)
# Written to the journal before a batch claims its rows: a claim whose journal lacks it has lost its journal.
BEGIN_ENTRY = "0\tbegin\t"


@dataclass(frozen=True)
class Outcome:
    """One delivery's outcome; `detail` is an SMTP answer or a reason, never an address."""

    delivery_id: int
    kind: OutcomeKind
    detail: str = ""

    def entry(self) -> str:
        """The one-line journal form."""
        return f"{self.delivery_id}\t{self.kind}\t{self.detail}"

    @classmethod
    def parse(cls, entry: str) -> "Outcome | None":
        """Read a journal line back; None for a line that is not one (e.g. cut short by a crash)."""
        parts = entry.split("\t", 2)
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in KIND_VALUES:
            return None
        return cls(int(parts[0]), OutcomeKind(parts[1]), parts[2])


def _retry_delay(attempts: int) -> timedelta:
    base = current_app.config["CAMPAIGN_RETRY_BACKOFF"]
    return timedelta(seconds=base * 2 ** max(0, attempts - 1))


Span = tuple[int, int]  # the ids of a claim's first and last rows


def held_by(claim: str, span: Span | None = None):
    """The rows a claim holds, as an SQL condition. With the claim's span of ids (its first and last row), the lookup
    stays within them, however many dead row versions sent rows have left in the indexes until vacuum."""
    condition = sa.and_(Delivery.claim == claim, Delivery.status == DeliveryStatus.SENDING)
    return condition if span is None else sa.and_(condition, Delivery.id.between(*span))


def apply_outcomes(
    claim: str,
    outcomes: list[Outcome],
    leftover: Leftover,
    cancelled: bool = False,
    span: Span | None = None,
) -> None:
    """Write outcomes for the claim's rows in bulk; rows of the claim with no outcome are dealt with by `leftover`.

    REQUEUE when the batch stopped early on purpose (pause, rate limit, lost connection); UNKNOWN when its worker
    died: then the first row without an outcome, the one that may have been on the wire, is marked unknown and the
    rest go back to pending; LOST (the dead worker's journal is gone) marks every such row unknown. Rows the claim no
    longer holds (taken over by the reaper) are left alone. `span`: the ids of the claim's first and last rows.
    """
    attempts = _claimed_attempts(claim, span)
    final = _with_leftovers(attempts, outcomes, leftover)
    now, max_attempts = utcnow(), current_app.config["CAMPAIGN_MAX_ATTEMPTS"]
    changes = [
        change
        for outcome in final.values()
        if (change := _row_change(outcome, attempts[outcome.delivery_id], cancelled, now, max_attempts)) is not None
    ]
    _write_changes(claim, changes)
    # Every row the claim still holds now has outcome SENT: one UPDATE by claim, with no list of ids.
    db.session.execute(
        sa.update(Delivery.__table__)
        .where(held_by(claim, span))
        .values(status=DeliveryStatus.SENT, sent_at=now, claim=None, lease_until=None, error=None)
    )
    bounced = [outcome for outcome in final.values() if outcome.kind == OutcomeKind.BOUNCED]
    if bounced:
        record_refusals(bounced)


def _claimed_attempts(claim: str, span: Span | None) -> dict[int, int]:
    """The rows the claim still holds, in id order, with the attempts each has had (this one included)."""
    rows = db.session.execute(
        sa.select(Delivery.id, Delivery.attempts).where(held_by(claim, span)).order_by(Delivery.id)
    )
    return dict(rows.all())


def _with_leftovers(claimed: dict[int, int], outcomes: list[Outcome], leftover: Leftover) -> dict[int, Outcome]:
    """An outcome for every row the claim holds: the ones recorded, and for the rest what `leftover` says."""
    final = {outcome.delivery_id: outcome for outcome in outcomes if outcome.delivery_id in claimed}
    rest = [delivery_id for delivery_id in claimed if delivery_id not in final]
    if leftover is Leftover.LOST:
        # Any of them may have been sent: none is sent again.
        lost = "its worker stopped and the record of its batch was lost"
        final.update({delivery_id: Outcome(delivery_id, OutcomeKind.UNKNOWN, lost) for delivery_id in rest})
        return final
    if leftover is Leftover.UNKNOWN and rest:
        final[rest[0]] = Outcome(rest[0], OutcomeKind.UNKNOWN, "its worker stopped while sending it")
        rest = rest[1:]
    final.update({delivery_id: Outcome(delivery_id, OutcomeKind.REQUEUE) for delivery_id in rest})
    return final


def _row_change(outcome: Outcome, attempts: int, cancelled: bool, now: datetime, max_attempts: int) -> dict | None:
    """The new state of the outcome's row as bind parameters; None for SENT (written for the whole claim at once)."""
    kind = outcome.kind
    if kind == OutcomeKind.SENT:
        return None
    change = {"b_id": outcome.delivery_id, "b_attempts": attempts, "b_next": None, "b_error": outcome.detail or None}
    if kind in (OutcomeKind.FAILED, OutcomeKind.BOUNCED):
        change["b_status"] = DeliveryStatus.FAILED
    elif kind == OutcomeKind.SKIPPED:
        change["b_status"] = DeliveryStatus.SKIPPED
    elif kind == OutcomeKind.UNKNOWN:
        change["b_status"] = DeliveryStatus.UNKNOWN
    elif kind == OutcomeKind.RETRY and attempts >= max_attempts:
        change.update(b_status=DeliveryStatus.FAILED, b_error=f"gave up after {attempts} attempts: {outcome.detail}")
    elif kind == OutcomeKind.RETRY:
        change.update(b_status=DeliveryStatus.PENDING, b_next=now + _retry_delay(attempts))
    elif cancelled:
        change.update(b_status=DeliveryStatus.SKIPPED, b_error="campaign cancelled")
    else:  # REQUEUE: this attempt did not count
        change.update(b_status=DeliveryStatus.PENDING, b_attempts=max(0, attempts - 1), b_error=None)
    return change


def _write_changes(claim: str, changes: list[dict]) -> None:
    """One executemany UPDATE for the rows whose outcome is not SENT."""
    if not changes:
        return
    table = Delivery.__table__
    db.session.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"), table.c.claim == claim)
        .values(
            status=sa.bindparam("b_status"),
            attempts=sa.bindparam("b_attempts"),
            next_attempt_at=sa.bindparam("b_next"),
            error=sa.bindparam("b_error"),
            claim=None,
            lease_until=None,
        ),
        changes,
    )


def record_refusals(outcomes: list["Outcome"]) -> None:
    """The relay said these mailboxes do not exist while we were sending: each is a hard bounce, recorded (and the
    address suppressed) by the bounce service like one that arrives later."""
    findings = [
        Finding(BounceKind.HARD, status_code(outcome.detail), outcome.detail, delivery_id=outcome.delivery_id)
        for outcome in outcomes
    ]
    record(findings, BounceSource.SMTP_REPLY)
