"""Stored signups waiting for a worker, so one task applies all that arrived within SIGNUP_BATCH_SECONDS.

Each signup's row id is pushed onto a Redis list as its request ends. The first push finds no drain scheduled and
queues one (apply_signups) to run SIGNUP_BATCH_SECONDS later; the pushes meanwhile find it scheduled and queue
nothing. The drain takes the ids waiting (each id is taken by one drain only) and so, at 30 signups a second, one
task, one commit and one relay connection serve them all instead of thirty.

Nothing here is the record of a signup: its row is. An id lost with Redis, or taken by a worker that was then lost,
leaves its row for the sweeper (apply_stale_signups), as a lost task would. A drain whose worker was lost before it
ran leaves the "scheduled" mark to expire after SCHEDULED_SECONDS; the next signup then queues another.
"""

from flask import current_app

from ..redisclient import redis_client

SCHEDULED_SECONDS = 30


def _keys() -> tuple[str, str]:
    prefix = current_app.config["RATELIMIT_KEY_PREFIX"]
    return f"{prefix}:signups:waiting", f"{prefix}:signups:drain-scheduled"


def available() -> bool:
    """Whether signups wait here (Redis is configured); else each gets a task of its own."""
    return redis_client() is not None


def push(request_id: int) -> bool:
    """Add a committed signup's row id; True if no drain was scheduled, so the caller queues one now."""
    waiting, scheduled = _keys()
    pipeline = redis_client().pipeline(transaction=False)
    pipeline.rpush(waiting, request_id)
    pipeline.set(scheduled, 1, nx=True, ex=SCHEDULED_SECONDS)
    return bool(pipeline.execute()[1])


def take(count: int) -> list[int]:
    """Up to `count` waiting row ids, oldest first, no longer waiting. The "scheduled" mark is cleared first, so
    any id pushed after this call's ids were taken finds no drain scheduled, and its pusher queues one."""
    waiting, scheduled = _keys()
    pipeline = redis_client().pipeline(transaction=False)
    pipeline.delete(scheduled)
    pipeline.lpop(waiting, count)
    return [int(request_id) for request_id in pipeline.execute()[1] or ()]


def schedule_again() -> bool:
    """Mark a drain scheduled, as push does, for a drain that leaves ids waiting; True if the caller queues it."""
    return bool(redis_client().set(_keys()[1], 1, nx=True, ex=SCHEDULED_SECONDS))
