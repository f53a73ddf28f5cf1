"""The receiver reads DATA in blocks (uscmail.bounces.smtp_session) instead of aiosmtpd's line by line, and plain
addresses without the email package's parser: it must take exactly what aiosmtpd takes and refuse exactly what it
refuses. Each case is sent, byte for byte, to both servers (addresses: given to both parsers)."""

import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bounce_support import free_port
from uscmail.bounces.smtp_session import MAX_HELD, ReceiverSMTP

SIZE_LIMIT = 20_000


class Keeper:
    """Keeps each message's content; answers 250."""

    def __init__(self):
        self.contents: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.contents.append(envelope.original_content)
        return "250 Kept"


class Server(Controller):
    def __init__(self, smtp_class: type[SMTP]):
        self.smtp_class = smtp_class
        super().__init__(Keeper(), hostname="127.0.0.1", port=free_port())

    def factory(self):
        return self.smtp_class(self.handler, data_size_limit=SIZE_LIMIT, decode_data=False, enable_SMTPUTF8=True)


@pytest.fixture(scope="module")
def servers():
    started = [Server(SMTP), Server(ReceiverSMTP)]
    for server in started:
        server.start()
    yield started
    for server in started:
        server.stop()


def answers(sock_file) -> list[str]:
    """One SMTP reply (all its lines)."""
    lines = []
    while True:
        line = sock_file.readline().decode()
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return lines


def converse(server: Server, wire: bytes) -> tuple[str, bytes | None, str]:
    """Send one message's data as given (dot-stuffing and the final dot included), then a NOOP: the answer to the
    data, the content the handler got (None if none), and the answer to the NOOP (the session must carry on)."""
    before = len(server.handler.contents)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        reader = connection.makefile("rb")
        answers(reader)
        for command in (b"EHLO test", b"MAIL FROM:<>", b"RCPT TO:<bounces@uscuk.test>", b"DATA"):
            connection.sendall(command + b"\r\n")
            answers(reader)
        connection.sendall(wire + b"NOOP\r\n")  # the NOOP sent at once, as a pipelining client may
        data_answer = answers(reader)[-1]
        noop_answer = answers(reader)[-1]
    contents = server.handler.contents[before:]
    return data_answer[:3], (contents[0] if contents else None), noop_answer[:3]


def both(servers, wire: bytes) -> tuple:
    theirs, ours = (converse(server, wire) for server in servers)
    assert ours == theirs
    return ours


@pytest.mark.parametrize(
    ("wire", "answer", "content"),
    [
        (b".\r\n", "250", b""),
        (b"Subject: x\r\n\r\nbody\r\n.\r\n", "250", b"Subject: x\r\n\r\nbody\r\n"),
        (b"..\r\n.\r\n", "250", b".\r\n"),  # a stuffed dot: the line "."
        (b"..leading\r\nend.\r\n...\r\nx\r\n.\r\n", "250", b".leading\r\nend.\r\n..\r\nx\r\n"),
        (b"a.\r\n.\r\n", "250", b"a.\r\n"),
        (b"x" * 999 + b"\r\n.\r\n", "250", b"x" * 999 + b"\r\n"),  # 1,001 octets with CRLF: the limit
        (b"x" * 1000 + b"\r\n.\r\n", "500", None),  # one more: "Line too long"
        (b"x" * 5000 + b"\r\n.\r\n", "500", None),
        ((b"y" * 997 + b"\r\n") * 40 + b".\r\n", "552", None),  # over the size limit
        # Dots at the edges of the blocks the reader takes (about a thousand octets): each line is 999 + CRLF.
        ((b"z" * 999 + b"\r\n") * 5 + b"..\r\n" + b".\r\n", "250", (b"z" * 999 + b"\r\n") * 5 + b".\r\n"),
        (b"bare\nlf\n.\nstill\r\n.\r\n", "250", b"bare\nlf\n.\nstill\r\n"),
    ],
)
def test_the_receiver_reads_data_as_aiosmtpd_does(servers, wire, answer, content):
    assert both(servers, wire) == (answer, content, "250")


