"""The web server's workers are woken one per connection (uscmail.webworker), not all at once.

gunicorn runs with the production settings and four workers; requests come one at a time, as light traffic does. Each
worker's voluntary context switches (/proc/PID/status) count how often it went to sleep and was woken. gunicorn's own
sync worker waits with select(), and every idle worker is woken for every connection: each request then costs about
three wake-ups more than the one worker that serves it needs.
"""

import contextlib
import re
import socket
import time
from pathlib import Path

from tests.test_long_responses import gunicorn, request
from tests.waiting import wait_until

WORKERS = 4
REQUESTS = 40


def workers_of(log_path: Path) -> list[int]:
    """Pids of the workers gunicorn logged booting."""
    return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log_path.read_text(errors="replace"))]


def wake_ups(pid: int) -> int:
    """How many times the process has gone to sleep waiting for something (and so been woken)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE).group(1))


def served(log_path: Path) -> list[int]:
    """The worker of each request answered so far, from the access log's lines ("<pid> status")."""
    return [int(pid) for pid in re.findall(r"^<(\d+)> 200$", log_path.read_text(errors="replace"), re.MULTILINE)]


def all_waiting(log_path: Path) -> list[int]:
    """Once every worker has booted, loaded the app and gone to wait for connections: their pids."""
    wait_until(lambda: len(workers_of(log_path)) == WORKERS, 30, "four workers to boot")
    pids = workers_of(log_path)
    # The kernel function a process sleeps in: epoll_wait, or select() for gunicorn's own worker.
    waiting = ("epoll", "select", "poll")
    wait_until(
        lambda: all(any(name in Path(f"/proc/{pid}/wchan").read_text() for name in waiting) for pid in pids),
        30,
        "every worker to wait for connections",
    )
    return pids


def get_health(port: int) -> None:
    assert request(port, "GET", "/healthz", {}).status == 200


def test_a_connection_wakes_one_idle_worker_not_all_of_them(app, db):
    options = ("--workers", str(WORKERS), "--access-logformat", "%(p)s %(s)s")
    with gunicorn("uscmail:create_app()", *options) as (port, log_path):
        pids = all_waiting(log_path)
        served_before = served(log_path)
        before = {pid: wake_ups(pid) for pid in pids}
        for _ in range(REQUESTS):
            get_health(port)
            time.sleep(0.02)
        after = {pid: wake_ups(pid) for pid in pids}
        wait_until(lambda: len(served(log_path)) - len(served_before) >= REQUESTS, 10, "the requests' log lines")
        serving = set(served(log_path)[len(served_before) :])
    woken = {pid: after[pid] - before[pid] for pid in pids}
    # The worker that serves a request sleeps and is woken a few times for it: waiting for the connection, for the
    # request's bytes, for the client to close. Woken as gunicorn's sync worker is, every idle worker is woken too,
    # once for each request: three more a request.
    assert sum(woken.values()) / REQUESTS < 4, woken
    assert all(woken[pid] <= 2 for pid in pids if pid not in serving), (woken, serving)


def test_connections_that_arrive_together_go_to_different_idle_workers(app, db):
    with gunicorn("uscmail:create_app()", "--workers", str(WORKERS)) as (port, log_path):
        all_waiting(log_path)
        for _ in range(5):
            with contextlib.ExitStack() as stack:
                # Three clients at once that send half a request and stop: each holds the worker that took it. Had
                # one worker been woken for two of them, the one it left waiting would be taken by the worker the
                # next connection wakes, and that connection would wait for the poll's timeout (15 s).
                for _ in range(WORKERS - 1):
                    stalled = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
                    stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                started = time.monotonic()
                get_health(port)
                assert time.monotonic() - started < 2
            time.sleep(0.3)  # the held workers see their clients gone and wait again
