"""The append-only audit log: record() an organiser's action; never pass passwords, tokens, codes or addresses."""

from typing import Any

import sqlalchemy as sa

from ..extensions import db
from .models import AuditEvent, Organiser

FORBIDDEN_DETAIL_KEYS = {"password", "token", "code", "secret", "totp", "email", "address"}


def record(
    actor: Organiser | str | None,
    action: str,
    object_type: str | None = None,
    object_id: Any = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit event (flushed by the caller's commit). actor is an organiser, or a label like 'cli'."""
    leaked = FORBIDDEN_DETAIL_KEYS.intersection(key.lower() for key in details)
    if leaked:
        raise ValueError(f"audit details must not hold {', '.join(sorted(leaked))}")
    event = AuditEvent(
        organiser_id=actor.id if isinstance(actor, Organiser) else None,
        actor=actor.email if isinstance(actor, Organiser) else (actor or "anonymous"),
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        details=details,
    )
    db.session.add(event)
    return event


def recent_audit_events(limit: int = 10) -> list[AuditEvent]:
    """The newest audit events, newest first."""
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
