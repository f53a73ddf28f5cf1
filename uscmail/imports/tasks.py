"""Celery task of the import page: a thin wrapper around jobs.run_job."""

from celery import shared_task

from ..extensions import db
from . import jobs


@shared_task(soft_time_limit=3600, time_limit=3660)
def run_import(job_id: int) -> str:
    """Run a queued import job (a no-op if it is already claimed)."""
    outcome = jobs.run_job(job_id)
    return outcome.value if outcome else "not queued"


@shared_task(soft_time_limit=600, time_limit=660)
def housekeep_imports() -> dict[str, int]:
    """Beat task: delete old import reports and fail imports whose worker died."""
    outcome = jobs.housekeep()
    db.session.commit()
    return outcome
