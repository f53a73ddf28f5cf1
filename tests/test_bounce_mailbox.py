"""Bounces and complaints polled from a real mailbox: a Dovecot server (tests/mail_server.py) over IMAP and POP3,
plain on loopback and with TLS, the real intake and database, and the beat task in a real worker."""

import logging
import socket
import threading
import uuid
from email.utils import format_datetime

import pytest
import sqlalchemy as sa

from config import Config
from tests.bounce_support import arf_report, fixture
from tests.factories import make_subscriber, utc
from tests.mail_server import PASSWORD, Dovecot, available
from tests.waiting import wait_until
from uscmail.bounces import intake, mailbox, returnpath, tasks
from uscmail.bounces.mailbox import PollOutcome
from uscmail.bounces.mailstore import MailboxMisconfigured, Security, mailbox_access
from uscmail.bounces.models import BounceEvent, BounceKind, BounceSource, SetAsideMail
from uscmail.models import StatusReason, Subscription, SubscriptionStatus, SuppressionReason
from uscmail.suppression import is_suppressed, suppression_reason

PLAIN_SCHEMES = ["imap", "pop3"]
REAL_TAKE = intake.take

# Not a report at all, with lines a POP3 server must dot-stuff and a byte that is not ASCII.
GARBAGE = b"Subject: Re: your newsletter\r\n\r\nPlease take me off, thanks.\r\n.\r\n..two dots\r\n.one dot\r\n\xff\r\n"


@pytest.fixture(scope="module")
def dovecot():
    """One Dovecot for the module; each test logs in as a new user, with an empty mailbox."""
    if not available():
        pytest.fail("Dovecot is not installed: apt-get install dovecot-imapd dovecot-pop3d (.ci/run does)")
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def user(dovecot):
    return dovecot.new_user()


@pytest.fixture
def use_mailbox(app, monkeypatch):
    """use_mailbox(url, **settings): point the app's BOUNCE_MAILBOX_* settings at a mailbox for this test."""

    def use(url: str, **settings) -> None:
        monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_URL", url)
        for name, value in settings.items():
            monkeypatch.setitem(app.config, f"BOUNCE_MAILBOX_{name.upper()}", value)

    return use


def dsn(verp: str, status: str = "5.1.1", recipient: str = "gone@example.net") -> bytes:
    """A delivery status notification as Postfix writes one, delivered to the VERP return path `verp`."""
    action = "failed" if status.startswith("5") else "delayed"
    boundary = f"{uuid.uuid4().hex}.mx.example.net"
    text = f"""\
Return-Path: <>
Delivered-To: {verp}
Received: by mx.example.net (Postfix) id 4XK2mQ1b; Sat, 6 Mar 2027 10:02:11 +0000 (GMT)
Date: {format_datetime(utc(2027, 3, 6, 10, 2, 11))}
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"
Message-Id: <{uuid.uuid4().hex}@mx.example.net>

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.net[192.0.2.25] said: 550 {status}
    <{recipient}>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4XK2mQ1b
X-Postfix-Sender: rfc822; {verp}
Arrival-Date: Sat, 6 Mar 2027 10:02:10 +0000 (GMT)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected:
    User unknown in virtual mailbox table

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
From: USC-UK <news@uscuk.test>
To: {recipient}
Subject: Solidarity news
Message-ID: <{uuid.uuid4().hex}@uscuk.test>

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode()


def subscriber_and_bounce(db, address: str) -> tuple[int, bytes]:
    """A confirmed newsletter subscriber (committed), and a hard bounce of their signup mail."""
    subscriber = make_subscriber(address, lists=("newsletter",))
    db.session.commit()
    return subscriber.id, dsn(returnpath.for_subscriber(subscriber.id), recipient=address)


def bounce_events(db) -> list[tuple[int, BounceKind, BounceSource, str]]:
    db.session.rollback()
    rows = db.session.execute(
        sa.select(BounceEvent.subscriber_id, BounceEvent.kind, BounceEvent.source, BounceEvent.status).order_by(
            BounceEvent.id
        )
    )
    return [tuple(row) for row in rows]


def set_aside_mail(db) -> list[tuple[BounceSource, bytes]]:
    db.session.rollback()
    return [tuple(row) for row in db.session.execute(sa.select(SetAsideMail.source, SetAsideMail.content))]


def bounced_off_the_newsletter(db, subscriber_id: int, address: str) -> bool:
    """The subscriber is suppressed and their subscription ended by a bounce."""
    db.session.rollback()
    subscription = db.session.scalar(sa.select(Subscription).where(Subscription.subscriber_id == subscriber_id))
    return (
        is_suppressed(address)
        and subscription.status is SubscriptionStatus.UNSUBSCRIBED
        and subscription.status_reason is StatusReason.BOUNCE
    )


def as_delivered(raw: bytes, verp: str) -> bytes:
    """A message as a mailbox holds it: no mbox "From " line, and the envelope recipient in the Delivered-To header
    that the delivering MTA (Postfix's local delivery, Dovecot's LDA) prepends."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\r\n", 1)[1]
    return f"Delivered-To: {verp}\r\n".encode() + raw


