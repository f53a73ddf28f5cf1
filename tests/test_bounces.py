"""Bounces and complaints: every message goes out with a return path naming its delivery; real bounces from real
MTAs, delivered to that return path at the receiver (its own process), suppress or score the right subscriber with
the evidence on their page; complaints unsubscribe from everything; forged and garbage mail acts on nobody."""

import smtplib
import socket
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.api_support import assert_matches, issue_token
from tests.bounce_support import BounceReceiver, arf_report, fixture
from tests.campaign_support import start, wait_for_status
from tests.conftest import BACKEND, RUN_DIR
from tests.factories import add_confirmed, make_campaign, make_list
from uscmail.bounces import intake, reports, returnpath
from uscmail.bounces.models import BounceDecision, BounceEvent, BounceKind, BounceSource, SetAsideMail
from uscmail.bounces.receiver import BounceHandler
from uscmail.bounces.reports import Verdict
from uscmail.bounces.services import Finding, record
from uscmail.campaigns.models import CampaignStatus, Delivery
from uscmail.models import StatusReason, Subscriber, Subscription, SubscriptionStatus, SuppressionReason
from uscmail.suppression import suppression_reason

HARD, SOFT = BounceKind.HARD, BounceKind.SOFT


@pytest.fixture
def receiver():
    started = BounceReceiver(RUN_DIR / f"bounce-receiver-{uuid.uuid4().hex[:6]}.log")
    yield started
    started.stop()


def subscriber_by_email(db, email: str) -> Subscriber:
    db.session.expire_all()
    return db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))


def events_of(db, email: str) -> list[BounceEvent]:
    subscriber = subscriber_by_email(db, email)
    return list(db.session.scalars(sa.select(BounceEvent).where(BounceEvent.subscriber_id == subscriber.id)))


def age_events(db, subscriber_id: int, days: int) -> None:
    """Move a subscriber's bounce events `days` into the past, as if they had arrived then."""
    for event in db.session.scalars(sa.select(BounceEvent).where(BounceEvent.subscriber_id == subscriber_id)):
        event.created_at -= timedelta(days=days)
    db.session.flush()


def sent_campaign(db, smtp_sink, count: int = 3):
    """A campaign sent by the worker to `count` subscribers; returns it and the messages as captured."""
    addresses = add_confirmed(count, domain=f"{uuid.uuid4().hex[:6]}.example.org")
    campaign = make_campaign()
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=120)
    return campaign, {address: smtp_sink.wait_for(address)[0] for address in addresses}


# --- return paths -----------------------------------------------------------------------------------------------


def test_a_return_path_names_its_delivery_and_cannot_be_forged(app):
    with app.test_request_context():
        paths = returnpath.return_paths()
        address = returnpath.for_delivery(123456789)
        local, _, domain = address.partition("@")
        assert domain == "uscuk.test" and local.startswith("bounces+") and len(local) == len("bounces+") + 26
        assert "123456789" not in address
        assert paths.read(f"<{address}>") == returnpath.Tagged(returnpath.DELIVERY, 123456789)
        assert paths.read(address.upper()) == returnpath.Tagged(returnpath.DELIVERY, 123456789), "MTAs may fold case"
        assert paths.read(returnpath.for_subscriber(7)) == returnpath.Tagged(returnpath.SUBSCRIBER, 7)
        assert returnpath.for_delivery(1) != returnpath.for_delivery(2)
        tag = address.split("+")[1].split("@")[0]
        for position in (0, 12, 25):
            changed = tag[:position] + ("a" if tag[position] != "a" else "b") + tag[position + 1 :]
            assert paths.read(f"bounces+{changed}@uscuk.test") is None, "a changed tag names nobody"
        assert paths.read("bounces+" + "a" * 26 + "@uscuk.test") is None
        other_key = returnpath.ReturnPaths("bounces@uscuk.test", "another-secret-key-" + "y" * 20)
        assert paths.read(other_key.address(returnpath.DELIVERY, 5)) is None
        rotated = returnpath.ReturnPaths("bounces@uscuk.test", "new-key-" + "z" * 30, [app.config["SECRET_KEY"]])
        assert rotated.read(address) == returnpath.Tagged(returnpath.DELIVERY, 123456789), "old key still reads"


