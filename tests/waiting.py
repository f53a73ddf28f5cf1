"""Waiting for something to happen (a row to change, mail to arrive, a process to start) instead of sleeping."""

import time


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    """Poll until predicate() is truthy and return its value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # the polling interval: short enough not to slow a test, long enough not to hog a core
