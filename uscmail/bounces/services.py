"""The one service every bounce and complaint goes through, however it arrived: who the report is about, what it
means for them (the policy), and the record of it on their page.

Policy (Mailman's, with its defaults as settings):
- a permanent failure (a 5.x.x status) suppresses the address at once and ends every subscription;
- a temporary failure the relay gave up on adds one to a score, at most once a day; a score older than
  BOUNCE_SCORE_WINDOW_DAYS starts again from one; at BOUNCE_SCORE_THRESHOLD the address is suppressed;
- a complaint (the recipient pressed "spam") unsubscribes from everything and suppresses at once.
"""

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from ..campaigns.models import Campaign, Delivery
from ..extensions import db
from ..mail.smtp import safe_detail
from ..models import StatusReason, Subscriber, SuppressionReason, utcnow
from ..subscriptions import services as journey
from ..suppression import is_suppressed, suppress
from ..validation import InvalidInput, normalise_email
from .models import BounceDecision, BounceEvent, BounceKind, BounceSource, SetAsideMail

log = logging.getLogger(__name__)

SUPPRESSION_REASONS = {
    BounceKind.HARD: SuppressionReason.HARD_BOUNCE,
    BounceKind.COMPLAINT: SuppressionReason.COMPLAINT,
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


class Result(enum.StrEnum):
    """What became of one finding (or of a message that held none)."""

    RECORDED = "recorded"  # a BounceEvent was written (the decision is on it)
    UNKNOWN_RECIPIENT = "unknown_recipient"  # nobody we know: erased, or never ours; nothing stored
    SET_ASIDE = "set_aside"  # kept for inspection, acted on nobody
    IGNORED = "ignored"  # not a failure: a delay warning, an auto-reply, a "not spam" report; nothing stored


def record(findings: list[Finding], source: BounceSource) -> list[Result]:
    """Apply the policy to each finding and record it; the caller commits."""
    return [_record_one(finding, source) for finding in findings]


@dataclass(frozen=True)
class Recipient:
    """Who a finding is about: the subscriber, and the campaign of the message when known."""

    subscriber_id: int
    email: str
    campaign_id: int | None


def _record_one(finding: Finding, source: BounceSource) -> Result:
    # Set-based statements throughout: the receiver records hundreds of these a second.
    recipient = identify(finding)
    if recipient is None:
        return Result.UNKNOWN_RECIPIENT
    score = None
    if finding.kind is BounceKind.SOFT:
        if is_suppressed(recipient.email):
            decision = BounceDecision.ALREADY_SUPPRESSED
        else:
            score = soft_score(recipient.subscriber_id)
            decision = BounceDecision.SCORED
            if score >= current_app.config["BOUNCE_SCORE_THRESHOLD"]:
                decision = _suppress(recipient, SuppressionReason.HARD_BOUNCE, StatusReason.BOUNCE)
    elif finding.kind is BounceKind.COMPLAINT:
        decision = _suppress(recipient, SuppressionReason.COMPLAINT, StatusReason.COMPLAINT)
    else:
        decision = _suppress(recipient, SuppressionReason.HARD_BOUNCE, StatusReason.BOUNCE)
    db.session.execute(
        sa.insert(BounceEvent).values(
            subscriber_id=recipient.subscriber_id,
            campaign_id=recipient.campaign_id,
            kind=finding.kind,
            source=source,
            status=finding.status[:16],
            diagnostic=safe_detail(finding.diagnostic),
            decision=decision,
            score=score,
            created_at=utcnow(),
        )
    )
    return Result.RECORDED


def _suppress(recipient: Recipient, reason: SuppressionReason, status_reason: StatusReason) -> BounceDecision:
    """Suppress and unsubscribe from everything (again, if already suppressed: a complaint after a hard bounce still
    ends what an organiser may have re-added)."""
    newly = suppress(recipient.email, reason)
    journey.unsubscribe_everywhere(recipient.subscriber_id, status_reason)
    return BounceDecision.SUPPRESSED if newly else BounceDecision.ALREADY_SUPPRESSED


def soft_score(subscriber_id: int) -> float:
    """The score a new soft bounce gives: one more than the last one's, or the same on the same day, or one again
    when the last was more than BOUNCE_SCORE_WINDOW_DAYS ago."""
    now = utcnow()
    last = db.session.execute(
        sa.select(BounceEvent.score, BounceEvent.created_at)
        .where(BounceEvent.subscriber_id == subscriber_id, BounceEvent.kind == BounceKind.SOFT)
        .order_by(BounceEvent.created_at.desc(), BounceEvent.id.desc())
        .limit(1)
    ).first()
    if last is None or last.score is None:
        return 1.0
    if now - last.created_at > timedelta(days=current_app.config["BOUNCE_SCORE_WINDOW_DAYS"]):
        return 1.0
    if last.created_at.date() == now.date():
        return last.score
    return last.score + 1.0


def identify(finding: Finding) -> Recipient | None:
    """The subscriber a finding is about (None if nobody we know), and the campaign of the message when known."""
    if finding.delivery_id is not None:
        row = db.session.execute(
            sa.select(Delivery.subscriber_id, Subscriber.email, Delivery.campaign_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id == finding.delivery_id)
        ).first()
        return None if row is None else Recipient(*row)
    if finding.subscriber_id is not None:
        email = db.session.scalar(sa.select(Subscriber.email).where(Subscriber.id == finding.subscriber_id))
        return None if email is None else Recipient(finding.subscriber_id, email, None)
    if finding.email:
        try:
            email = normalise_email(finding.email)
        except InvalidInput:
            return None
        subscriber_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
        if subscriber_id is None:
            return None
        return Recipient(subscriber_id, email, campaign_of(finding.message_id, subscriber_id))
    return None


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
    limit = current_app.config["BOUNCE_SET_ASIDE_BYTES"]
    db.session.add(SetAsideMail(source=source, reason=reason[:200], size=len(content), content=content[:limit]))
    db.session.flush()
    log.info("bounce mail set aside (%s, %d bytes): %s", source, len(content), reason)
    return Result.SET_ASIDE


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
