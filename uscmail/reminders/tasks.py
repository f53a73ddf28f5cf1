"""Celery tasks for reminders; thin wrappers around the services."""

from celery import shared_task

from . import services


@shared_task(soft_time_limit=300, time_limit=330)
def send_due_reminders() -> int:
    """Beat: start the campaigns of reminders whose time has come (idempotent; safe under duplicate beats)."""
    from ..campaigns.tasks import start_campaign

    campaign_ids = services.plan_due_reminders()
    for campaign_id in campaign_ids:
        start_campaign.delay(campaign_id)
    return len(campaign_ids)
