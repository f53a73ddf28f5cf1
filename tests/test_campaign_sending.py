"""The send pipeline with real parts: Celery workers, the database, the SMTP sink. Each recipient is mailed once."""

import collections
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.campaign_support import counts, start, status_detail, status_of, wait_for_status
from tests.factories import add_confirmed, make_campaign
from tests.waiting import wait_until
from uscmail.campaigns import reaper, services
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from uscmail.models import MailingList, Subscriber, SubscriptionStatus, SuppressionReason, utcnow
from uscmail.subscriptions import services as journey
from uscmail.suppression import suppression_reason

SENT, FAILED, SKIPPED, UNKNOWN = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNKNOWN,
)


def received_per_address(smtp_sink) -> collections.Counter:
    """How many messages each envelope recipient received."""
    with smtp_sink.lock:
        return collections.Counter(rcpt.lower() for mail in smtp_sink.messages for rcpt in mail.rcpt_tos)


def test_a_campaign_reaches_every_confirmed_subscriber_exactly_once(db, worker, smtp_sink):
    addresses = add_confirmed(2000)
    campaign = make_campaign()
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=180)
    received = received_per_address(smtp_sink)
    assert set(received) == set(addresses)
    assert set(received.values()) == {1}
    assert counts(campaign.id) == {SENT: 2000}
    finished = services.get_campaign(campaign.id)
    assert (finished.sent_count, finished.failed_count) == (2000, 0), "the final tallies are kept on the campaign"
    message = smtp_sink.to(addresses[0])[0].message
    assert message["Subject"] == "Solidarity news"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Supporter 0" in smtp_sink.to(addresses[0])[0].text()


def test_two_workers_share_one_campaign_without_duplicates(db, spawn_worker, smtp_sink):
    queue = f"campaign-two-{uuid.uuid4().hex[:6]}"
    first = spawn_worker("first", queue=queue, CAMPAIGN_BATCH_SIZE=50)
    second = spawn_worker("second", queue=queue, CAMPAIGN_BATCH_SIZE=50)
    smtp_sink.delay = 0.002
    addresses = add_confirmed(1500)
    campaign = make_campaign()
    start(campaign, queue=queue)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=180)
    received = received_per_address(smtp_sink)
    assert set(received) == set(addresses) and set(received.values()) == {1}
    for worker in (first, second):
        assert "send_batch" in worker.log() and "succeeded" in worker.log(), "both workers sent batches"


KILL_SETTINGS = {"CAMPAIGN_BATCH_SIZE": 100, "CAMPAIGN_LEASE_SECONDS": 3}


def kill_mid_campaign(spawn_worker, smtp_sink, recipients: int = 600):
    """Start a campaign on a worker of its own, SIGKILL that worker after 150 messages; (campaign, queue, addresses)."""
    queue = f"campaign-kill-{uuid.uuid4().hex[:6]}"
    doomed = spawn_worker("doomed", queue=queue, **KILL_SETTINGS)
    smtp_sink.delay = 0.01
    addresses = add_confirmed(recipients)
    campaign = make_campaign()
    start(campaign, queue=queue)
    wait_until(lambda: smtp_sink.count() >= 150, what="the first messages")
    doomed.kill()
    assert status_of(campaign.id) is CampaignStatus.SENDING
    assert counts(campaign.id).get(DeliveryStatus.SENDING), "the dead worker's claims are still held"
    return campaign, queue, addresses


def claims_under_lease() -> int:
    """Deliveries still claimed (sending) under a lease that has not yet lapsed, as committed now."""
    from uscmail.extensions import db as database
    from uscmail.models import utcnow

    held = database.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until >= utcnow())
    )
    database.session.rollback()
    return held


