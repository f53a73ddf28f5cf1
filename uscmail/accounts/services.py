"""Read-only queries for the account pages; the changes themselves are organiser services."""

import sqlalchemy as sa

from ..extensions import db
from ..organisers.models import ApiToken, Organiser


def all_organisers() -> list[Organiser]:
    """Every organiser, active ones first, then by address."""
    return list(db.session.scalars(sa.select(Organiser).order_by(Organiser.active.desc(), Organiser.email)))


def get_organiser(organiser_id: int) -> Organiser | None:
    """The organiser with this id, or None."""
    return db.session.get(Organiser, organiser_id)


def live_token_names() -> dict[int, list[str]]:
    """The names of each organiser's live (unrevoked) API tokens, by organiser id."""
    rows = db.session.execute(
        sa.select(ApiToken.organiser_id, ApiToken.name).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.name)
    )
    names: dict[int, list[str]] = {}
    for organiser_id, name in rows:
        names.setdefault(organiser_id, []).append(name)
    return names