def test_every_kind_of_mail_goes_out_with_its_own_return_path(db, worker, smtp_sink, signup, app):
    campaign, messages = sent_campaign(db, smtp_sink, count=2)
    with app.test_request_context():
        paths = returnpath.return_paths()
        for address, mail in messages.items():
            subscriber = subscriber_by_email(db, address)
            delivery_id = db.session.scalar(
                sa.select(Delivery.id).where(
                    Delivery.campaign_id == campaign.id, Delivery.subscriber_id == subscriber.id
                )
            )
            assert address.split("@")[0] not in mail.mail_from, "no readable address in the return path"
            assert paths.read(mail.mail_from) == returnpath.Tagged(returnpath.DELIVERY, delivery_id)
            assert mail.message["Feedback-ID"] == f"{campaign.id}:newsletter:uscmail:uscuk.test"
        signup("return-path-signup@example.org")
        confirmation = smtp_sink.wait_for("return-path-signup@example.org")[0]
        subscriber = subscriber_by_email(db, "return-path-signup@example.org")
        assert paths.read(confirmation.mail_from) == returnpath.Tagged(returnpath.SUBSCRIBER, subscriber.id)
        assert confirmation.message["Feedback-ID"] == "0:confirm:uscmail:uscuk.test"


# --- reading real reports ---------------------------------------------------------------------------------------

REAL_BOUNCES = [
    ("postfix_01", Verdict.FAILURE, HARD, "5.1.1"),
    ("postfix_05", Verdict.FAILURE, HARD, ""),
    ("exim_01", Verdict.FAILURE, HARD, "5.1.1"),
    ("qmail_05", Verdict.FAILURE, HARD, ""),
    ("sendmail_01", Verdict.FAILURE, HARD, ""),
    ("smtp32_04", Verdict.FAILURE, HARD, "5.3.0"),
    ("microsoft_01", Verdict.FAILURE, HARD, ""),
    ("dsn_01", Verdict.FAILURE, HARD, "5.0.0"),
    ("dsn_02", Verdict.FAILURE, SOFT, "4.4.7"),
    ("dsn_05", Verdict.DELAY, None, ""),
    ("dsn_11", Verdict.FAILURE, HARD, "5.1.1"),
    ("simple_17", Verdict.FAILURE, HARD, ""),
    ("simple_42", Verdict.FAILURE, SOFT, "5.7.1"),
    ("simple_44", Verdict.FAILURE, SOFT, "4.4.4"),
    ("yahoo_01", Verdict.FAILURE, SOFT, "4.4.1"),
    ("yahoo_11", Verdict.FAILURE, HARD, "5.1.1"),
    ("qmail_08", Verdict.AUTO_REPLY, None, ""),
]


@pytest.mark.parametrize(("name", "verdict", "kind", "status"), REAL_BOUNCES, ids=[row[0] for row in REAL_BOUNCES])
def test_real_bounces_from_real_mtas_are_read(name, verdict, kind, status):
    report = reports.read(fixture(name))
    assert (report.verdict, report.kind, report.status) == (verdict, kind, status)
    if verdict is Verdict.FAILURE and status:
        assert report.diagnostic, "the server's words are kept"


def test_complaints_and_other_reports_are_told_apart():
    original = b"From: news@uscuk.test\r\nTo: someone@example.org\r\nSubject: x\r\n\r\nHello\r\n"
    complaint = reports.read(arf_report(original))
    assert (complaint.verdict, complaint.kind) == (Verdict.COMPLAINT, BounceKind.COMPLAINT)
    assert "Feedback-Type: abuse" in complaint.diagnostic and "Yahoo!-Mail-Feedback/2.0" in complaint.diagnostic
    microsoft = reports.read(arf_report(original, agent="Microsoft JMRP"))
    assert microsoft.verdict is Verdict.COMPLAINT
    assert reports.read(arf_report(original, feedback_type="not-spam")).verdict is Verdict.NOT_SPAM
    for garbage in (
        b"",
        b"\x00\xff\xfe" * 1000,
        b"Subject: hello\r\n\r\nJust a note",
        b"Content-Type: multipart/report",
    ):
        assert reports.read(garbage).verdict is Verdict.UNREADABLE


# --- the round trip: send, bounce, suppress ---------------------------------------------------------------------


