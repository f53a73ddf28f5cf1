"""A campaign's revision: raised by one with each change of content, so a save based on an older revision (another
tab, another organiser) is refused instead of silently overwriting what was saved in between."""

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..extensions import db
from ..models import utcnow
from ..validation import InvalidInput
from .models import Campaign

LONDON = ZoneInfo("Europe/London")


class EditConflict(InvalidInput):
    """The campaign changed (in another tab, or by another organiser) after the page being saved was opened."""


def next_revision(campaign: Campaign, based_on: int | None) -> None:
    """Raise the campaign's revision by one in one UPDATE, only if it is still `based_on` (when given); two saves
    based on the same revision cannot both pass (on PostgreSQL the second waits for the first's row lock)."""
    statement = (
        sa.update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(revision=Campaign.revision + 1, updated_at=utcnow())
    )
    if based_on is not None:
        statement = statement.where(Campaign.revision == based_on)
    result = db.session.execute(statement.execution_options(synchronize_session=False))
    db.session.refresh(campaign, ["revision", "updated_at"])
    if result.rowcount != 1:
        raise EditConflict(
            "This campaign was changed in another tab or by another organiser (last saved "
            f"{london_clock(campaign.updated_at)}), after you opened this page, so your changes were not saved. "
            "Copy what you want to keep, then reload the page to see the latest version."
        )


def london_clock(moment: datetime) -> str:
    """'14:05' on London's wall clock."""
    return moment.astimezone(LONDON).strftime("%H:%M")
