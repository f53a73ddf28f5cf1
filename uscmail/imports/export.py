"""Export every subscriber with their list memberships as CSV, streamed in batches; audited, formula-safe."""

import csv
import io
from collections.abc import Iterator
from typing import TextIO

import sqlalchemy as sa

from ..extensions import db
from ..models import MailingList, Subscriber, Subscription
from ..organisers import audit
from ..organisers.models import Organiser
from .services import spreadsheet_safe

BATCH_SIZE = 1000


def record_export(actor: Organiser | str) -> None:
    """Audit an export (with the number of subscribers, never addresses); the caller commits before streaming."""
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
    audit.record(actor, "subscribers.export", None, None, subscribers=count)
    db.session.flush()


def _rows() -> Iterator[list[list[str]]]:
    """The header, then batches of rows: email, name, locale, created_at, then one status column per list."""
    lists = list(db.session.execute(sa.select(MailingList.id, MailingList.slug).order_by(MailingList.id)))
    column = {list_id: index for index, (list_id, _) in enumerate(lists)}
    yield [["email", "name", "locale", "created_at", *(slug for _, slug in lists)]]
    after = 0
    while True:
        subscribers = db.session.execute(
            sa.select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.locale, Subscriber.created_at)
            .where(Subscriber.id > after)
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


def export_chunks() -> Iterator[str]:
    """The export as CSV text, one chunk per batch of subscribers (for a streamed response)."""
    for batch in _rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in batch)
        yield buffer.getvalue()


def write_export(out: TextIO) -> int:
    """Write the export to a text file; return the number of subscribers written."""
    count = -1
    writer = csv.writer(out)
    for batch in _rows():
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in batch)
        count += len(batch)
    return count
