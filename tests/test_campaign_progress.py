"""A sending campaign's progress: counted at most once a second however often it is asked for, with the rate taken
from those counts."""

import time

import sqlalchemy as sa

from tests.factories import add_confirmed, make_campaign
from uscmail.campaigns import sending, services
from uscmail.campaigns.models import Delivery, DeliveryStatus
from uscmail.models import utcnow


def sending_campaign(db, recipients: int):
    """A campaign pressed to send, with every delivery row written and nothing sent (no worker is asked to)."""
    add_confirmed(recipients)
    campaign = make_campaign()
    services.start_sending(campaign, "test")
    db.session.commit()
    sending.snapshot(campaign.id, on_first_chunk=lambda: None)
    return campaign


def test_a_sending_campaigns_counts_are_taken_at_most_once_a_second_and_give_its_rate(db):
    campaign = sending_campaign(db, 10)
    first = services.campaign_stats(campaign)
    assert (first.recipients, first.pending, first.sent) == (10, 10, 0)

    ids = db.session.scalars(sa.select(Delivery.id).order_by(Delivery.id).limit(4)).all()
    db.session.execute(
        sa.update(Delivery).where(Delivery.id.in_(ids)).values(status=DeliveryStatus.SENT, sent_at=utcnow())
    )
    db.session.commit()
    assert services.campaign_stats(campaign).sent == 0, "counted less than a second ago: the same counts"

    time.sleep(1.1)
    later = services.campaign_stats(campaign)
    assert (later.recipients, later.pending, later.sent) == (10, 6, 4)
    # Four messages between two counts 1.1 to 1.5 seconds apart.
    assert 2.5 <= later.rate_per_second <= 3.7
    assert later.seconds_remaining is not None and later.seconds_remaining > 0


def test_a_finished_campaigns_counts_are_exact_at_once(db):
    campaign = sending_campaign(db, 3)
    assert services.campaign_stats(campaign).pending == 3
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.campaign_id == campaign.id)
        .values(status=DeliveryStatus.SENT, sent_at=utcnow())
    )
    db.session.commit()
    assert sending.maybe_finish(campaign.id)
    db.session.refresh(campaign)
    done = services.campaign_stats(campaign)
    assert (done.status, done.sent, done.pending) == ("sent", 3, 0)
