"""The Redis send journal writes without waiting for replies: a worker killed right after writing loses nothing."""

import os
import signal
import subprocess
import sys
import uuid

import redis

from uscmail.campaigns.journal import RedisJournal

REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WRITER = """
import os, signal, sys
from uscmail.campaigns.journal import RedisJournal
journal = RedisJournal(sys.argv[1], sys.argv[2])
for number in range(int(sys.argv[4])):
    journal.record(sys.argv[3], [f"{number}\\tsent\\t"])
assert journal.unanswered > 0  # replies still owed: nothing was waited for
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_entries_written_by_a_process_killed_before_any_reply_is_read_are_all_kept():
    prefix, claim = f"journal-test-{uuid.uuid4().hex[:8]}", "claim"
    result = subprocess.run(
        [sys.executable, "-c", WRITER, REDIS, prefix, claim, "1000"], cwd=os.getcwd(), capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    journal = RedisJournal(REDIS, prefix)
    try:
        entries = journal.read(claim)
        assert entries == [f"{number}\tsent\t" for number in range(1000)]
        assert journal.client.ttl(f"{prefix}:send-journal:{claim}") > 0, "a journal nobody reads expires"
    finally:
        journal.discard(claim)
    assert not journal.client.exists(f"{prefix}:send-journal:{claim}")


def test_an_error_answering_an_entry_is_raised_when_the_replies_are_read():
    journal = RedisJournal(REDIS, f"journal-test-{uuid.uuid4().hex[:8]}")
    journal.client.set(journal._key("wrong"), "not a list")
    try:
        journal.record("wrong", ["1\tsent\t"])
        try:
            journal.settle()
        except redis.ResponseError as error:
            assert "WRONGTYPE" in str(error)
        else:
            raise AssertionError("the error was swallowed")
        journal.record("right", ["1\tsent\t"])  # a fresh connection carries on
        assert journal.read("right") == ["1\tsent\t"]
    finally:
        journal.client.delete(journal._key("wrong"), journal._key("right"))
