"""Campaigns and their deliveries: one Delivery row per campaign and subscriber says what became of that message."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..models import MailingList, UTCDateTime, enum_column, new_public_id, utcnow

# A big integer key on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigIntegerKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class CampaignKind(enum.StrEnum):
    """What a campaign is for."""

    NEWSLETTER = "newsletter"
    REMINDER = "reminder"


class CampaignStatus(enum.StrEnum):
    """draft → scheduled → sending ⇄ paused → sent | cancelled."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class BodyFormat(enum.StrEnum):
    """How the organiser wrote the body."""

    MARKDOWN = "markdown"
    HTML = "html"


class DeliveryStatus(enum.StrEnum):
    """pending → sending → sent | failed | skipped | unknown (on the wire when its worker died; never re-sent)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


campaign_lists = sa.Table(
    "campaign_lists",
    db.metadata,
    sa.Column("campaign_id", sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("list_id", sa.ForeignKey("mailing_lists.id", ondelete="RESTRICT"), primary_key=True),
)


class Campaign(db.Model):
    """A newsletter or reminder: its content, its target lists, and where it stands."""

    __tablename__ = "campaigns"
    __table_args__ = (sa.Index("ix_campaigns_status_scheduled_at", "status", "scheduled_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # For the web version and the public archive: reveals nothing and cannot be guessed.
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_public_id)
    kind: Mapped[CampaignKind] = mapped_column(enum_column(CampaignKind), default=CampaignKind.NEWSLETTER)
    subject: Mapped[str] = mapped_column(sa.String(255))
    preheader: Mapped[str] = mapped_column(sa.String(255), default="")
    body_format: Mapped[BodyFormat] = mapped_column(enum_column(BodyFormat), default=BodyFormat.MARKDOWN)
    body: Mapped[str] = mapped_column(sa.Text, default="")
    from_name: Mapped[str] = mapped_column(sa.String(200))
    from_email: Mapped[str] = mapped_column(sa.String(320))
    reply_to: Mapped[str | None] = mapped_column(sa.String(320))
    status: Mapped[CampaignStatus] = mapped_column(enum_column(CampaignStatus), default=CampaignStatus.DRAFT)
    # Why the campaign is paused or stopped, in words an organiser can act on (never an address).
    status_detail: Mapped[str | None] = mapped_column(sa.String(500))
    # Listed in the public archive (/archive); the archived copy carries no personal data.
    public: Mapped[bool] = mapped_column(default=False)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # True once every recipient has a Delivery row; the campaign cannot finish before.
    snapshot_done: Mapped[bool] = mapped_column(default=False)
    # An iCalendar invitation attached to every message (a protest reminder's occurrence), or None.
    calendar: Mapped[str | None] = mapped_column(sa.Text)
    # Final tallies, written when the campaign ends (sent or cancelled), so history pages need not count deliveries.
    sent_count: Mapped[int | None] = mapped_column()
    failed_count: Mapped[int | None] = mapped_column()
    # SMTP connection failures in a row, and when the first of them was: the campaign pauses once the relay has
    # been out of reach for CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS and CAMPAIGN_CONNECTION_FAILURES tries.
    connection_failures: Mapped[int] = mapped_column(default=0)
    connection_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Goes up by one with each change of content, so a save based on an older revision (another tab, another
    # organiser) is refused instead of overwriting it.
    revision: Mapped[int] = mapped_column(default=1, server_default="1")
    # How many people left a list through this campaign's unsubscribe links: a count only, never who.
    unsubscribe_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # The language of the subject and body above (a locale code, e.g. "en", "ug", "zh"); readers whose own language
    # has a translation below get that instead.
    locale: Mapped[str] = mapped_column(sa.String(16), default="en", server_default="en")

    lists: Mapped[list[MailingList]] = relationship(secondary=campaign_lists, order_by=MailingList.id)
    translations: Mapped[list["CampaignTranslation"]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan", order_by="CampaignTranslation.locale"
    )

    @property
    def list_ids(self) -> list[int]:
        """Ids of the target lists, in order."""
        return [mailing_list.id for mailing_list in self.lists]

    @property
    def editable(self) -> bool:
        """Content and targets may change only before sending starts."""
        return self.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


class SavedTemplate(db.Model):
    """A starting point for campaigns that editors keep: a name, and the subject, preheader and body a new campaign
    begins with. Its body is checked by the same sandbox and sanitiser rules as a campaign's."""

    __tablename__ = "campaign_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    subject: Mapped[str] = mapped_column(sa.String(255), default="")
    preheader: Mapped[str] = mapped_column(sa.String(255), default="")
    body_format: Mapped[BodyFormat] = mapped_column(enum_column(BodyFormat), default=BodyFormat.MARKDOWN)
    body: Mapped[str] = mapped_column(sa.Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CampaignTranslation(db.Model):
    """The campaign in another language: its subject, preheader and body for subscribers who read that language.
    Everything else (sender, lists, format, schedule) is the campaign's."""

    __tablename__ = "campaign_translations"

    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    locale: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(255))
    preheader: Mapped[str] = mapped_column(sa.String(255), default="")
    body: Mapped[str] = mapped_column(sa.Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="translations")


class CampaignLane(db.Model):
    """One of a sending campaign's chains of batch tasks (campaigns/lanes.py): which chain is current, and by when it
    should next show life (the reaper restarts a lane that has not by then; None: the lane ended, nothing to do)."""

    __tablename__ = "campaign_lanes"

    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    lane: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    generation: Mapped[str] = mapped_column(sa.String(32))
    expect_progress_by: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Delivery(db.Model):
    """One campaign to one subscriber. Unique per pair: the unit of "nothing lost, nothing sent twice".

    Holds no address: the subscriber row does. The Message-ID is derived from the campaign and this row's id.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "subscriber_id"),
        sa.Index("ix_deliveries_campaign_status", "campaign_id", "status", "id"),
        # The rows being sent (a claim is set only while its batch runs), by claim and lease: a batch's lookups and
        # the reaper's search for lapsed leases; small, as only claimed rows are in it.
        sa.Index(
            "ix_deliveries_claim",
            "claim",
            "lease_until",
            postgresql_where=sa.text("claim IS NOT NULL"),
            sqlite_where=sa.text("claim IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    # NULL once the subscriber erased their data; such a row is never sent.
    subscriber_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="SET NULL"))
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # A transient failure (SMTP 4xx) waits until then before the next attempt.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The claim of the batch sending this row, and when that claim lapses if its worker dies.
    claim: Mapped[str | None] = mapped_column(sa.String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SMTP code and reply text, or why it was skipped; never an address.
    error: Mapped[str | None] = mapped_column(sa.String(300))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def ready_to_send(now: datetime):
    """Deliveries a batch may claim now, as an SQL condition: pending, and any retry wait over."""
    return sa.and_(
        Delivery.status == DeliveryStatus.PENDING,
        sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
    )