def reap_and_restart(app, spawn_worker, queue: str, campaign_id: int) -> None:
    """After the dead claims' leases lapse: the reaper runs, a new worker starts, the stalled campaign carries on."""
    from uscmail.campaigns import tasks

    with app.app_context():
        wait_until(lambda: not claims_under_lease(), timeout=30, what="the dead worker's leases to lapse")
        assert reaper.reap_expired_claims() >= 1
    spawn_worker("restarted", queue=queue, **KILL_SETTINGS)
    tasks.start_campaign.apply_async((campaign_id,), queue=queue)  # what the reaper does for its stalled lanes
    wait_for_status(campaign_id, CampaignStatus.SENT, timeout=180)


def test_a_worker_killed_mid_campaign_loses_nothing_and_sends_nothing_twice(db, spawn_worker, smtp_sink, app):
    campaign, queue, addresses = kill_mid_campaign(spawn_worker, smtp_sink)
    before_restart = smtp_sink.count()
    reap_and_restart(app, spawn_worker, queue, campaign.id)

    received = received_per_address(smtp_sink)
    assert max(received.values()) == 1, "nobody is mailed twice"
    final = counts(campaign.id)
    # Only the messages on the wire when the worker died (one per connection: two pool processes) are in doubt.
    assert final.get(UNKNOWN, 0) <= 2
    assert final[SENT] + final.get(UNKNOWN, 0) == 600
    sent_ids = set(db.session.scalars(sa.select(Delivery.subscriber_id).where(Delivery.status == SENT)))
    sent_addresses = set(db.session.scalars(sa.select(Subscriber.email).where(Subscriber.id.in_(sent_ids))))
    assert sent_addresses <= set(received), "every delivery marked sent really arrived"
    assert set(received) <= set(addresses) and len(received) >= 598
    assert smtp_sink.count() > before_restart


def test_smtp_answers_421_451_and_550_for_chosen_recipients(db, worker, smtp_sink, app):
    addresses = add_confirmed(30)
    greylisted, busy, gone = addresses[3], addresses[7], addresses[11]
    smtp_sink.replies[greylisted] = "451 4.7.1 Greylisted, try again later"
    smtp_sink.replies[busy] = "421 4.3.2 Too busy, closing connection"
    smtp_sink.replies[gone] = "550 5.1.1 <" + gone + ">: mailbox unknown"
    campaign = make_campaign()
    start(campaign)
    wait_until(lambda: counts(campaign.id).get(SENT, 0) == 27, what="the other 27")
    assert not smtp_sink.to(greylisted) and not smtp_sink.to(gone)
    # The transient refusals are retried after a backoff and arrive once the server takes them.
    smtp_sink.replies.pop(greylisted)
    smtp_sink.replies.pop(busy)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert len(smtp_sink.to(greylisted)) == 1 and len(smtp_sink.to(busy)) == 1
    assert counts(campaign.id) == {SENT: 29, FAILED: 1}
    failed = db.session.scalar(sa.select(Delivery).where(Delivery.status == FAILED))
    assert failed.error.startswith("550 5.1.1") and "@" not in failed.error, "the reason is kept, the address is not"
    # A mailbox that does not exist is a hard bounce: suppressed and unsubscribed.
    with app.app_context():
        assert suppression_reason(gone) is SuppressionReason.HARD_BOUNCE
    bounced = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == gone))
    assert [s.status for s in bounced.subscriptions] == [SubscriptionStatus.UNSUBSCRIBED]


def test_transient_failures_give_up_after_the_attempt_limit(db, worker, smtp_sink):
    addresses = add_confirmed(3)
    smtp_sink.replies[addresses[1]] = "452 4.2.2 Mailbox full"
    campaign = make_campaign()
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    failed = db.session.scalar(sa.select(Delivery).where(Delivery.status == FAILED))
    assert failed.attempts == 4 and failed.error.startswith("gave up after 4 attempts: 452")
    # "Resend to failed" queues it once more; now the mailbox has room.
    smtp_sink.replies.clear()
    services.resend_failed(services.get_campaign(campaign.id), "test")
    db.session.commit()
    from uscmail.campaigns import tasks

    tasks.start_campaign.delay(campaign.id)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    wait_until(lambda: counts(campaign.id) == {SENT: 3}, what="the resent delivery")
    assert len(smtp_sink.to(addresses[1])) == 1


