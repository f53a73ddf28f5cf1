"""Import subscribers from a CSV file, in two passes inside one transaction.

Pass one streams the file into a temporary staging table, validating each row; an encoding error anywhere in the file
stops the import before any real table is touched. Pass two classifies the staged rows with set-based SQL (duplicates,
suppressed, already subscribed, unsubscribed earlier) and writes subscribers, subscriptions and consents with
INSERT ... SELECT. A dry run does pass one and the classification, then drops the staging tables. Like every service,
this flushes and never commits; the caller commits, and the confirmation mails that `queue_confirmation_mails` asks
for are queued by that commit (uscmail/queueing.py).
"""

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, TextIO

import sqlalchemy as sa

from ..extensions import db
from ..models import (
    Consent,
    ConsentMethod,
    MailingList,
    Subscriber,
    utcnow,
)
from ..organisers import audit
from ..organisers.models import Organiser
from ..queueing import after_commit
from ..subscribers.services import ConsentBasis, mailing_list_by_slug
from ..subscriptions import services as journey
from ..subscriptions.consent import current_wording
from ..subscriptions.tasks import send_signup_mail
from ..validation import InvalidInput
from . import bulk
from .bulk import SkipReason
from .reader import ImportFileError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")


REASON_TEXT = {
    SkipReason.SUPPRESSED: "on the do-not-mail list (erased, complained or bounced); never imported",
    SkipReason.ALREADY_SUBSCRIBED: "already subscribed to this list",
    SkipReason.UNSUBSCRIBED: "unsubscribed from this list earlier; an import does not subscribe them again",
}


# What the organiser pages call the report's reasons and the consent bases (the CSV report keeps the codes).
SKIP_LABELS = {
    SkipReason.UNREADABLE: "Row could not be read",
    SkipReason.INVALID_ADDRESS: "Not a valid email address",
    SkipReason.INVALID_NAME: "Name could not be used",
    SkipReason.DUPLICATE: "Appears twice in the file",
    SkipReason.SUPPRESSED: "On the do-not-mail list",
    SkipReason.ALREADY_SUBSCRIBED: "Already subscribed",
    SkipReason.UNSUBSCRIBED: "Unsubscribed earlier",
}
BASIS_LABELS = {
    ConsentBasis.PRIOR_CONSENT: "Already consented elsewhere",
    ConsentBasis.NEEDS_CONFIRMATION: "Asked to confirm by email",
}


def list_names(slugs: Iterable[str]) -> list[str]:
    """The names of the lists with these slugs, in the given order (a slug no longer found is shown as it is)."""
    statement = sa.select(MailingList.slug, MailingList.name).where(MailingList.slug.in_(slugs))
    names = {slug: name for slug, name in db.session.execute(statement)}
    return [names.get(slug, slug) for slug in slugs]


class ImportConflict(RuntimeError):
    """The database changed under the import (an address signed up meanwhile); nothing was imported, run it again."""


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, for a dry run, would do)."""

    rows: int
    imported: int
    new_subscribers: int
    subscriptions: int
    skipped: dict[str, int]
    dry_run: bool
    basis: ConsentBasis
    started_at: datetime

    def summary(self) -> str:
        """One line per count, for the CLI and the job page."""
        verb = "would be" if self.dry_run else "were"
        action = "subscribed" if self.basis is ConsentBasis.PRIOR_CONSENT else "sent a confirmation request"
        lines = [
            f"rows read: {self.rows}",
            f"rows that {verb} {action}: {self.imported}",
            f"new subscribers: {self.new_subscribers}",
            f"subscriptions added or changed: {self.subscriptions}",
        ]
        lines += [f"skipped ({reason}): {count}" for reason, count in sorted(self.skipped.items())]
        return "\n".join(lines)


def spreadsheet_safe(value: object) -> str:
    """A cell value that spreadsheet programs will not run as a formula: risky first characters get a `'` prefix."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def resolve_lists(slugs: Iterable[str]) -> list[MailingList]:
    """The lists to import into, by slug; InvalidInput for none, an unknown or an archived list."""
    lists = [mailing_list_by_slug(slug) for slug in dict.fromkeys(slugs)]
    if not lists:
        raise InvalidInput("Choose at least one list to import into.")
    archived = [m.slug for m in lists if m.archived]
    if archived:
        raise InvalidInput(f"The list {archived[0]!r} is archived; nobody can be added to it.")
    return lists


def importable_lists() -> list[MailingList]:
    """Lists an import may add people to (every list that is not archived)."""
    statement = sa.select(MailingList).where(MailingList.archived.is_(False)).order_by(MailingList.id)
    return list(db.session.scalars(statement))


