"""Leaving through an unsubscribe link, and how many people left through a campaign's links: one number on the
campaign, raised by one atomic UPDATE per person who left. Nothing records who left from which campaign."""

import sqlalchemy as sa

from ..extensions import db
from ..links import UnsubscribeLink
from ..models import StatusReason, Subscriber, utcnow
from ..subscriptions import services
from .models import Campaign

_campaigns, _subscribers = Campaign.__table__, Subscriber.__table__
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


def _through_link(list_ids: bool) -> sa.Select:
    """The whole of leaving through a campaign's link in one statement, built once ([True]: the lists in `list_ids`,
    [False]: every list): the subscriber looked up by public id, their subscriptions ended and consents withdrawn as
    services.unsubscribe does, and the campaign's count raised if a list its link names was left. PostgreSQL runs
    every data-modifying WITH part to completion, on one snapshot, whether or not the outer SELECT reads it."""
    subscriber = (
        sa.select(_subscribers.c.id).where(_subscribers.c.public_id == sa.bindparam("public_id")).scalar_subquery()
    )
    leave, withdraw = services.leaving(subscriber)
    left, withdrawn = leave[list_ids].cte("left_lists"), withdraw[list_ids].cte("withdrawn")
    named = sa.select(left.c.list_id).where(left.c.list_id.in_(sa.bindparam("link_list_ids", expanding=True)))
    # The table named without its model's Python-side defaults, which SQLAlchemy would render into a WITH part
    # (a new public_id); updated_at set as the model's onupdate would.
    campaigns = sa.table("campaigns", sa.column("id"), sa.column("unsubscribe_count"), sa.column("updated_at"))
    counted = (
        sa.update(campaigns)
        .where(campaigns.c.id == sa.bindparam("campaign_id"), named.exists())
        .values(unsubscribe_count=campaigns.c.unsubscribe_count + 1, updated_at=sa.bindparam("now"))
        .cte("counted")
    )
    return sa.select(sa.func.count()).select_from(left).add_cte(withdrawn, counted)


THROUGH_LINK = {list_ids: _through_link(list_ids) for list_ids in (False, True)}


def leave_through_link(link: UnsubscribeLink, list_ids: list[int] | None, reason: StatusReason) -> None:
    """Unsubscribe the link's subscriber from `list_ids` (None: every list), and count it on the link's campaign (as
    count_unsubscribe does), committed. Nothing is loaded.

    On PostgreSQL one statement in a transaction of its own (THROUGH_LINK), the same whether or not the subscriber
    exists: one round trip, where the steps take six (one-click unsubscribes come by the hundred a second while a
    campaign goes out); elsewhere the steps one by one.
    """
    if db.engine.dialect.name != "postgresql":
        subscriber_id = services.subscriber_id_by_public_id(link.public_id)
        if subscriber_id is not None:
            left = services.unsubscribe(subscriber_id, list_ids, reason)
            if link.campaign_id is not None:
                count_unsubscribe(link.campaign_id, left, link.list_ids)
        db.session.commit()
        return
    params = {
        "public_id": link.public_id,
        "now": utcnow(),
        "unsubscribed": services.UNSUBSCRIBED,
        "reason": reason,
        "campaign_id": link.campaign_id,
        "link_list_ids": list(link.list_ids),
    }
    if list_ids is not None:
        params["list_ids"] = list(list_ids)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(THROUGH_LINK[list_ids is not None], params)
