"""The one service every bounce and complaint goes through, however it arrived: who the report is about, what it
means for them (the policy), and the record of it on their page.

Policy (Mailman's, with its defaults as settings):
- a permanent failure (a 5.x.x status) suppresses the address at once and ends every subscription;
- a temporary failure the relay gave up on adds one to a score, at most once a day; a score older than
  BOUNCE_SCORE_WINDOW_DAYS starts again from one; at BOUNCE_SCORE_THRESHOLD the address is suppressed;
- a complaint (the recipient pressed "spam") unsubscribes from everything and suppresses at once.
"""

import contextlib
import enum
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..campaigns.models import Campaign, Delivery
from ..extensions import db
from ..mail.smtp import safe_detail
from ..models import StatusReason, Subscriber, SuppressionReason, utcnow
from ..subscriptions import services as journey
from ..suppression import suppress_all, suppressed_among
from ..validation import InvalidInput, normalise_email
from .models import BounceDecision, BounceEvent, BounceKind, BounceSource, SetAsideMail

log = logging.getLogger(__name__)

SUPPRESSION_REASONS = {
    BounceKind.HARD: SuppressionReason.HARD_BOUNCE,
    BounceKind.COMPLAINT: SuppressionReason.COMPLAINT,
}
STATUS_REASONS = {
    SuppressionReason.HARD_BOUNCE: StatusReason.BOUNCE,
    SuppressionReason.COMPLAINT: StatusReason.COMPLAINT,
}


@dataclass(frozen=True)
class Finding:
    """What one report says about one recipient. Who it is comes from a return path (delivery_id or
    subscriber_id), or, from an authenticated provider only, the recipient's address with the original Message-ID
    (which names the campaign)."""

    kind: BounceKind
    status: str = ""
    diagnostic: str = ""
    delivery_id: int | None = None
    subscriber_id: int | None = None
    email: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class SetAside:
    """A message that could not be read as a report for one of our messages, and why."""

    content: bytes
    reason: str


class Result(enum.StrEnum):
    """What became of one finding (or of a message that held none)."""

    RECORDED = "recorded"  # a BounceEvent was written (the decision is on it)
    UNKNOWN_RECIPIENT = "unknown_recipient"  # nobody we know: erased, or never ours; nothing stored
    SET_ASIDE = "set_aside"  # kept for inspection, acted on nobody
    IGNORED = "ignored"  # not a failure: a delay warning, an auto-reply, a "not spam" report; nothing stored


def record(findings: list[Finding], source: BounceSource, aside: Sequence[SetAside] = ()) -> list[Result]:
    """Apply the policy to each finding and record it, and keep the mail `aside`; the caller commits.

    In a handful of statements however many findings there are (the receiver records what arrived together in one
    call): who they are about, with their last soft bounce, in one query; which of the soft-bounced are suppressed
    already in another; the new suppressions in one INSERT; then, sent together without waiting for each other
    (one round trip on PostgreSQL), the unsubscribes in two UPDATEs, the events and the mail set aside in an INSERT
    each. Round trips to the database are most of the work. Findings are decided in order, as if recorded one after
    another."""
    recipients = identify_all(findings)
    now = utcnow()
    events, soft, suppressions = [], [], {}
    for finding, recipient in zip(findings, recipients, strict=True):
        if recipient is None:
            continue
        event = {
            "subscriber_id": recipient.subscriber_id,
            "campaign_id": recipient.campaign_id,
            "kind": finding.kind,
            "source": source,
            "status": finding.status[:16],
            "diagnostic": safe_detail(finding.diagnostic),
            "score": None,
            "created_at": now,
            "email": recipient.email,  # until the decision is known
        }
        events.append(event)
        if finding.kind is BounceKind.SOFT:
            soft.append(event)
        else:
            suppressions.setdefault(recipient.email, (SUPPRESSION_REASONS[finding.kind], recipient.subscriber_id))
    last_soft = {recipient.subscriber_id: recipient.last_soft for recipient in recipients if recipient is not None}
    for event in _score_all(soft, last_soft, now):  # soft bounces that reached the threshold
        suppressions.setdefault(event["email"], (SuppressionReason.HARD_BOUNCE, event["subscriber_id"]))
    newly = suppress_all({email: reason for email, (reason, _) in suppressions.items()})
    for event in events:
        email = event.pop("email")
        if "decision" not in event:  # a hard bounce, a complaint, or a soft bounce at the threshold
            suppressed_now = email in newly
            newly.discard(email)  # the first report suppresses; any later one finds it done
            event["decision"] = BounceDecision.SUPPRESSED if suppressed_now else BounceDecision.ALREADY_SUPPRESSED
    unsubscribes = {subscriber_id: STATUS_REASONS[reason] for reason, subscriber_id in suppressions.values()}
    if unsubscribes or events or aside:
        with pipelined():
            journey.unsubscribe_everywhere(unsubscribes)
            if events:
                db.session.connection().execute(INSERT_EVENTS, events)
            if aside:
                db.session.connection().execute(INSERT_SET_ASIDE, [_set_aside_row(mail, source) for mail in aside])
    return [Result.UNKNOWN_RECIPIENT if recipient is None else Result.RECORDED for recipient in recipients]


