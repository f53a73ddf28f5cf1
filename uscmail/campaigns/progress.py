"""How far a sending campaign has got: its deliveries counted by status, at most once every PROGRESS_REFRESH_SECONDS
however many campaign pages and API clients poll, and its send rate from the counts taken over the last RATE_WINDOW.

A count reads every delivery of the campaign: at a million rows, a good part of a second of database time. The counts
taken recently are shared by the web app's processes through Redis when it is configured (else each process keeps
its own), so a dozen pages polling every two seconds cost one count a second, not six.
"""

import contextlib
import json
import time

import redis
import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..redisclient import redis_client
from .models import Campaign, Delivery, DeliveryStatus

PROGRESS_REFRESH_SECONDS = 1.0
RATE_WINDOW_SECONDS = 30.0
KEEP_SECONDS = 120  # a campaign nobody has looked at for this long starts afresh

Sample = tuple[float, dict[str, int]]  # (wall-clock time, counts by status)

_local: dict[str, list[Sample]] = {}


def delivery_counts(campaign_id: int) -> dict[DeliveryStatus, int]:
    """The campaign's deliveries by status, counted now (one grouped query on its index)."""
    return dict(
        db.session.execute(
            sa.select(Delivery.status, sa.func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        ).all()
    )


def _key(campaign: Campaign) -> str:
    # The public id too: ids of deleted campaigns are reused by some databases.
    return f"{current_app.config['RATELIMIT_KEY_PREFIX']}:campaign-progress:{campaign.id}:{campaign.public_id}"


def _load(key: str) -> list[Sample]:
    client = redis_client()
    if client is None:
        return _local.get(key, [])
    try:
        raw = client.get(key)
    except redis.RedisError:
        return []
    return [(at, counts) for at, counts in json.loads(raw)] if raw else []


def _store(key: str, samples: list[Sample]) -> None:
    client = redis_client()
    if client is None:
        if len(_local) > 64:
            _local.clear()
        _local[key] = samples
        return
    with contextlib.suppress(redis.RedisError):  # the next request counts again
        client.set(key, json.dumps(samples), ex=KEEP_SECONDS)


def live_counts(campaign: Campaign) -> tuple[dict[DeliveryStatus, int], float | None]:
    """A sending campaign's counts by status (at most PROGRESS_REFRESH_SECONDS old) and its messages a second over
    the counts taken in the last RATE_WINDOW_SECONDS (None until two counts at least a second apart exist)."""
    now, key = time.time(), _key(campaign)
    samples = [sample for sample in _load(key) if now - sample[0] <= RATE_WINDOW_SECONDS]
    if not samples or now - samples[-1][0] >= PROGRESS_REFRESH_SECONDS:
        counts = {status.value: number for status, number in delivery_counts(campaign.id).items()}
        samples.append((now, counts))
        _store(key, samples)
    (first_at, first), (last_at, last) = samples[0], samples[-1]
    sent = DeliveryStatus.SENT.value
    rate = (last.get(sent, 0) - first.get(sent, 0)) / (last_at - first_at) if last_at - first_at >= 1.0 else None
    return {DeliveryStatus(status): number for status, number in last.items()}, rate
