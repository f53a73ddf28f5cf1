"""The bounce domain's SMTP receiver (`flask --app uscmail bounces serve`): it takes mail for the bounce address
only, and answers 250 once the message is recorded or set aside, 451 if the database could not take it (the sending
MTA keeps it and tries again), so nothing it accepted is lost.

Each process runs one asyncio loop (aiosmtpd) on a listening socket shared by all of them, and reads and records
messages in a thread of its own, since parsing and the database would otherwise stall every other connection.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP
from flask import Flask

from ..extensions import db
from . import intake
from .models import BounceSource

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
BATCH_MAX = 100
# Per connection: an MTA sends many bounces over one connection, but nothing needs a thousand HELPs or NOOPs.
COMMAND_LIMITS = {"*": 1000, "MAIL": 10**7, "RCPT": 10**7, "DATA": 10**7, "RSET": 10**7, "NOOP": 10**5}


class BounceHandler:
    """aiosmtpd handler: RCPT only for the bounce domain; DATA answered once the message is recorded.

    Messages that arrive together are recorded together: one transaction for all that queued up while the last
    one was being recorded (at most BATCH_MAX), each answered when it commits. If the transaction fails, each
    message is tried alone, so one that cannot be recorded gets its own 451 and the others their 250."""

    def __init__(self, app: Flask, executor: ThreadPoolExecutor):
        self.app = app
        self.executor = executor
        self.domain = app.config["BOUNCE_ADDRESS"].rpartition("@")[2].lower()
        self.results: Counter = Counter()
        self.waiting: asyncio.Queue | None = None
        self.recorder: asyncio.Task | None = None

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
        await self.waiting.put((raw, list(envelope.rcpt_tos), answer))
        try:
            results = await answer
        except Exception:
            log.exception("bounce mail could not be recorded; the sender will try again")
            return "451 4.3.0 Temporary failure, please try again later"
        self.results.update(str(result) for result in results)
        return "250 2.0.0 OK"

    async def _record_batches(self) -> None:
        # Group commit: while one batch is being recorded the next messages queue up, and are recorded together.
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.waiting.get()]
            while len(batch) < BATCH_MAX and not self.waiting.empty():
                batch.append(self.waiting.get_nowait())
            outcomes = await loop.run_in_executor(self.executor, self.take, [item[:2] for item in batch])
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
                outcomes = [intake.take(raw, BounceSource.RECEIVER, recipients) for raw, recipients in messages]
                db.session.commit()
                return outcomes
            except Exception as exc:
                db.session.rollback()
                if len(messages) == 1:
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
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bounce-intake")
    handler = BounceHandler(app, executor)
    context = tls_context(app)

    def smtp_session() -> SMTP:
        return SMTP(
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
        executor.shutdown(wait=True)
        loop.close()
        log.info("bounce receiver stopping; this process took: %s", dict(handler.results) or "nothing")


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
