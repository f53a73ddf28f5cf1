"""What the organisers' home page shows: the work waiting for someone, as counts with links.

Campaigns by the state that needs attention (drafts to finish, scheduled, sending or paused), the next protest with
its reminders, events that cannot send (on hold, or no time set), dry runs waiting to be imported, and the number of
subscribers. A handful of counting queries; nothing here changes anything.
"""

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..campaigns.models import Campaign, CampaignStatus
from ..extensions import db
from ..imports.models import ImportJob, ImportStatus
from ..models import Subscription, SubscriptionStatus
from ..reminders import services as events
from ..reminders.models import Event
from ..reminders.schedule import Occurrence
from .models import Organiser


@dataclass(frozen=True)
class NextProtest:
    """The soonest protest of an active event, and each of its reminders: when it is due and whether it went."""

    event: Event
    occurrence: Occurrence
    reminders: list[tuple[datetime, str]]  # (due at, "sent" | "late" | "skipped" | "cancelled" | "to come")


@dataclass
class Overview:
    """Counts for the home page."""

    campaigns: dict[str, int]  # by status value
    next_scheduled: datetime | None
    next_protest: NextProtest | None
    events_on_hold: list[Event] = field(default_factory=list)
    events_without_time: list[Event] = field(default_factory=list)
    dry_runs_waiting: list[ImportJob] = field(default_factory=list)
    confirmed: int = 0
    pending: int = 0


def _campaign_counts() -> dict[str, int]:
    statement = sa.select(Campaign.status, sa.func.count()).group_by(Campaign.status)
    counts = dict.fromkeys((status.value for status in CampaignStatus), 0)
    counts.update({status.value: count for status, count in db.session.execute(statement)})
    return counts


def _next_protest(active: list[Event]) -> NextProtest | None:
    soonest = None
    for event in active:
        occurrence = events.next_occurrence(event)
        if occurrence is not None and (soonest is None or occurrence.starts_at < soonest[1].starts_at):
            soonest = (event, occurrence)
    if soonest is None:
        return None
    event, occurrence = soonest
    reminders = [
        (planned.time.due_at, planned.reminder.status.value if planned.reminder else "to come")
        for found, times in events.upcoming_with_reminders(event)
        if found.date == occurrence.date
        for planned in times
    ]
    return NextProtest(event, occurrence, reminders)


def home_overview(organiser: Organiser) -> Overview:
    """What the home page shows this organiser (their own dry runs waiting for "Import for real")."""
    campaigns = _campaign_counts()
    next_scheduled = db.session.scalar(
        sa.select(sa.func.min(Campaign.scheduled_at)).where(Campaign.status == CampaignStatus.SCHEDULED)
    )
    all_events = events.all_events()
    active = [event for event in all_events if not event.on_hold and event.start_time is not None]
    subscriptions = dict(
        db.session.execute(
            sa.select(Subscription.status, sa.func.count(sa.distinct(Subscription.subscriber_id)))
            .where(Subscription.status.in_([SubscriptionStatus.CONFIRMED, SubscriptionStatus.PENDING]))
            .group_by(Subscription.status)
        ).all()
    )
    dry_runs = db.session.scalars(
        sa.select(ImportJob)
        .where(
            ImportJob.organiser_id == organiser.id,
            ImportJob.dry_run.is_(True),
            ImportJob.status == ImportStatus.DONE,
            ImportJob.upload_name.is_not(None),
        )
        .order_by(ImportJob.id.desc())
        .limit(3)
    ).all()
    return Overview(
        campaigns=campaigns,
        next_scheduled=next_scheduled,
        next_protest=_next_protest(active),
        events_on_hold=[event for event in all_events if event.on_hold],
        events_without_time=[event for event in all_events if not event.on_hold and event.start_time is None],
        dry_runs_waiting=list(dry_runs),
        confirmed=subscriptions.get(SubscriptionStatus.CONFIRMED, 0),
        pending=subscriptions.get(SubscriptionStatus.PENDING, 0),
    )
