"""An aiosmtpd server that captures real SMTP traffic for tests, and can refuse chosen recipients."""

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller

from tests.waiting import wait_until


@dataclass
class CapturedMail:
    """One message as it arrived: the SMTP envelope, the raw bytes, and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    received_at: float = 0.0

    def text(self) -> str:
        """The text/plain part."""
        return self.message.get_body(preferencelist=("plain",)).get_content()

    def html(self) -> str:
        """The text/html part."""
        return self.message.get_body(preferencelist=("html",)).get_content()


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        if self.sink.pipelining:
            # Offer RFC 2920 PIPELINING, as Postfix and most relays do; aiosmtpd reads pipelined commands in order.
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.sink.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        raw = envelope.original_content or envelope.content
        message = BytesParser(policy=policy.default).parsebytes(raw)
        captured = CapturedMail(envelope.mail_from, list(envelope.rcpt_tos), raw, message, time.monotonic())
        with self.sink.lock:
            self.sink.messages.append(captured)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """Start once per test session; clear() between tests; wait_for() the mail a test expects."""

    def __init__(self, port: int | None = None):
        self.port = port or _free_port()
        self.messages: list[CapturedMail] = []
        self.replies: dict[str, str] = {}
        # Seconds to wait before accepting each message, to make a send slow enough to interrupt.
        self.delay = 0.0
        # Whether EHLO offers PIPELINING (for connections opened from now on).
        self.pipelining = True
        self.lock = threading.Lock()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True)

    def start(self) -> None:
        self.controller.start()

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.replies.clear()
        self.delay = 0.0
        self.pipelining = True

    def to(self, address: str) -> list[CapturedMail]:
        """Messages whose envelope includes this recipient."""
        with self.lock:
            return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    def count(self) -> int:
        """How many messages have arrived."""
        with self.lock:
            return len(self.messages)

    def wait_for(self, address: str, count: int = 1, timeout: float = 60.0) -> list[CapturedMail]:
        """Wait until `count` messages to `address` have arrived; fail the test if they don't."""
        try:
            return wait_until(lambda: found if len(found := self.to(address)) >= count else None, timeout)
        except AssertionError:
            raise AssertionError(f"expected {count} message(s) to {address}, got {len(self.to(address))}") from None

    def settle(self, seconds: float = 3.0) -> None:
        """Give queued work time to finish, for tests asserting that nothing (more) is sent."""
        time.sleep(seconds)  # deliberately let time pass: there is no event to wait for when nothing should happen