def test_pause_resume_and_cancel_take_effect_within_a_batch(db, worker, smtp_sink):
    smtp_sink.delay = 0.01
    addresses = add_confirmed(1200)
    campaign = make_campaign()
    start(campaign)
    wait_until(lambda: smtp_sink.count() >= 50, what="sending to begin")
    services.pause(services.get_campaign(campaign.id), "test")
    db.session.commit()
    wait_until(lambda: not counts(campaign.id).get(DeliveryStatus.SENDING), what="batches in flight to stop")
    paused_at = smtp_sink.count()
    time.sleep(1.5)  # deliberately let time pass: a paused campaign must send nothing during it
    assert smtp_sink.count() == paused_at, "nothing is sent while paused"
    assert paused_at < 1200

    services.resume(services.get_campaign(campaign.id), "test")
    db.session.commit()
    from uscmail.campaigns import tasks

    tasks.start_campaign.delay(campaign.id)
    wait_until(lambda: smtp_sink.count() >= paused_at + 100, what="sending to resume")
    services.cancel(services.get_campaign(campaign.id), "test")
    db.session.commit()
    wait_until(lambda: not counts(campaign.id).get(DeliveryStatus.SENDING), what="batches in flight to stop")
    cancelled_at = smtp_sink.count()
    time.sleep(1.5)  # deliberately let time pass: a cancelled campaign must send nothing more during it
    assert smtp_sink.count() == cancelled_at < 1200
    final = counts(campaign.id)
    assert status_of(campaign.id) is CampaignStatus.CANCELLED
    assert final[SENT] == cancelled_at and final[SKIPPED] == 1200 - cancelled_at
    received = received_per_address(smtp_sink)
    assert max(received.values()) == 1 and set(received) <= set(addresses)


def test_someone_who_unsubscribes_after_the_send_began_is_not_mailed(db, worker, smtp_sink):
    smtp_sink.delay = 0.01
    addresses = add_confirmed(400)
    campaign = make_campaign()
    start(campaign)
    wait_until(lambda: smtp_sink.count() >= 20, what="sending to begin")
    last = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == addresses[-1]))
    journey.unsubscribe(last.id, None, journey.StatusReason.ONE_CLICK)
    db.session.commit()
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=120)
    assert not smtp_sink.to(addresses[-1])
    assert counts(campaign.id) == {SENT: 399, SKIPPED: 1}


def test_names_with_line_breaks_cannot_add_headers(db, worker, smtp_sink):
    (address,) = add_confirmed(1)
    # Written straight to the database, as an old import might have: validation would refuse it.
    db.session.execute(
        sa.update(Subscriber).where(Subscriber.email == address).values(name="Evil\r\nBcc: thief@example.net")
    )
    db.session.commit()
    campaign = make_campaign()
    start(campaign)
    (mail,) = smtp_sink.wait_for(address)
    assert mail.rcpt_tos == [address]
    assert mail.message["Bcc"] is None
    assert mail.message["To"].addresses[0].display_name == "Evil Bcc: thief@example.net"
    assert not smtp_sink.to("thief@example.net")


def test_connection_failures_pause_the_campaign_and_say_why(db, spawn_worker, smtp_sink):
    queue = f"campaign-down-{uuid.uuid4().hex[:6]}"
    # Port 9 (discard) is closed on loopback: every connection is refused.
    spawn_worker(
        "nosmtp", queue=queue, MAIL_PORT=9, CAMPAIGN_CONNECTION_FAILURES=3, CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS=2
    )
    add_confirmed(20)
    campaign = make_campaign()
    start(campaign, queue=queue)
    wait_for_status(campaign.id, CampaignStatus.PAUSED, timeout=60)
    paused = services.get_campaign(campaign.id)
    assert "could not be reached" in paused.status_detail and "times in a row" in paused.status_detail
    # Nothing lost: once the last batch has put its rows back, every row waits for the resume.
    wait_until(lambda: counts(campaign.id) == {DeliveryStatus.PENDING: 20}, what="the rows to be released")


