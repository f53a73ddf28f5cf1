"""Helpers the benchmarks share: the options naming PostgreSQL and Redis, free ports, CPU time of processes (read from
/proc), and running with clean-up."""

import argparse
import os
import signal
import socket
import sys
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a local process, or None if it is gone or not ours to see."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pids(parent: int) -> list[int]:
    """Pids of the direct children of a process (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(entry.name))
    return children


def add_service_options(parser: argparse.ArgumentParser, redis_use: str) -> None:
    """--pg-admin-url and --redis-url (defaults from BENCH_PG_ADMIN_URL and BENCH_REDIS_URL, else this machine's)."""
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL URL of a database to connect to for CREATE/DROP DATABASE (env BENCH_PG_ADMIN_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help=f"Redis URL for {redis_use} (env BENCH_REDIS_URL)",
    )


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_with_clean_up(run, args, failures: tuple[type[BaseException], ...]) -> int:
    """Call a benchmark's `run(args)` so that Ctrl-C (even when started in the background, where SIGINT is inherited
    as ignored) and SIGTERM (from CI or a timeout) both stop it through its own clean-up. Returns run's exit status,
    2 after one of `failures` (printed), 130 when interrupted."""
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up at once, also through a pipe
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run(args)
    except failures as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