def fail_at(monkeypatch, call: int, fault: Exception) -> list[bytes]:
    """Make the intake's `call`-th run (from 1) raise `fault` after doing its work; returns the messages it got."""
    real_take, seen = intake.take, []

    def take(raw, source, recipients=()):
        seen.append(raw)
        results = real_take(raw, source, recipients)
        if len(seen) == call:
            raise fault
        return results

    monkeypatch.setattr(intake, "take", take)
    return seen


# --- one poll -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_a_poll_records_each_message_and_then_empties_the_mailbox(db, dovecot, user, use_mailbox, scheme):
    subscriber_id, bounce = subscriber_and_bounce(db, "gone@example.net")
    dovecot.deliver(user, bounce, GARBAGE, b"\x80\x81 nothing readable here\r\n")
    use_mailbox(dovecot.url(scheme, user, query="?tls=off"))

    report = mailbox.poll()

    assert (report.outcome, report.taken, report.left) == (PollOutcome.DONE, 3, 0)
    assert dict(report.results) == {"recorded": 1, "set_aside": 2}
    assert bounced_off_the_newsletter(db, subscriber_id, "gone@example.net")
    assert bounce_events(db) == [(subscriber_id, BounceKind.HARD, BounceSource.MAILBOX, "5.1.1")]
    assert set_aside_mail(db) == [
        (BounceSource.MAILBOX, GARBAGE),
        (BounceSource.MAILBOX, b"\x80\x81 nothing readable here\r\n"),
    ], "the mail set aside is what arrived, byte for byte"
    assert dovecot.messages(user) == []
    assert mailbox.poll().summary() == {"outcome": "done", "taken": 0, "left": 0}, "nothing is taken twice"
    assert len(bounce_events(db)) == 1


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_real_bounces_from_several_mtas_and_a_complaint_each_do_what_they_say(db, dovecot, user, use_mailbox, scheme):
    people = {
        name: make_subscriber(f"{name}@example.net", lists=("newsletter",))
        for name in ("postfix", "exim", "yahoo", "qmail", "complainer")
    }
    db.session.commit()
    verp = {name: returnpath.for_subscriber(subscriber.id) for name, subscriber in people.items()}
    # A feedback loop reports to our abuse address; the original inside carries the Return-Path its MTA added.
    original = f"Return-Path: <{verp['complainer']}>\r\nFrom: USC-UK <news@uscuk.test>\r\n".encode() + (
        b"To: complainer@example.net\r\nSubject: Solidarity news\r\n\r\nHello\r\n"
    )
    dovecot.deliver(
        user,
        as_delivered(fixture("postfix_01"), verp["postfix"]),  # 550 5.1.1 user unknown: hard
        as_delivered(fixture("exim_01"), verp["exim"]),  # 553 5.1.1: hard
        as_delivered(fixture("yahoo_01"), verp["yahoo"]),  # 4.4.1 no connection: soft
        as_delivered(fixture("qmail_08"), verp["qmail"]),  # an auto-reply: nothing to do
        as_delivered(arf_report(original), "abuse@uscuk.test"),
    )
    use_mailbox(dovecot.url(scheme, user, query="?tls=off"))

    report = mailbox.poll()

    assert (report.outcome, report.taken, report.left) == (PollOutcome.DONE, 5, 0)
    assert dict(report.results) == {"recorded": 4, "ignored": 1}
    kinds = {subscriber_id: kind for subscriber_id, kind, _, _ in bounce_events(db)}
    assert kinds == {
        people["postfix"].id: BounceKind.HARD,
        people["exim"].id: BounceKind.HARD,
        people["yahoo"].id: BounceKind.SOFT,
        people["complainer"].id: BounceKind.COMPLAINT,
    }
    assert {source for _, _, source, _ in bounce_events(db)} == {BounceSource.MAILBOX}
    assert bounced_off_the_newsletter(db, people["postfix"].id, "postfix@example.net")
    assert bounced_off_the_newsletter(db, people["exim"].id, "exim@example.net")
    assert suppression_reason("complainer@example.net") is SuppressionReason.COMPLAINT
    assert not is_suppressed("yahoo@example.net") and not is_suppressed("qmail@example.net")
    assert set_aside_mail(db) == []
    assert dovecot.messages(user) == []


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_a_database_failure_mid_poll_leaves_that_message_and_the_rest_for_the_next_poll(
    db, dovecot, user, use_mailbox, monkeypatch, scheme, caplog
):
    first_id, first = subscriber_and_bounce(db, "first@example.net")
    second_id, second = subscriber_and_bounce(db, "second@example.net")
    dovecot.deliver(user, first, second, GARBAGE)
    use_mailbox(dovecot.url(scheme, user, query="?tls=off"))
    # The database goes away after the intake has done the second message's work, before the commit.
    outage = sa.exc.OperationalError("INSERT INTO bounce_events …", {}, Exception("server closed the connection"))
    seen = fail_at(monkeypatch, 2, outage)

    report = mailbox.poll()

    assert len(seen) == 2, "the poll stops at the failure"
    assert (report.outcome, report.taken, report.left) == (PollOutcome.STOPPED, 1, 2)
    assert bounced_off_the_newsletter(db, first_id, "first@example.net")
    assert not is_suppressed("second@example.net"), "the failed message's work was rolled back"
    assert [event[0] for event in bounce_events(db)] == [first_id]
    assert dovecot.messages(user) == [second, GARBAGE], "the message that failed and the rest are still there"
    assert "the database failed" in caplog.text and "second@example.net" not in caplog.text

    monkeypatch.setattr(intake, "take", REAL_TAKE)
    report = mailbox.poll()

    assert (report.outcome, report.taken, report.left) == (PollOutcome.DONE, 2, 0)
    assert bounced_off_the_newsletter(db, second_id, "second@example.net")
    assert [event[0] for event in bounce_events(db)] == [first_id, second_id]
    assert set_aside_mail(db) == [(BounceSource.MAILBOX, GARBAGE)]
    assert dovecot.messages(user) == []


