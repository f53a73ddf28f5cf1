"""The one way mail leaves uscmail: an SMTP connection per worker process, reused across tasks, and one message sent
in one SMTP transaction whose answer says what became of it.

Signup mail, campaigns, reminders and test copies all go through `send()`. Its answer tells apart a message that
cannot have been delivered (refused before DATA, or the connection broke first: safe to send again) from one that may
have been (the connection broke during DATA: never sent again automatically).
"""

import contextlib
import enum
import re
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from smtplib import quoteaddr

from flask import current_app

from .dkim import sign_outgoing

HARD_BOUNCE_CODES = {550, 551, 553}
PIPELINED_STAGES = (("mail", (250,)), ("rcpt", (250, 251)), ("data", (354,)))
LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
ADDRESS = re.compile(r"\S*@\S*")
SMTPUTF8_OPTIONS = ["SMTPUTF8", "BODY=8BITMIME"]


class Answer(enum.StrEnum):
    """What the relay's answers mean for one message."""

    SENT = "sent"  # accepted after DATA
    RETRY = "retry"  # a transient (4xx) answer: try again later
    FAILED = "failed"  # a permanent (5xx) answer
    BOUNCED = "bounced"  # a permanent answer that says the mailbox does not exist
    UNKNOWN = "unknown"  # the connection broke during DATA: the relay may have accepted it


@dataclass(frozen=True)
class Reply:
    """One message's answer, with the relay's words (addresses removed) when it was not simply accepted."""

    answer: Answer
    detail: str = ""


class ConnectionLost(OSError):
    """The connection broke before the message was transferred: it was not sent, and may be sent again."""


class SenderRefused(Exception):
    """The relay refuses the envelope sender (5xx to MAIL FROM): no message from that address can go out."""


class MessageRefused(Exception):
    """The relay answered a message with something other than acceptance; `reply` says what."""

    def __init__(self, reply: Reply):
        super().__init__(reply.detail)
        self.reply = reply


class MessageNotSentYet(MessageRefused, OSError):
    """A transient refusal or a broken transfer: worth trying again later (an OSError, as Celery's retries expect)."""


def safe_detail(text: str) -> str:
    """Text fit to store and show beside a delivery: addresses removed, one line, at most 250 characters."""
    return ADDRESS.sub("<address>", " ".join(text.split()))[:250]


def smtp_detail(code: int, reply: bytes | str) -> str:
    """An SMTP answer fit to store and show: code and text, addresses removed, one line, bounded."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return safe_detail(f"{code} {text}")


def open_connection() -> smtplib.SMTP:
    """A new connection to the relay named by the MAIL_* settings (TLS and login when configured). The relay's
    certificate is verified against the system's trusted authorities (SSL_CERT_FILE names another bundle): without
    that, anyone between us and the relay could read the list as it is sent."""
    config = current_app.config
    host, port, timeout = config["MAIL_SERVER"], config["MAIL_PORT"], config["MAIL_TIMEOUT"]
    if config["MAIL_USE_SSL"]:
        connection = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = smtplib.SMTP(host, port, timeout=timeout)
    if config["MAIL_USE_TLS"]:
        connection.starttls(context=ssl.create_default_context())
    if config["MAIL_USERNAME"] and config["MAIL_PASSWORD"]:
        connection.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
    connection.ehlo_or_helo_if_needed()
    return connection


_connections: dict[tuple, smtplib.SMTP] = {}


def smtp_connection() -> smtplib.SMTP:
    """This process's connection to the relay, reused across tasks (checked with NOOP before reuse)."""
    config = current_app.config
    key = (config["MAIL_SERVER"], config["MAIL_PORT"], config["MAIL_USERNAME"])
    connection = _connections.pop(key, None)
    if connection is not None:
        try:
            if connection.noop()[0] == 250:
                _connections[key] = connection
                return connection
        except (smtplib.SMTPException, OSError):
            pass
        drop_connection(connection)
    connection = open_connection()
    _connections[key] = connection
    return connection


def drop_connection(connection: smtplib.SMTP | None = None) -> None:
    """Close a broken connection (or every cached one) so the next message opens a fresh one."""
    dropped = {id(connection): connection} if connection is not None else {}
    for key, cached in list(_connections.items()):
        if connection is None or cached is connection:
            dropped[id(cached)] = _connections.pop(key)
    for candidate in dropped.values():
        with contextlib.suppress(OSError):
            candidate.close()