def test_a_hard_bounce_at_the_receiver_suppresses_exactly_its_recipient(db, worker, smtp_sink, receiver, api, app):
    campaign, messages = sent_campaign(db, smtp_sink, count=3)
    bounced, *others = sorted(messages)
    assert receiver.send([messages[bounced].mail_from], fixture("postfix_01")) == {}
    subscriber = subscriber_by_email(db, bounced)
    assert suppression_reason(bounced) is SuppressionReason.HARD_BOUNCE
    assert {(s.status, s.status_reason) for s in subscriber.subscriptions} == {
        (SubscriptionStatus.UNSUBSCRIBED, StatusReason.BOUNCE)
    }
    [event] = events_of(db, bounced)
    assert (event.kind, event.source, event.status, event.decision, event.campaign_id) == (
        HARD, BounceSource.RECEIVER, "5.1.1", BounceDecision.SUPPRESSED, campaign.id,
    )  # fmt: skip
    assert "550 5.1.1" in event.diagnostic and "@" not in event.diagnostic, "the words kept, the address not"
    for address in others:
        assert suppression_reason(address) is None and events_of(db, address) == []
    stats = api("GET", f"/api/v1/campaigns/{campaign.id}/stats", token=issue_token(db, "viewer")).get_json()
    assert_matches(app, "CampaignStats", stats)
    assert (stats["hard_bounces"], stats["soft_bounces"], stats["complaints"]) == (1, 0, 0)


def test_the_subscriber_and_campaign_pages_show_each_bounce_with_its_evidence(
    db, worker, smtp_sink, receiver, sign_in_as
):
    campaign, messages = sent_campaign(db, smtp_sink, count=2)
    address = sorted(messages)[0]
    receiver.send([messages[address].mail_from], fixture("exim_01"))
    browser = sign_in_as("viewer")
    subscriber = subscriber_by_email(db, address)
    page = browser.get(f"/organisers/subscribers/{subscriber.id}").get_data(as_text=True)
    section = page[page.index('id="bounces"') :]
    assert "Bounced for good" in section and "5.1.1" in section and "553 5.1.1 unknown or illegal user" in section
    assert "Unsubscribed from every list and suppressed" in section and "Solidarity news" in section
    campaign_page = browser.get(f"/organisers/campaigns/{campaign.id}").get_data(as_text=True)
    assert '<span data-stat="hard_bounces">1</span> for good' in campaign_page


