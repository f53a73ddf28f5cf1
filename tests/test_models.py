"""The models and the migrations describe the same schema, on this run's database."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from uscmail.extensions import db as database


def search_indexes_excluded(obj, name, type_, reflected, compare_to):
    """As in migrations/env.py: the PostgreSQL-only ix_search_* indexes live in the migrations alone."""
    return not (type_ == "index" and name and name.startswith("ix_search_"))


def test_migrations_match_models(app, db):
    with database.engine.connect() as connection:
        opts = {"compare_type": True, "include_object": search_indexes_excluded}
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, database.metadata)
    assert differences == []


def test_seed_creates_the_two_public_lists(db):
    from uscmail.subscriptions.services import public_lists

    lists = {mailing_list.slug: mailing_list for mailing_list in public_lists()}
    assert set(lists) == {"newsletter", "london-protest-reminders"}
    assert "Portland Place" in lists["london-protest-reminders"].description
    assert "5th of each month" in lists["london-protest-reminders"].description
