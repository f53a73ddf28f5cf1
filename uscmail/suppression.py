"""The suppression list: addresses that must never be mailed again (erased, complained, bounced hard).

An address is kept only as a keyed HMAC of its normalised form, so the list cannot be read back into addresses.
Every feature that mails, imports or adds subscribers checks it here.
"""

import hashlib
import hmac

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db
from .models import Suppression, SuppressionReason, utcnow


def address_hmac(email: str) -> str:
    """Keyed HMAC of a normalised address, the only form in which suppressed addresses are kept."""
    key = current_app.config["SUPPRESSION_KEY"].encode()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def suppression_reason(email: str) -> SuppressionReason | None:
    """Why a normalised address is on the suppression list, or None if it is not."""
    return suppression_reasons([email]).get(email)


def suppression_reasons(emails: list[str]) -> dict[str, SuppressionReason]:
    """Why each of these normalised addresses is on the suppression list, for those that are (one query)."""
    by_hmac = {address_hmac(email): email for email in emails}
    query = sa.select(Suppression.address_hmac, Suppression.reason).where(Suppression.address_hmac.in_(by_hmac))
    return {by_hmac[digest]: reason for digest, reason in db.session.execute(query)}


def is_suppressed(email: str) -> bool:
    """True if the normalised address must not be mailed (nor imported, nor added by an organiser)."""
    return suppression_reason(email) is not None


def suppress(email: str, reason: SuppressionReason) -> bool:
    """Add a normalised address to the suppression list; False if it was already there (even if another
    transaction has just added it)."""
    return bool(suppress_all({email: reason}))


# Built once, and executed with the rows as parameters (not .values(rows)), so the compiled statement is cached
# whatever their number; SQLAlchemy still sends the rows as one multi-row INSERT ("insertmanyvalues").
UPSERTS = {
    name: insert(Suppression)
    .on_conflict_do_nothing(index_elements=["address_hmac"])
    .returning(Suppression.address_hmac)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def suppress_all(reasons: dict[str, SuppressionReason]) -> set[str]:
    """Add normalised addresses to the suppression list in one statement; returns those that were not there."""
    if not reasons:
        return set()
    now = utcnow()
    by_digest = {address_hmac(email): email for email in reasons}
    rows = [
        {"address_hmac": digest, "reason": reasons[email], "created_at": now} for digest, email in by_digest.items()
    ]
    upsert = UPSERTS.get(db.session.get_bind().dialect.name)
    if upsert is None:  # another database: look, then insert what is missing
        present = suppressed_among(set(reasons))
        rows = [row for row in rows if by_digest[row["address_hmac"]] not in present]
        if rows:
            db.session.execute(sa.insert(Suppression), rows)
        return {by_digest[row["address_hmac"]] for row in rows}
    db.session.flush()  # what the session holds goes first, as db.session.execute would do it
    return {by_digest[digest] for digest in db.session.connection().scalars(upsert, rows)}


SUPPRESSED_AMONG = sa.select(Suppression.address_hmac).where(
    Suppression.address_hmac.in_(sa.bindparam("digests", expanding=True))
)


def suppressed_among(emails: set[str]) -> set[str]:
    """Those of these normalised addresses that are on the suppression list, in one query."""
    if not emails:
        return set()
    by_digest = {address_hmac(email): email for email in emails}
    db.session.flush()
    found = db.session.connection().scalars(SUPPRESSED_AMONG, {"digests": list(by_digest)})
    return {by_digest[digest] for digest in found}