def test_the_global_rate_limit_holds_and_does_not_stall_another_campaign(db, spawn_worker, smtp_sink):
    queue = f"campaign-rate-{uuid.uuid4().hex[:6]}"
    spawn_worker("limited", queue=queue, concurrency=1, SEND_RATE_PER_SECOND=20)
    big = make_campaign("Big")
    add_confirmed(200, domain="big.example.org")
    start(big, queue=queue)
    wait_until(lambda: smtp_sink.count() >= 20, what="the big campaign to start")
    reminders = db.session.scalar(sa.select(MailingList).where(MailingList.slug == "london-protest-reminders"))
    add_confirmed(5, mailing_list=reminders, domain="small.example.org")
    small = make_campaign("Small", lists=[reminders])
    start(small, queue=queue)
    wait_for_status(small.id, CampaignStatus.SENT, timeout=60)
    big_sent = counts(big.id).get(SENT, 0)
    assert big_sent < 200, "the later, smaller campaign did not wait for the big one to finish"
    wait_for_status(big.id, CampaignStatus.SENT, timeout=60)
    with smtp_sink.lock:
        arrivals = sorted(mail.received_at for mail in smtp_sink.messages)
    # No second-long window holds more than the limit (plus one for the window's edge).
    busiest = max(sum(1 for t in arrivals if start_at <= t < start_at + 1.0) for start_at in arrivals)
    assert busiest <= 21


def test_a_scheduled_campaign_goes_out_once_when_its_time_comes(db, worker, smtp_sink):
    from uscmail.campaigns import tasks
    from uscmail.models import utcnow

    addresses = add_confirmed(5)
    campaign = make_campaign()
    services.schedule(campaign, utcnow() + timedelta(hours=1), "test")
    db.session.commit()
    assert tasks.start_due_campaigns() == 0, "not yet due"
    # The clock moves on: the time has come.
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign.id).values(scheduled_at=utcnow()))
    db.session.commit()
    # Two beat processes, or one run overlapping the last: the campaign starts once.
    assert tasks.start_due_campaigns() + tasks.start_due_campaigns() == 1
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    received = received_per_address(smtp_sink)
    assert set(received) == set(addresses) and set(received.values()) == {1}


def test_a_scheduled_campaign_with_nobody_to_send_to_is_cancelled_with_the_reason(db):
    from uscmail.campaigns import tasks
    from uscmail.models import utcnow

    campaign = make_campaign()
    services.schedule(campaign, utcnow() + timedelta(hours=1), "test")
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign.id).values(scheduled_at=utcnow()))
    db.session.commit()
    assert tasks.start_due_campaigns() == 0
    cancelled = services.get_campaign(campaign.id)
    assert cancelled.status is CampaignStatus.CANCELLED
    assert cancelled.status_detail.startswith("Not sent at the scheduled time: Nobody is confirmed")


def test_a_claim_takes_exactly_its_batch_and_claims_never_overlap(db, app):
    from uscmail.campaigns import sending

    add_confirmed(300)
    campaign = make_campaign()
    services.start_sending(campaign, "test")
    db.session.commit()
    sending.snapshot(campaign.id, on_first_chunk=lambda: None)
    first = sending.claim_batch(campaign.id, 20)
    second = sending.claim_batch(campaign.id, 20)
    assert len(first.rows) == 20 and len(second.rows) == 20
    assert not {row[0] for row in first.rows} & {row[0] for row in second.rows}
    assert counts(campaign.id) == {DeliveryStatus.SENDING: 40, DeliveryStatus.PENDING: 260}


