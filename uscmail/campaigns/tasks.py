"""Celery tasks of campaigns: start a send, send its batches, send test copies, start scheduled campaigns, and reap
what dead workers left; each is a thin wrapper around the sending pipeline and the campaign services.

Every task is acks_late (global setting) and idempotent: a task run twice, or run again after its worker died,
finds the work already claimed or done.
"""

import logging

import sqlalchemy as sa
from celery import shared_task

from ..extensions import db
from ..models import utcnow
from ..queueing import after_commit
from ..validation import InvalidInput
from . import batches, lanes, reaper, sending, services, testcopy
from .models import Campaign, CampaignStatus

log = logging.getLogger(__name__)


def queue_lanes(campaign_id: int, numbers: list[int] | None = None) -> None:
    """(Re)start the campaign's lanes (all CAMPAIGN_LANES, or the ones named): each a chain of batch tasks, each
    sending a batch and queuing the next, so campaigns take turns. A lane restarted here replaces its old chain."""
    started = lanes.start_lanes(campaign_id, numbers)
    db.session.commit()
    for lane in started:
        send_batch.delay(campaign_id, lane.number, lane.generation)


@shared_task(soft_time_limit=600, time_limit=660)
def start_campaign(campaign_id: int) -> str:
    """Snapshot the recipients of a sending campaign (if not done yet) and start its batch tasks."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status is not CampaignStatus.SENDING:
        return "not sending"
    if campaign.snapshot_done:
        queue_lanes(campaign_id)
    else:
        sending.snapshot(campaign_id, on_first_chunk=lambda: queue_lanes(campaign_id))
    sending.maybe_finish(campaign_id)
    return "started"


@shared_task(soft_time_limit=120, time_limit=150)
def send_batch(campaign_id: int, lane: int | None = None, generation: str | None = None, after: int = 0) -> int:
    """Send one batch of the campaign on one of its lanes, then queue the lane's next batch (after a wait if the rate
    limit or a retry asks for one), which looks first above the highest id this one claimed. A superseded chain (its
    lane was restarted since) stops here."""
    current = lanes.Lane(campaign_id, lane, generation) if lane is not None and generation else None
    if current is None or not current.is_current():
        db.session.commit()
        return 0
    result = batches.send_batch(current, after)
    if result.again_in is None:
        current.expect_progress(None)  # ended: nothing for this lane to do now
        db.session.commit()
    else:
        arguments = (campaign_id, lane, generation, result.claimed_up_to)
        send_batch.apply_async(arguments, countdown=result.again_in or None)
    return result.sent


@shared_task(soft_time_limit=60, time_limit=90)
def send_test(campaign_id: int, addresses: list[str]) -> int:
    """Send a test copy ("[Test]" in the subject) to each address; unsubscribe links in it match nobody."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        return 0
    return testcopy.deliver_test_copies(campaign, addresses)


def queue_test(campaign_id: int, addresses: list[str]) -> None:
    """Queue a test send once the commit that audits it is done; the task's arguments are shown (in logs, events and
    `celery inspect`) with a count in place of the addresses."""
    shown = f"({campaign_id}, [{len(addresses)} address{'' if len(addresses) == 1 else 'es'}])"
    after_commit(send_test, campaign_id, addresses, argsrepr=shown)


@shared_task(soft_time_limit=120, time_limit=150)
def start_due_campaigns() -> int:
    """Beat: start scheduled campaigns whose time has come (a second beat run finds them already started)."""
    due = db.session.scalars(
        sa.select(Campaign).where(Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at <= utcnow())
    ).all()
    started = 0
    for campaign in due:
        try:
            services.start_sending(campaign, "scheduler")
        except InvalidInput as exc:
            db.session.rollback()
            if campaign.status is CampaignStatus.SCHEDULED:
                services.cancel(campaign, "scheduler")
                campaign.status_detail = f"Not sent at the scheduled time: {exc}"
                db.session.commit()
            continue
        after_commit(start_campaign, campaign.id)
        db.session.commit()
        started += 1
    return started


@shared_task(soft_time_limit=300, time_limit=330)
def reap_deliveries() -> int:
    """Beat: recover claims of dead workers, restart stalled lanes (and ended ones when rows are ready again), finish
    campaigns with nothing left."""
    reaped = reaper.reap_expired_claims()
    for campaign_id in reaper.stalled_snapshots():
        reaper.record_stall(campaign_id)
        after_commit(start_campaign, campaign_id)
        db.session.commit()
    for campaign_id, restart in lanes.lanes_to_restart().items():
        if restart.stalled:
            reaper.record_stall(campaign_id, len(restart.stalled))
            db.session.commit()
        queue_lanes(campaign_id, restart.stalled + restart.idle)
    reaper.finish_done_campaigns()
    return reaped
