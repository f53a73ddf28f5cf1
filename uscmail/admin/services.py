"""Read-only queries for the organisers' pages that belong to no other feature."""

import sqlalchemy as sa

from ..extensions import db
from ..organisers.models import AuditEvent


def recent_audit_events(limit: int = 10) -> list[AuditEvent]:
    """The newest audit events, newest first."""
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
