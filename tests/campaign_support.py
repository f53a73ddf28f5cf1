"""Helpers for campaign tests: confirmed subscribers in bulk, a campaign ready to send, waiting on its progress."""

import uuid

import sqlalchemy as sa

from tests.waiting import wait_until
from uscmail.campaigns import services
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from uscmail.extensions import db
from uscmail.models import (
    MailingList,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    new_public_id,
    utcnow,
)


def newsletter() -> MailingList:
    """The seeded Newsletter list."""
    return db.session.scalar(sa.select(MailingList).where(MailingList.slug == "newsletter"))


def add_confirmed(count: int, mailing_list: MailingList | None = None, domain: str = "example.org") -> list[str]:
    """Insert `count` subscribers confirmed on the list (Newsletter by default); returns their addresses in id order."""
    mailing_list = mailing_list or newsletter()
    tag = uuid.uuid4().hex[:6]
    now = utcnow()
    addresses = [f"s{i:06d}.{tag}@{domain}" for i in range(count)]
    subscriber_rows = [
        {"email": email, "public_id": new_public_id(), "name": f"Supporter {i}", "locale": "en", "signup_mail_count": 0,
         "created_at": now, "updated_at": now}
        for i, email in enumerate(addresses)
    ]  # fmt: skip
    db.session.execute(sa.insert(Subscriber), subscriber_rows)
    ids = db.session.execute(sa.select(Subscriber.id, Subscriber.email).where(Subscriber.email.in_(addresses))).all()
    db.session.execute(
        sa.insert(Subscription),
        [
            {"subscriber_id": subscriber_id, "list_id": mailing_list.id, "status": SubscriptionStatus.CONFIRMED,
             "status_reason": StatusReason.CONFIRMED_BY_SUBSCRIBER, "created_at": now, "confirmed_at": now,
             "updated_at": now}
            for subscriber_id, _ in ids
        ],
    )  # fmt: skip
    db.session.commit()
    return addresses


def make_campaign(subject: str = "Solidarity news", body: str | None = None, lists=None) -> Campaign:
    """A committed draft to the Newsletter list (or the given lists)."""
    fields = services.CampaignFields(
        subject=subject,
        body=body or "Dear {{ subscriber.name }},\n\nStand with the Uyghur people on the 5th.\n",
        list_ids=[m.id for m in (lists or [newsletter()])],
    )
    campaign = services.create_campaign(fields, "test")
    db.session.commit()
    return campaign


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


def status_of(campaign_id: int) -> CampaignStatus:
    """The campaign's status as committed now."""
    status = db.session.scalar(sa.select(Campaign.status).where(Campaign.id == campaign_id))
    db.session.rollback()
    return status


def wait_for_status(campaign_id: int, *statuses: CampaignStatus, timeout: float = 120.0) -> CampaignStatus:
    """Wait until the campaign reaches one of these statuses."""
    return wait_until(lambda: status_of(campaign_id) in statuses and status_of(campaign_id), timeout, f"{statuses}")
