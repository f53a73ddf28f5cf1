"""Helpers for campaign tests: starting a send, its deliveries and status as committed, waiting on its progress.
(The subscribers and campaigns themselves come from tests/factories.py.)"""

import sqlalchemy as sa

from tests.waiting import wait_until
from uscmail.campaigns import services
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from uscmail.extensions import db

VIGIL_SUBJECT = "December vigil"
VIGIL_BODY = "Dear friends,\n\nThe vigil outside the embassy is on **Friday** at 6 pm."


def start(campaign: Campaign, queue: str | None = None) -> None:
    """Press send: mark it sending, commit, queue the start task (on a chosen worker's queue if given)."""
    from uscmail.campaigns import tasks

    services.start_sending(campaign, "test")
    db.session.commit()
    if queue:
        tasks.start_campaign.apply_async((campaign.id,), queue=queue)
    else:
        tasks.start_campaign.delay(campaign.id)


def counts(campaign_id: int) -> dict[DeliveryStatus, int]:
    """Deliveries by status, as committed now."""
    result = dict(
        db.session.execute(
            sa.select(Delivery.status, sa.func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        ).all()
    )
    db.session.rollback()
    return result


def status_of(campaign_id: int) -> CampaignStatus | None:
    """The campaign's status as committed now."""
    db.session.rollback()
    status = db.session.scalar(sa.select(Campaign.status).where(Campaign.id == campaign_id))
    db.session.rollback()
    return status


def status_detail(campaign_id: int) -> str | None:
    """What the campaign's page says about it, as committed now."""
    db.session.rollback()
    detail = db.session.scalar(sa.select(Campaign.status_detail).where(Campaign.id == campaign_id))
    db.session.rollback()
    return detail


def wait_for_status(campaign_id: int, *statuses: CampaignStatus, timeout: float = 120.0) -> CampaignStatus:
    """Wait until the campaign reaches one of these statuses."""
    return wait_until(lambda: status_of(campaign_id) in statuses and status_of(campaign_id), timeout, f"{statuses}")


def start_without_worker(db, campaign_id: int) -> None:
    """Mark the campaign sending as the send endpoint does, but queue nothing: no mail leaves while a test pauses it."""
    services.start_sending(db.session.get(Campaign, campaign_id), "test")
    db.session.commit()
