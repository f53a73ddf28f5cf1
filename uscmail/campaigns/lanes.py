"""A sending campaign's lanes: CAMPAIGN_LANES chains of batch tasks, each batch queuing the next.

Each lane has a row saying which chain is its current one (`generation`) and by when that chain should next show
life (`expect_progress_by`; none once the chain ended because it found nothing to do). The reaper restarts any lane
that is overdue while rows are ready to send: the lanes of a worker that died, or whose queued tasks were lost, are
replaced while the other lanes carry on. Lanes that ended start again when rows become ready again. A restart gives
the lane a new generation, so the chain it replaces ends at its next batch and the lane count never grows.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..extensions import db, upsert_insert
from ..models import utcnow
from .models import Campaign, CampaignLane, CampaignStatus, Delivery, ready_to_send


@dataclass(frozen=True)
class Lane:
    """One chain of batch tasks of a campaign, as its tasks carry it."""

    campaign_id: int
    number: int
    generation: str

    def is_current(self) -> bool:
        """False once the lane has been restarted (this chain is superseded) or the campaign's lanes are gone."""
        current = db.session.scalar(
            sa.select(CampaignLane.generation).where(
                CampaignLane.campaign_id == self.campaign_id, CampaignLane.lane == self.number
            )
        )
        return current is not None and secrets.compare_digest(current, self.generation)

    def expect_progress(self, wait: float | None = 0.0) -> bool:
        """Say this lane's next batch starts in `wait` seconds (None: the chain ends, having nothing to do); the reaper
        allows it CAMPAIGN_STALL_SECONDS beyond that. False if the lane has been restarted since (this chain should
        stop). The caller commits."""
        deadline = None if wait is None else progress_deadline(wait)
        result = db.session.execute(
            sa.update(CampaignLane)
            .where(
                CampaignLane.campaign_id == self.campaign_id,
                CampaignLane.lane == self.number,
                CampaignLane.generation == self.generation,
            )
            .values(expect_progress_by=deadline)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def progress_deadline(wait: float) -> datetime:
    """When a lane whose next batch starts in `wait` seconds counts as stalled."""
    return utcnow() + timedelta(seconds=wait + current_app.config["CAMPAIGN_STALL_SECONDS"])


def start_lanes(campaign_id: int, numbers: list[int] | None = None) -> list[Lane]:
    """Give the lanes (all CAMPAIGN_LANES of them unless `numbers` says which) a new generation, each expected to
    show progress within CAMPAIGN_STALL_SECONDS. The caller commits, then queues a batch task for each."""
    if numbers is None:
        numbers = list(range(current_app.config["CAMPAIGN_LANES"]))
    deadline = progress_deadline(0.0)
    lanes = [Lane(campaign_id, number, secrets.token_hex(8)) for number in numbers]
    for lane in lanes:
        statement = upsert_insert(CampaignLane.__table__).values(
            campaign_id=campaign_id, lane=lane.number, generation=lane.generation, expect_progress_by=deadline
        )
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=["campaign_id", "lane"],
                set_={"generation": lane.generation, "expect_progress_by": deadline},
            )
        )
    return lanes


@dataclass
class Restart:
    """A campaign's lanes the reaper restarts: `stalled` ones (overdue: their worker died, or their task was lost)
    and `idle` ones (they ended with nothing to do, and rows are ready again, e.g. a dead worker's, given back)."""

    stalled: list[int]
    idle: list[int]


def lanes_to_restart() -> dict[int, Restart]:
    """Of each sending campaign whose snapshot is done and that has rows ready to send, the lanes that are overdue
    or missing (stalled), and those that ended (idle). That does not wait for a dead worker's claims to lapse."""
    now = utcnow()
    ready = sa.exists().where(Delivery.campaign_id == Campaign.id, ready_to_send(now))
    campaign_ids = db.session.scalars(
        sa.select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING, Campaign.snapshot_done.is_(True), ready)
    ).all()
    if not campaign_ids:
        db.session.commit()
        return {}
    rows = db.session.execute(
        sa.select(CampaignLane.campaign_id, CampaignLane.lane, CampaignLane.expect_progress_by).where(
            CampaignLane.campaign_id.in_(campaign_ids)
        )
    )
    deadlines = {(campaign_id, lane): deadline for campaign_id, lane, deadline in rows}
    db.session.commit()
    restarts = {}
    for campaign_id in campaign_ids:
        restart = Restart(stalled=[], idle=[])
        for number in range(current_app.config["CAMPAIGN_LANES"]):
            key = (campaign_id, number)
            if key in deadlines and deadlines[key] is None:
                restart.idle.append(number)
            elif key not in deadlines or deadlines[key] < now:
                restart.stalled.append(number)
        if restart.stalled or restart.idle:
            restarts[campaign_id] = restart
    return restarts