REFUSALS = {
    "intake": (ValueError("cannot read a header of someone@example.org"), "the intake failed: ValueError"),
    "data": (
        sa.exc.DataError("INSERT …", {}, Exception('value too long for "someone@example.org"')),
        "the database refused its record: DataError",
    ),
}


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_message_the_intake_fails_on_is_set_aside_and_the_poll_goes_on(
    db, dovecot, user, use_mailbox, monkeypatch, scheme, refusal, caplog
):
    subscriber_id, bounce = subscriber_and_bounce(db, "gone@example.net")
    poison = b"Subject: crashes the parser\r\n\r\nwhatever\r\n"
    dovecot.deliver(user, poison, bounce)
    use_mailbox(dovecot.url(scheme, user, query="?tls=off"))
    fault, reason = REFUSALS[refusal]
    fail_at(monkeypatch, 1, fault)

    report = mailbox.poll()

    assert (report.outcome, report.taken, report.left) == (PollOutcome.DONE, 2, 0)
    assert dict(report.results) == {"set_aside": 1, "recorded": 1}
    assert set_aside_mail(db) == [(BounceSource.MAILBOX, poison)]
    assert db.session.scalar(sa.select(SetAsideMail.reason)) == reason
    assert bounced_off_the_newsletter(db, subscriber_id, "gone@example.net")
    assert dovecot.messages(user) == []
    assert "someone@example.org" not in caplog.text, "addresses stay out of the log"


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_one_poll_takes_at_most_the_cap_and_reads_at_most_max_bytes_of_a_message(
    db, dovecot, user, use_mailbox, scheme
):
    # A message longer than BOUNCE_MAILBOX_MAX_BYTES, with a line longer than poplib's 2,048-byte limit: read as its
    # first MAX_BYTES, and the session carries on with the next message.
    huge = b"Subject: a very long line\r\n\r\n" + b"x" * 10_000 + b"\r\n" + b"more\r\n" * 2_000
    others = [GARBAGE.replace(b"Re:", f"Re {number}:".encode()) for number in range(3)]
    dovecot.deliver(user, huge, *others)
    use_mailbox(dovecot.url(scheme, user, query="?tls=off"), max_messages=3, max_bytes=4096)

    report = mailbox.poll()

    assert (report.outcome, report.taken, report.left) == (PollOutcome.DONE, 3, 1)
    assert set_aside_mail(db) == [(BounceSource.MAILBOX, huge[:4096]), *[(BounceSource.MAILBOX, o) for o in others[:2]]]
    assert dovecot.messages(user) == [others[2]], "the message over the cap waits for the next poll"
    assert mailbox.poll().taken == 1
    assert dovecot.messages(user) == []


