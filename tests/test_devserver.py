"""`make run`'s process supervisor (uscmail/devserver.py): a Ctrl-C stops the web app, worker, beat and mail catcher
and ends with status 0, so make reports no error.

The real supervisor is started as `make run` starts it, in a process group of its own like a terminal's foreground
job, on free ports, an empty SQLite file and a queue of its own; the test waits until the web app answers, then sends
SIGINT to the whole group, as a terminal's Ctrl-C does.
"""

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.bounce_support import free_port
from tests.conftest import PROJECT_DIR, RUN_ID
from tests.waiting import wait_until


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (children, their pool processes and workers), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while being read
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own server on 127.0.0.1
            return response.status == 200
    except OSError:
        return False


def test_ctrl_c_stops_every_process_and_exits_0(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "USCMAIL_ENV": "development",
        "PORT": str(port),
        "MAIL_PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite'}",
        "DEV_MAIL_DIR": str(tmp_path / "devmail"),
        "CELERY_QUEUE": f"uscmail-devserver-{RUN_ID}",
    }
    log = (tmp_path / "devserver.log").open("wb")
    supervisor = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uscmail.devserver"],
        cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, process_group=0,
    )  # fmt: skip
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 60, "the development web app to answer")
        wait_until(lambda: len(descendants(supervisor.pid)) >= 6, 30, "the worker's pool and gunicorn's worker")
        time.sleep(2)  # the worker and beat finish starting up; a Ctrl-C comes whenever the person presses it
        children = descendants(supervisor.pid)

        os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to its foreground job
        status = supervisor.wait(timeout=30)
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
        log.close()
    output = (tmp_path / "devserver.log").read_text(errors="replace")
    assert status == 0, output[-3000:]
    assert "exited with status" not in output, output[-3000:]
    wait_until(lambda: not any(alive(pid) for pid in children), 10, "every child of the supervisor to end")
    assert not answers(f"http://127.0.0.1:{port}/healthz")


def test_make_run_in_a_terminal_ends_with_status_0_after_ctrl_c(tmp_path):
    """`make run` in a terminal (a pseudo-terminal here), stopped by typing Ctrl-C: make itself must end with 0."""
    port = free_port()
    env = {
        **os.environ,
        "USCMAIL_ENV": "development",
        "MAIL_PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite'}",
        "DEV_MAIL_DIR": str(tmp_path / "devmail"),
        "CELERY_QUEUE": f"uscmail-devserver-{RUN_ID}",
    }
    # RUN_STAMP= : the virtualenv is the test's own, already installed; make must not run pip on it.
    argv = ["make", "--no-print-directory", "run", f"PORT={port}", "RUN_STAMP=", f"BIN={Path(sys.executable).parent}"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pseudo-terminal
        os.chdir(PROJECT_DIR)
        os.execvpe(argv[0], argv, env)  # noqa: S606 - make, with fixed arguments
    output = bytearray()

    def read_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([terminal], [], [], 0.2)
            if ready:
                try:
                    output.extend(os.read(terminal, 65536))
                except OSError:
                    return  # the terminal closed: everything ended

    try:
        deadline = time.monotonic() + 90
        while not answers(f"http://127.0.0.1:{port}/healthz") and time.monotonic() < deadline:
            read_for(0.5)
        assert answers(f"http://127.0.0.1:{port}/healthz"), output.decode(errors="replace")[-3000:]
        read_for(3)  # the worker and beat finish starting up
        children = descendants(pid)
        os.write(terminal, b"\x03")  # Ctrl-C, typed
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            read_for(0.2)
        else:
            raise AssertionError("make run did not end within 30 s of Ctrl-C")
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            if not os.waitpid(pid, os.WNOHANG)[0]:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        read_for(0.2)
        os.close(terminal)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    assert "Error" not in text and "Interrupt" not in text and "Traceback" not in text, text[-3000:]
    wait_until(lambda: not any(alive(child) for child in children), 10, "every process of make run to end")
