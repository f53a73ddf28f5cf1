"""`make run`: the web app, a Celery worker, Celery beat and the development mail catcher, stopped by one Ctrl-C.

The web app runs under gunicorn with the production logging (uscmail.gunicorn_conf: no client addresses, tokens
redacted); it and the mail catcher listen on 127.0.0.1 only, as /dev/mail/ shows every mail sent to anyone.
"""

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


def stop_on_sigterm(signum, frame) -> None:
    """`kill`, a supervisor's SIGTERM or a closed terminal's SIGHUP stops everything, like Ctrl-C, so no process is
    left running."""
    raise KeyboardInterrupt


def main() -> int:
    """Start every process; when one exits or Ctrl-C is pressed, stop them all."""
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    signal.signal(signal.SIGHUP, stop_on_sigterm)  # the terminal closed
    port = os.environ.get("PORT", "5000")
    # gunicorn gets the terminal's Ctrl-C only through the SIGTERM below: given SIGINT as well, its worker hangs
    # until killed. Ctrl-C and the SIGHUP of a closed terminal reach this process, which stops it.
    processes = {
        name: subprocess.Popen(argv, process_group=0 if name == "web" else None)  # noqa: S603
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
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with status {process.returncode}; stopping the rest", flush=True)
                    exit_code = process.returncode or 1
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
