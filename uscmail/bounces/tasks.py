"""Celery tasks of bounce handling: the beat's poll of the bounce mailbox."""

from celery import shared_task

from . import mailbox


@shared_task(soft_time_limit=mailbox.POLL_SOFT_TIME_LIMIT, time_limit=mailbox.POLL_TIME_LIMIT)
def poll_bounce_mailbox() -> dict:
    """Beat: take the bounces and complaints waiting in BOUNCE_MAILBOX_URL's mailbox, each committed before it is
    deleted; a run while another is polling does nothing. A mailbox that cannot be reached, or refuses the login, is
    logged and left for the next beat; returns the poll's summary."""
    return mailbox.poll().summary()
