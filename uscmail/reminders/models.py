"""Events (recurring protests), per-occurrence overrides, and Reminder rows: one per event × occurrence × offset."""

import enum
from datetime import date, datetime, time

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..models import MailingList, UTCDateTime, enum_column, new_public_id, utcnow

DEFAULT_OFFSETS = [{"days_before": 3, "at": "10:00"}, {"days_before": 0, "at": "08:00"}]


class Event(db.Model):
    """A recurring protest. Times are wall-clock times in `timezone` (Europe/London), so 18:00 stays 18:00 across
    daylight-saving changes. Without a start time the event sends nothing: organisers must set it first."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_public_id)
    title: Mapped[str] = mapped_column(sa.String(200))
    # An RFC 5545 RRULE (without DTSTART), e.g. FREQ=MONTHLY;BYMONTHDAY=5; occurrences start on or after first_date.
    rrule: Mapped[str] = mapped_column(sa.String(500), default="FREQ=MONTHLY;BYMONTHDAY=5")
    first_date: Mapped[date] = mapped_column(sa.Date)
    start_time: Mapped[time | None] = mapped_column(sa.Time)
    duration_minutes: Mapped[int] = mapped_column(default=120)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Europe/London")
    place: Mapped[str] = mapped_column(sa.String(300))
    map_url: Mapped[str | None] = mapped_column(sa.String(500))
    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_lists.id", ondelete="RESTRICT"))
    # [{"days_before": 3, "at": "10:00"}, …]: each reminder goes out that many days before, at that local time.
    reminder_offsets: Mapped[list[dict]] = mapped_column(sa.JSON, default=lambda: [dict(o) for o in DEFAULT_OFFSETS])
    subject_template: Mapped[str] = mapped_column(sa.String(255))
    body_template: Mapped[str] = mapped_column(sa.Text)
    on_hold: Mapped[bool] = mapped_column(default=False)
    hold_reason: Mapped[str | None] = mapped_column(sa.String(500))
    # Created or last resumed: reminders due before then are neither sent nor reported as missed.
    active_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last problem the reminder beat met with this event (shown on its page until the event is saved again).
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    mailing_list: Mapped[MailingList] = relationship(lazy="joined")
    translations: Mapped[list["EventTranslation"]] = relationship(
        cascade="all, delete-orphan", order_by="EventTranslation.locale"
    )


class EventTranslation(db.Model):
    """The event's reminder templates in another language: subscribers who read it get reminders in it."""

    __tablename__ = "event_translations"

    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    locale: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    subject_template: Mapped[str] = mapped_column(sa.String(255))
    body_template: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OccurrenceOverride(db.Model):
    """A change to one occurrence only: cancelled, or a different time or place, or a note for that day."""

    __tablename__ = "occurrence_overrides"
    __table_args__ = (sa.UniqueConstraint("event_id", "occurrence_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"))
    # The date the rule gives; the override may move the time, not the day.
    occurrence_date: Mapped[date] = mapped_column(sa.Date)
    cancelled: Mapped[bool] = mapped_column(default=False)
    start_time: Mapped[time | None] = mapped_column(sa.Time)
    place: Mapped[str | None] = mapped_column(sa.String(300))
    note: Mapped[str | None] = mapped_column(sa.String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReminderStatus(enum.StrEnum):
    """What became of one due reminder."""

    SENT = "sent"  # its campaign was started
    LATE = "late"  # sent after its time (the system was down), while the protest was still ahead
    SKIPPED = "skipped"  # not sent: the protest had begun, nobody was on the list, or it could not be made (detail)
    CANCELLED = "cancelled"  # not sent: the occurrence was cancelled (an event on hold records nothing)


class Reminder(db.Model):
    """One reminder of one occurrence: unique per event × occurrence × offset, so no reminder is ever sent twice."""

    __tablename__ = "reminders"
    __table_args__ = (sa.UniqueConstraint("event_id", "occurrence_date", "offset_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"))
    occurrence_date: Mapped[date] = mapped_column(sa.Date)
    # "3d@10:00": days before and local time, so changing the offsets later does not resend the ones already done.
    offset_key: Mapped[str] = mapped_column(sa.String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[ReminderStatus] = mapped_column(enum_column(ReminderStatus))
    campaign_id: Mapped[int | None] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="SET NULL"))
    # Why it was not sent, when that is not plain from the status (e.g. its template could not be filled in).
    detail: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