def test_a_relay_without_pipelining_gets_the_same_messages(db, spawn_worker, smtp_sink):
    # The other tests' sink offers PIPELINING (MAIL, RCPT and DATA in one write); this one does not.
    smtp_sink.pipelining = False
    queue = f"campaign-stepwise-{uuid.uuid4().hex[:6]}"
    spawn_worker("stepwise", queue=queue)
    addresses = add_confirmed(40)
    smtp_sink.replies[addresses[5]] = "550 5.1.1 mailbox unknown"
    campaign = make_campaign(body="Dear {{ subscriber.name }},\n\n.a line that starts with a dot\n")
    start(campaign, queue=queue)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert counts(campaign.id) == {SENT: 39, FAILED: 1}
    received = received_per_address(smtp_sink)
    assert set(received) == set(addresses) - {addresses[5]} and set(received.values()) == {1}
    assert ".a line that starts with a dot" in smtp_sink.to(addresses[0])[0].text()


def test_a_leading_dot_survives_pipelined_sending(db, worker, smtp_sink):
    (address,) = add_confirmed(1)
    campaign = make_campaign(body="Dear {{ subscriber.name }},\n\n.a line that starts with a dot\n")
    start(campaign)
    (mail,) = smtp_sink.wait_for(address)
    assert ".a line that starts with a dot" in mail.text()


def test_a_dead_workers_lost_journal_leaves_its_batch_unknown_never_resent(db, spawn_worker, smtp_sink, app):
    from tests.conftest import REDIS_URL, TEST_ENV

    campaign, queue, _ = kill_mid_campaign(spawn_worker, smtp_sink)
    in_doubt = counts(campaign.id)[DeliveryStatus.SENDING]
    # The journal's store loses everything (a Redis restart without persistence; the disk of a dead machine).
    if REDIS_URL:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{TEST_ENV['RATELIMIT_KEY_PREFIX']}:send-journal:*"):
            client.delete(key)
    else:
        for path in Path(TEST_ENV["SEND_JOURNAL_DIR"]).glob("*.journal"):
            path.unlink()
    reap_and_restart(app, spawn_worker, queue, campaign.id)
    received = received_per_address(smtp_sink)
    assert max(received.values()) == 1, "nobody is mailed twice, even with the journal gone"
    final = counts(campaign.id)
    assert final[UNKNOWN] == in_doubt, "every row of the dead batches is in doubt, and counted"
    assert final[SENT] + final[UNKNOWN] == 600


