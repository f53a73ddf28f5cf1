"""Mail set aside by bounce handling, for administrators: counted, listed, shown as inert text, deleted one by one, and
deleted by a beat task once older than BOUNCE_SET_ASIDE_DAYS. It may hold anyone's address, so nothing here logs its
content, and reading one is audited as deleting one is."""

import logging
import re
from datetime import timedelta

import sqlalchemy as sa
from celery import shared_task
from flask import current_app

from ..extensions import db
from ..models import utcnow
from ..organisers import audit
from ..organisers.models import Organiser
from .models import SetAsideMail

log = logging.getLogger(__name__)

# How each way of arriving is named on the pages.
SOURCE_WORDS = {
    "smtp_reply": "the relay's answer while sending",
    "receiver": "the bounce receiver",
    "mailbox": "the bounce mailbox",
    "ses": "Amazon SES",
    "postmark": "Postmark",
    "mailgun": "Mailgun",
    "sendgrid": "SendGrid",
}

# Characters shown as escapes rather than as themselves: control characters (NUL, escape, a lone carriage return…),
# and the invisible ones that reorder or hide text (bidirectional overrides, zero-width characters, a byte-order mark).
HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def count() -> int:
    """How many messages are set aside."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(SetAsideMail))


def page(before: int | None, limit: int) -> list[sa.Row]:
    """Up to `limit` set-aside messages older than id `before` (all if None), newest first: id, received, source,
    reason and size, without their content."""
    statement = (
        sa.select(SetAsideMail.id, SetAsideMail.created_at, SetAsideMail.source, SetAsideMail.reason, SetAsideMail.size)
        .order_by(SetAsideMail.id.desc())
        .limit(limit)
    )
    if before is not None:
        statement = statement.where(SetAsideMail.id < before)
    return list(db.session.execute(statement))


def get(mail_id: int) -> SetAsideMail | None:
    """One set-aside message, content and all."""
    return db.session.get(SetAsideMail, mail_id)


def readable_text(content: bytes) -> str:
    """The message as plain text to show: UTF-8 where it is, bytes that aren't as \\xNN, line ends as new lines, and
    every control or invisible character as an escape (\\x00, \\u202e), so what is shown is what is there."""
    text = content.decode("utf-8", errors="backslashreplace").replace("\r\n", "\n")

    def escape(match: re.Match) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return HIDDEN.sub(escape, text)


def record_reading(mail: SetAsideMail, organiser: Organiser) -> None:
    """Audit that an administrator read a set-aside message; the caller commits."""
    audit.record(organiser, "set_aside_mail.view", "set_aside_mail", mail.id)


def delete(mail: SetAsideMail, organiser: Organiser) -> None:
    """Delete one set-aside message, audited; the caller commits."""
    audit.record(organiser, "set_aside_mail.delete", "set_aside_mail", mail.id, source=mail.source.value)
    db.session.delete(mail)
    db.session.flush()


def purge_expired() -> int:
    """Delete set-aside mail older than BOUNCE_SET_ASIDE_DAYS; how many went. The caller commits. A second run finds
    nothing more to delete."""
    cutoff = utcnow() - timedelta(days=current_app.config["BOUNCE_SET_ASIDE_DAYS"])
    result = db.session.execute(
        sa.delete(SetAsideMail).where(SetAsideMail.created_at < cutoff).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


@shared_task(soft_time_limit=600, time_limit=660)
def purge_set_aside_mail() -> int:
    """Beat task: delete set-aside mail past its keeping time."""
    removed = purge_expired()
    db.session.commit()
    log.info("deleted %d set-aside mails past their keeping time", removed)
    return removed