def test_a_soft_bounce_adds_to_a_score_that_suppresses_at_the_threshold(db, worker, smtp_sink, receiver, app):
    _, messages = sent_campaign(db, smtp_sink, count=1)
    [(address, mail)] = messages.items()
    receiver.send([mail.mail_from], fixture("simple_44"))
    [event] = events_of(db, address)
    assert (event.kind, event.status, event.decision, event.score) == (SOFT, "4.4.4", BounceDecision.SCORED, 1.0)
    receiver.send([mail.mail_from], fixture("yahoo_01"))
    assert [e.score for e in events_of(db, address)] == [1.0, 1.0], "at most one a day counts"
    # Four more days with a soft bounce each: the score reaches Mailman's 5.0 and the address is suppressed.
    subscriber = subscriber_by_email(db, address)
    with app.test_request_context():
        for days_ago in (4, 3, 2, 1):
            age_events(db, subscriber.id, days=1)
            record([Finding(SOFT, "4.2.2", "mailbox full", subscriber_id=subscriber.id)], BounceSource.MAILBOX)
            db.session.commit()
            assert days_ago  # each loop is one more day
    scores = sorted(e.score for e in events_of(db, address))
    assert scores == [1.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert suppression_reason(address) is SuppressionReason.HARD_BOUNCE
    assert max(events_of(db, address), key=lambda e: e.score).decision is BounceDecision.SUPPRESSED


def test_a_soft_bounce_after_a_quiet_week_starts_the_score_again(db, app):
    [address] = add_confirmed(1, domain="quiet.example.org")
    subscriber = subscriber_by_email(db, address)
    with app.test_request_context():
        for _ in range(3):
            record([Finding(SOFT, "4.2.2", "full", subscriber_id=subscriber.id)], BounceSource.MAILBOX)
            age_events(db, subscriber.id, days=1)
        age_events(db, subscriber.id, days=8)
        record([Finding(SOFT, "4.2.2", "full", subscriber_id=subscriber.id)], BounceSource.MAILBOX)
        db.session.commit()
    assert sorted(e.score for e in events_of(db, address)) == [1.0, 1.0, 2.0, 3.0]
    assert suppression_reason(address) is None


def test_a_complaint_unsubscribes_from_every_list_and_suppresses(db, worker, smtp_sink, receiver):
    second_list = make_list(f"second-{uuid.uuid4().hex[:6]}")
    campaign, messages = sent_campaign(db, smtp_sink, count=2)
    complainer, other = sorted(messages)
    subscriber = subscriber_by_email(db, complainer)
    db.session.add(
        Subscription(
            subscriber_id=subscriber.id, list_id=second_list.id, status=SubscriptionStatus.CONFIRMED,
            status_reason=StatusReason.ORGANISER,
        )
    )  # fmt: skip
    db.session.commit()
    # The feedback loop sends its report to our abuse address, not to the return path; the original inside it
    # carries the Return-Path the receiving MTA added.
    original = f"Return-Path: <{messages[complainer].mail_from}>\r\n".encode() + messages[complainer].raw
    receiver.send(["bounces@uscuk.test"], arf_report(original))
    subscriber = subscriber_by_email(db, complainer)
    assert suppression_reason(complainer) is SuppressionReason.COMPLAINT
    assert {(s.status, s.status_reason) for s in subscriber.subscriptions} == {
        (SubscriptionStatus.UNSUBSCRIBED, StatusReason.COMPLAINT)
    }
    assert len(subscriber.subscriptions) == 2
    [event] = events_of(db, complainer)
    assert (event.kind, event.campaign_id) == (BounceKind.COMPLAINT, campaign.id)
    assert suppression_reason(other) is None


def test_a_complaint_without_the_return_path_is_traced_by_its_unsubscribe_link(db, worker, smtp_sink, receiver):
    _, messages = sent_campaign(db, smtp_sink, count=1)
    [(address, mail)] = messages.items()
    # Microsoft's feedback loop redacts the recipient; the signed List-Unsubscribe link still names them.
    original = mail.raw.replace(address.encode(), b"[redacted]")
    receiver.send(["bounces@uscuk.test"], arf_report(original, agent="Microsoft JMRP"))
    assert suppression_reason(address) is SuppressionReason.COMPLAINT


# --- forged and garbage mail ------------------------------------------------------------------------------------


def test_forged_bounces_act_on_nobody_and_are_kept_aside(db, worker, smtp_sink, receiver):
    _, messages = sent_campaign(db, smtp_sink, count=1)
    [(address, mail)] = messages.items()
    dsn = fixture("postfix_01").replace(b"xxxxx@local.ie", address.encode())  # names a real subscriber
    before = db.session.scalar(sa.select(sa.func.count()).select_from(SetAsideMail))
    receiver.send(["bounces@uscuk.test"], dsn)  # no return path of ours
    tag = mail.mail_from.split("+")[1].split("@")[0]
    forged_tag = ("b" if tag[0] != "b" else "c") + tag[1:]
    receiver.send([f"bounces+{forged_tag}@uscuk.test"], dsn)
    assert suppression_reason(address) is None
    assert events_of(db, address) == []
    db.session.expire_all()
    kept = list(db.session.scalars(sa.select(SetAsideMail).order_by(SetAsideMail.id.desc()).limit(2)))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SetAsideMail)) == before + 2
    assert {m.reason for m in kept} == {"a failure that names no message of ours (forged, or not ours)"}
    assert kept[0].content == dsn