@contextlib.contextmanager
def pipelined() -> Iterator[None]:
    """On PostgreSQL (psycopg), the statements run in the block are sent without waiting for each one's answer, and
    the answers read at the block's end: one round trip for all, where each would cost one. Only for statements whose
    results nobody reads (SQLAlchemy would find no rows yet; an INSERT must be .inline(), not to ask for its new id).
    An error in any of them is raised at the block's end, as SQLAlchemy raises it (a DBAPIError; a connection that
    was lost is invalidated). Elsewhere the statements simply run one after another."""
    connection = db.session.connection()
    dbapi_connection = connection.connection.dbapi_connection
    pipeline = getattr(dbapi_connection, "pipeline", None)
    if connection.dialect.name != "postgresql" or pipeline is None:
        yield
        return
    error_class = connection.dialect.loaded_dbapi.Error
    try:
        with pipeline():
            yield
    except error_class as error:
        lost = bool(dbapi_connection.closed)
        if lost:
            connection.invalidate(error)
        raise sa.exc.DBAPIError.instance(None, None, error, error_class, connection_invalidated=lost) from error


@dataclass(frozen=True)
class Recipient:
    """Who a finding is about: the subscriber, and the campaign of the message when known."""

    subscriber_id: int
    email: str
    campaign_id: int | None
    # Their latest soft bounce before this call: its score and when it came (None if none).
    last_soft: tuple[float, datetime] | None = None


def _score_all(events: list[dict], last: dict[int, tuple[float, datetime] | None], now: datetime) -> list[dict]:
    """Score soft bounces in order, each on the last (`last`, from the database, or earlier in this call); the
    decision is set on each except those that reach BOUNCE_SCORE_THRESHOLD, which are returned, to be suppressed."""
    if not events:
        return []
    already = suppressed_among({event["email"] for event in events})
    threshold, reached = current_app.config["BOUNCE_SCORE_THRESHOLD"], []
    for event in events:
        if event["email"] in already:
            event["decision"] = BounceDecision.ALREADY_SUPPRESSED
            continue
        event["score"] = next_score(last.get(event["subscriber_id"]), now)
        last[event["subscriber_id"]] = (event["score"], now)
        if event["score"] >= threshold:
            reached.append(event)
            already.add(event["email"])
        else:
            event["decision"] = BounceDecision.SCORED
    return reached


def next_score(last: tuple[float, datetime] | None, now: datetime) -> float:
    """The score a new soft bounce gives after the last one (score, when): one more, or the same on the same day,
    or one again when the last was more than BOUNCE_SCORE_WINDOW_DAYS ago (Mailman's rule)."""
    if last is None or last[0] is None:
        return 1.0
    score, when = last
    if now - when > timedelta(days=current_app.config["BOUNCE_SCORE_WINDOW_DAYS"]):
        return 1.0
    if when.date() == now.date():
        return score
    return score + 1.0


# The receiver records thousands of reports a minute: its statements are built once, with their ids bound at each
# call (an expanding IN), and run on the session's connection without the ORM, which has no objects to track here.
def _last_soft(column: sa.ColumnElement) -> sa.ScalarSelect:
    """A column of the subscriber's latest soft bounce (score or time), as a correlated subquery."""
    return (
        sa.select(column)
        .where(BounceEvent.subscriber_id == Subscriber.id, BounceEvent.kind == BounceKind.SOFT)
        .order_by(BounceEvent.id.desc())
        .limit(1)
        .correlate(Subscriber)
        .scalar_subquery()
    )


_RECIPIENT_COLUMNS = (
    Subscriber.email,
    _last_soft(BounceEvent.score).label("soft_score"),
    _last_soft(BounceEvent.created_at).label("soft_at"),
)
RECIPIENTS_BY_DELIVERY = (
    sa.select(Delivery.id, Delivery.subscriber_id, Delivery.campaign_id, *_RECIPIENT_COLUMNS)
    .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
    .where(Delivery.id.in_(sa.bindparam("ids", expanding=True)))
)
RECIPIENTS_BY_SUBSCRIBER = sa.select(Subscriber.id, *_RECIPIENT_COLUMNS).where(
    Subscriber.id.in_(sa.bindparam("ids", expanding=True))
)
INSERT_EVENTS = sa.insert(BounceEvent.__table__).inline()  # inline: no RETURNING of the new id (none is read)
INSERT_SET_ASIDE = sa.insert(SetAsideMail.__table__).inline()


