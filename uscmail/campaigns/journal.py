"""The send journal: what a batch has done so far, written after each message and read back if its worker dies.

A batch writes its outcomes to the database in bulk when it ends. Until then the journal is the record: one short
entry per message, appended as soon as the SMTP server answers. If the worker is killed, the reaper applies the
journal, so every message already answered keeps its outcome and only the one that was on the wire is in doubt.

Redis holds the journal when configured (any machine's reaper can read it); otherwise a file per batch on local disk,
which is enough for the embedded single-machine setup: a killed process's writes survive in the page cache.
"""

import os
from collections.abc import Iterable
from pathlib import Path

import redis
from flask import current_app

JOURNAL_TTL_SECONDS = 7 * 24 * 3600


class RedisJournal:
    """Journal entries in a Redis list per claim."""

    def __init__(self, url: str, prefix: str):
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.expiring: set[str] = set()

    def _key(self, claim: str) -> str:
        return f"{self.prefix}:send-journal:{claim}"

    def record(self, claim: str, entries: Iterable[str]) -> None:
        """Append entries (in one round trip)."""
        entries = list(entries)
        if not entries:
            return
        key = self._key(claim)
        if claim in self.expiring:
            self.client.rpush(key, *entries)
            return
        # The first write of a claim also sets its expiry, so a journal nobody reads does not stay for ever.
        with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(key, *entries)
            pipe.expire(key, JOURNAL_TTL_SECONDS)
            pipe.execute()
        self.expiring.add(claim)

    def read(self, claim: str) -> list[str]:
        """Every entry of the claim, in order."""
        return [entry.decode() for entry in self.client.lrange(self._key(claim), 0, -1)]

    def discard(self, claim: str) -> None:
        """Forget the claim once its outcomes are in the database."""
        self.client.delete(self._key(claim))
        self.expiring.discard(claim)


class FileJournal:
    """Journal entries in a file per claim, written unbuffered."""

    def __init__(self, directory: str):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, int] = {}

    def _path(self, claim: str) -> Path:
        return self.directory / f"{claim}.journal"

    def record(self, claim: str, entries: Iterable[str]) -> None:
        """Append entries with one write() (no user-space buffer to lose if the process dies)."""
        data = "".join(f"{entry}\n" for entry in entries).encode()
        if data:
            if claim not in self.files:
                self.files[claim] = os.open(self._path(claim), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(self.files[claim], data)

    def read(self, claim: str) -> list[str]:
        """Every complete entry of the claim, in order."""
        try:
            text = self._path(claim).read_text()
        except FileNotFoundError:
            return []
        return [line for line in text.split("\n")[:-1] if line]

    def discard(self, claim: str) -> None:
        """Close and delete the claim's file."""
        descriptor = self.files.pop(claim, None)
        if descriptor is not None:
            os.close(descriptor)
        self._path(claim).unlink(missing_ok=True)


_journals: dict[tuple, RedisJournal | FileJournal] = {}


def send_journal() -> RedisJournal | FileJournal:
    """This process's journal for the configured backend."""
    config = current_app.config
    # The key prefix is the deployment's, not a queue's: a reaper on any queue must find every worker's journal.
    key = (config["REDIS_URL"], config["RATELIMIT_KEY_PREFIX"], config["SEND_JOURNAL_DIR"])
    if key not in _journals:
        if config["REDIS_URL"]:
            _journals[key] = RedisJournal(config["REDIS_URL"], config["RATELIMIT_KEY_PREFIX"])
        else:
            _journals[key] = FileJournal(config["SEND_JOURNAL_DIR"])
    return _journals[key]