def test_imap_moves_taken_messages_to_the_done_folder_when_one_is_named(db, dovecot, user, use_mailbox):
    subscriber_id, bounce = subscriber_and_bounce(db, "gone@example.net")
    dovecot.deliver(user, bounce, GARBAGE)
    use_mailbox(dovecot.url("imap", user, query="?tls=off"), done_folder="Bounces done")

    assert mailbox.poll().taken == 2

    assert bounced_off_the_newsletter(db, subscriber_id, "gone@example.net")
    assert dovecot.messages(user) == []
    assert dovecot.messages(user, "Bounces done") == [bounce, GARBAGE]
    assert mailbox.poll().taken == 0


def test_imap_skips_and_expunges_a_message_flagged_by_a_poll_that_died_before_its_expunge(
    db, dovecot, user, use_mailbox
):
    dovecot.deliver(user, dsn(returnpath.for_subscriber(999_999)), GARBAGE)
    with dovecot.imap(user) as session:  # as a poll does once it has committed a message
        session.select("INBOX")
        session.uid("STORE", session.uid("SEARCH", "ALL")[1][0].split()[0], "+FLAGS", r"(\Deleted)")
    use_mailbox(dovecot.url("imap", user, query="?tls=off"))

    report = mailbox.poll()

    assert (report.taken, report.left, dict(report.results)) == (1, 0, {"set_aside": 1})
    assert set_aside_mail(db) == [(BounceSource.MAILBOX, GARBAGE)]
    assert dovecot.messages(user) == []


