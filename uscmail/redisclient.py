"""This process's Redis client for REDIS_URL (one per URL, made on first use), or None where Redis is not configured
(a laptop's SQLite setup): callers then keep what they share in this process."""

import redis
from flask import current_app

_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis | None:
    url = current_app.config["REDIS_URL"]
    if not url:
        return None
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=5)
    return _clients[url]