line = st.binary(max_size=1100).filter(lambda text: b"\r\n" not in text and text != b".")
stuffed = st.lists(line, max_size=40).map(lambda lines: b"".join(text + b"\r\n" for text in lines) + b".\r\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wire=stuffed)
def test_any_data_is_read_as_aiosmtpd_reads_it(servers, wire):
    theirs, ours = (converse(server, wire) for server in servers)
    # The same content taken, or both refusing (a message breaking both limits may be refused with the other code).
    assert (ours[0][0], ours[1], ours[2]) == (theirs[0][0], theirs[1], theirs[2])


address_text = st.text(alphabet='ab.@<>+-_= \t"()[],:;\\\u00e9\x00', max_size=30)
plain_address = st.from_regex(
    r"\A<([A-Za-z0-9_+=-]{1,8}(\.[A-Za-z0-9_+=-]{1,8}){0,2}@[A-Za-z0-9-]{1,8}(\.[A-Za-z0-9-]{1,8}){0,2})?>"
    r"([ \t]{1,2}[A-Z(]{1,5}=[A-Za-z0-9)]{0,5}){0,2}[ \t]?\Z"
)


@settings(max_examples=400, deadline=None)
@given(arg=st.one_of(plain_address, address_text, st.builds("<{}>".format, address_text)))
def test_addresses_are_read_as_aiosmtpd_reads_them(arg):
    import asyncio

    def read(server_class: type[SMTP]):
        try:
            return server_class(Keeper(), loop=loop)._getaddr(arg)
        except Exception as error:  # noqa: BLE001 - the email parser trips on some input; aiosmtpd answers 500
            return type(error)

    loop = asyncio.new_event_loop()
    try:
        assert read(ReceiverSMTP) == read(SMTP)
    finally:
        loop.close()


class CountingReceiver(ReceiverSMTP):
    """ReceiverSMTP noting each write it makes to the connection."""

    writes: list[bytes] = []

    def connection_made(self, transport):
        super().connection_made(transport)
        write = transport.write

        def counted(data):
            CountingReceiver.writes.append(bytes(data))
            write(data)

        transport.write = counted


def test_pipelined_commands_get_the_same_answers_in_one_write(servers):
    """A client that pipelines (RFC 2920) sends MAIL, RCPTs and DATA together: the answers are aiosmtpd's, sent in
    one write; the message then goes as usual; a command that comes alone is answered at once."""
    counting = Server(CountingReceiver)
    counting.start()
    group = b"MAIL FROM:<>\r\nRCPT TO:<bounces@uscuk.test>\r\nRCPT TO:<bounces+2@uscuk.test>\r\nDATA\r\n"
    try:
        conversations = []
        for server in (servers[0], counting):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
                reader = connection.makefile("rb")
                answers(reader)
                connection.sendall(b"EHLO test\r\n")
                answers(reader)
                CountingReceiver.writes.clear()
                connection.sendall(group)
                replies = [answers(reader)[-1] for _ in range(4)]
                writes_for_the_group = len(CountingReceiver.writes)
                connection.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
                replies.append(answers(reader)[-1])
                connection.sendall(b"NOOP\r\n")
                replies.append(answers(reader)[-1])
                # A client that sends a flood of commands without reading still has its answers written as they
                # come, MAX_HELD at most at a time, so a full socket holds the server back.
                CountingReceiver.writes.clear()
                connection.sendall(b"NOOP\r\n" * 200)
                replies.extend(answers(reader)[-1][:3] for _ in range(200))
                flood_writes = len(CountingReceiver.writes)
            conversations.append(replies)
        theirs, ours = conversations
        assert ours == theirs
        assert [reply[:3] for reply in ours] == ["250", "250", "250", "354", "250", "250"] + ["250"] * 200
        assert writes_for_the_group == 1
        assert 200 / MAX_HELD <= flood_writes <= 200
    finally:
        counting.stop()