def send(connection: smtplib.SMTP, envelope_from: str, recipient: str, data: bytes, *, smtputf8: bool) -> Reply:
    """One SMTP transaction for one recipient; `data` is the whole message with CRLF line endings.

    Raises ConnectionLost if the connection broke before the message was transferred, SenderRefused if the relay
    refuses the envelope sender for good. Every other outcome is the Reply. The message is DKIM-signed here when
    DKIM is configured (mail.dkim), so every kind of mail is.
    """
    data = sign_outgoing(data)
    if smtputf8:
        return _send_stepwise(connection, envelope_from, recipient, data, SMTPUTF8_OPTIONS)
    if connection.has_extn("pipelining"):
        return _send_pipelined(connection, envelope_from, recipient, data)
    return _send_stepwise(connection, envelope_from, recipient, data, [])


def send_message(message: EmailMessage, return_path: str | None = None) -> None:
    """Send one standard-library message (signup mail) to its To address over this process's connection, with
    `return_path` (else the From address) as its envelope sender. Raises MessageNotSentYet for what is worth
    retrying, MessageRefused or SenderRefused for what is not."""
    # The headers as stored (raw_items): reading them through the message's policy would parse each into a header
    # object, a sixth of a worker's time on a signup.
    headers = dict(message.raw_items())
    [(_, from_address)] = getaddresses([str(headers["From"])])
    envelope_from = return_path or from_address
    [(_, recipient)] = getaddresses([str(headers["To"])])
    smtputf8 = not (envelope_from.isascii() and from_address.isascii() and recipient.isascii())
    data = message.as_bytes(policy=policy.SMTPUTF8 if smtputf8 else policy.SMTP)
    connection = smtp_connection()
    try:
        reply = send(connection, envelope_from, recipient, data, smtputf8=smtputf8)
    except ConnectionLost:
        drop_connection(connection)
        raise
    if reply.answer is Answer.SENT:
        return
    if reply.answer in (Answer.RETRY, Answer.UNKNOWN):
        if reply.answer is Answer.UNKNOWN or reply.detail.startswith("421"):
            drop_connection(connection)
        raise MessageNotSentYet(reply)
    raise MessageRefused(reply)


def _refused(stage: str, code: int, reply: bytes) -> Reply:
    """The answer to a refusal before the message was transferred (MAIL, RCPT or DATA answered with an error)."""
    detail = smtp_detail(code, reply)
    if stage == "mail" and code >= 500:
        raise SenderRefused(detail)
    if code < 500:
        return Reply(Answer.RETRY, detail)
    if stage == "rcpt" and code in HARD_BOUNCE_CODES:
        return Reply(Answer.BOUNCED, detail)
    return Reply(Answer.FAILED, detail)


def _after_data(code: int, reply: bytes) -> Reply:
    """The answer to the message itself, once transferred."""
    if code == 250:
        return Reply(Answer.SENT)
    return Reply(Answer.FAILED if code >= 500 else Answer.RETRY, smtp_detail(code, reply))


BROKE_DURING_DATA = Reply(Answer.UNKNOWN, "the connection broke while the message was being sent")


def _send_pipelined(connection: smtplib.SMTP, envelope_from: str, recipient: str, data: bytes) -> Reply:
    """MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING), then the message: two round trips instead of four."""
    try:
        connection.send(f"MAIL FROM:{quoteaddr(envelope_from)}\r\nRCPT TO:{quoteaddr(recipient)}\r\nDATA\r\n")
        answers = [connection.getreply() for _ in range(3)]
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise ConnectionLost(str(exc)) from exc
    for (stage, accepted), (code, reply) in zip(PIPELINED_STAGES, answers, strict=True):
        if code not in accepted:
            _reset(connection)
            return _refused(stage, code, reply)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    try:
        # Dot-stuffing (RFC 5321 4.5.2), as smtplib's data() does.
        connection.send(LEADING_DOT.sub(b"..", data) + b".\r\n")
        code, reply = connection.getreply()
    except (smtplib.SMTPServerDisconnected, OSError):
        return BROKE_DURING_DATA
    return _after_data(code, reply)


def _send_stepwise(connection: smtplib.SMTP, envelope_from: str, recipient: str, data: bytes, options: list) -> Reply:
    """MAIL, RCPT and DATA one after the other, for relays without PIPELINING (and SMTPUTF8 messages)."""
    try:
        code, reply = connection.mail(envelope_from, options)
        if code != 250:
            _reset(connection)
            return _refused("mail", code, reply)
        code, reply = connection.rcpt(recipient)
        if code not in (250, 251):
            _reset(connection)
            return _refused("rcpt", code, reply)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise ConnectionLost(str(exc)) from exc
    try:
        code, reply = connection.data(data)
    except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing was transferred
        _reset(connection)
        return _refused("data", exc.smtp_code, exc.smtp_error)
    except (smtplib.SMTPServerDisconnected, OSError):
        return BROKE_DURING_DATA
    return _after_data(code, reply)


def _reset(connection: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        connection.rset()