# --- TLS, logins and settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["imaps", "imap", "pop3s", "pop3"])
def test_tls_from_the_start_or_by_starttls_with_the_certificate_verified(
    db, dovecot, user, use_mailbox, monkeypatch, scheme
):
    dovecot.deliver(user, GARBAGE)
    # The password from its own setting, not the URL.
    use_mailbox(dovecot.url(scheme, user, password=None), password=PASSWORD)

    report = mailbox.poll()  # the test certificate is trusted by nobody yet

    assert report.outcome is PollOutcome.FAILED
    assert dovecot.messages(user) == [GARBAGE]
    assert not [line for line in dovecot.logins(user) if ", TLS," in line], "no login over an unverified session"

    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))
    report = mailbox.poll()

    assert (report.outcome, report.taken) == (PollOutcome.DONE, 1)
    assert dovecot.messages(user) == []
    assert len([line for line in dovecot.logins(user) if ", TLS," in line]) == 1, "the poll's login was encrypted"


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_a_wrong_password_is_logged_and_nothing_is_taken(db, dovecot, user, use_mailbox, scheme, caplog):
    dovecot.deliver(user, GARBAGE, GARBAGE)
    use_mailbox(dovecot.url(scheme, user, password="not-the-password", query="?tls=off"))

    with caplog.at_level(logging.INFO, logger="uscmail"):
        summary = tasks.poll_bounce_mailbox()

    assert summary == {"outcome": "login_refused", "taken": 0, "left": 0}
    assert "refused the login" in caplog.text and f"127.0.0.1:{dovecot.ports[scheme]}" in caplog.text
    assert "not-the-password" not in caplog.text and user not in caplog.text, "no secret or user name in the log"
    assert [r.levelname for r in caplog.records if "refused the login" in r.getMessage()] == ["WARNING"]
    assert "Authentication failed" in caplog.text, "the server's words are logged"
    assert dovecot.messages(user) == [GARBAGE, GARBAGE]
    assert set_aside_mail(db) == []


