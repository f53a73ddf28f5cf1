"""Command-line tools: `flask --app uscmail seed`."""

from datetime import date

import click
import sqlalchemy as sa
from flask import Flask

from .extensions import db
from .i18n import N_
from .models import MailingList
from .reminders.models import Event
from .reminders.planning import DEFAULT_BODY, DEFAULT_SUBJECT, default_list
from .subscriptions.consent import current_wording

DEFAULT_LISTS = [
    {
        "slug": "newsletter",
        "name": N_("Newsletter"),
        "description": N_("Campaign news and actions from the Uyghur Solidarity Campaign UK."),
    },
    {
        "slug": "london-protest-reminders",
        "name": N_("London protest reminders"),
        "description": N_(
            "Reminders of our monthly protests outside the Chinese embassy on Portland Place, London, "
            "on the 5th of each month."
        ),
    },
]


def seed_defaults() -> list[str]:
    """Create the default public lists and the current consent wording if missing; return the slugs created."""
    created = []
    for values in DEFAULT_LISTS:
        if db.session.scalar(sa.select(MailingList.id).where(MailingList.slug == values["slug"])) is None:
            db.session.add(MailingList(public=True, **values))
            created.append(values["slug"])
    current_wording()
    db.session.flush()
    if seed_protest_event():
        created.append("event: monthly protest")
    db.session.commit()
    return created


PROTEST_PLACE = "Chinese Embassy, 49–51 Portland Place, London W1B 1JL"


def seed_protest_event() -> bool:
    """The monthly protest outside the embassy, created on hold with no time set, so nothing is sent until an
    organiser has reviewed it. Returns True if it was created."""
    mailing_list = default_list()
    if mailing_list is None or db.session.scalar(sa.select(Event.id).limit(1)) is not None:
        return False
    db.session.add(
        Event(
            title="Monthly protest at the Chinese Embassy",
            rrule="FREQ=MONTHLY;BYMONTHDAY=5",
            first_date=date(2026, 1, 5),
            start_time=None,
            place=PROTEST_PLACE,
            list_id=mailing_list.id,
            subject_template=DEFAULT_SUBJECT,
            body_template=DEFAULT_BODY,
            on_hold=True,
            hold_reason="New: set the time of the protest and review the reminders, then resume.",
        )
    )
    return True


def init_cli(app: Flask) -> None:
    """Register the CLI commands."""

    @app.cli.command("seed")
    def seed() -> None:
        """Create the default lists and consent wording (safe to run again)."""
        created = seed_defaults()
        click.echo(f"created lists: {', '.join(created)}" if created else "default lists already present")