def identify_all(findings: list[Finding]) -> list[Recipient | None]:
    """Who each finding is about (None for nobody we know), with the campaign of the message when known; one query
    for all the deliveries named, one for all the subscribers."""
    # Ids out of the columns' range name nobody (and must not reach PostgreSQL, which would refuse the query).
    delivery_ids = {f.delivery_id for f in findings if f.delivery_id is not None and 0 < f.delivery_id < 2**63}
    subscriber_ids = {
        f.subscriber_id
        for f in findings
        if f.delivery_id is None and f.subscriber_id is not None and 0 < f.subscriber_id < 2**31
    }
    by_delivery, by_subscriber = {}, {}
    if delivery_ids:
        rows = db.session.connection().execute(RECIPIENTS_BY_DELIVERY, {"ids": list(delivery_ids)})
        by_delivery = {row.id: _recipient(row.subscriber_id, row, row.campaign_id) for row in rows}
    if subscriber_ids:
        rows = db.session.connection().execute(RECIPIENTS_BY_SUBSCRIBER, {"ids": list(subscriber_ids)})
        by_subscriber = {row.id: _recipient(row.id, row, None) for row in rows}
    recipients = []
    for finding in findings:
        if finding.delivery_id is not None:
            recipients.append(by_delivery.get(finding.delivery_id))
        elif finding.subscriber_id is not None:
            recipients.append(by_subscriber.get(finding.subscriber_id))
        else:
            recipients.append(_by_address(finding))
    return recipients


def _recipient(subscriber_id: int, row: sa.Row, campaign_id: int | None) -> Recipient:
    last_soft = None if row.soft_at is None else (row.soft_score, row.soft_at)
    return Recipient(subscriber_id, row.email, campaign_id, last_soft)


def _by_address(finding: Finding) -> Recipient | None:
    """From an authenticated provider: the address it names, and our campaign if its Message-ID names one."""
    if not finding.email:
        return None
    try:
        email = normalise_email(finding.email, check_deliverability=False)  # an address we mailed: no DNS
    except InvalidInput:
        return None
    row = db.session.execute(sa.select(Subscriber.id, *_RECIPIENT_COLUMNS).where(Subscriber.email == email)).first()
    if row is None:
        return None
    return _recipient(row.id, row, campaign_of(finding.message_id, row.id))


def campaign_of(message_id: str | None, subscriber_id: int) -> int | None:
    """The campaign a Message-ID of ours names (`<campaign-public-id.tag@domain>`), if the subscriber was sent it."""
    if not message_id:
        return None
    public_id = message_id.strip().strip("<>").partition(".")[0]
    if not public_id or len(public_id) > 32:
        return None
    return db.session.scalar(
        sa.select(Campaign.id)
        .join(Delivery, Delivery.campaign_id == Campaign.id)
        .where(Campaign.public_id == public_id, Delivery.subscriber_id == subscriber_id)
    )


def set_aside(content: bytes, source: BounceSource, reason: str) -> Result:
    """Keep a message that could not be read as a report for one of our messages; the caller commits."""
    db.session.connection().execute(INSERT_SET_ASIDE, _set_aside_row(SetAside(content, reason), source))
    return Result.SET_ASIDE


def _set_aside_row(mail: SetAside, source: BounceSource) -> dict:
    log.info("bounce mail set aside (%s, %d bytes): %s", source, len(mail.content), mail.reason)
    return {
        "source": source,
        "reason": mail.reason[:200],
        "size": len(mail.content),
        "content": mail.content[: current_app.config["BOUNCE_SET_ASIDE_BYTES"]],
        "created_at": utcnow(),
    }


def campaign_counts(campaign_ids: list[int]) -> dict[int, dict[BounceKind, int]]:
    """Bounces and complaints per campaign, by kind (each subscriber once per kind)."""
    counts: dict[int, dict[BounceKind, int]] = {
        campaign_id: dict.fromkeys(BounceKind, 0) for campaign_id in campaign_ids
    }
    if not campaign_ids:
        return counts
    rows = db.session.execute(
        sa.select(BounceEvent.campaign_id, BounceEvent.kind, sa.func.count(sa.distinct(BounceEvent.subscriber_id)))
        .where(BounceEvent.campaign_id.in_(campaign_ids))
        .group_by(BounceEvent.campaign_id, BounceEvent.kind)
    )
    for campaign_id, kind, count in rows:
        counts[campaign_id][BounceKind(kind)] = count
    return counts


def subscriber_events(subscriber_id: int) -> list[BounceEvent]:
    """A subscriber's bounces and complaints, newest first, for their page."""
    return list(
        db.session.scalars(
            sa.select(BounceEvent)
            .where(BounceEvent.subscriber_id == subscriber_id)
            .order_by(BounceEvent.created_at.desc(), BounceEvent.id.desc())
        )
    )


def subjects_of_bounced_campaigns(subscriber_id: int) -> dict[int, str]:
    """The subjects of the campaigns a subscriber's bounces and complaints came from, by campaign id."""
    campaign_ids = sa.select(BounceEvent.campaign_id).where(BounceEvent.subscriber_id == subscriber_id)
    return dict(db.session.execute(sa.select(Campaign.id, Campaign.subject).where(Campaign.id.in_(campaign_ids))).all())
