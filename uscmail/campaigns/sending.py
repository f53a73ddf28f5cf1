"""The campaign send pipeline's delivery rows (DESIGN.md "Campaign send"): snapshot the recipients set-based into
delivery rows, claim rows in batches atomically, read a claim's recipients, and finish the campaign when none is
left. Sending a claimed batch is batches.py.

Many workers may send one campaign at once: a claim takes rows no other claim holds (FOR UPDATE SKIP LOCKED on
PostgreSQL; SQLite runs one writer at a time), and a row is only ever sent by the claim holding it.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..extensions import db, upsert_insert
from ..models import Subscriber, Subscription, SubscriptionStatus, Suppression, utcnow
from ..suppression import address_hmac
from .builder import Recipient
from .models import Campaign, CampaignStatus, Delivery, DeliveryStatus, ready_to_send
from .outcomes import Outcome, OutcomeKind, held_by
from .services import record_tallies

log = logging.getLogger(__name__)

# The first chunk is small, so the first messages leave while the rest of the snapshot is written; chunks then grow
# fourfold up to SNAPSHOT_CHUNK, so the lanes never run out of rows while a big chunk is being written.
FIRST_SNAPSHOT_CHUNK = 500
SNAPSHOT_CHUNK = 20_000


def _eligible(campaign: Campaign, after: int):
    return sa.and_(
        Subscription.list_id.in_(campaign.list_ids),
        Subscription.status == SubscriptionStatus.CONFIRMED,
        Subscription.subscriber_id > after,
    )


def snapshot_chunk(campaign: Campaign, after: int, limit: int) -> int | None:
    """Add delivery rows for the next `limit` eligible subscribers with ids above `after` (idempotent on the unique
    key). Returns the highest subscriber id covered, or None when none are left."""
    upper_ids = (
        sa.select(Subscription.subscriber_id)
        .where(_eligible(campaign, after))
        .distinct()
        .order_by(Subscription.subscriber_id)
        .limit(limit)
        .subquery()
    )
    upper = db.session.scalar(sa.select(sa.func.max(upper_ids.c.subscriber_id)))
    if upper is None:
        return None
    rows = (
        sa.select(
            Subscription.subscriber_id,
            sa.literal(campaign.id),
            sa.literal(DeliveryStatus.PENDING.value),
            sa.literal(0),
        )
        .where(_eligible(campaign, after), Subscription.subscriber_id <= upper)
        .distinct()
    )
    statement = upsert_insert(Delivery.__table__).from_select(
        ["subscriber_id", "campaign_id", "status", "attempts"], rows
    )
    db.session.execute(statement.on_conflict_do_nothing())
    return upper


def snapshot(campaign_id: int, on_first_chunk) -> None:
    """Snapshot every recipient of a sending campaign, committing chunk by chunk; call on_first_chunk() once the first
    rows exist, so sending starts at once."""
    after, chunk = 0, FIRST_SNAPSHOT_CHUNK
    while True:
        campaign = db.session.get(Campaign, campaign_id)
        if campaign is None or campaign.status in (CampaignStatus.CANCELLED, CampaignStatus.SENT):
            return
        upper = snapshot_chunk(campaign, after, chunk)
        if upper is None:
            break
        # Touching the campaign shows the reaper that the snapshot is alive.
        campaign.updated_at = utcnow()
        db.session.commit()
        if after == 0:
            on_first_chunk()
        after, chunk = upper, min(SNAPSHOT_CHUNK, chunk * 4)
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign_id).values(snapshot_done=True))
    db.session.commit()


def maybe_finish(campaign_id: int) -> bool:
    """Mark a sending campaign sent once its snapshot is complete and no delivery is pending or being sent."""
    unfinished = sa.exists().where(
        Delivery.campaign_id == campaign_id,
        Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
    )
    result = db.session.execute(
        sa.update(Campaign)
        .where(
            Campaign.id == campaign_id,
            Campaign.status == CampaignStatus.SENDING,
            Campaign.snapshot_done.is_(True),
            ~unfinished,
        )
        .values(status=CampaignStatus.SENT, finished_at=utcnow())
    )
    finished = result.rowcount == 1
    if finished:
        record_tallies(campaign_id)
    db.session.commit()
    return finished


def next_retry_at(campaign_id: int) -> datetime | None:
    """When the earliest delivery waiting after a transient failure may be tried again."""
    return db.session.scalar(
        sa.select(sa.func.min(Delivery.next_attempt_at)).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.PENDING
        )
    )


@dataclass
class Batch:
    """The rows one claim holds: (delivery id, subscriber id) in id order."""

    claim: str
    rows: list[tuple[int, int | None]]
    lease_until: datetime
    requested: int  # the size asked for: fewer rows means none were left to claim

    @property
    def span(self) -> tuple[int, int]:
        """The ids of its first and last rows."""
        return self.rows[0][0], self.rows[-1][0]


def claim_batch(campaign_id: int, size: int, claim: str | None = None, after: int = 0) -> Batch | None:
    """Atomically take up to `size` pending rows whose time has come, with ids above `after`, under `claim`; None if
    there are none.

    A lane passes the highest id it claimed last as `after`: sent rows leave dead index entries behind them (until
    vacuum), and a scan from the campaign's first id would step over every one of them, more with each batch."""
    db.session.commit()  # start a fresh transaction: on SQLite the claim must be its first statement
    now = utcnow()
    lease = now + timedelta(seconds=current_app.config["CAMPAIGN_LEASE_SECONDS"])
    claim = claim or uuid.uuid4().hex
    candidates = (
        sa.select(Delivery.id)
        .where(
            Delivery.campaign_id == campaign_id,
            ready_to_send(now),
            Delivery.id > after,
        )
        .order_by(Delivery.id)
        .limit(size)
    )
    if db.engine.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    # A materialised CTE runs the LIMITed, SKIP LOCKED selection once; PostgreSQL may re-run a subquery under IN for
    # each row, and SKIP LOCKED then finds new rows each time, so the claim would take far more than `size`.
    claimable = candidates.cte("claimable").prefix_with("MATERIALIZED")
    statement = (
        sa.update(Delivery)
        .where(Delivery.id == claimable.c.id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SENDING, claim=claim, lease_until=lease, attempts=Delivery.attempts + 1)
        .returning(Delivery.id, Delivery.subscriber_id)
        .execution_options(synchronize_session=False)
    )
    rows = sorted(tuple(row) for row in db.session.execute(statement).all())
    db.session.commit()
    return Batch(claim, rows, lease, size) if rows else None