def check_basis_note(note: str | None) -> str:
    """The stated consent basis, trimmed; InvalidInput if blank or over 200 characters."""
    note = (note or "").strip()
    if not note or len(note) > 200:
        raise InvalidInput("State the consent basis for these addresses (up to 200 characters).")
    return note


def import_subscribers(
    file: BinaryIO,
    lists: list[MailingList],
    basis: ConsentBasis,
    basis_note: str,
    actor: Organiser | str,
    dry_run: bool = False,
    report: TextIO | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import a CSV file (header with `email`, optional `name`) into lists; write skipped rows to `report`.

    Raises ImportFileError (nothing written) for a file that cannot be read as a whole, InvalidInput for a bad note,
    ImportConflict if an address signed up meanwhile. `progress(bytes_read, rows)` is called after each batch.
    """
    basis_note = check_basis_note(basis_note)
    wording = current_wording()
    now = utcnow()
    rows, skipped, changes = bulk.staging_tables()
    connection = db.session.connection()
    for table in (rows, skipped, changes):
        table.create(connection)
    try:
        read = bulk.stage(file, rows, skipped, progress)
        bulk.analyze(rows)
        bulk.classify(rows, skipped, changes, lists)
        imported = db.session.scalar(sa.select(sa.func.count(sa.distinct(changes.c.row))))
        subscriptions = db.session.scalar(sa.select(sa.func.count()).select_from(changes))
        new_subscribers = db.session.scalar(
            sa.select(sa.func.count()).select_from(rows).where(rows.c.subscriber_id.is_(None))
        )
        counts = dict(db.session.execute(sa.select(skipped.c.reason, sa.func.count()).group_by(skipped.c.reason)).all())
        if report is not None:
            write_report(skipped, report)
        if not dry_run:
            try:
                bulk.write_rows(rows, changes, lists, basis, basis_note, wording, now)
            except sa.exc.IntegrityError:
                raise ImportConflict(
                    "Someone signed up with one of these addresses while the file was being imported; nothing was "
                    "imported. Please run the import again."
                ) from None
    finally:
        bulk.drop(rows, skipped, changes)
    result = ImportResult(read, imported, new_subscribers, subscriptions, counts, dry_run, basis, now)
    if not dry_run:
        audit.record(
            actor,
            "subscribers.import",
            None,
            None,
            lists=[m.slug for m in lists],
            basis=basis.value,
            note=basis_note,
            rows=read,
            imported=imported,
            new_subscribers=new_subscribers,
            subscriptions=subscriptions,
            skipped=counts,
        )
        db.session.flush()
    return result


def write_report(skipped: sa.Table, out: TextIO) -> None:
    """The skipped rows as CSV, in file order: row, email, list, reason, detail; formula-safe cells."""
    writer = csv.writer(out)
    writer.writerow(["row", "email", "list", "reason", "detail"])
    statement = sa.select(skipped).order_by(skipped.c.row, skipped.c.list_slug).execution_options(yield_per=1000)
    for entry in db.session.connection().execute(statement):
        if entry.reason == SkipReason.DUPLICATE:
            detail = f"same address as row {entry.other_row}"
        else:
            detail = entry.detail or REASON_TEXT.get(SkipReason(entry.reason), "")
        cells = [entry.row, entry.email, entry.list_slug, entry.reason, detail]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])


def queue_confirmation_mails(result: ImportResult) -> int:
    """Queue, for after the caller's commit, one confirmation mail per subscriber the import left awaiting
    confirmation (within the per-address limit); return how many were queued."""
    if result.dry_run or result.basis is not ConsentBasis.NEEDS_CONFIRMATION or not result.subscriptions:
        return 0
    statement = (
        sa.select(Consent.subscriber_id, Consent.list_id, Subscriber.email)
        .join(Subscriber, Subscriber.id == Consent.subscriber_id)
        .where(
            Consent.method == ConsentMethod.IMPORT,
            Consent.created_at == result.started_at,
            Consent.confirmed_at.is_(None),
        )
        .order_by(Consent.subscriber_id, Consent.list_id)
        .execution_options(yield_per=1000)
    )
    groups: dict[int, list[int]] = {}
    for subscriber_id, list_id, _email in db.session.execute(statement):
        groups.setdefault(subscriber_id, []).append(list_id)
    allowed = [
        (subscriber_id, ids) for subscriber_id, ids in groups.items() if journey.claim_signup_mail(subscriber_id)
    ]
    for subscriber_id, ids in allowed:
        after_commit(send_signup_mail, subscriber_id, ids)
    return len(allowed)


__all__ = ["ImportFileError", "ImportConflict", "ImportResult", "import_subscribers", "queue_confirmation_mails"]