def test_an_unreachable_mailbox_is_logged_and_the_task_returns(db, use_mailbox, caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    use_mailbox(f"imap://bounces:secret@127.0.0.1:{port}/INBOX?tls=off", timeout=5)

    assert tasks.poll_bounce_mailbox() == {"outcome": "failed", "taken": 0, "left": 0}
    assert "could not be opened" in caplog.text and "secret" not in caplog.text


@pytest.mark.parametrize(
    ("url", "settings", "expected"),
    [
        (
            "imaps://user%40uscuk.test:p%40ss%3Aw%2Frd@mail.uscuk.test/INBOX",
            {},
            ("imap", Security.TLS, "mail.uscuk.test", None, "user@uscuk.test", "p@ss:w/rd", "INBOX"),
        ),
        (
            "imap://bounces:old@mail.uscuk.test:1143",
            {"BOUNCE_MAILBOX_PASSWORD": "new"},
            ("imap", Security.STARTTLS, "mail.uscuk.test", 1143, "bounces", "new", "INBOX"),
        ),
        ("pop3s://bounces:pw@[2001:db8::1]:995", {}, ("pop3", Security.TLS, "2001:db8::1", 995, "bounces", "pw", "")),
        ("pop3://bounces:pw@localhost?tls=off", {}, ("pop3", Security.PLAIN, "localhost", None, "bounces", "pw", "")),
        (
            "imap://bounces:pw@[::1]:143/Bounce%20reports?tls=off",
            {},
            ("imap", Security.PLAIN, "::1", 143, "bounces", "pw", "Bounce reports"),
        ),
    ],
)
def test_the_mailbox_url_is_read_with_its_parts_decoded(url, settings, expected):
    access = mailbox_access({"BOUNCE_MAILBOX_URL": url, **settings})
    assert (access.protocol, access.security, access.host, access.port, access.user, access.password,
            access.folder) == expected  # fmt: skip
    assert "pw" not in repr(access) and access.password not in access.where()


@pytest.mark.parametrize(
    ("url", "settings", "words"),
    [
        ("https://bounces:hunter2@mail.uscuk.test", {}, "must start with imaps://"),
        ("imap://bounces:hunter2@mail.uscuk.test?tls=off", {}, "loopback address only"),
        ("imaps://bounces:hunter2@127.0.0.1?tls=off", {}, "not with imaps://"),
        ("imap://bounces:hunter2@127.0.0.1?tls=no", {}, "one option"),
        ("imap://bounces@mail.uscuk.test", {}, "and a password"),
        ("imap://bounces:hunter2@mail.uscuk.test:99999", {}, "valid port"),
        ("pop3s://bounces:hunter2@mail.uscuk.test/INBOX", {}, "POP3 has no folders"),
        ("imaps://bounces:hunter2@mail.uscuk.test/Boîte", {}, "ASCII"),
        ("imaps://bounces:hunter2@mail.uscuk.test", {"BOUNCE_MAILBOX_DONE_FOLDER": "a\r\nb"}, "ASCII"),
    ],
)
def test_an_unusable_mailbox_url_is_refused_without_repeating_it(url, settings, words):
    with pytest.raises(MailboxMisconfigured, match=words) as refusal:
        mailbox_access({"BOUNCE_MAILBOX_URL": url, **settings})
    assert "hunter2" not in str(refusal.value)


def test_the_beat_polls_only_when_a_mailbox_is_configured(monkeypatch):
    assert "poll-bounce-mailbox" not in Config().CELERY["beat_schedule"]
    config = Config()
    monkeypatch.setattr(config, "BOUNCE_MAILBOX_URL", "imaps://bounces:pw@mail.uscuk.test")
    monkeypatch.setattr(config, "BOUNCE_MAILBOX_POLL_SECONDS", 45.0)
    assert config.CELERY["beat_schedule"]["poll-bounce-mailbox"] == {
        "task": "uscmail.bounces.tasks.poll_bounce_mailbox",
        "schedule": 45.0,
    }


# --- one poll at a time ---------------------------------------------------------------------------------------------


def test_two_polls_at_once_take_each_message_once(app, db, dovecot, user, use_mailbox, monkeypatch):
    bounces = [subscriber_and_bounce(db, f"gone{number}@example.net") for number in range(3)]
    dovecot.deliver(user, *(raw for _, raw in bounces), GARBAGE)
    use_mailbox(dovecot.url("imap", user, query="?tls=off"))
    # The first poll waits inside its first message until the second poll has finished, so they overlap for sure.
    first_inside, second_done, real_take = threading.Event(), threading.Event(), intake.take

    def slow_take(raw, source, recipients=()):
        if threading.current_thread().name == "first":
            first_inside.set()
            second_done.wait(10)
        return real_take(raw, source, recipients)

    monkeypatch.setattr(intake, "take", slow_take)
    summaries = {}

    def run() -> None:
        with app.app_context():
            summaries[threading.current_thread().name] = tasks.poll_bounce_mailbox()

    first = threading.Thread(target=run, name="first")
    first.start()
    assert first_inside.wait(10), "the first poll reached its first message"
    second = threading.Thread(target=run, name="second")
    second.start()
    second.join(30)
    second_done.set()
    first.join(30)

    assert summaries["second"] == {"outcome": "busy", "taken": 0, "left": 0}
    assert summaries["first"] == {"outcome": "done", "taken": 4, "left": 0, "recorded": 3, "set_aside": 1}
    assert sorted(event[0] for event in bounce_events(db)) == sorted(subscriber_id for subscriber_id, _ in bounces)
    assert set_aside_mail(db) == [(BounceSource.MAILBOX, GARBAGE)]
    assert dovecot.messages(user) == []


def test_the_beat_task_in_a_real_worker_waits_for_the_lock_then_takes_the_mail(
    app, db, dovecot, user, spawn_worker, spawn_beat
):
    subscriber_id, bounce = subscriber_and_bounce(db, "gone@example.net")
    dovecot.deliver(user, bounce)
    queue = f"bounce-mailbox-{uuid.uuid4().hex[:6]}"
    settings = {"BOUNCE_MAILBOX_URL": dovecot.url("pop3", user, query="?tls=off"), "BOUNCE_MAILBOX_POLL_SECONDS": 0.5}
    worker = spawn_worker("mailbox", queue=queue, **settings)
    with mailbox.poll_lock() as held:  # another poll (this test) is running
        assert held
        spawn_beat("mailbox-beat", queue, **settings)
        wait_until(lambda: "'outcome': 'busy'" in worker.log(), 30, "a poll to find the lock held")
        assert dovecot.messages(user) == [bounce]
    wait_until(lambda: dovecot.messages(user) == [], 30, "a poll to take the mail")
    wait_until(lambda: bounced_off_the_newsletter(db, subscriber_id, "gone@example.net"), 10, "the bounce")
    assert "'outcome': 'done', 'taken': 1, 'left': 0, 'recorded': 1" in worker.log()
    assert len(bounce_events(db)) == 1