def recipients_of(batch: Batch, campaign: Campaign, from_id: int = 0) -> tuple[list[Recipient], list[Outcome]]:
    """The claim's recipients (from delivery `from_id` on) still confirmed on a target list and not suppressed; the
    others as skipped outcomes. Asked when a batch starts and again as it goes, so someone who unsubscribes after the
    send began is not mailed. One query within the batch's span of ids, with no list of ids."""
    still_subscribed = sa.exists().where(
        Subscription.subscriber_id == Delivery.subscriber_id,
        Subscription.list_id.in_(campaign.list_ids),
        Subscription.status == SubscriptionStatus.CONFIRMED,
    )
    rows = db.session.execute(
        sa.select(
            Delivery.id,
            Subscriber.email,
            Subscriber.name,
            Subscriber.public_id,
            Subscriber.locale,
            still_subscribed.label("subscribed"),
        )
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.campaign_id == campaign.id, held_by(batch.claim, (max(from_id, batch.span[0]), batch.span[1])))
        .order_by(Delivery.id)
    ).all()
    wanted = [row for row in rows if row.email is not None and row.subscribed]
    digests = {row.email: address_hmac(row.email) for row in wanted}
    suppressed = set()
    if digests:
        suppressed = set(
            db.session.scalars(
                sa.select(Suppression.address_hmac).where(Suppression.address_hmac.in_(set(digests.values())))
            )
        )
    recipients, skipped = [], []
    for row in rows:
        if row.email is None or not row.subscribed:
            skipped.append(Outcome(row.id, OutcomeKind.SKIPPED, "no longer subscribed"))
        elif digests[row.email] in suppressed:
            skipped.append(Outcome(row.id, OutcomeKind.SKIPPED, "suppressed"))
        else:
            recipients.append(
                Recipient(
                    delivery_id=row.id, email=row.email, name=row.name, public_id=row.public_id, locale=row.locale
                )
            )
    return recipients, skipped
