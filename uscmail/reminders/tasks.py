"""Celery tasks for reminders: the beat's run over the due reminders, which commits each one on its own."""

import logging
from datetime import datetime

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from ..campaigns.tasks import start_campaign
from ..extensions import db
from ..models import utcnow
from ..queueing import after_commit
from ..validation import InvalidInput
from . import planning
from .models import Event

log = logging.getLogger(__name__)


@shared_task(soft_time_limit=300, time_limit=330)
def send_due_reminders() -> int:
    """Beat: start the campaigns of reminders whose time has come; returns how many (idempotent; safe under
    duplicate beats). Events are isolated: whatever goes wrong with one is logged, kept on the event (`last_error`)
    and the others go on."""
    now = utcnow()
    started = 0
    for event_id in planning.due_event_ids():
        try:
            started += send_event_reminders(db.session.get(Event, event_id), now)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:  # noqa: BLE001 - one event's fault must not stop the other events' reminders
            db.session.rollback()
            log.exception("the reminders of event %s could not be planned", event_id)
            planning.record_event_error(event_id, planning.problem_words(exc))
            db.session.commit()
    return started


def send_event_reminders(event: Event, now: datetime) -> int:
    """Decide each of the event's due reminders, committing each on its own and queueing its campaign after that
    commit; a reminder that can't be made is recorded as skipped with the reason. Returns the campaigns started."""
    event_id, started = event.id, 0
    for due in planning.due_reminders(event, now):
        try:
            campaign_id = planning.plan_reminder(event, due, now)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the reminder and the event, never retried
            db.session.rollback()
            problem = planning.problem_words(exc)
            log.error(
                "reminder %s of event %s could not be made: %s", due.offset_key, event_id, problem,
                exc_info=not isinstance(exc, InvalidInput),
            )  # fmt: skip
            planning.skip_reminder(db.session.get(Event, event_id), due, problem)
            db.session.commit()
            continue
        if campaign_id is not None:
            after_commit(start_campaign, campaign_id)
            started += 1
        db.session.commit()
    return started