def test_a_flood_of_garbage_never_stops_the_receiver(db, worker, smtp_sink, receiver):
    before = db.session.scalar(sa.select(sa.func.count()).select_from(SetAsideMail))
    garbage = [
        b"\x00" * 5000,
        (b"\x00" * 500 + b"\r\n") * 20,
        bytes(range(256)) * 40,
        b"Subject: hi\r\n\r\n" + b"A" * 998 + b"\r\n",
        b".",
    ]
    accepted = 0
    for _ in range(25):
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as connection:
            for raw in garbage:
                try:
                    connection.sendmail("", ["bounces@uscuk.test"], raw)
                    accepted += 1
                except smtplib.SMTPDataError as refused:  # lines over RFC 5321's 1,000 octets: refused, not kept
                    assert refused.smtp_code == 500 and b"Line too long" in refused.smtp_error
            code, _ = connection.docmd("XYZZY " + "z" * 900)
            assert code == 500
            code, _ = connection.docmd("RCPT TO:<someone@elsewhere.test>")
            assert code in (503, 550)
    # Too big: refused at once (552), nothing stored.
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as connection, pytest.raises(smtplib.SMTPException):
        connection.sendmail("", ["bounces@uscuk.test"], b"Subject: big\r\n\r\n" + (b"x" * 990 + b"\r\n") * 5000)
    # Connections that say nothing, or hang up mid-DATA.
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", receiver.port)) as raw_socket:
            raw_socket.sendall(b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<bounces@uscuk.test>\r\nDATA\r\npartial")
    # And it still reads a real bounce afterwards.
    _, messages = sent_campaign(db, smtp_sink, count=1)
    [(address, mail)] = messages.items()
    receiver.send([mail.mail_from], fixture("yahoo_11"))
    assert suppression_reason(address) is SuppressionReason.HARD_BOUNCE
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SetAsideMail)) == before + accepted
    assert accepted == 25 * 3, "all but the two with over-long lines (no CRLF within 1,000 octets) are taken"
    assert receiver.process.poll() is None


def test_the_receiver_answers_451_when_the_database_cannot_take_the_report(app, monkeypatch):
    """A database outage is a fault we cannot cause mid-test without stopping the shared database, so the intake
    is made to fail: the receiver must answer "try again later", so the sending MTA keeps the bounce."""
    import asyncio

    from aiosmtpd.smtp import Envelope, Session

    def database_down(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(intake, "take", database_down)
    monkeypatch.setattr(intake, "take_all", database_down)
    handler = BounceHandler(app)
    envelope = Envelope()
    envelope.content = fixture("postfix_01")
    envelope.rcpt_tos = ["bounces@uscuk.test"]
    assert asyncio.run(handler.handle_DATA(None, Session(None), envelope)).startswith("451 ")


def test_the_receiver_offers_pipelining(receiver):
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=10) as connection:
        connection.ehlo("mta.example.net")
        assert connection.has_extn("pipelining") and connection.has_extn("8bitmime")


@pytest.mark.skipif(BACKEND != "postgres", reason="ending the receiver's database connection needs PostgreSQL")
def test_the_receiver_takes_mail_at_once_after_its_database_connection_was_lost(db, worker, smtp_sink):
    """The receiver does not check its connection before each transaction (a round trip each): when the database
    has ended it (a restart), the transaction that finds out is tried again on a new connection, so the MTA gets its
    250 rather than a 451 and a retry minutes later."""
    name = f"bounce-receiver-{uuid.uuid4().hex[:6]}"
    started = BounceReceiver(RUN_DIR / f"{name}.log", PGAPPNAME=name)
    try:
        _, messages = sent_campaign(db, smtp_sink, count=2)
        first, second = sorted(messages)
        assert started.send([messages[first].mail_from], fixture("postfix_01")) == {}
        ended = db.session.scalar(
            sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": name},
        )
        db.session.commit()
        assert ended == 1
        assert started.send([messages[second].mail_from], fixture("postfix_01")) == {}  # smtplib raises on a 451
        assert suppression_reason(second) is SuppressionReason.HARD_BOUNCE
    finally:
        started.stop()


