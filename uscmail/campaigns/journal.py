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
    """Journal entries in a Redis list per claim, written on one connection of this process's own without waiting
    for each reply: a command's bytes are on their way to Redis as soon as the write returns, and a killed process's
    socket still delivers them, so nothing is lost by not waiting. Replies are read in bulk, and always before the
    journal is read or discarded, so Redis has applied every entry by then (and any error surfaces)."""

    UNANSWERED_MAX = 256  # replies left unread before they are read in bulk

    def __init__(self, url: str, prefix: str):
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.expiring: set[str] = set()
        self.connection = None
        self.unanswered = 0

    def _key(self, claim: str) -> str:
        return f"{self.prefix}:send-journal:{claim}"

    def _send(self, *command) -> None:
        if self.connection is None:
            self.connection = self.client.connection_pool.make_connection()
        try:
            self.connection.send_command(*command)
        except BaseException:  # a Redis error, or a time limit mid-write: start again on a fresh connection
            self._drop_connection()
            raise
        self.unanswered += 1
        if self.unanswered >= self.UNANSWERED_MAX:
            self.settle()

    def settle(self) -> None:
        """Read every reply still owed; a Redis error answering an entry is raised here."""
        try:
            while self.unanswered:
                self.unanswered -= 1
                response = self.connection.read_response()
                if isinstance(response, redis.ResponseError):
                    raise response
        except BaseException:  # what was sent is applied all the same; only the replies are given up
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        if self.connection is not None:
            self.connection.disconnect()
        self.connection, self.unanswered = None, 0

    def record(self, claim: str, entries: Iterable[str]) -> None:
        """Append entries (one command, its reply read later)."""
        entries = list(entries)
        if not entries:
            return
        key = self._key(claim)
        self._send("RPUSH", key, *entries)
        if claim not in self.expiring:
            # The first write of a claim also sets its expiry, so a journal nobody reads does not stay for ever.
            self._send("EXPIRE", key, JOURNAL_TTL_SECONDS)
            self.expiring.add(claim)

    def read(self, claim: str) -> list[str]:
        """Every entry of the claim, in order."""
        self.settle()
        return [entry.decode() for entry in self.client.lrange(self._key(claim), 0, -1)]

    def discard(self, claim: str) -> None:
        """Forget the claim once its outcomes are in the database (after every entry written has been applied)."""
        self.settle()
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
