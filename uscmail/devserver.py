"""`make run`: the web app, a Celery worker, Celery beat and the development mail catcher, stopped by one Ctrl-C.

The web app runs under gunicorn with the production logging (uscmail.gunicorn_conf: no client addresses, tokens
redacted); it and the mail catcher listen on 127.0.0.1 only, as /dev/mail/ shows every mail sent to anyone.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config import Config

BIN = Path(sys.executable).parent


def commands(port: str) -> dict[str, list[str]]:
    """The processes to run, by name."""
    config = Config()
    return {
        "mail": [sys.executable, "-m", "uscmail.devmail.catcher", "--host", "127.0.0.1",
                 "--port", str(config.MAIL_PORT), "--directory", config.DEV_MAIL_DIR],
        # One process with threads, like `flask run`; a short graceful timeout so Ctrl-C stops it at once.
        "web": [sys.executable, "-m", "gunicorn", "-c", "python:uscmail.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--threads", "4", "--graceful-timeout", "3", "uscmail:create_app()"],
        "worker": [str(BIN / "celery"), "-A", "worker", "worker", "--loglevel", "INFO", "--concurrency", "2"],
        "beat": [str(BIN / "celery"), "-A", "worker", "beat", "--loglevel", "INFO"],
    }  # fmt: skip


def stop_on_signal(signum, frame) -> None:
    """Ctrl-C, `kill`, a supervisor's SIGTERM or a closed terminal's SIGHUP stops everything, so no process is left
    running."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def foreground_of_terminal():
    """Make this process the terminal's foreground process group while it runs, as a shell does for a job.

    Ctrl-C then reaches this process alone, not `make` above it: make treats a SIGINT of its own as fatal (it ends
    with "Interrupt" or the shell's "Error 1" whatever its recipe did), so `make run` could never end cleanly. Without
    a terminal (a service manager, a test) nothing changes."""
    try:
        terminal = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        yield
        return
    quiet = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not set the foreground otherwise
    try:
        previous = os.tcgetpgrp(terminal)
        os.setpgid(0, 0)
        os.tcsetpgrp(terminal, os.getpgrp())
    except OSError:  # not in the terminal's session, or a session leader: leave things as they are
        signal.signal(signal.SIGTTOU, quiet)
        os.close(terminal)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(terminal, previous)
        signal.signal(signal.SIGTTOU, quiet)
        os.close(terminal)


def main() -> int:
    """Start every process; when one exits or Ctrl-C is pressed, stop them all. Returns 0 after a Ctrl-C (or
    SIGTERM, SIGHUP), the status of the process that ended otherwise."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on_signal)
    port = os.environ.get("PORT", "5000")
    # Each child runs in a process group of its own, so the terminal's Ctrl-C reaches this process only, which then
    # stops them all with SIGTERM. Were they to get the SIGINT as well, one of them (beat) could end before this
    # process noticed the Ctrl-C, and its exit would be taken for a crash: "Error 1" from make. (gunicorn's worker
    # also hangs until killed when given SIGINT and SIGTERM together.)
    processes = {
        name: subprocess.Popen(argv, process_group=0)  # noqa: S603
        for name, argv in commands(port).items()
    }
    print(
        f"\n  uscmail is running: open http://127.0.0.1:{port}/\n"
        f"  mail it sends is readable at http://127.0.0.1:{port}/dev/mail/\n"
        "  press Ctrl-C to stop everything\n",
        flush=True,
    )
    exit_code = 0
    try:
        while exit_code == 0:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with status {process.returncode}; stopping the rest", flush=True)
                    exit_code = process.returncode or 1
                    break
            else:
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("\n  stopping uscmail…", flush=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its group: a worker's pool processes too
                process.wait()
    return exit_code


if __name__ == "__main__":
    with foreground_of_terminal():
        status = main()
    sys.exit(status)