def test_messages_other_connections_are_sending_are_recorded_in_the_same_transaction(app, monkeypatch):
    """Group commit: the recorder waits (up to GROUP_WAIT_SECONDS) for a message another connection has begun, and
    records both in one transaction; with none under way it does not wait. The recording is replaced here by one
    that notes each transaction's messages: what is tested is which messages go together."""
    import asyncio

    from aiosmtpd.smtp import Envelope, Session

    from uscmail.bounces import receiver

    monkeypatch.setattr(receiver, "GROUP_WAIT_SECONDS", 5.0)
    handler = BounceHandler(app)
    transactions = []
    monkeypatch.setattr(handler, "take", lambda messages: transactions.append(messages) or [[]] * len(messages))

    async def send(session: Session, content: bytes, delay: float) -> str:
        envelope = Envelope()
        await handler.handle_MAIL(None, session, envelope, "", [])
        await asyncio.sleep(delay)
        envelope.rcpt_tos, envelope.content = ["bounces@uscuk.test"], content
        return await handler.handle_DATA(None, session, envelope)

    async def scene():
        first, second = Session(None), Session(None)
        together = await asyncio.gather(send(first, b"one", 0), send(second, b"two", 0.2))
        started = asyncio.get_running_loop().time()
        alone = await send(first, b"three", 0)  # nothing else under way: recorded at once
        return together, alone, asyncio.get_running_loop().time() - started

    together, alone, waited = asyncio.run(scene())
    assert together == ["250 2.0.0 OK"] * 2 and alone == "250 2.0.0 OK"
    assert [[raw for raw, _ in messages] for messages in transactions] == [[b"one", b"two"], [b"three"]]
    assert waited < 1.0


def test_a_message_that_cannot_be_recorded_does_not_take_its_batch_down_with_it(
    db, worker, smtp_sink, app, monkeypatch
):
    """Messages recorded together share a transaction; when one fails (a fault made here: a database error for one
    message), the others are recorded one by one and only that one is refused for a retry."""
    _, messages = sent_campaign(db, smtp_sink, count=2)
    (first, first_mail), (second, second_mail) = sorted(messages.items())
    real_take_all = intake.take_all

    def failing_for_the_poisoned(messages, source):
        if any(b"POISON" in raw for raw, _ in messages):
            raise sa.exc.OperationalError("INSERT", {}, Exception("could not serialize access"))
        return real_take_all(messages, source)

    monkeypatch.setattr(intake, "take_all", failing_for_the_poisoned)
    handler = BounceHandler(app)
    outcomes = handler.take(
        [
            (fixture("postfix_01"), [first_mail.mail_from]),
            (b"Subject: POISON\r\n\r\nx", ["bounces@uscuk.test"]),
            (fixture("exim_01"), [second_mail.mail_from]),
        ]
    )
    assert isinstance(outcomes[1], sa.exc.OperationalError)
    assert outcomes[0] == outcomes[2] == [intake.Result.RECORDED]
    assert suppression_reason(first) is suppression_reason(second) is SuppressionReason.HARD_BOUNCE


def test_reports_recorded_together_are_decided_as_if_one_after_another(db, app):
    """The receiver records what arrived together in one call: two hard bounces for one address suppress it once,
    two soft bounces the same day count once, a complaint and a hard bounce for one address keep the first reason."""
    first, second, third = add_confirmed(3, domain="together.example.org")
    ids = {address: subscriber_by_email(db, address).id for address in (first, second, third)}
    with app.test_request_context():
        results = record(
            [
                Finding(HARD, "5.1.1", "550 5.1.1 no such user", subscriber_id=ids[first]),
                Finding(HARD, "5.1.1", "550 5.1.1 no such user", subscriber_id=ids[first]),
                Finding(SOFT, "4.2.2", "452 4.2.2 mailbox full", subscriber_id=ids[second]),
                Finding(SOFT, "4.2.2", "452 4.2.2 mailbox full", subscriber_id=ids[second]),
                Finding(BounceKind.COMPLAINT, "", "Feedback-Type: abuse", subscriber_id=ids[third]),
                Finding(HARD, "5.1.1", "550 5.1.1 no such user", subscriber_id=ids[third]),
                Finding(HARD, "5.1.1", "gone", subscriber_id=10**12),
            ],
            BounceSource.MAILBOX,
        )
        db.session.commit()
    assert results == [intake.Result.RECORDED] * 6 + [intake.Result.UNKNOWN_RECIPIENT]
    assert sorted(e.decision for e in events_of(db, first)) == [
        BounceDecision.ALREADY_SUPPRESSED, BounceDecision.SUPPRESSED
    ]  # fmt: skip
    assert [(e.decision, e.score) for e in events_of(db, second)] == [(BounceDecision.SCORED, 1.0)] * 2
    assert suppression_reason(second) is None
    assert suppression_reason(third) is SuppressionReason.COMPLAINT
    assert {s.status_reason for s in subscriber_by_email(db, third).subscriptions} == {StatusReason.COMPLAINT}
