"""What became of each claimed delivery, and writing it to the database in bulk.

The same function applies the outcomes of a batch that ended normally and of one whose worker died (read back from the
send journal), so both paths agree on what every outcome means.
"""

import re
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..models import StatusReason, Subscriber, SuppressionReason, utcnow
from ..subscriptions import services as journey
from ..suppression import suppress
from .models import Delivery, DeliveryStatus

SENT = "sent"
FAILED = "failed"  # a permanent (5xx) answer
BOUNCED = "bounced"  # a permanent answer that says the mailbox does not exist: the address is suppressed
RETRY = "retry"  # a transient (4xx) answer: tried again later, up to CAMPAIGN_MAX_ATTEMPTS
SKIPPED = "skipped"  # not sent: unsubscribed or erased since the snapshot, or suppressed
UNKNOWN = "unknown"  # on the wire when the connection or the worker died: never re-sent automatically
REQUEUE = "requeue"  # not sent, through no fault of the message (connection lost before DATA): back to pending
KINDS = {SENT, FAILED, BOUNCED, RETRY, SKIPPED, UNKNOWN, REQUEUE}
# Leftover policy when a dead worker's journal is missing (its store lost it): nothing can be known of any row.
LOST = "lost"
# Written to the journal before a batch claims its rows: a claim whose journal lacks it has lost its journal.
BEGIN_ENTRY = "0\tbegin\t"

ADDRESS = re.compile(r"\S*@\S*")


@dataclass(frozen=True)
class Outcome:
    """One delivery's outcome; `detail` is an SMTP answer or a reason, never an address."""

    delivery_id: int
    kind: str
    detail: str = ""

    def entry(self) -> str:
        """The one-line journal form."""
        return f"{self.delivery_id}\t{self.kind}\t{self.detail}"

    @classmethod
    def parse(cls, entry: str) -> "Outcome | None":
        """Read a journal line back; None for a line that is not one (e.g. cut short by a crash)."""
        parts = entry.split("\t", 2)
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in KINDS:
            return None
        return cls(int(parts[0]), parts[1], parts[2])


def smtp_detail(code: int, reply: bytes | str) -> str:
    """An SMTP answer fit to store and show: code and text, addresses removed, one line, bounded."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = ADDRESS.sub("<address>", " ".join(text.split()))
    return f"{code} {text}"[:250]


def _retry_delay(attempts: int) -> timedelta:
    base = current_app.config["CAMPAIGN_RETRY_BACKOFF"]
    return timedelta(seconds=base * 2 ** max(0, attempts - 1))


def apply_outcomes(claim: str, outcomes: list[Outcome], leftover: str, cancelled: bool = False) -> None:
    """Write outcomes for the claim's rows in bulk; rows of the claim with no outcome become `leftover`.

    `leftover` is REQUEUE when the batch stopped early on purpose (pause, rate limit, lost connection), or UNKNOWN when
    its worker died: then the first row without an outcome, the one that may have been on the wire, is marked unknown
    and the rest go back to pending. LOST (the dead worker's journal is gone) marks every such row unknown. Rows the
    claim no longer holds (taken over by the reaper) are left alone.
    """
    table = Delivery.__table__
    now = utcnow()
    claimed = dict(
        db.session.execute(
            sa.select(table.c.id, table.c.attempts)
            .where(table.c.claim == claim, table.c.status == DeliveryStatus.SENDING)
            .order_by(table.c.id)
        ).all()
    )
    final = {outcome.delivery_id: outcome for outcome in outcomes if outcome.delivery_id in claimed}
    rest = [delivery_id for delivery_id in claimed if delivery_id not in final]
    if leftover == LOST:
        # Any of them may have been sent: none is sent again.
        for delivery_id in rest:
            final[delivery_id] = Outcome(
                delivery_id, UNKNOWN, "its worker stopped and the record of its batch was lost"
            )
        rest = []
    if leftover == UNKNOWN and rest:
        final[rest[0]] = Outcome(rest[0], UNKNOWN, "its worker stopped while sending it")
        rest = rest[1:]
    for delivery_id in rest:
        final[delivery_id] = Outcome(delivery_id, REQUEUE)

    changes = []
    max_attempts = current_app.config["CAMPAIGN_MAX_ATTEMPTS"]
    for outcome in final.values():
        attempts = claimed[outcome.delivery_id]
        change = {
            "b_id": outcome.delivery_id,
            "b_attempts": attempts,
            "b_next": None,
            "b_error": outcome.detail or None,
        }
        if outcome.kind == SENT:
            continue
        if outcome.kind in (FAILED, BOUNCED):
            change["b_status"] = DeliveryStatus.FAILED
        elif outcome.kind == SKIPPED:
            change["b_status"] = DeliveryStatus.SKIPPED
        elif outcome.kind == UNKNOWN:
            change["b_status"] = DeliveryStatus.UNKNOWN
        elif outcome.kind == RETRY and attempts >= max_attempts:
            change.update(
                b_status=DeliveryStatus.FAILED, b_error=f"gave up after {attempts} attempts: {outcome.detail}"
            )
        elif outcome.kind == RETRY:
            change.update(b_status=DeliveryStatus.PENDING, b_next=now + _retry_delay(attempts))
        elif cancelled:
            change.update(b_status=DeliveryStatus.SKIPPED, b_error="campaign cancelled")
        else:  # REQUEUE: this attempt did not count
            change.update(b_status=DeliveryStatus.PENDING, b_attempts=max(0, attempts - 1), b_error=None)
        changes.append(change)
    if changes:
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
    # Every row the claim still holds now has outcome SENT: one UPDATE by claim, with no list of ids.
    db.session.execute(
        sa.update(table)
        .where(table.c.claim == claim, table.c.status == DeliveryStatus.SENDING)
        .values(status=DeliveryStatus.SENT, sent_at=now, claim=None, lease_until=None, error=None)
    )
    bounced = [o.delivery_id for o in final.values() if o.kind == BOUNCED]
    if bounced:
        suppress_bounced(bounced)


def suppress_bounced(delivery_ids: list[int]) -> None:
    """A mailbox that does not exist: suppress the address and end its subscriptions (reason: bounce)."""
    subscribers = db.session.scalars(
        sa.select(Subscriber)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.id.in_(delivery_ids))
    )
    for subscriber in subscribers:
        suppress(subscriber.email, SuppressionReason.HARD_BOUNCE)
        journey.unsubscribe(subscriber, None, StatusReason.BOUNCE)
