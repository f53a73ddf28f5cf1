"""Mail to the bounce address, however it arrived (the SMTP receiver, the polled mailbox): read it, find whose it is
from the return path it came back to, and record it through the one service, or keep it aside.

Only a return path we made names anyone: an address found inside a bounce is never trusted, so forged bounce mail
can unsubscribe nobody.
"""

import logging
import re
from collections.abc import Sequence

import sqlalchemy as sa

from ..extensions import db
from ..links import TokenInvalid, read_unsubscribe_token
from ..models import Subscriber
from . import reports, returnpath
from .models import BounceSource
from .reports import Verdict
from .services import Finding, Result, SetAside, record

log = logging.getLogger(__name__)

UNSUBSCRIBE_LINK = re.compile(r"/unsubscribe/([A-Za-z0-9_.-]{20,400})")
IGNORED = {Verdict.DELAY, Verdict.AUTO_REPLY, Verdict.NOT_SPAM}


def take(raw: bytes, source: BounceSource, recipients: Sequence[str] = ()) -> list[Result]:
    """Read and record one message sent to the bounce address; `recipients` are its envelope recipients when known.
    Never raises for bad input (the caller commits; a database error propagates so the message can be retried)."""
    return take_all([(raw, recipients)], source)[0]


def take_all(messages: Sequence[tuple[bytes, Sequence[str]]], source: BounceSource) -> list[list[Result]]:
    """`take` for messages that arrived together, their findings recorded in one call of the service."""
    outcomes: list[list[Result] | None] = []
    findings: list[tuple[int, Finding]] = []
    aside: list[SetAside] = []
    for raw, recipients in messages:
        report = reports.read(raw)
        finding = None
        if report.verdict in IGNORED:
            outcomes.append([Result.IGNORED])
        elif report.verdict is Verdict.UNREADABLE:
            aside.append(SetAside(raw, report.diagnostic or "not a report"))
            outcomes.append([Result.SET_ASIDE])
        elif (finding := _finding(report, recipients)) is None:
            aside.append(SetAside(raw, f"a {report.verdict} that names no message of ours (forged, or not ours)"))
            outcomes.append([Result.SET_ASIDE])
        else:
            findings.append((len(outcomes), finding))
            outcomes.append(None)
    for (position, _), result in zip(findings, record([f for _, f in findings], source, aside), strict=True):
        outcomes[position] = [result]
    return outcomes


def _finding(report: reports.Report, recipients: Sequence[str]) -> Finding | None:
    """Whose report it is: the return path it was sent to, else one in its headers or its returned original, else
    (complaints only: they go to a feedback address, not the return path) the unsubscribe link in the original."""
    tagged = returnpath.return_paths().read(" ".join(recipients)) or returnpath.return_paths().read(report.evidence)
    common = {"kind": report.kind, "status": report.status, "diagnostic": report.diagnostic}
    if tagged is not None:
        if tagged.kind == returnpath.DELIVERY:
            return Finding(delivery_id=tagged.id, **common)
        return Finding(subscriber_id=tagged.id, **common)
    if report.verdict is Verdict.COMPLAINT:
        subscriber_id = _subscriber_from_links(report.evidence)
        if subscriber_id is not None:
            return Finding(subscriber_id=subscriber_id, **common)
    return None


def _subscriber_from_links(text: str) -> int | None:
    """The subscriber named by a signed unsubscribe link in the original's List-Unsubscribe header."""
    for match in UNSUBSCRIBE_LINK.finditer(text):
        try:
            public_id, _ = read_unsubscribe_token(match.group(1))
        except TokenInvalid:
            continue
        return db.session.scalar(sa.select(Subscriber.id).where(Subscriber.public_id == public_id))
    return None
