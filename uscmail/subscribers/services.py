"""Subscriber and list management for organisers, shared by the pages, the JSON API, the CLI and imports.

Services flush but never commit, record an audit event for each change, and never put an address in the audit log.
"""

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from ..bounces import services as bounce_services
from ..extensions import db
from ..models import (
    Consent,
    ConsentMethod,
    MailingList,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from ..organisers import audit
from ..organisers.models import Organiser
from ..subscriptions import services as journey
from ..subscriptions.consent import current_wording
from ..suppression import is_suppressed
from ..validation import InvalidInput, clean_name, normalise_email

PAGE_SIZE_MAX = 200
# Trigram indexes need three characters to narrow anything down.
SUBSTRING_MIN_LENGTH = 3


class ConsentBasis(enum.StrEnum):
    """What an organiser states when adding people: prior consent we can evidence, or none (send a confirmation)."""

    PRIOR_CONSENT = "prior_consent"
    NEEDS_CONFIRMATION = "needs_confirmation"


class AddOutcome(enum.StrEnum):
    """What adding one address did."""

    SUBSCRIBED = "subscribed"
    CONFIRMATION_NEEDED = "confirmation_needed"
    ALREADY_SUBSCRIBED = "already_subscribed"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class SubscriberPage:
    """One page of a keyset-paginated search; pass `next_after` back to get the next page."""

    subscribers: list[Subscriber]
    next_after: int | None


def mailing_list_by_slug(slug: str) -> MailingList:
    """A list by slug (archived ones included); InvalidInput if there is none."""
    mailing_list = db.session.scalar(sa.select(MailingList).where(MailingList.slug == slug))
    if mailing_list is None:
        raise InvalidInput(f"There is no list called {slug!r}.")
    return mailing_list


def search_subscribers(
    query: str = "",
    list_id: int | None = None,
    status: SubscriptionStatus | None = None,
    after: int | None = None,
    limit: int = 50,
) -> SubscriberPage:
    """Newest first, keyset-paginated on id. A query with '@' matches address prefixes; a query of three or more
    characters matches addresses or names containing it; a shorter one matches their beginnings (on PostgreSQL each
    form has an index: see migration 0004)."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    statement = sa.select(Subscriber).order_by(Subscriber.id.desc()).limit(limit + 1)
    query = (query or "").strip().lower()[:320]
    if query:
        pattern = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        if "@" in query:
            statement = statement.where(Subscriber.email.like(pattern + "%", escape="\\"))
        else:
            like = f"%{pattern}%" if len(query) >= SUBSTRING_MIN_LENGTH else f"{pattern}%"
            statement = statement.where(
                sa.or_(Subscriber.email.like(like, escape="\\"), sa.func.lower(Subscriber.name).like(like, escape="\\"))
            )
    if list_id is not None or status is not None:
        membership = sa.select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id)
        if list_id is not None:
            membership = membership.where(Subscription.list_id == list_id)
        if status is not None:
            membership = membership.where(Subscription.status == status)
        statement = statement.where(membership.exists())
    if after is not None:
        statement = statement.where(Subscriber.id < after)
    rows = list(db.session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    return SubscriberPage(rows, rows[-1].id if more and rows else None)


def get_subscriber(subscriber_id: int) -> Subscriber | None:
    """A subscriber by id."""
    return db.session.get(Subscriber, subscriber_id)


def consent_history(subscriber: Subscriber) -> list[Consent]:
    """Every consent record of a subscriber, oldest first."""
    return list(db.session.scalars(subscriber.consents.select().order_by(Consent.id)))


def update_subscriber(subscriber: Subscriber, name: str | None, actor: Organiser | str) -> None:
    """Change a subscriber's name (validated like the signup form)."""
    subscriber.name = clean_name(name)
    audit.record(actor, "subscriber.update", "subscriber", subscriber.id)
    db.session.flush()


def set_subscription(
    subscriber: Subscriber, mailing_list: MailingList, subscribed: bool, actor: Organiser | str
) -> None:
    """Subscribe (confirmed, on the organiser's word) or unsubscribe one subscriber from one list."""
    if subscribed:
        journey.subscribe_confirmed(
            subscriber, mailing_list.id, StatusReason.ORGANISER, ConsentMethod.API, basis="organiser"
        )
        audit.record(actor, "subscription.subscribe", "subscriber", subscriber.id, list=mailing_list.slug)
    else:
        journey.unsubscribe(subscriber.id, [mailing_list.id], StatusReason.ORGANISER)
        audit.record(actor, "subscription.unsubscribe", "subscriber", subscriber.id, list=mailing_list.slug)
    db.session.flush()


def add_subscriber(
    email: str,
    name: str | None,
    lists: list[MailingList],
    basis: ConsentBasis,
    basis_note: str,
    method: ConsentMethod,
    actor: Organiser | str,
) -> tuple[Subscriber | None, AddOutcome]:
    """Add one address to lists. With prior consent it is subscribed at once (the basis is recorded on the consent);
    without, it gets pending subscriptions and the caller queues a confirmation mail after committing.
    Suppressed addresses are refused. Raises InvalidInput for a bad address, name or basis note."""
    address = normalise_email(email)
    display_name = clean_name(name)
    basis_note = (basis_note or "").strip()
    if not basis_note or len(basis_note) > 200:
        raise InvalidInput("State the consent basis for these addresses (up to 200 characters).")
    if is_suppressed(address):
        return None, AddOutcome.SUPPRESSED
    if basis is ConsentBasis.NEEDS_CONFIRMATION:
        result = journey.request_subscription(address, display_name, lists, method, current_wording().version)
        subscriber = db.session.get(Subscriber, result.subscriber_id)
        db.session.execute(
            sa.update(Consent)
            .where(Consent.subscriber_id == subscriber.id, Consent.confirmed_at.is_(None), Consent.basis.is_(None))
            .values(basis=basis_note)
        )
        pending = journey.open_consent_list_ids(subscriber, [m.id for m in lists])
        outcome = AddOutcome.CONFIRMATION_NEEDED if pending else AddOutcome.ALREADY_SUBSCRIBED
    else:
        subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == address))
        if subscriber is None:
            subscriber = Subscriber(email=address, name=display_name)
            db.session.add(subscriber)
            db.session.flush()
        changed = [
            journey.subscribe_confirmed(subscriber, m.id, StatusReason.ORGANISER, method, basis_note) for m in lists
        ]
        outcome = AddOutcome.SUBSCRIBED if any(changed) else AddOutcome.ALREADY_SUBSCRIBED
    audit.record(actor, "subscriber.add", "subscriber", subscriber.id, outcome=outcome.value, basis=basis.value)
    db.session.flush()
    return subscriber, outcome


