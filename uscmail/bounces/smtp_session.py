"""The receiver's SMTP session: aiosmtpd's, with the message after DATA read in blocks instead of line by line, and
plain addresses in MAIL and RCPT read without the email package's full parser.

aiosmtpd reads DATA one line at a time, each line a trip through the event loop and a dozen statements; for a typical
bounce (60 lines) that was a third of the receiver's work. Here the message is read up to each ".<CR><LF>" (or a
buffer's worth at a time), which is far fewer reads, with the same answers, limits and transparency rule as aiosmtpd:
- a line longer than `line_length_limit` octets (RFC 5321 4.5.3.1.6) gets "500 Line too long" once the message ends;
- more than `data_size_limit` octets gets "552 Error: Too much mail data" once the message ends, the rest discarded
  (a message breaking both limits may get the other refusal than aiosmtpd would give it: both refuse it);
- a leading dot on a line is removed (RFC 5321 4.5.2).

Commands that come pipelined (RFC 2920, offered in EHLO by the receiver's handler) are answered together, in one
write, as Postfix's smtpd does.

aiosmtpd reads every MAIL and RCPT address with the email package's RFC 5322 parser (110 microseconds for a return
path and the null sender); the plain `<local@domain>` an MTA sends is matched here at once, anything else goes to
aiosmtpd's parser, and tests/test_receiver_smtp.py checks that both give the same.
"""

import asyncio
import logging
import re

from aiosmtpd.smtp import MISSING, SMTP, syntax

log = logging.getLogger(__name__)

END = b".\r\n"  # the line with a single dot, preceded by the end of the line before it
TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH = "552 Error: Too much mail data"
# `<dot-atom@dot-atom>` of the commonest characters, then any parameters (not a comment, which the parser would skip).
PLAIN_PATH = re.compile(
    r"<([A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+([^( \t].*))?", re.DOTALL
)
NULL_PATH = "<>"
MAX_HELD = 64  # answers held for a pipelining client at most, before they are written


class ReceiverSMTP(SMTP):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._replies: list[bytes] = []

    async def push(self, status: str | bytes) -> None:
        """Answer, or, while the client's next command is already here (it pipelines, RFC 2920), hold the answer and
        send it with the next ones in one write, as a server may: an MTA sends MAIL, RCPT and DATA together and
        waits for the three answers, which then cost one write here and one read there instead of three each."""
        response = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") if isinstance(status, str) else status
        self._replies.append(response + b"\r\n")
        # Never held: the greeting and STARTTLS's go-ahead (220), the last words before closing (221, 421), nor more
        # than MAX_HELD answers (a client that sends without reading must meet the back-pressure of a full socket).
        # StreamReader has no public way to ask what it holds: its buffer is read, not changed.
        if (
            b"\n" in self._reader._buffer
            and len(self._replies) < MAX_HELD
            and not response.startswith((b"220", b"221", b"421"))
        ):
            return
        self._writer.write(b"".join(self._replies))
        self._replies.clear()
        await self._writer.drain()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if arg.startswith(NULL_PATH):  # the null sender, as bounces come: the rest as it is, as aiosmtpd gives it
            return NULL_PATH, arg[len(NULL_PATH) :]
        plain = PLAIN_PATH.fullmatch(arg)
        if plain is None:
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, plain.group(2) or ""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's name
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, refusal = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except (asyncio.CancelledError, asyncio.IncompleteReadError):
            log.info("Connection lost during DATA")
            self._writer.close()
            raise
        if refusal:
            await self.push(refusal)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


async def read_data(reader: asyncio.StreamReader, size_limit: int | None, line_limit: int) -> tuple[bytes, str]:
    """Read a message's data up to and including the line holding a single dot: (content, "") or, when the message
    breaks a limit, (b"", the answer refusing it). The content keeps its line endings, without the leading dots."""
    chunks: list[bytes] = []
    size = 0
    refusal = ""
    at_line_start = True  # everything read so far ends with <CR><LF> (DATA's own line did)
    while True:
        try:
            chunk = await reader.readuntil(END)
        except asyncio.LimitOverrunError as overrun:
            # No ".<CR><LF>" within the reader's limit: take what is buffered, bar the last octets, which may begin one.
            chunk = await reader.readexactly(overrun.consumed)
        if at_line_start and chunk == END:
            break
        ended = chunk.endswith(b"\r\n" + END)
        if ended:
            chunk = chunk[: -len(END)]
        at_line_start = chunk.endswith(b"\r\n")
        size += len(chunk)
        if not refusal and size_limit and size > size_limit:
            refusal = TOO_LONG if _too_long(b"".join([*chunks, chunk]), line_limit) else TOO_MUCH
        if refusal:
            chunks.clear()  # read to the end, keep nothing
        else:
            chunks.append(chunk)
        if ended:
            break
    if refusal:
        return b"", refusal
    data = b"".join(chunks)
    if _too_long(data, line_limit):
        return b"", TOO_LONG
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n"), ""


def _too_long(data: bytes, line_limit: int) -> bool:
    """Whether a line of the data (with its <CR><LF>) is longer than the limit."""
    return bool(data) and max(map(len, data.split(b"\r\n"))) + 2 > line_limit
