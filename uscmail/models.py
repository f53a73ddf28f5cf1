"""Database models: subscribers, mailing lists, subscriptions, consent evidence and the suppression list."""

import enum
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(UTC)


def new_public_id() -> str:
    """A random, unguessable identifier for links; it reveals neither the address nor the list size."""
    return secrets.token_urlsafe(16)


class UTCDateTime(sa.TypeDecorator):
    """Stores UTC timestamps and always returns timezone-aware datetimes, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def enum_column(enum_class: type[enum.Enum]) -> sa.Enum:
    """A portable enum column that stores the member values as short strings."""
    return sa.Enum(
        enum_class,
        native_enum=False,
        validate_strings=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class SubscriptionStatus(enum.StrEnum):
    """Where a subscription stands."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class StatusReason(enum.StrEnum):
    """Who or what last changed a subscription's status."""

    SIGNUP_FORM = "signup_form"
    SIGNUP_API = "signup_api"
    CONFIRMED_BY_SUBSCRIBER = "confirmed_by_subscriber"
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    ONE_CLICK = "one_click"
    PREFERENCE_CENTRE = "preference_centre"
    ORGANISER = "organiser"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"


class ConsentMethod(enum.StrEnum):
    """How an opt-in was given."""

    FORM = "form"
    API = "api"
    PREFERENCE_CENTRE = "preference_centre"
    IMPORT = "import"


class SuppressionReason(enum.StrEnum):
    """Why an address must never be mailed again."""

    ERASED = "erased"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard_bounce"
    ORGANISER = "organiser"
    # Records removed after UNSUBSCRIBED_RETENTION_DAYS: not re-imported, but the person may sign up again themselves.
    UNSUBSCRIBED = "unsubscribed"


class Subscriber(db.Model):
    """A person on one or more lists, known by a normalised email address."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_public_id)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    locale: Mapped[str] = mapped_column(sa.String(16), default="en")
    # Random value bound into confirmation links; cleared once used so a link works only once.
    confirm_nonce: Mapped[str | None] = mapped_column(sa.String(32))
    # Signup mails (confirmation, "already subscribed") sent in the current window, for CONFIRMATION_MAILS_PER_ADDRESS.
    signup_mail_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signup_mail_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    subscriptions: Mapped[list["Subscription"]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )
    consents: WriteOnlyMapped["Consent"] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class MailingList(db.Model):
    """A list people can be subscribed to; public lists appear on the signup form."""

    __tablename__ = "mailing_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    public: Mapped[bool] = mapped_column(default=False)
    archived: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(db.Model):
    """One subscriber on one list, with its status and the reason for the last change."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.UniqueConstraint("subscriber_id", "list_id"),
        sa.Index("ix_subscriptions_list_status", "list_id", "status"),
        sa.Index("ix_subscriptions_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_lists.id", ondelete="RESTRICT"))
    status: Mapped[SubscriptionStatus] = mapped_column(enum_column(SubscriptionStatus))
    status_reason: Mapped[StatusReason] = mapped_column(enum_column(StatusReason))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    mailing_list: Mapped[MailingList] = relationship(lazy="joined")


class ConsentWording(db.Model):
    """A version of the consent text shown on the signup form, kept verbatim with its SHA-256."""

    __tablename__ = "consent_wordings"

    version: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    text: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(db.Model):
    """Evidence of one opt-in to one list: when, how, the wording shown, when confirmed and withdrawn. No IP."""

    __tablename__ = "consents"
    __table_args__ = (sa.Index("ix_consents_subscriber_list", "subscriber_id", "list_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_lists.id", ondelete="RESTRICT"))
    method: Mapped[ConsentMethod] = mapped_column(enum_column(ConsentMethod))
    wording_version: Mapped[str] = mapped_column(sa.ForeignKey("consent_wordings.version"))
    wording_sha256: Mapped[str] = mapped_column(sa.String(64))
    # For imports: the lawful basis the organiser stated for the batch.
    basis: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Suppression(db.Model):
    """An address that must never be mailed again, kept only as a keyed HMAC of its normalised form."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hmac: Mapped[str] = mapped_column(sa.String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(enum_column(SuppressionReason))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignupRequest(db.Model):
    """A signup as it arrived, before the worker applies it. Storing exactly this one row, whatever the address's
    state, makes every signup answer take the same work, so timing cannot tell who is subscribed. Once applied it is
    marked with its subscriber until its mail is handed to the relay, then deleted.
    """

    __tablename__ = "signup_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    list_ids: Mapped[list[int]] = mapped_column(sa.JSON)
    method: Mapped[ConsentMethod] = mapped_column(enum_column(ConsentMethod))
    wording_version: Mapped[str] = mapped_column(sa.String(32))
    # The language the signup page was shown in: the subscriber's language if they are new, and their mail's.
    locale: Mapped[str] = mapped_column(sa.String(16), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Set when applied: the mail (confirmation or "already subscribed") is owed to this subscriber.
    subscriber_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="CASCADE"))