def erase(subscriber: Subscriber, actor: Organiser | str) -> None:
    """Erase a subscriber (GDPR): personal data gone, suppression HMAC kept; the audit entry holds no address."""
    subscriber_id = subscriber.id
    journey.erase_subscriber(subscriber)
    audit.record(actor, "subscriber.erase", "subscriber", subscriber_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def subject_access_export(subscriber: Subscriber, actor: Organiser | str) -> dict:
    """Everything held about one subscriber, as a JSON-ready dict (GDPR subject access); audited."""
    audit.record(actor, "subscriber.export", "subscriber", subscriber.id)
    return {
        "subscriber": {
            "email": subscriber.email,
            "name": subscriber.name,
            "locale": subscriber.locale,
            "created_at": _iso(subscriber.created_at),
            "updated_at": _iso(subscriber.updated_at),
        },
        "subscriptions": [
            {
                "list": s.mailing_list.slug,
                "list_name": s.mailing_list.name,
                "status": s.status.value,
                "reason": s.status_reason.value,
                "created_at": _iso(s.created_at),
                "confirmed_at": _iso(s.confirmed_at),
                "unsubscribed_at": _iso(s.unsubscribed_at),
            }
            for s in subscriber.subscriptions
        ],
        "consents": [
            {
                "list_id": c.list_id,
                "method": c.method.value,
                "wording_version": c.wording_version,
                "wording_sha256": c.wording_sha256,
                "basis": c.basis,
                "created_at": _iso(c.created_at),
                "confirmed_at": _iso(c.confirmed_at),
                "withdrawn_at": _iso(c.withdrawn_at),
            }
            for c in consent_history(subscriber)
        ],
        "bounces_and_complaints": [
            {
                "kind": b.kind.value,
                "status": b.status,
                "diagnostic": b.diagnostic,
                "campaign_id": b.campaign_id,
                "source": b.source.value,
                "decision": b.decision.value,
                "score": b.score,
                "created_at": _iso(b.created_at),
            }
            for b in bounce_services.subscriber_events(subscriber.id)
        ],
        "note": "USC-UK stores no IP addresses and does not track opens or clicks.",
    }


def list_counts() -> dict[int, dict[str, int]]:
    """Subscriber counts per list and status, from one grouped query."""
    rows = db.session.execute(
        sa.select(Subscription.list_id, Subscription.status, sa.func.count()).group_by(
            Subscription.list_id, Subscription.status
        )
    )
    counts: dict[int, dict[str, int]] = {}
    for list_id, status, count in rows:
        counts.setdefault(list_id, {s.value: 0 for s in SubscriptionStatus})[status.value] = count
    return counts


@dataclass(frozen=True)
class WeekActivity:
    """Subscriptions started and ended in one week (Monday 00:00 UTC onwards)."""

    week_start: date
    signups: int
    unsubscribes: int


def _weekly_counts(column, boundaries: list[datetime]) -> list[int]:
    """How many rows have `column` in each [boundaries[i], boundaries[i + 1]), grouped in SQL; portable."""
    week = sa.case(*((column < end, index) for index, end in enumerate(boundaries[1:-1])), else_=len(boundaries) - 2)
    # A labelled subquery, so PostgreSQL groups by the same expression it selects (bound values differ otherwise).
    weeks = sa.select(week.label("week")).where(column >= boundaries[0], column < boundaries[-1]).subquery()
    rows = db.session.execute(sa.select(weeks.c.week, sa.func.count()).group_by(weeks.c.week))
    counts = [0] * (len(boundaries) - 1)
    for index, count in rows:
        counts[index] = count
    return counts


def weekly_activity(weeks: int = 12, now: datetime | None = None) -> list[WeekActivity]:
    """Subscriptions created (signups) and ended (unsubscribes) per week for the last `weeks` weeks, oldest first;
    the current, partial week is last."""
    weeks = max(2, weeks)
    now = (now or utcnow()).astimezone(UTC)
    this_monday = datetime.combine(now.date() - timedelta(days=now.weekday()), time(), tzinfo=UTC)
    boundaries = [this_monday - timedelta(weeks=weeks - 1 - index) for index in range(weeks + 1)]
    signups = _weekly_counts(Subscription.created_at, boundaries)
    unsubscribes = _weekly_counts(Subscription.unsubscribed_at, boundaries)
    return [WeekActivity(boundaries[index].date(), signups[index], unsubscribes[index]) for index in range(weeks)]


def subscriptions_of(subscriber_ids: list[int]) -> dict[int, list[Subscription]]:
    """The subscriptions (with their lists) of several subscribers, from one query, keyed by subscriber id."""
    found: dict[int, list[Subscription]] = {subscriber_id: [] for subscriber_id in subscriber_ids}
    if subscriber_ids:
        statement = (
            sa.select(Subscription).where(Subscription.subscriber_id.in_(subscriber_ids)).order_by(Subscription.list_id)
        )
        for subscription in db.session.scalars(statement):
            found[subscription.subscriber_id].append(subscription)
    return found


def unsubscribe_from(subscriber: Subscriber, lists: list[MailingList] | None, actor: Organiser | str) -> list[str]:
    """Unsubscribe on an organiser's word from these lists (every list if None); returns the slugs actually left."""
    list_ids = None if lists is None else [m.id for m in lists]
    left = set(journey.unsubscribe(subscriber.id, list_ids, StatusReason.ORGANISER))
    slugs = sorted(s.mailing_list.slug for s in subscriber.subscriptions if s.list_id in left)
    if slugs:
        audit.record(actor, "subscription.unsubscribe", "subscriber", subscriber.id, lists=slugs)
    db.session.flush()
    return slugs
