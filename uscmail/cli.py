"""Command-line tools: `flask --app uscmail seed`."""

import click
import sqlalchemy as sa
from flask import Flask

from .extensions import db
from .models import MailingList
from .subscriptions.consent import current_wording

DEFAULT_LISTS = [
    {
        "slug": "newsletter",
        "name": "Newsletter",
        "description": "Campaign news and actions from the Uyghur Solidarity Campaign UK.",
    },
    {
        "slug": "london-protest-reminders",
        "name": "London protest reminders",
        "description": "Reminders of our monthly protests outside the Chinese embassy on Portland Place, London, "
        "on the 5th of each month.",
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
    db.session.commit()
    return created


def init_cli(app: Flask) -> None:
    """Register the CLI commands."""

    @app.cli.command("seed")
    def seed() -> None:
        """Create the default lists and consent wording (safe to run again)."""
        created = seed_defaults()
        click.echo(f"created lists: {', '.join(created)}" if created else "default lists already present")
