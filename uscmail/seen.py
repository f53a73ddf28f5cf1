"""Keys remembered for a while so a repeat is noticed: webhook reports already accepted, signup checks already used.
In Redis when REDIS_URL is set, so every web process shares them, else in this process. Keys are hashed; nothing
readable is kept."""

import hashlib
import logging
import threading
import time

import redis

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """Redis failed, so nobody can tell whether a key was seen: the caller answers 503 and changes nothing."""


class SeenKeys:
    """A set of keys, each remembered for its own number of seconds (LOCAL_LIMIT at most without Redis)."""

    LOCAL_LIMIT = 100_000

    def __init__(self, redis_url: str, prefix: str, namespace: str):
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2) if redis_url else None
        self.prefix = f"{prefix}:{namespace}:"
        self.local: dict[str, float] = {}
        self.lock = threading.Lock()

    def _name(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def claim(self, key: str, seconds: int) -> bool:
        """Remember `key` for `seconds`; False if it was already remembered. Unavailable if Redis fails."""
        name = self._name(key)
        if self.client is not None:
            try:
                return bool(self.client.set(name, 1, nx=True, ex=seconds))
            except redis.RedisError as error:
                raise Unavailable from error
        now = time.monotonic()
        with self.lock:
            if len(self.local) >= self.LOCAL_LIMIT:
                self.local = {each: until for each, until in self.local.items() if until > now}
                while len(self.local) >= self.LOCAL_LIMIT:  # all still live: forget the oldest
                    del self.local[next(iter(self.local))]
            if self.local.get(name, 0) > now:
                return False
            self.local[name] = now + seconds
            return True

    def release(self, key: str) -> None:
        """Forget `key` (what it stood for was not done after all, so a retry must be accepted)."""
        name = self._name(key)
        if self.client is None:
            with self.lock:
                self.local.pop(name, None)
            return
        try:
            self.client.delete(name)
        except redis.RedisError:
            log.warning("could not forget a key in Redis (%s); a retry will be refused", self.prefix.rstrip(":"))