def test_a_campaign_whose_queued_batches_were_lost_is_restarted_and_says_so(db, worker, smtp_sink, sign_in_as):
    from uscmail.campaigns import lanes, sending, tasks

    addresses = add_confirmed(40)
    campaign = make_campaign()
    services.start_sending(campaign, "test")
    db.session.commit()
    # The start task listed the recipients, but its batch tasks were lost (a broker flush): nothing is queued, and
    # nothing sends; no lane shows progress.
    sending.snapshot(campaign.id, on_first_chunk=lambda: None)
    db.session.commit()
    smtp_sink.settle(1)
    assert smtp_sink.count() == 0 and lanes.lanes_to_restart() == {campaign.id: lanes.Restart([0, 1, 2, 3], [])}

    tasks.reap_deliveries()  # what beat runs every CAMPAIGN_REAP_SECONDS

    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert received_per_address(smtp_sink) == {address: 1 for address in addresses}
    healed = services.get_campaign(campaign.id)
    assert healed.status_detail.startswith("Sending stalled at ") and "4 of its 4 lanes" in healed.status_detail
    assert "Sending was restarted" in healed.status_detail
    page = sign_in_as("viewer").get(f"/organisers/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Sending stalled at " in page
    assert lanes.lanes_to_restart() == {}


def batches_under_way(worker) -> int:
    """Batch tasks the worker has received and not finished, from its log."""
    log = worker.log()
    received = set(re.findall(r"send_batch\[([0-9a-f-]+)\] received", log))
    finished = set(re.findall(r"send_batch\[([0-9a-f-]+)\] (?:succeeded|failed|raised)", log))
    return len(received - finished)


def test_a_dead_workers_lanes_are_replaced_before_its_claims_lapse(db, spawn_worker, spawn_beat, smtp_sink, app):
    """One worker of two is killed and comes back (as a service manager restarts it): beat's reaper sees the dead
    worker's lanes stall while the other worker carries on, restarts just those, and the restarted worker runs them;
    all while the dead worker's claims are still under their lease."""
    from uscmail.campaigns.models import CampaignLane

    queue = f"campaign-stall-{uuid.uuid4().hex[:6]}"
    # A long lease (the dead worker's claims stay held) and a short stall: the restart must not wait for the lease.
    settings = {
        "CAMPAIGN_BATCH_SIZE": 40,
        "CAMPAIGN_LEASE_SECONDS": 120,
        "CAMPAIGN_STALL_SECONDS": 2,
        "CAMPAIGN_REAP_SECONDS": 1,
    }
    doomed = spawn_worker("doomed", queue=queue, **settings)
    spawn_worker("survivor", queue=queue, **settings)
    spawn_beat("reaper", queue, **settings)
    smtp_sink.delay = 0.01
    addresses = add_confirmed(3000)
    campaign = make_campaign()
    start(campaign, queue=queue)
    wait_until(lambda: smtp_sink.count() >= 200, what="the first messages")
    wait_until(lambda: batches_under_way(doomed) > 0, what="a batch under way on the doomed worker")
    generations = dict(db.session.execute(sa.select(CampaignLane.lane, CampaignLane.generation)).all())
    db.session.rollback()
    doomed.kill()
    at_kill = smtp_sink.count()
    restarted = spawn_worker("restarted", queue=queue, **settings)
    wait_until(lambda: status_detail(campaign.id) is not None, timeout=20, what="the stall to be noted")
    assert "lanes showed no progress" in status_detail(campaign.id)
    assert smtp_sink.count() > at_kill, "the other worker carried on"
    replaced = {
        lane
        for lane, generation in db.session.execute(sa.select(CampaignLane.lane, CampaignLane.generation)).all()
        if generations.get(lane) != generation
    }
    db.session.rollback()
    assert 0 < len(replaced) < 4, "only the dead worker's lanes are restarted"
    wait_until(lambda: "send_batch" in restarted.log(), timeout=20, what="the restarted worker to send")
    assert claims_under_lease() > 0, "it resumed while the dead claims were still held"

    # The dead claims are recovered when their lease lapses (brought forward here), and the campaign finishes.
    dead_claims = set(db.session.scalars(sa.select(Delivery.claim).where(Delivery.status == DeliveryStatus.SENDING)))
    wait_until(lambda: counts(campaign.id).get(DeliveryStatus.PENDING, 0) == 0, timeout=120, what="the rest sent")
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.claim.in_(dead_claims))
        .values(lease_until=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=120)
    received = received_per_address(smtp_sink)
    assert max(received.values()) == 1, "nobody is mailed twice"
    final = counts(campaign.id)
    assert final.get(UNKNOWN, 0) <= 2 and final[SENT] + final.get(UNKNOWN, 0) == 3000
    assert set(received) <= set(addresses)


def test_lanes_that_outrun_the_snapshot_wait_for_its_next_rows(db, worker, smtp_sink):
    """The lanes start on the snapshot's first chunk and can empty it before the next chunk is written: they look
    again until the snapshot is done instead of stopping (the campaign would sit silent until the reaper saw it)."""
    from uscmail.campaigns import sending, tasks

    addresses = add_confirmed(30)
    campaign = make_campaign()
    services.start_sending(campaign, "test")
    db.session.commit()
    upper = sending.snapshot_chunk(campaign, 0, 10)
    db.session.commit()
    tasks.queue_lanes(campaign.id)
    wait_until(lambda: counts(campaign.id) == {SENT: 10}, what="the first chunk to be sent")
    smtp_sink.settle(3)  # the lanes find nothing to claim (several times over), and the snapshot is not done
    assert status_of(campaign.id) is CampaignStatus.SENDING

    sending.snapshot_chunk(db.session.get(Campaign, campaign.id), upper, 1000)
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign.id).values(snapshot_done=True))
    db.session.commit()

    # No beat runs here: only the lanes themselves can carry on.
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=30)
    assert received_per_address(smtp_sink) == {address: 1 for address in addresses}


