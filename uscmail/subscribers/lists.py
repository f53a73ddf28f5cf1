"""Mailing-list management for organisers: create, edit, make public or private, archive. Lists are never deleted,
so no subscription is ever lost with one."""

import re

import sqlalchemy as sa

from ..extensions import db
from ..models import MailingList
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def all_lists(include_archived: bool = True) -> list[MailingList]:
    """Every list, in creation order."""
    statement = sa.select(MailingList).order_by(MailingList.id)
    if not include_archived:
        statement = statement.where(MailingList.archived.is_(False))
    return list(db.session.scalars(statement))


def _clean(slug: str, name: str, description: str) -> tuple[str, str, str]:
    slug, name, description = (slug or "").strip().lower(), (name or "").strip(), (description or "").strip()
    if not SLUG.match(slug):
        raise InvalidInput("The short name may use a-z, 0-9 and hyphens, up to 64 characters.")
    if not name or len(name) > 200:
        raise InvalidInput("Give the list a name of up to 200 characters.")
    if len(description) > 2000:
        raise InvalidInput("Keep the description under 2,000 characters.")
    return slug, name, description


def create_list(slug: str, name: str, description: str, public: bool, actor: Organiser | str) -> MailingList:
    """A new list; InvalidInput if the slug is malformed or taken."""
    slug, name, description = _clean(slug, name, description)
    if db.session.scalar(sa.select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise InvalidInput(f"A list called {slug!r} already exists.")
    mailing_list = MailingList(slug=slug, name=name, description=description, public=public)
    db.session.add(mailing_list)
    db.session.flush()
    audit.record(actor, "list.create", "list", mailing_list.id, slug=slug, public=public)
    return mailing_list


def update_list(
    mailing_list: MailingList, name: str, description: str, public: bool, archived: bool, actor: Organiser | str
) -> None:
    """Edit a list's name, description, visibility on the signup form, and archived flag (the slug stays)."""
    _, name, description = _clean(mailing_list.slug, name, description)
    changes = {}
    for field, value in (("name", name), ("description", description), ("public", public), ("archived", archived)):
        if getattr(mailing_list, field) != value:
            changes[field] = value if field in ("public", "archived") else "changed"
            setattr(mailing_list, field, value)
    if changes:
        audit.record(actor, "list.update", "list", mailing_list.id, **changes)
    db.session.flush()


def get_list(list_id: int) -> MailingList | None:
    """A list by id, archived ones included."""
    return db.session.get(MailingList, list_id)
