"""The relay's sending limits (per second, hour and day), shared by every worker through Redis.

A moving window, exact at every instant (a relay counts that way), not a fixed or approximated one that lets a burst of
up to twice the limit through at a window's edge.

Without Redis (the embedded laptop setup) the counters live in each worker process's memory, so the limits apply per
process there.
"""

import time

from flask import current_app
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

_limiters: dict[str, MovingWindowRateLimiter] = {}


def _limiter(uri: str) -> MovingWindowRateLimiter:
    if uri not in _limiters:
        _limiters[uri] = MovingWindowRateLimiter(storage_from_string(uri))
    return _limiters[uri]


class SendRateLimit:
    """Hands out permission to send, a few messages at a time."""

    def __init__(self):
        config = current_app.config
        self.items: list[RateLimitItem] = [
            item_class(amount)
            for item_class, amount in (
                (RateLimitItemPerSecond, config["SEND_RATE_PER_SECOND"]),
                (RateLimitItemPerHour, config["SEND_RATE_PER_HOUR"]),
                (RateLimitItemPerDay, config["SEND_RATE_PER_DAY"]),
            )
            if amount > 0
        ]
        self.key = config["RATELIMIT_KEY_PREFIX"] + ":smtp-relay"
        self.limiter = _limiter(config["REDIS_URL"] or "memory://") if self.items else None

    @property
    def per_second(self) -> int | None:
        """The per-second limit, if one is set (a batch need not be bigger)."""
        return next((item.amount for item in self.items if item.GRANULARITY.seconds == 1), None)

    def acquire(self, wanted: int) -> tuple[int, float]:
        """Take up to `wanted` sends. Returns (granted, 0) or, when a limit is reached, (0, seconds until it eases)."""
        if self.limiter is None:
            return wanted, 0.0
        granted = wanted
        for item in self.items:
            granted = min(granted, item.amount)
            while granted > 0 and not self.limiter.hit(item, self.key, cost=granted):
                remaining = self.limiter.get_window_stats(item, self.key).remaining
                if remaining <= 0:
                    granted = 0
                    break
                granted = min(granted - 1, remaining)
            if granted == 0:
                reset_at = self.limiter.get_window_stats(item, self.key).reset_time
                return 0, max(0.05, reset_at - time.time())
        return granted, 0.0
