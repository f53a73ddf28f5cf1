"""Export subscribers with their list memberships as CSV, streamed in batches; filtered, audited, formula-safe."""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .. import liveness
from ..extensions import db
from ..models import MailingList, Subscriber, Subscription, SubscriptionStatus
from ..organisers import audit
from ..organisers.models import Organiser
from .services import spreadsheet_safe

BATCH_SIZE = 1000
LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class ExportFilter:
    """Who is exported: people with a subscription on one of `list_ids` (any list if empty) in `status` (any if
    None), who joined between `joined_from` and `joined_to` (London dates, both included, either open)."""

    list_ids: tuple[int, ...] = ()
    status: SubscriptionStatus | None = None
    joined_from: date | None = None
    joined_to: date | None = None

    def conditions(self) -> list:
        """WHERE conditions on Subscriber for this filter."""
        found = []
        if self.list_ids or self.status is not None:
            membership = sa.select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id)
            if self.list_ids:
                membership = membership.where(Subscription.list_id.in_(self.list_ids))
            if self.status is not None:
                membership = membership.where(Subscription.status == self.status)
            found.append(membership.exists())
        if self.joined_from is not None:
            found.append(Subscriber.created_at >= _london_midnight(self.joined_from))
        if self.joined_to is not None:
            found.append(Subscriber.created_at < _london_midnight(self.joined_to + timedelta(days=1)))
        return found

    def described(self, slugs: list[str]) -> dict:
        """The filter for the audit log (list slugs, status, dates): what was asked for, never who came out."""
        return {
            "lists": slugs,
            "status": self.status.value if self.status else "any",
            "joined_from": self.joined_from.isoformat() if self.joined_from else None,
            "joined_to": self.joined_to.isoformat() if self.joined_to else None,
        }


def _london_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), LONDON).astimezone(UTC)


def _columns(chosen: ExportFilter) -> list[tuple[int, str]]:
    """(id, slug) of the lists that get a status column: the chosen lists, or every list."""
    statement = sa.select(MailingList.id, MailingList.slug).order_by(MailingList.id)
    if chosen.list_ids:
        statement = statement.where(MailingList.id.in_(chosen.list_ids))
    return [(list_id, slug) for list_id, slug in db.session.execute(statement)]


def count_matching(chosen: ExportFilter) -> int:
    """How many subscribers the filter exports."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber).where(*chosen.conditions()))


def record_export(actor: Organiser | str, chosen: ExportFilter | None = None) -> int:
    """Audit an export (its filter and the number of subscribers, never addresses); return that number. The caller
    commits before streaming."""
    chosen = chosen or ExportFilter()
    count = count_matching(chosen)
    details = {"subscribers": count}
    if chosen != ExportFilter():
        details |= chosen.described([slug for _, slug in _columns(chosen)])
    audit.record(actor, "subscribers.export", None, None, **details)
    db.session.flush()
    return count


def _rows(chosen: ExportFilter) -> Iterator[list[list[str]]]:
    """The header, then batches of rows: email, name, locale, created_at, then one status column per list."""
    lists = _columns(chosen)
    column = {list_id: index for index, (list_id, _) in enumerate(lists)}
    conditions = chosen.conditions()
    yield [["email", "name", "locale", "created_at", *(slug for _, slug in lists)]]
    after = 0
    while True:
        subscribers = db.session.execute(
            sa.select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.locale, Subscriber.created_at)
            .where(Subscriber.id > after, *conditions)
            .order_by(Subscriber.id)
            .limit(BATCH_SIZE)
        ).all()
        if not subscribers:
            return
        ids = [s.id for s in subscribers]
        statuses: dict[int, list[str]] = {subscriber_id: [""] * len(lists) for subscriber_id in ids}
        memberships = db.session.execute(
            sa.select(Subscription.subscriber_id, Subscription.list_id, Subscription.status).where(
                Subscription.subscriber_id.in_(ids)
            )
        )
        for subscriber_id, list_id, status in memberships:
            if list_id in column:
                statuses[subscriber_id][column[list_id]] = status.value
        yield [[s.email, s.name, s.locale, s.created_at.isoformat(), *statuses[s.id]] for s in subscribers]
        after = ids[-1]
        db.session.rollback()  # end the read transaction between batches; nothing is held for the whole export


def export_chunks(chosen: ExportFilter | None = None) -> Iterator[str]:
    """The export as CSV text, one chunk per batch of subscribers (for a streamed response). Each batch tells the
    web server the response is still making progress: a million subscribers take longer than its timeout."""
    for batch in _rows(chosen or ExportFilter()):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in batch)
        liveness.still_working()
        yield buffer.getvalue()


def write_export(out: TextIO, chosen: ExportFilter | None = None) -> int:
    """Write the export to a text file; return the number of subscribers written."""
    count = -1
    writer = csv.writer(out)
    for batch in _rows(chosen or ExportFilter()):
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in batch)
        count += len(batch)
    return count
