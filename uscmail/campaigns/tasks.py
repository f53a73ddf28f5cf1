"""Celery tasks of campaigns: start a send, send its batches, send test copies, start scheduled campaigns, and reap
what dead workers left; each is a thin wrapper around the sending pipeline and the campaign services.

Every task is acks_late (global setting) and idempotent: a task run twice, or run again after its worker died,
finds the work already claimed or done.
"""

import logging

import sqlalchemy as sa
from celery import shared_task
from flask import current_app

from ..extensions import db
from ..models import utcnow
from ..queueing import after_commit
from ..validation import InvalidInput
from . import batches, reaper, sending, services, testcopy
from .models import Campaign, CampaignStatus

log = logging.getLogger(__name__)


def queue_lanes(campaign_id: int) -> None:
    """Queue CAMPAIGN_LANES batch tasks; each sends a batch and queues the next, so campaigns take turns. They are
    expected to show progress within CAMPAIGN_STALL_SECONDS."""
    sending.expect_progress(campaign_id, current_app.config["CAMPAIGN_STALL_SECONDS"])
    db.session.commit()
    for _ in range(current_app.config["CAMPAIGN_LANES"]):
        send_batch.delay(campaign_id)


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
def send_batch(campaign_id: int) -> int:
    """Send one batch of the campaign, then queue the next (after a wait if the rate limit or a retry asks for one)."""
    result = batches.send_batch(campaign_id)
    if result.again_in is not None:
        send_batch.apply_async((campaign_id,), countdown=result.again_in or None)
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
    """Beat: recover claims of dead workers, restart stalled campaigns, finish campaigns with nothing left."""
    reaped = reaper.reap_expired_claims()
    for campaign_id in reaper.stalled_campaigns():
        reaper.record_stall(campaign_id)
        after_commit(start_campaign, campaign_id)
        db.session.commit()
    reaper.finish_done_campaigns()
    return reaped
