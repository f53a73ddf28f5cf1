"""SMTP for campaigns: one connection per worker process, reused across batches, and one message sent in a
transaction whose failures are told apart by whether the message could have been delivered."""

import contextlib
import re
import smtplib
from smtplib import quoteaddr
from typing import TYPE_CHECKING

from flask import current_app

from ..mail.transport import open_connection
from . import outcomes as oc
from .outcomes import Outcome

if TYPE_CHECKING:
    from .builder import PreparedCampaign, Recipient

HARD_BOUNCE_CODES = {550, 551, 553}


_connections: dict[tuple, smtplib.SMTP] = {}


def smtp_connection() -> smtplib.SMTP:
    """This process's connection to the relay, reused across batches (checked with NOOP before reuse)."""
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
    connection.ehlo_or_helo_if_needed()
    _connections[key] = connection
    return connection


def drop_connection(connection: smtplib.SMTP | None = None) -> None:
    """Close a broken connection (or every cached one) so the next batch opens a fresh one."""
    for key, cached in list(_connections.items()):
        if connection is None or cached is connection:
            del _connections[key]
    for candidate in [connection] if connection is not None else []:
        with contextlib.suppress(OSError):
            candidate.close()


class ConnectionLost(Exception):
    """The SMTP connection broke; the batch stops and the rest of its rows go back to pending."""


class SenderRefused(Exception):
    """The relay refuses the campaign's sender address: no message of this campaign can go out."""


def send_one(connection: smtplib.SMTP, prepared: "PreparedCampaign", recipient: "Recipient") -> Outcome:
    """One SMTP transaction. Failures before DATA leave the message unsent (requeue); a break during DATA leaves it
    in doubt (unknown), because the relay may have accepted it."""
    data = prepared.build(recipient)
    if prepared.needs_smtputf8(recipient):
        return _send_stepwise(connection, prepared.envelope_from, recipient, data, ["SMTPUTF8", "BODY=8BITMIME"])
    if connection.has_extn("pipelining"):
        return _send_pipelined(connection, prepared.envelope_from, recipient, data)
    return _send_stepwise(connection, prepared.envelope_from, recipient, data, [])


PIPELINED_STAGES = (("mail", (250,)), ("rcpt", (250, 251)), ("data", (354,)))
LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def _refused(delivery_id: int | None, stage: str, code: int, reply: bytes) -> Outcome:
    """The outcome of a refusal before the message was transferred (MAIL, RCPT or DATA answered with an error)."""
    detail = oc.smtp_detail(code, reply)
    if stage == "mail" and code >= 500:
        raise SenderRefused(detail)
    if code < 500:
        return Outcome(delivery_id, oc.RETRY, detail)
    if stage == "rcpt" and code in HARD_BOUNCE_CODES:
        return Outcome(delivery_id, oc.BOUNCED, detail)
    return Outcome(delivery_id, oc.FAILED, detail)


def _send_pipelined(connection: smtplib.SMTP, envelope_from: str, recipient: "Recipient", data: bytes) -> Outcome:
    """MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING), then the message: two round trips instead of four."""
    delivery_id = recipient.delivery_id
    try:
        connection.send(f"MAIL FROM:{quoteaddr(envelope_from)}\r\nRCPT TO:{quoteaddr(recipient.email)}\r\nDATA\r\n")
        answers = [connection.getreply() for _ in range(3)]
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise ConnectionLost(str(exc)) from exc
    for (stage, accepted), (code, reply) in zip(PIPELINED_STAGES, answers, strict=True):
        if code not in accepted:
            _reset(connection)
            return _refused(delivery_id, stage, code, reply)
    try:
        # Dot-stuffing (RFC 5321 4.5.2), as smtplib's data() does; the builder's lines already end in CRLF.
        connection.send(LEADING_DOT.sub(b"..", data) + b".\r\n")
        code, reply = connection.getreply()
    except (smtplib.SMTPServerDisconnected, OSError):
        return Outcome(delivery_id, oc.UNKNOWN, "the connection broke while the message was being sent")
    if code == 250:
        return Outcome(delivery_id, oc.SENT)
    return Outcome(delivery_id, oc.FAILED if code >= 500 else oc.RETRY, oc.smtp_detail(code, reply))


def _send_stepwise(
    connection: smtplib.SMTP, envelope_from: str, recipient: "Recipient", data: bytes, options: list[str]
) -> Outcome:
    """MAIL, RCPT and DATA one after the other, for relays without PIPELINING (and SMTPUTF8 messages)."""
    delivery_id = recipient.delivery_id
    try:
        code, reply = connection.mail(envelope_from, options)
        if code != 250:
            _reset(connection)
            return _refused(delivery_id, "mail", code, reply)
        code, reply = connection.rcpt(recipient.email)
        if code not in (250, 251):
            _reset(connection)
            return _refused(delivery_id, "rcpt", code, reply)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise ConnectionLost(str(exc)) from exc
    try:
        code, reply = connection.data(data)
    except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing was transferred
        _reset(connection)
        return _refused(delivery_id, "data", exc.smtp_code, exc.smtp_error)
    except (smtplib.SMTPServerDisconnected, OSError):
        return Outcome(delivery_id, oc.UNKNOWN, "the connection broke while the message was being sent")
    if code == 250:
        return Outcome(delivery_id, oc.SENT)
    return Outcome(delivery_id, oc.FAILED if code >= 500 else oc.RETRY, oc.smtp_detail(code, reply))


def _reset(connection: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        connection.rset()
