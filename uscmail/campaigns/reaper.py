"""Recovery after a worker dies: claims whose lease lapsed get their journalled outcomes, and campaigns that stopped
moving get their batch tasks queued again. Safe to run any number of times, by any number of beat processes."""

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..models import utcnow
from .forms import london_short
from .journal import send_journal
from .models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from .outcomes import BEGIN_ENTRY, Leftover, Outcome, apply_outcomes
from .sending import maybe_finish

log = logging.getLogger(__name__)

STALL_NOTE = "Sending stalled"


def reap_expired_claims() -> int:
    """Apply the journal of every claim whose lease lapsed; the message that was on the wire becomes `unknown`.

    Returns the number of claims reaped.
    """
    # Only claimed rows are in the claim index: this finds lapsed leases without looking at the rest.
    expired = db.session.execute(
        sa.select(Delivery.claim, Delivery.campaign_id, sa.func.min(Delivery.id), sa.func.max(Delivery.id))
        .where(Delivery.claim.is_not(None), Delivery.lease_until < utcnow(), Delivery.status == DeliveryStatus.SENDING)
        .group_by(Delivery.claim, Delivery.campaign_id)
    ).all()
    db.session.commit()
    journal = send_journal()
    for claim, campaign_id, first, last in expired:
        entries = journal.read(claim)
        outcomes = [outcome for outcome in map(Outcome.parse, entries) if outcome is not None]
        # No begin entry: the journal was lost (e.g. Redis restarted without persistence), so nothing is re-sent.
        leftover = Leftover.UNKNOWN if BEGIN_ENTRY in entries else Leftover.LOST
        status = db.session.scalar(sa.select(Campaign.status).where(Campaign.id == campaign_id))
        cancelled = status is CampaignStatus.CANCELLED
        apply_outcomes(claim, outcomes, leftover=leftover, cancelled=cancelled, span=(first, last))
        db.session.commit()
        journal.discard(claim)
        log.warning(
            "reaped the claim of a stopped worker on campaign %s (%s outcomes journalled)", campaign_id, len(outcomes)
        )
    return len(expired)


def stalled_snapshots() -> list[int]:
    """Sending campaigns whose snapshot stopped (its task's worker died): start_campaign carries it on. (Stalled
    lanes are lanes.lanes_to_restart().)"""
    quiet_since = utcnow() - timedelta(seconds=current_app.config["CAMPAIGN_LEASE_SECONDS"])
    campaign_ids = list(
        db.session.scalars(
            sa.select(Campaign.id).where(
                Campaign.status == CampaignStatus.SENDING,
                Campaign.snapshot_done.is_(False),
                Campaign.updated_at < quiet_since,
            )
        )
    )
    db.session.commit()
    return campaign_ids


def record_stall(campaign_id: int, lanes: int | None = None) -> None:
    """Say on the campaign's page that it stalled and was restarted (unless the page already gives another reason):
    `lanes` of its lanes, or its snapshot when None. The caller commits, then restarts them."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        return
    stall = current_app.config["CAMPAIGN_STALL_SECONDS"]
    if campaign.status_detail is None or campaign.status_detail.startswith(STALL_NOTE):
        when = london_short(utcnow())
        what = (
            "listing its recipients stopped"
            if lanes is None
            else f"{lanes} of its {current_app.config['CAMPAIGN_LANES']} lanes showed no progress for {stall:g} seconds"
        )
        campaign.status_detail = (
            f"{STALL_NOTE} at {when}: {what} (a worker stopped, or its queued work was lost). Sending was restarted; "
            "nobody is mailed twice."
        )
    log.warning("campaign %s stalled (%s lanes); restarted", campaign_id, lanes if lanes is not None else "snapshot")


def finish_done_campaigns() -> None:
    """Mark sent any sending campaign with nothing left to do (e.g. its last batch's worker died)."""
    for campaign_id in db.session.scalars(
        sa.select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING)
    ).all():
        maybe_finish(campaign_id)
