"""The bounce domain's SMTP receiver (`flask --app uscmail bounces serve`): it takes mail for the bounce address
only, and answers 250 once the message is recorded or set aside, 451 if the database could not take it (the sending
MTA keeps it and tries again), so nothing it accepted is lost.

Each process runs one asyncio loop (aiosmtpd) on a listening socket shared by all of them, and reads and records
the messages that arrived together in that loop, one batch at a time; its connections wait meanwhile (a few
milliseconds). Recording in a thread of its own, so that the loop could go on meanwhile, was measured slower: the two
threads contend for the interpreter's lock (bench/bounces.py, 10,000 messages, three runs each: 395-545 messages/s
with the thread, 519-632 without).
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import weakref
from collections import Counter

from flask import Flask

from ..extensions import db
from . import intake
from .models import BounceSource
from .smtp_session import ReceiverSMTP

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
BATCH_MAX = 100
# Group commit: once a message has arrived, the recorder waits up to this long for those that other connections have
# begun (MAIL given, DATA not yet ended), to record them in the same transaction. A transaction's round trips cost
# about as much as reading three messages, so under load this buys throughput for a few milliseconds of latency
# (bench/bounces.py, 10,000 messages: 329-405 messages/s without the wait, 420-625 with it).
GROUP_WAIT_SECONDS = 0.005
# Per connection: an MTA sends many bounces over one connection, but nothing needs a thousand HELPs or NOOPs.
COMMAND_LIMITS = {"*": 1000, "MAIL": 10**7, "RCPT": 10**7, "DATA": 10**7, "RSET": 10**7, "NOOP": 10**5}


class BounceHandler:
    """aiosmtpd handler: RCPT only for the bounce domain; DATA answered once the message is recorded.

    Messages that arrive together are recorded together: one transaction for all that are waiting, and those other
    connections are in the middle of sending (for up to GROUP_WAIT_SECONDS; at most BATCH_MAX), each answered when
    it commits. If the transaction fails, each message is tried alone, so one that cannot be recorded gets its own
    451 and the others their 250."""

    def __init__(self, app: Flask):
        self.app = app
        self.domain = app.config["BOUNCE_ADDRESS"].rpartition("@")[2].lower()
        self.results: Counter = Counter()
        self.batch_sizes: Counter = Counter()
        self.waiting: asyncio.Queue | None = None
        self.recorder: asyncio.Task | None = None
        # Sessions in the middle of a message (weakly held: a dropped connection leaves by itself).
        self.under_way: weakref.WeakSet = weakref.WeakSet()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd's name
        """EHLO's answer, offering PIPELINING (ReceiverSMTP answers pipelined commands together)."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 - aiosmtpd's name
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.under_way.add(session)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.under_way.discard(session)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if address.rpartition("@")[2].lower() != self.domain:
            return "550 5.7.1 This server takes mail for the bounce address only"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if self.recorder is None:
            self.waiting = asyncio.Queue()
            self.recorder = asyncio.get_running_loop().create_task(self._record_batches())
        answer = asyncio.get_running_loop().create_future()
        self.under_way.discard(session)
        await self.waiting.put((raw, list(envelope.rcpt_tos), answer))
        try:
            results = await answer
        except Exception:
            log.exception("bounce mail could not be recorded; the sender will try again")
            return "451 4.3.0 Temporary failure, please try again later"
        self.results.update(str(result) for result in results)
        return "250 2.0.0 OK"

    async def _record_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.waiting.get()]
            deadline = loop.time() + GROUP_WAIT_SECONDS
            while len(batch) < BATCH_MAX:
                if not self.waiting.empty():
                    batch.append(self.waiting.get_nowait())
                    continue
                left = deadline - loop.time()
                if not self.under_way or left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.waiting.get(), left))
                except TimeoutError:
                    break
            self.batch_sizes[len(batch)] += 1
            outcomes = self.take([item[:2] for item in batch])
            for (_, _, answer), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    answer.set_exception(outcome)
                else:
                    answer.set_result(outcome)

    def take(self, messages: list[tuple[bytes, list[str]]]) -> list:
        """Read and record messages in one transaction (or, if it fails, one by one); each message's results, or the
        exception that kept it from being recorded."""
        with self.app.app_context():
            try:
                outcomes = intake.take_all(messages, BounceSource.RECEIVER)
                db.session.commit()
                return outcomes
            except Exception as exc:
                db.session.rollback()
                # A connection lost since the last batch (the database restarted) is found here, not checked before
                # each batch (see run_process): the message is tried again at once, on a new one.
                if len(messages) == 1 and not getattr(exc, "connection_invalidated", False):
                    return [exc]
            outcomes = []
            for raw, recipients in messages:
                try:
                    outcomes.append(intake.take(raw, BounceSource.RECEIVER, recipients))
                    db.session.commit()
                except Exception as exc:  # noqa: BLE001 - answered 451: the sender keeps the message and retries
                    db.session.rollback()
                    outcomes.append(exc)
            return outcomes


def tls_context(app: Flask) -> ssl.SSLContext | None:
    """STARTTLS for sending MTAs, when a certificate and key are configured."""
    certificate, key = app.config["BOUNCE_RECEIVER_TLS_CERT"], app.config["BOUNCE_RECEIVER_TLS_KEY"]
    if not (certificate and key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    return context


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket every receiver process accepts on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024, reuse_port=False)


def run_process(app: Flask, sock: socket.socket) -> None:
    """One receiver process: an asyncio loop serving SMTP on `sock` until SIGTERM or SIGINT."""
    handler = BounceHandler(app)
    context = tls_context(app)

    def smtp_session() -> ReceiverSMTP:
        return ReceiverSMTP(
            handler,
            data_size_limit=app.config["BOUNCE_RECEIVER_MAX_BYTES"],
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=app.config["BOUNCE_ADDRESS"].rpartition("@")[2] or None,
            ident="uscmail bounce receiver",
            tls_context=context,
            timeout=60,
            command_call_limit=COMMAND_LIMITS,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(smtp_session, sock=sock))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
        batches = sum(handler.batch_sizes.values())
        log.info(
            "bounce receiver stopping; this process took: %s, in %d transactions (%.1f messages each)",
            dict(handler.results) or "nothing",
            batches,
            sum(size * count for size, count in handler.batch_sizes.items()) / (batches or 1),
        )


def serve(app: Flask, host: str, port: int, processes: int) -> None:
    """Listen on host:port and serve with `processes` processes (forked, sharing the socket), until stopped."""
    sock = listening_socket(host, port)
    log.info("bounce receiver listening on %s:%s with %d processes", host, sock.getsockname()[1], processes)
    if processes <= 1:
        run_process(app, sock)
        return
    with app.app_context():
        db.engine.dispose()  # no connection may be shared across the fork
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            try:
                run_process(app, sock)
            finally:
                os._exit(0)
        children.append(pid)
    sock.close()

    def stop_children(signum, frame):
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_children)
    signal.signal(signal.SIGINT, stop_children)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
