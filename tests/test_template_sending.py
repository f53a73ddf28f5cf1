"""Templates that fail while a real worker sends: the reason is shown, nothing is retried for ever, and a batch that
runs out of time loses nothing and sends nothing twice."""

import collections
import html
import uuid

import sqlalchemy as sa

from tests.campaign_support import counts, start, wait_for_status
from tests.factories import add_confirmed, make_campaign
from tests.pages import text
from uscmail.campaigns import services
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus


def delivery_errors(db, campaign_id: int) -> dict[DeliveryStatus, set[str | None]]:
    rows = db.session.execute(sa.select(Delivery.status, Delivery.error).where(Delivery.campaign_id == campaign_id))
    errors = collections.defaultdict(set)
    for status, error in rows:
        errors[status].add(error)
    db.session.rollback()
    return errors


def campaign_page(sign_in_as, campaign_id: int) -> str:
    return html.unescape(text(sign_in_as("viewer").get(f"/organisers/campaigns/{campaign_id}")))


def test_a_body_that_fails_for_some_names_fails_those_messages_with_the_reason_and_sends_the_rest(
    db, worker, smtp_sink, sign_in_as
):
    addresses = add_confirmed(12)  # "Supporter 0" … "Supporter 11": the first ten names are 11 characters long
    # Fine for the save check's samples (a name of 4 letters, and "supporter"); fails for 11-character names.
    campaign = make_campaign(
        body="Dear {{ subscriber.name }}, you are number {{ 1 // (subscriber.name|length - 11) }}."
    )
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert counts(campaign.id) == {DeliveryStatus.SENT: 2, DeliveryStatus.FAILED: 10}
    errors = delivery_errors(db, campaign.id)
    assert errors[DeliveryStatus.FAILED] == {
        "not sent: The template could not be filled in: integer division or modulo by zero."
    }
    smtp_sink.settle(1)
    assert sorted(mail.rcpt_tos[0] for mail in smtp_sink.messages) == sorted(addresses[10:])
    page = campaign_page(sign_in_as, campaign.id)
    assert "Some messages could not be filled in and are marked failed" in page
    assert "integer division or modulo by zero" in page


def test_a_body_that_fails_for_everyone_stops_the_campaign_with_the_reason(db, worker, smtp_sink, sign_in_as):
    add_confirmed(5)
    campaign = make_campaign()
    # Stored before the save check could refuse it (an older version, or a check that missed it).
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign.id).values(body="Hello {{ 1 / 0 }}"))
    db.session.commit()
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.CANCELLED, timeout=60)
    smtp_sink.settle(2)
    assert smtp_sink.count() == 0
    assert counts(campaign.id) == {DeliveryStatus.SKIPPED: 5}
    stopped = services.get_campaign(campaign.id)
    assert stopped.status_detail.startswith("Stopped: nothing was sent because the body could not be filled in.")
    assert "division by zero" in campaign_page(sign_in_as, campaign.id)


def test_a_batch_stopped_by_its_soft_time_limit_loses_nothing_and_sends_nothing_twice(db, spawn_worker, smtp_sink):
    queue = f"campaign-soft-{uuid.uuid4().hex[:6]}"
    slow = spawn_worker("soft-limit", queue=queue, CAMPAIGN_BATCH_TIME_LIMIT=1, CAMPAIGN_BATCH_SIZE=100)
    smtp_sink.delay = 0.05  # 100 messages would take 5 seconds: every batch is stopped after about one
    addresses = add_confirmed(120)
    campaign = make_campaign()
    start(campaign, queue=queue)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=120)
    assert "ran out of time" in slow.log()
    received = collections.Counter(rcpt for mail in smtp_sink.messages for rcpt in mail.rcpt_tos)
    assert set(received.values()) == {1}, "nothing is sent twice"
    outcome = counts(campaign.id)
    assert set(outcome) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}, "nothing is lost or left pending"
    assert outcome[DeliveryStatus.SENT] + outcome.get(DeliveryStatus.UNKNOWN, 0) == len(addresses)
    # Only a message that was on the wire when time ran out is in doubt; every other one arrived.
    assert outcome[DeliveryStatus.SENT] <= len(received) <= len(addresses)
