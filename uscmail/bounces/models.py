"""What bounce and complaint handling stores: each decision with its evidence, and mail set aside unread."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import UTCDateTime, enum_column, utcnow


class BounceKind(enum.StrEnum):
    """What a report says about one recipient."""

    HARD = "hard"  # a permanent failure (5.x.x): the address is suppressed at once
    SOFT = "soft"  # a temporary failure the relay gave up on (4.x.x): adds to the score
    COMPLAINT = "complaint"  # the recipient marked the mail as spam: unsubscribed from everything and suppressed


class BounceSource(enum.StrEnum):
    """Which way the report arrived."""

    SMTP_REPLY = "smtp_reply"  # the relay refused the recipient while we were sending
    RECEIVER = "receiver"  # the bounce domain's SMTP receiver (`flask bounces serve`)
    MAILBOX = "mailbox"  # the polled IMAP or POP3 mailbox
    SES = "ses"
    POSTMARK = "postmark"
    MAILGUN = "mailgun"
    SENDGRID = "sendgrid"


class BounceDecision(enum.StrEnum):
    """What the report led to."""

    SUPPRESSED = "suppressed"  # suppressed and unsubscribed from every list
    SCORED = "scored"  # a soft bounce counted; the score is still under the threshold
    ALREADY_SUPPRESSED = "already_suppressed"  # recorded as evidence; nothing left to do


class BounceEvent(db.Model):
    """One bounce or complaint for one subscriber, the evidence shown on their page. Holds no address: the relay's
    words are kept with addresses removed. Deleted with the subscriber."""

    __tablename__ = "bounce_events"
    __table_args__ = (
        sa.Index("ix_bounce_events_subscriber_created", "subscriber_id", "created_at"),
        sa.Index("ix_bounce_events_campaign_kind", "campaign_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="SET NULL"))
    kind: Mapped[BounceKind] = mapped_column(enum_column(BounceKind))
    source: Mapped[BounceSource] = mapped_column(enum_column(BounceSource))
    # The enhanced status code (RFC 3463, "5.1.1") when the report gave one, and the diagnostic without addresses.
    status: Mapped[str] = mapped_column(sa.String(16), default="")
    diagnostic: Mapped[str] = mapped_column(sa.String(250), default="")
    decision: Mapped[BounceDecision] = mapped_column(enum_column(BounceDecision))
    # The soft-bounce score after this report (soft bounces only).
    score: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SetAsideMail(db.Model):
    """Mail that reached the bounce address but could not be read as a bounce or complaint for one of our messages
    (unparseable, forged, or not a report at all). Kept for an administrator to inspect; acts on nobody; deleted after
    BOUNCE_SET_ASIDE_DAYS."""

    __tablename__ = "set_aside_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[BounceSource] = mapped_column(enum_column(BounceSource))
    reason: Mapped[str] = mapped_column(sa.String(200))
    size: Mapped[int] = mapped_column(default=0)
    # The first BOUNCE_SET_ASIDE_BYTES of the message as it arrived.
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
