"""The set-based part of an import: temporary staging tables, validation into them, classification, bulk writes."""

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

import sqlalchemy as sa

from ..extensions import db
from ..inputguard import UNSTORABLE
from ..models import (
    Consent,
    ConsentMethod,
    ConsentWording,
    MailingList,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    UTCDateTime,
    new_public_id,
)
from ..subscribers.services import ConsentBasis
from ..suppression import address_hmac
from ..validation import InvalidInput, clean_name, normalise_email
from .reader import read_records

UNSTORABLE_ROW = "The row holds a character that can't be stored (a NUL byte or a broken one)."

BATCH_SIZE = 1000


class SkipReason(enum.StrEnum):
    """Why a row (or a row for one list) was not imported; the report's `reason` column."""

    UNREADABLE = "unreadable_row"
    INVALID_ADDRESS = "invalid_address"
    INVALID_NAME = "invalid_name"
    DUPLICATE = "duplicate_in_file"
    SUPPRESSED = "suppressed"
    ALREADY_SUBSCRIBED = "already_subscribed"
    UNSUBSCRIBED = "unsubscribed_earlier"


def staging_tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    """Temporary tables private to this import's connection, with names of their own."""
    suffix = secrets.token_hex(6)
    metadata = sa.MetaData()
    rows = sa.Table(
        f"import_rows_{suffix}",
        metadata,
        sa.Column("row", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(320), nullable=False, index=True),
        sa.Column("name", sa.String(200)),
        sa.Column("email_hmac", sa.String(64), nullable=False),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("subscriber_id", sa.Integer),
        prefixes=["TEMPORARY"],
    )
    skipped = sa.Table(
        f"import_skipped_{suffix}",
        metadata,
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("list_slug", sa.String(64)),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("other_row", sa.Integer),
        prefixes=["TEMPORARY"],
    )
    changes = sa.Table(
        f"import_changes_{suffix}",
        metadata,
        sa.Column("row", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("list_id", sa.Integer, primary_key=True, autoincrement=False),
        prefixes=["TEMPORARY"],
    )
    return rows, skipped, changes


def analyze(table: sa.Table) -> None:
    """Give PostgreSQL's planner statistics for a staging table; autovacuum never visits temporary tables."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text(f"ANALYZE {table.name}"))


def drop(*tables: sa.Table) -> None:
    """Drop the staging tables; after a database error PostgreSQL drops them with the caller's rollback instead."""
    for table in tables:
        try:
            table.drop(db.session.connection(), checkfirst=True)
        except sa.exc.DBAPIError:
            return


def stage(file: BinaryIO, rows: sa.Table, skipped: sa.Table, progress: Callable[[int, int], None] | None) -> int:
    """Pass one: validate every row into the staging tables; return the number of data rows read."""
    counter, records = read_records(file)
    staged: list[dict] = []
    rejected: list[dict] = []
    read = 0

    def flush() -> None:
        if staged:
            db.session.execute(rows.insert(), staged)
            staged.clear()
        if rejected:
            db.session.execute(skipped.insert(), rejected)
            rejected.clear()
        if progress is not None:
            progress(counter.bytes_read, read)

    for record in records:
        read += 1
        if record.problem:
            rejected.append(_skip(record.row, None, SkipReason.UNREADABLE, record.problem))
        elif UNSTORABLE.search(record.email or "") or UNSTORABLE.search(record.name or ""):
            # Not even the report can hold it (PostgreSQL refuses NUL in text): the row is skipped, unquoted.
            rejected.append(_skip(record.row, None, SkipReason.UNREADABLE, UNSTORABLE_ROW))
        else:
            try:
                email = normalise_email(record.email)
            except InvalidInput as exc:
                rejected.append(_skip(record.row, record.email[:320], SkipReason.INVALID_ADDRESS, str(exc)))
            else:
                try:
                    name = clean_name(record.name)
                except InvalidInput as exc:
                    rejected.append(_skip(record.row, email, SkipReason.INVALID_NAME, str(exc)))
                else:
                    staged.append(
                        {
                            "row": record.row,
                            "email": email,
                            "name": name,
                            "email_hmac": address_hmac(email),
                            "public_id": new_public_id(),
                            "nonce": secrets.token_urlsafe(16),
                            "subscriber_id": None,
                        }
                    )
        if len(staged) >= BATCH_SIZE or len(rejected) >= BATCH_SIZE:
            flush()
    flush()
    return read


def _skip(row: int, email: str | None, reason: SkipReason, detail: str | None) -> dict:
    return {"row": row, "email": email, "list_slug": None, "reason": reason.value, "detail": detail, "other_row": None}


def classify(rows: sa.Table, skipped: sa.Table, changes: sa.Table, lists: list[MailingList]) -> None:
    """Pass two, touching only the staging tables: report duplicates, suppressed and already-subscribed rows; fill
    `changes` with the (row, list) pairs to subscribe."""
    execute = db.session.execute
    earlier = rows.alias("earlier")
    first_row = (
        sa.select(sa.func.min(earlier.c.row))
        .where(earlier.c.email == rows.c.email, earlier.c.row < rows.c.row)
        .scalar_subquery()
    )
    execute(
        skipped.insert().from_select(
            ["row", "email", "reason", "other_row"],
            sa.select(rows.c.row, rows.c.email, sa.literal(SkipReason.DUPLICATE.value), first_row).where(
                first_row.is_not(None)
            ),
        )
    )
    execute(sa.delete(rows).where(sa.exists().where(earlier.c.email == rows.c.email, earlier.c.row < rows.c.row)))
    suppressed = rows.c.email_hmac.in_(sa.select(Suppression.address_hmac))
    execute(
        skipped.insert().from_select(
            ["row", "email", "reason"],
            sa.select(rows.c.row, rows.c.email, sa.literal(SkipReason.SUPPRESSED.value)).where(suppressed),
        )
    )
    execute(sa.delete(rows).where(suppressed))
    _link_subscribers(rows)
    for mailing_list in lists:
        for status, reason in (
            (SubscriptionStatus.CONFIRMED, SkipReason.ALREADY_SUBSCRIBED),
            (SubscriptionStatus.UNSUBSCRIBED, SkipReason.UNSUBSCRIBED),
        ):
            execute(
                skipped.insert().from_select(
                    ["row", "email", "list_slug", "reason"],
                    sa.select(rows.c.row, rows.c.email, sa.literal(mailing_list.slug), sa.literal(reason.value)).where(
                        _has_subscription(rows, mailing_list.id, [status])
                    ),
                )
            )
        settled = [SubscriptionStatus.CONFIRMED, SubscriptionStatus.UNSUBSCRIBED]
        execute(
            changes.insert().from_select(
                ["row", "list_id"],
                sa.select(rows.c.row, sa.literal(mailing_list.id)).where(
                    ~_has_subscription(rows, mailing_list.id, settled)
                ),
            )
        )


def _has_subscription(rows: sa.Table, list_id: int, statuses: list[SubscriptionStatus]) -> sa.ColumnElement[bool]:
    return (
        sa.select(Subscription.id)
        .where(
            Subscription.subscriber_id == rows.c.subscriber_id,
            Subscription.list_id == list_id,
            Subscription.status.in_(statuses),
        )
        .exists()
    )


def _link_subscribers(rows: sa.Table) -> None:
    existing = sa.select(Subscriber.id).where(Subscriber.email == rows.c.email).scalar_subquery()
    db.session.execute(sa.update(rows).where(rows.c.subscriber_id.is_(None)).values(subscriber_id=existing))


@dataclass(frozen=True)
class ImportWrite:
    """What pass two writes with: the staged rows, the changes classified from them, and the consent they carry."""

    rows: sa.Table  # the staging table: one row per file line, with its subscriber id once linked
    changes: sa.Table  # (row, list_id) pairs that change something
    basis: ConsentBasis
    basis_note: str
    wording: ConsentWording
    now: datetime

    @property
    def confirmed(self) -> bool:
        """Prior consent: subscribed at once, no confirmation mail."""
        return self.basis is ConsentBasis.PRIOR_CONSENT

    @property
    def at(self) -> sa.ColumnElement:
        """The import's time as a literal for INSERT ... SELECT."""
        return sa.literal(self.now, UTCDateTime())

    @property
    def confirmed_at(self) -> sa.ColumnElement:
        """When the rows written are confirmed: now with prior consent, else not yet."""
        return self.at if self.confirmed else sa.null().cast(UTCDateTime())

    def changed_subscribers(self) -> sa.Select:
        """The subscriber ids of the rows that change something (subscribers linked first)."""
        return sa.select(self.rows.c.subscriber_id).join(self.changes, self.changes.c.row == self.rows.c.row)


def write_rows(
    rows: sa.Table,
    changes: sa.Table,
    lists: list[MailingList],
    basis: ConsentBasis,
    basis_note: str,
    wording: ConsentWording,
    now: datetime,
) -> None:
    """Pass two, writing: new subscribers, then per list the subscriptions and one consent row per change."""
    write = ImportWrite(rows, changes, basis, basis_note, wording, now)
    _insert_new_subscribers(write)
    _link_subscribers(rows)
    if not write.confirmed:
        _give_confirm_nonces(write)
    for mailing_list in lists:
        if write.confirmed:
            _confirm_pending(write, mailing_list)
        _insert_subscriptions(write, mailing_list)
        _insert_consents(write, mailing_list)
    db.session.flush()


def _insert_new_subscribers(write: ImportWrite) -> None:
    """A subscriber for every changing row whose address is new."""
    rows = write.rows
    db.session.execute(
        sa.insert(Subscriber).from_select(
            ["public_id", "email", "name", "locale", "confirm_nonce", "created_at", "updated_at"],
            sa.select(
                rows.c.public_id,
                rows.c.email,
                rows.c.name,
                sa.literal("en"),
                sa.null() if write.confirmed else rows.c.nonce,
                write.at,
                write.at,
            ).where(rows.c.subscriber_id.is_(None), rows.c.row.in_(sa.select(write.changes.c.row))),
        )
    )


def _give_confirm_nonces(write: ImportWrite) -> None:
    """A confirmation link needs a nonce; existing subscribers keep theirs if they have one."""
    nonce = sa.select(write.rows.c.nonce).where(write.rows.c.subscriber_id == Subscriber.id).scalar_subquery()
    db.session.execute(
        sa.update(Subscriber)
        .where(Subscriber.confirm_nonce.is_(None), Subscriber.id.in_(write.changed_subscribers()))
        .values(confirm_nonce=nonce)
    )


def _confirm_pending(write: ImportWrite, mailing_list: MailingList) -> None:
    """With prior consent, a pending subscription to the list becomes confirmed."""
    in_list = write.changed_subscribers().where(write.changes.c.list_id == mailing_list.id)
    db.session.execute(
        sa.update(Subscription)
        .where(
            Subscription.list_id == mailing_list.id,
            Subscription.status == SubscriptionStatus.PENDING,
            Subscription.subscriber_id.in_(in_list),
        )
        .values(
            status=SubscriptionStatus.CONFIRMED,
            status_reason=StatusReason.ORGANISER,
            confirmed_at=write.now,
            unsubscribed_at=None,
            updated_at=write.now,
        )
    )


def _insert_subscriptions(write: ImportWrite, mailing_list: MailingList) -> None:
    """A subscription to the list for every changing row that has none (confirmed or pending by the basis)."""
    rows, changes = write.rows, write.changes
    status = SubscriptionStatus.CONFIRMED if write.confirmed else SubscriptionStatus.PENDING
    has_row = (
        sa.select(Subscription.id)
        .where(Subscription.subscriber_id == rows.c.subscriber_id, Subscription.list_id == mailing_list.id)
        .exists()
    )
    db.session.execute(
        sa.insert(Subscription).from_select(
            ["subscriber_id", "list_id", "status", "status_reason", "created_at", "confirmed_at", "updated_at"],
            sa.select(
                rows.c.subscriber_id,
                sa.literal(mailing_list.id),
                sa.literal(status.value),
                sa.literal(StatusReason.ORGANISER.value),
                write.at,
                write.confirmed_at,
                write.at,
            )
            .join(changes, changes.c.row == rows.c.row)
            .where(changes.c.list_id == mailing_list.id, ~has_row),
        )
    )


def _insert_consents(write: ImportWrite, mailing_list: MailingList) -> None:
    """One consent row per change to the list: the import, the wording shown, the organiser's stated basis."""
    rows, changes = write.rows, write.changes
    columns = ["subscriber_id", "list_id", "method", "wording_version", "wording_sha256", "basis", "created_at"]
    db.session.execute(
        sa.insert(Consent).from_select(
            [*columns, "confirmed_at"],
            sa.select(
                rows.c.subscriber_id,
                sa.literal(mailing_list.id),
                sa.literal(ConsentMethod.IMPORT.value),
                sa.literal(write.wording.version),
                sa.literal(write.wording.sha256),
                sa.literal(write.basis_note),
                write.at,
                write.confirmed_at,
            )
            .join(changes, changes.c.row == rows.c.row)
            .where(changes.c.list_id == mailing_list.id),
        )
    )
