"""How many people left through a campaign's unsubscribe links: one number on the campaign, raised by one atomic
UPDATE per person who left. Nothing records who left from which campaign."""

import sqlalchemy as sa

from ..extensions import db
from .models import Campaign

_campaigns = Campaign.__table__
COUNT_ONE = (
    sa.update(_campaigns)
    .where(_campaigns.c.id == sa.bindparam("campaign_id"))
    .values(unsubscribe_count=_campaigns.c.unsubscribe_count + 1)
)


def count_unsubscribe(campaign_id: int, left_list_ids: list[int], link_list_ids: list[int]) -> None:
    """Count one unsubscribe for the campaign if the person left one of the lists its link names (a second press,
    or "leave everything" after leaving those lists, counts nothing). An id that names no campaign changes nothing."""
    if not set(left_list_ids) & set(link_list_ids):
        return
    db.session.connection().execute(COUNT_ONE, {"campaign_id": campaign_id})
