"""SMTP for campaigns: one connection per worker process, reused across batches, and one message sent in a
transaction whose failures are told apart by whether the message could have been delivered."""

import contextlib
import smtplib
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
    state = current_app.extensions["mail"]
    key = (state.server, state.port, state.username)
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
    options = ["SMTPUTF8", "BODY=8BITMIME"] if prepared.needs_smtputf8(recipient) else []
    delivery_id = recipient.delivery_id
    try:
        code, reply = connection.mail(prepared.envelope_from, options)
        if code != 250:
            _reset(connection)
            if code >= 500:
                raise SenderRefused(oc.smtp_detail(code, reply))
            return Outcome(delivery_id, oc.RETRY, oc.smtp_detail(code, reply))
        code, reply = connection.rcpt(recipient.email)
        if code not in (250, 251):
            _reset(connection)
            if code >= 500:
                kind = oc.BOUNCED if code in HARD_BOUNCE_CODES else oc.FAILED
                return Outcome(delivery_id, kind, oc.smtp_detail(code, reply))
            return Outcome(delivery_id, oc.RETRY, oc.smtp_detail(code, reply))
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise ConnectionLost(str(exc)) from exc
    try:
        code, reply = connection.data(data)
    except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing was transferred
        _reset(connection)
        kind = oc.FAILED if exc.smtp_code >= 500 else oc.RETRY
        return Outcome(delivery_id, kind, oc.smtp_detail(exc.smtp_code, exc.smtp_error))
    except (smtplib.SMTPServerDisconnected, OSError):
        return Outcome(delivery_id, oc.UNKNOWN, "the connection broke while the message was being sent")
    if code == 250:
        return Outcome(delivery_id, oc.SENT)
    return Outcome(delivery_id, oc.FAILED if code >= 500 else oc.RETRY, oc.smtp_detail(code, reply))


def _reset(connection: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        connection.rset()