def test_a_send_journal_that_fails_mid_batch_ends_the_batch_keeping_every_outcome(db, app, smtp_sink, monkeypatch):
    """Redis restarting mid-batch: the journal write fails after a message went out. The batch must end there and
    write what it knows to the database (that message included), not crash and leave its rows to a reaper that
    would read an incomplete journal and send some of them again."""
    import redis

    from uscmail.campaigns import batches, lanes, sending
    from uscmail.campaigns.journal import send_journal
    from uscmail.mail.smtp import drop_connection

    addresses = add_confirmed(30)
    campaign = make_campaign()
    services.start_sending(campaign, "test")
    db.session.commit()
    sending.snapshot(campaign.id, on_first_chunk=lambda: None)
    (lane,) = lanes.start_lanes(campaign.id, [0])
    db.session.commit()
    journal, real_record, calls = send_journal(), send_journal().record, []

    def record(claim, entries):
        calls.append(claim)
        if len(calls) > 10:  # the claim's first entry, the skipped ones, then one per message: fails at the 9th
            raise redis.ConnectionError("Redis is restarting")
        real_record(claim, entries)

    monkeypatch.setattr(journal, "record", record)
    result = batches.send_batch(lane)
    assert result.again_in == batches.JOURNAL_FAILED_WAIT_SECONDS
    received = received_per_address(smtp_sink)
    assert sum(received.values()) == 9
    assert counts(campaign.id) == {SENT: 9, DeliveryStatus.PENDING: 21}, "nothing left claimed, nothing unknown"

    monkeypatch.undo()
    while batches.send_batch(lane, result.claimed_up_to).again_in is not None:
        pass
    drop_connection()  # this process's cached connection to the sink: closed here, not by the garbage collector
    received = received_per_address(smtp_sink)
    assert received == collections.Counter({address.lower(): 1 for address in addresses})
    assert counts(campaign.id) == {SENT: 30}


def test_a_relay_out_of_reach_for_a_while_delays_the_campaign_which_then_finishes_by_itself(
    db, spawn_worker, smtp_sink, app
):
    """A relay restarting is not a reason to need an organiser: the campaign waits (and says so) and carries on."""
    from tests.bounce_support import free_port
    from tests.smtp_sink import SmtpSink

    queue, port = f"campaign-relay-{uuid.uuid4().hex[:6]}", free_port()
    spawn_worker("relaydown", queue=queue, MAIL_PORT=port, CAMPAIGN_CONNECTION_FAILURES=3)
    addresses = add_confirmed(20)
    campaign = make_campaign()
    start(campaign, queue=queue)

    def failures() -> int:
        value = db.session.scalar(sa.select(Campaign.connection_failures).where(Campaign.id == campaign.id))
        db.session.rollback()
        return value

    wait_until(lambda: failures() >= 6, 60, "more failed connections than CAMPAIGN_CONNECTION_FAILURES")
    assert status_of(campaign.id) is CampaignStatus.SENDING
    assert status_detail(campaign.id).startswith("Waiting for the mail server: it has been out of reach since")
    relay = SmtpSink(port=port)
    relay.start()
    try:
        wait_for_status(campaign.id, CampaignStatus.SENT, timeout=90)
        with relay.lock:
            received = collections.Counter(rcpt.lower() for mail in relay.messages for rcpt in mail.rcpt_tos)
    finally:
        relay.controller.stop()
    assert received == collections.Counter({address.lower(): 1 for address in addresses})
    assert status_detail(campaign.id) is None or not status_detail(campaign.id).startswith("Waiting")
