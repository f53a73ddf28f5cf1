"""Campaign send benchmark: uscmail's pipeline end to end against a naive Flask-Mail loop and the SMTP transport's
ceiling, all sending into Postfix's smtp-sink on loopback, in one run.

Usage: .venv/bin/python bench/campaign.py [--subscribers 20000] ...   (see --help; `make bench-campaign`)

    --subscribers 200000          the scale check (one fresh database, one campaign)
    --subscribers 20000,200000    both sizes in one run, which also prints the worker memory ratio between them

For each size the run sets up a fresh PostgreSQL database (`flask db upgrade`, `flask seed`), inserts N confirmed
Newsletter subscribers set-based (generate_series), composes a Markdown campaign through the services, and measures:

(a) uscmail as deployed (the default): gunicorn (`-c python:uscmail.gunicorn_conf -w 4`), beat and two workers
    (`celery -A worker worker --concurrency 2` each, on a Redis queue of this run only), started with README's
    command lines. An editor's API token is made with the documented CLI; the campaign is created with POST
    /api/v1/campaigns and sent with POST .../send; the rate is N / (seconds from the send call's answer to GET
    .../stats saying "sent"), into a fresh smtp-sink. `--from-inside` runs the old (a) instead: one worker, send
    pressed from inside the bench, no web app or beat, timed on the campaign row (it overstates what users get).
    Also: the worker pool processes' peak memory (VmHWM from /proc), the
    time from pressing send to the first message arriving at the sink (smtp-sink -c prints its message counter the
    moment a message's final "." arrives; the bench watches it) and to the first Delivery.sent_at.
Once per run, with the first size's database and a message built by the campaign builder for a real subscriber:
(b) a naive Flask-Mail loop in one process: the documented `mail.send(Message(...))` per recipient, which opens a new
    SMTP connection for every message, with the same subject, text, HTML and list headers;
(c) the transport ceiling: the same number of connections as worker processes (2), one process each, pushing the
    builder's pre-rendered bytes with smtplib's sendmail; no database, no queue.
Every phase checks the sink's message counter; (a) also checks that every delivery row ended "sent".

Needs PostgreSQL (trust auth for postgres) and Redis on 127.0.0.1, and smtp-sink (`apt-get install -y postfix`).
Everything the run creates (database, Redis keys, worker and sink processes, temporary files) is removed at the end,
also on Ctrl-C or an error.
"""

import argparse
import itertools
import json
import os
import re
import resource
import secrets
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy as sa
from common import (  # bench/common.py
    CLOCK_TICKS,
    add_service_options,
    child_pids,
    free_port,
    process_cpu,
    run_with_clean_up,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# Targets from issue #11 (as deployed; #4's were 4 and 0.4 for the send pressed from inside).
TARGET_VS_NAIVE = 5.0
TARGET_VS_CEILING = 0.5
TARGET_MEMORY_GROWTH = 1.2
TARGET_FIRST_DELIVERY_S = 2.0

SUBJECT = "Solidarity news: Portland Place on the 5th, and a letter to your MP"
# About 1.5 kB of Markdown, like our newsletters; in the mail layout, as text and HTML, the message is about 8 kB.
BODY = """Dear {{ subscriber.name }},

Thank you for standing with the Uyghur people. This month we return to **Portland Place**, outside the Chinese
embassy in London, on the 5th at 6 pm. Bring a friend, a placard and warm clothes; stewards will be in yellow vests.

## What happened this month

- The forced-labour import ban passed its second reading: thank you to everyone who wrote to their MP.
- Students in Leeds, Glasgow and Cardiff held teach-ins on the detention camps, with survivors speaking.
- Our petition to the university pension schemes passed 12,000 signatures.

## What you can do

1. **Write to your MP** about supply chains. Our [template letter](https://uscuk.example/letter) takes five minutes.
2. **Check your pension**: ask your provider whether it holds companies named in the Sheffield Hallam reports.
3. **Share** this newsletter with someone who should read it.

> "Every letter, every vigil, every signature tells our families that they are not forgotten."

We never track whether you open or click this mail. If you no longer want our newsletter, you can
[leave the list]({{ unsubscribe_url }}) at any time, or [choose what you receive]({{ preferences_url }}).

In solidarity,
Uyghur Solidarity Campaign UK
"""

SINK_COUNTER = re.compile(rb"mesg=(\d+)")
# Pause before each measured phase, so the processes of the one before have exited and the machine is quiet.
SETTLE_SECONDS = 1.0
# The stats endpoint is polled this often: within the API rate limit (API_RATE_LIMIT, 300 a minute by default).
STATS_POLL_SECONDS = 0.25


class BenchError(RuntimeError):
    """The benchmark could not run or its results don't add up."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--subscribers",
        default="20000",
        help="confirmed subscribers to send to; a comma-separated list runs each size in turn (default 20000)",
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery prefork processes, and (c)'s connections (2)")
    parser.add_argument(
        "--naive-messages", type=int, default=5000, help="messages of the Flask-Mail loop (b), at most N (default 5000)"
    )
    parser.add_argument(
        "--blast-messages", type=int, default=20000, help="messages of the smtplib ceiling (c) (default 20000)"
    )
    parser.add_argument(
        "--timeout", type=float, default=0, help="seconds to wait for a campaign to be sent (default: 60 + N/100)"
    )
    add_service_options(parser, "the broker")
    parser.add_argument(
        "--from-inside",
        action="store_true",
        help="the old (a): one worker, send pressed from inside the bench, no web app or beat; overstates what "
        "users get (default: as deployed, gunicorn + beat + two workers, send and stats through the API)",
    )
    parser.add_argument(
        "--kill-worker-at",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="as deployed: SIGKILL the first worker (main and pool processes) once this fraction of the messages "
        "reached the sink, and start it again at once (as a service manager would); prints the stall",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker and sink logs and print their path")
    parser.add_argument(
        "--fail-under-target",
        action="store_true",
        help="exit with status 3 if a target is missed (errors and failed checks: 1)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    try:
        args.sizes = [int(size.replace("_", "")) for size in args.subscribers.split(",")]
    except ValueError:
        parser.error("--subscribers takes numbers separated by commas")
    if min(args.sizes) < 1 or args.workers < 1 or args.naive_messages < 1 or args.blast_messages < args.workers:
        parser.error("sizes, workers and message counts must be positive (--blast-messages at least --workers)")
    return args


# --- processes ------------------------------------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine since boot, all cores together (from /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def steal_seconds() -> float:
    """CPU seconds the hypervisor gave to other machines while this one wanted them, all cores, since boot (counted
    in machine_busy_seconds: a figure to read a noisy run by)."""
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8]) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have exited (the child that presses send)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_memory_kb(pid: int) -> int | None:
    """VmHWM (peak resident set size) of a process, in kB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def stop_process(process: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL to its process group if it has not exited within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Sink:
    """smtp-sink on a free loopback port; its -c counters (one line per event, written at once) go to a file."""

    def __init__(self, directory: Path, name: str):
        self.port = free_port()
        self.output = directory / f"smtp-sink-{name}.out"
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        # smtp-sink refuses to run as root without a user to switch to.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [binary, *user, "-c", f"127.0.0.1:{self.port}", "1000"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.first_message_at: float | None = None
        self._watching = False
        self._watcher: threading.Thread | None = None
        deadline = time.monotonic() + 10
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as probe:
                    if probe.noop()[0] == 250:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"smtp-sink did not answer NOOP on port {self.port}: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.output.read_bytes()[-500:].decode(errors="replace").replace("\r", "\n")

    def count(self) -> int:
        """Messages received so far (the sink's counter, updated when each message's final "." arrives)."""
        counters = SINK_COUNTER.findall(self.output.read_bytes()[-200:])
        return int(counters[-1]) if counters else 0

    def watch_first_message(self) -> None:
        """Note the wall-clock time at which the first message arrives (polled every 2 ms in a thread)."""

        def watch():
            tail = b""
            with self.output.open("rb") as out:
                while self._watching:
                    chunk = out.read()
                    if chunk:
                        # A counter line may be split between two reads: keep the end of the previous one.
                        counters = SINK_COUNTER.findall(tail + chunk)
                        if counters and int(counters[-1]) > 0:
                            self.first_message_at = time.time()
                            return
                        tail = chunk[-32:]
                    time.sleep(0.002)

        self._watching = True
        self._watcher = threading.Thread(target=watch, daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._watching = False
        if self._watcher is not None:
            self._watcher.join()
        stop_process(self.process, timeout=5)


class Deployment:
    """gunicorn, beat and two Celery workers, started with the command lines README's "Running it for real" gives,
    on this run's database, Redis queue and sink."""

    def __init__(self, workdir: Path, env: dict, label: str, concurrency: int, run_id: str):
        self.workdir, self.env, self.label, self.concurrency = workdir, env, label, concurrency
        self.port = free_port()
        self.hostnames = [f"bench-{run_id}-{label}-{n}@{socket.gethostname()}" for n in (1, 2)]
        self.web: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}-{self.label}.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return process

    def start(self) -> None:
        """Start everything; return once the web app answers /healthz and both workers answer a ping."""
        self.web = self.spawn("web", [
            str(VENV_BIN / "gunicorn"), "-c", "python:uscmail.gunicorn_conf", "-w", "4",
            "--bind", f"127.0.0.1:{self.port}", "uscmail:create_app()",
        ])  # fmt: skip
        for number in range(len(self.hostnames)):
            self.workers.append(self.spawn_worker(number))
        self.beat = self.spawn("beat", [
            str(VENV_BIN / "celery"), "-A", "worker", "beat", "--loglevel", "WARNING",
            "--schedule", str(self.workdir / f"beat-schedule-{self.label}"),
        ])  # fmt: skip
        deadline = time.monotonic() + 60
        while self.get("/healthz")[0] != 200:
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"gunicorn did not answer /healthz\n{self.logs()}")
            time.sleep(0.2)
        from celery import Celery

        control = Celery(broker=self.env["REDIS_URL"])
        try:
            while len(control.control.ping(destination=self.hostnames, timeout=0.5) or []) < len(self.hostnames):
                self.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"the Celery workers did not start\n{self.logs()}")
        finally:
            control.close()

    def spawn_worker(self, number: int) -> subprocess.Popen:
        return self.spawn(f"worker{number + 1}", [
            str(VENV_BIN / "celery"), "-A", "worker", "worker", "--concurrency", str(self.concurrency),
            "--hostname", self.hostnames[number], "--loglevel", "WARNING",
        ])  # fmt: skip

    def kill_and_restart_worker(self, number: int) -> None:
        """SIGKILL a worker's main and pool processes (no clean-up of any kind), then start it again."""
        os.killpg(self.workers[number].pid, signal.SIGKILL)
        self.workers[number].wait()
        self.workers[number] = self.spawn_worker(number)

    def processes(self) -> list[subprocess.Popen]:
        return [process for process in (self.web, self.beat, *self.workers) if process is not None]

    def check_alive(self) -> None:
        for process in self.processes():
            if process.poll() is not None:
                raise BenchError(f"a process exited ({shlex.join(process.args)})\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.glob(f"*-{self.label}.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    def pool_pids(self) -> list[int]:
        return [pid for worker in self.workers for pid in child_pids(worker.pid)]

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    def api(self, token: str, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        """One call to /api/v1 with the bearer token; (status, JSON answer)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def api_token(self) -> str:
        """An editor and their API token, made with the documented CLI (`flask --app uscmail organisers ...`)."""
        email = f"bench-{self.label}@uscuk.example"
        flask = [str(VENV_BIN / "flask"), "--app", "uscmail", "organisers"]
        for argv in ([*flask, "create", email, "--role", "editor"], [*flask, "token", email, "--name", "bench"]):
            result = subprocess.run(argv, cwd=PROJECT_DIR, env=self.env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BenchError(f"{shlex.join(argv)} failed:\n{result.stderr[-2000:]}")
        return result.stdout.strip().splitlines()[-1]

    def cpu_snapshot(self, bench: "Bench", url: str, sink: Sink) -> dict[str, dict[int, float] | float]:
        def tree(process: subprocess.Popen | None) -> dict[int, float]:
            pids = [process.pid, *child_pids(process.pid)] if process is not None else []
            return {pid: cpu for pid in pids if (cpu := process_cpu(pid)) is not None}

        workers: dict[int, float] = {}
        for worker in self.workers:
            workers.update(tree(worker))
        info = bench.redis.info("cpu")
        return {
            "workers": workers,
            "web": tree(self.web),
            "beat": tree(self.beat),
            "postgres": {pid: cpu for pid in bench.database_pids(url) if (cpu := process_cpu(pid)) is not None},
            "smtp-sink": {sink.process.pid: process_cpu(sink.process.pid) or 0.0},
            "redis": info["used_cpu_user"] + info["used_cpu_sys"],
            "bench": own_cpu_seconds(),
            "machine": machine_busy_seconds(),
        }

    def stop(self) -> None:
        for process in self.processes():
            stop_process(process)
        self.web = self.beat = None
        self.workers = []


# --- the run --------------------------------------------------------------------------------------------------------


@dataclass
class CampaignResult:
    """What (a) measured for one size."""

    subscribers: int
    seconds: float  # finished_at - started_at of the campaign row
    polled_seconds: float  # from pressing send until the bench saw status "sent"
    first_at_sink_s: float | None  # from pressing send to the first message at the sink
    first_sent_at_s: float | None  # first Delivery.sent_at - started_at
    deliveries: dict[str, int]
    sink_messages: int
    pool_peak_kb: list[int]
    main_peak_kb: int
    cpu: dict[str, float]  # CPU seconds by part, over cpu_window_s seconds (start of the press child to "sent")
    cpu_window_s: float
    pool_cpu: list[float] = field(default_factory=list)  # CPU seconds of each pool process (as deployed)
    # (seconds since the send call's answer, messages at the sink), sampled at each stats poll (as deployed)
    progress: list[tuple[float, int]] = field(default_factory=list)
    killed_at_s: float | None = None  # when the first worker was killed (--kill-worker-at), since the send call
    stall_noted_s: float | None = None  # when the stats first said the campaign stalled, since the send call

    def longest_pause_after_kill(self) -> float:
        """The longest time after the kill in which the sink's counter did not move (to the stats polls' precision)."""
        longest, since = 0.0, None
        for (t0, count0), (t1, count1) in itertools.pairwise(self.progress):
            if self.killed_at_s is None or t1 < self.killed_at_s or count0 >= self.subscribers:
                continue
            if count1 == count0:
                since = t0 if since is None else since
                longest = max(longest, t1 - since)
            else:
                since = None
        return longest

    def rate_between(self, start: float, end: float) -> float:
        """msg/s at the sink between two times since the send call (the nearest polls)."""
        inside = [(t, count) for t, count in self.progress if start <= t <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return 0.0
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def rates_by_tenth(self) -> list[float]:
        """msg/s over each tenth of the campaign's messages, from the sink's counter as the bench polled it."""
        rates = []
        for tenth in range(10):
            low, high = self.subscribers * tenth // 10, self.subscribers * (tenth + 1) // 10
            start = next((t for t, count in self.progress if count >= low), None)
            end = next((t for t, count in self.progress if count >= high), None)
            if start is None or end is None or end <= start:
                return rates
            rates.append((high - low) / (end - start))
        return rates

    @property
    def rate(self) -> float:
        return self.subscribers / self.seconds

    killed_processes: int = 0  # pool processes killed with their worker (--kill-worker-at)

    @property
    def ok(self) -> bool:
        if not self.killed_processes:
            return self.deliveries == {"sent": self.subscribers} and self.sink_messages == self.subscribers
        # A killed process's message on the wire is "unknown" (never sent again) and may or may not have arrived.
        sent, unknown = self.deliveries.get("sent", 0), self.deliveries.get("unknown", 0)
        return (
            set(self.deliveries) <= {"sent", "unknown"}
            and sent + unknown == self.subscribers
            and unknown <= self.killed_processes
            and sent <= self.sink_messages <= sent + unknown
        )


@dataclass
class Baseline:
    """What (b) or (c) measured."""

    messages: int
    seconds: float
    sink_messages: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def ok(self) -> bool:
        return self.sink_messages == self.messages


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="uscmail-bench-campaign-")))
    databases: list[str] = field(default_factory=list)
    sinks: list[Sink] = field(default_factory=list)
    worker: subprocess.Popen | None = None
    sample: dict = field(default_factory=dict)
    deployments: list = field(default_factory=list)

    def __post_init__(self):
        self.admin_engine = sa.create_engine(self.args.pg_admin_url, isolation_level="AUTOCOMMIT")
        self.redis = redis.Redis.from_url(self.args.redis_url)
        self.redis.ping()

    @property
    def key_prefix(self) -> str:
        return f"uscmail-bench-campaign-{self.run_id}"

    def env(self, database_url: str, mail_port: int) -> dict[str, str]:
        env = {
            **os.environ,
            "USCMAIL_ENV": "development",
            "SECRET_KEY": "bench-secret-key-" + self.run_id * 8,
            "DATABASE_URL": database_url,
            "REDIS_URL": self.args.redis_url,
            "CELERY_QUEUE": self.key_prefix,
            "RATELIMIT_KEY_PREFIX": self.key_prefix,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(mail_port),
            "MAIL_USE_TLS": "0",
            "MAIL_USE_SSL": "0",
            "MAIL_TIMEOUT": "30",
            "MAIL_DEFAULT_SENDER": "USC-UK <news@uscuk.example>",
            "BASE_URL": "https://lists.uscuk.example",
            "DEV_MAIL_VIEWER": "0",
            "DEV_MAIL_DIR": str(self.workdir / "devmail"),
            "SEND_JOURNAL_DIR": str(self.workdir / "send-journal"),
            # The relay's limits are off: the benchmark measures how fast uscmail can go.
            "SEND_RATE_PER_SECOND": "0",
            "SEND_RATE_PER_HOUR": "0",
            "SEND_RATE_PER_DAY": "0",
            "PYTHONPATH": str(PROJECT_DIR),
            "FLASK_APP": "uscmail",
        }
        for name in ("FLASK_DEBUG", "MAIL_USERNAME", "MAIL_PASSWORD", "SUPPRESSION_KEY", "SECRET_KEY_FALLBACKS"):
            env.pop(name, None)
        return env

    # --- database ---------------------------------------------------------------------------------------------------

    def create_database(self, size: int) -> str:
        """A fresh database with the schema, the seed data and `size` confirmed Newsletter subscribers."""
        name = f"uscmail_bench_{self.run_id}_{len(self.databases)}"
        with self.admin_engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.databases.append(name)
        url = self.args.pg_admin_url.rsplit("/", 1)[0] + "/" + name
        for command in (["db", "upgrade"], ["seed"]):
            result = subprocess.run(
                [str(VENV_BIN / "flask"), "--app", "uscmail", *command],
                cwd=PROJECT_DIR,
                env=self.env(url, 0),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise BenchError(f"flask {' '.join(command)} failed:\n{result.stdout}{result.stderr[-4000:]}")
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            list_id = connection.scalar(sa.text("SELECT id FROM mailing_lists WHERE slug = 'newsletter'"))
            connection.execute(
                sa.text(
                    "INSERT INTO subscribers (public_id, email, name, locale, signup_mail_count, created_at,"
                    " updated_at) SELECT md5('bench-' || i), 'supporter' || i || '@example.org',"
                    " 'Supporter ' || i, 'en', 0, now(), now() FROM generate_series(1, :size) AS i"
                ),
                {"size": size},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO subscriptions (subscriber_id, list_id, status, status_reason, created_at,"
                    " confirmed_at, updated_at)"
                    " SELECT id, :list_id, 'confirmed', 'confirmed_by_subscriber', now(), now(), now()"
                    " FROM subscribers"
                ),
                {"list_id": list_id},
            )
        # A settled database, as a real one would be: statistics, visibility map, and the load's WAL checkpointed,
        # so neither autovacuum nor a checkpoint caused by the load runs during the measurement.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM (ANALYZE) subscribers, subscriptions"))
            connection.execute(sa.text("CHECKPOINT"))
        engine.dispose()
        return url

    def drop_databases(self) -> list[str]:
        problems = []
        for name in self.databases:
            try:
                with self.admin_engine.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except sa.exc.SQLAlchemyError as exc:
                problems.append(f"could not drop database {name}: {exc}")
        self.databases.clear()
        self.admin_engine.dispose()
        return problems

    # --- children ---------------------------------------------------------------------------------------------------

    def run_child(self, env: dict, mode: str, *args: str) -> dict:
        """Run this script in a child process with the app's environment and return its JSON answer."""
        result = subprocess.run(
            [sys.executable, __file__, "--child", mode, *args],
            env=env,
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(f"the {mode} step failed:\n{result.stderr[-4000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def prepare_campaign(self, url: str) -> dict:
        """Compose the campaign as a draft; the first time, also keep a message built for a real subscriber."""
        sample_path = self.workdir / "sample.eml"
        answer = self.run_child(self.env(url, 0), "prepare", str(sample_path))
        if not self.sample:
            self.sample = {**answer, "path": str(sample_path)}
        return answer

    # --- (b) and (c) ------------------------------------------------------------------------------------------------

    def naive_loop(self, url: str, count: int) -> Baseline:
        """(b): the Flask-Mail loop in a child process."""
        time.sleep(SETTLE_SECONDS)
        sink = self.start_sink("naive")
        try:
            answer = self.run_child(self.env(url, sink.port), "naive", self.sample["path"], str(count))
            time.sleep(0.2)  # the sink writes the last counter line when that message's "." arrives; let it land
            return Baseline(answer["sent"], answer["seconds"], sink.count())
        finally:
            sink.stop()

    def blast(self, count: int) -> Baseline:
        """(c): one process per connection, started and connected first, then all released at once."""
        time.sleep(SETTLE_SECONDS)
        sink = self.start_sink("blast")
        shares = [
            count // self.args.workers + (1 if i < count % self.args.workers else 0) for i in range(self.args.workers)
        ]
        blasters = [
            subprocess.Popen(
                [sys.executable, __file__, "--child", "blast", self.sample["path"], str(share), str(sink.port),
                 self.sample["envelope_from"], str(i)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR, start_new_session=True,
            )
            for i, share in enumerate(shares)
        ]  # fmt: skip
        try:
            for blaster in blasters:
                if blaster.stdout.readline().strip() != "ready":
                    raise BenchError("a (c) sender could not connect to the sink")
            for blaster in blasters:
                blaster.stdin.write("go\n")
                blaster.stdin.flush()
            answers = [json.loads(blaster.stdout.readline()) for blaster in blasters]
            time.sleep(0.2)
            received = sink.count()
        finally:
            for blaster in blasters:
                stop_process(blaster, timeout=10)
            sink.stop()
        seconds = max(answer["end"] for answer in answers) - min(answer["start"] for answer in answers)
        return Baseline(sum(answer["sent"] for answer in answers), seconds, received)

    # --- (a) --------------------------------------------------------------------------------------------------------

    def start_sink(self, name: str) -> Sink:
        sink = Sink(self.workdir, name)
        self.sinks.append(sink)
        return sink

    def start_worker(self, env: dict, label: str) -> None:
        """`celery -A worker worker` with `--workers` prefork processes; returns once it answers a ping."""
        nodename = f"bench-{self.run_id}-{label}@{socket.gethostname()}"
        log = (self.workdir / f"worker-{label}.log").open("wb")
        self.worker = subprocess.Popen(
            [str(VENV_BIN / "celery"), "-A", "worker", "worker", "--pool", "prefork",
             "--concurrency", str(self.args.workers), "--hostname", nodename,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
            cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        from celery import Celery

        control = Celery(broker=self.args.redis_url)
        try:
            deadline = time.monotonic() + 60
            while not control.control.ping(destination=[nodename], timeout=0.5):
                if self.worker.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the Celery worker did not start:\n{self.worker_log(label)}")
        finally:
            control.close()
        deadline = time.monotonic() + 10
        while len(child_pids(self.worker.pid)) < self.args.workers:
            if time.monotonic() > deadline:
                raise BenchError("the Celery worker has fewer pool processes than asked for")
            time.sleep(0.1)

    def worker_log(self, label: str) -> str:
        path = self.workdir / f"worker-{label}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def database_pids(self, url: str) -> list[int]:
        with self.admin_engine.connect() as connection:
            query = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name")
            return list(connection.scalars(query, {"name": url.rsplit("/", 1)[1]}))

    def cpu_snapshot(self, url: str, sink: Sink) -> dict[str, dict[int, float] | float]:
        workers = [self.worker.pid, *child_pids(self.worker.pid)]
        info = self.redis.info("cpu")
        return {
            "workers": {pid: cpu for pid in workers if (cpu := process_cpu(pid)) is not None},
            "postgres": {pid: cpu for pid in self.database_pids(url) if (cpu := process_cpu(pid)) is not None},
            "smtp-sink": {sink.process.pid: process_cpu(sink.process.pid) or 0.0},
            "redis": info["used_cpu_user"] + info["used_cpu_sys"],
            "bench": own_cpu_seconds(),
            "machine": machine_busy_seconds(),
        }

    def send_campaign(self, url: str, size: int, campaign_id: int) -> CampaignResult:
        """(a): start the workers, press send, wait for "sent", check every delivery, stop the workers."""
        sink = self.start_sink(f"campaign-{size}")
        env = self.env(url, sink.port)
        label = str(size)
        self.start_worker(env, label)
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        timeout = self.args.timeout or 60 + size / 100
        try:
            time.sleep(SETTLE_SECONDS)
            cpu_before, window_started = self.cpu_snapshot(url, sink), time.monotonic()
            sink.watch_first_message()
            pressed = self.run_child(env, "press", str(campaign_id))["pressed"]
            pool_peaks: dict[int, int] = {}
            next_progress = time.monotonic() + 10
            with engine.connect() as connection:
                while True:
                    status, detail = connection.execute(
                        sa.text("SELECT status, status_detail FROM campaigns WHERE id = :id"), {"id": campaign_id}
                    ).one()
                    for pid in child_pids(self.worker.pid):
                        pool_peaks[pid] = max(pool_peaks.get(pid, 0), peak_memory_kb(pid) or 0)
                    if status == "sent":
                        seen_sent = time.time()
                        break
                    if status in ("paused", "cancelled"):
                        raise BenchError(f"the campaign is {status}: {detail}\n{self.worker_log(label)}")
                    if self.worker.poll() is not None:
                        raise BenchError(f"the Celery worker exited:\n{self.worker_log(label)}")
                    if time.time() - pressed > timeout:
                        counts = self.delivery_counts(connection, campaign_id)
                        raise BenchError(
                            f"the campaign was not sent within {timeout:.0f} s (status {status}, deliveries "
                            f"{counts or 'none'}, {sink.count():,} messages at the sink)\n{self.worker_log(label)}"
                        )
                    if time.monotonic() >= next_progress:
                        print(f"  ... {sink.count():,} of {size:,} messages at the sink")
                        next_progress += 10
                    time.sleep(0.2)
                cpu_after, cpu_window = self.cpu_snapshot(url, sink), time.monotonic() - window_started
                main_peak = peak_memory_kb(self.worker.pid) or 0
                for pid in child_pids(self.worker.pid):
                    pool_peaks[pid] = max(pool_peaks.get(pid, 0), peak_memory_kb(pid) or 0)
                started, finished, first_sent = self.campaign_times(connection, campaign_id)
                counts = self.delivery_counts(connection, campaign_id)
        finally:
            engine.dispose()
            stop_process(self.worker)
            self.worker = None
            time.sleep(0.2)
            sink.stop()
        cpu = self.cpu_spent(cpu_before, cpu_after)
        return CampaignResult(
            subscribers=size,
            seconds=(finished - started).total_seconds(),
            polled_seconds=seen_sent - pressed,
            first_at_sink_s=sink.first_message_at - pressed if sink.first_message_at else None,
            first_sent_at_s=(first_sent - started).total_seconds() if first_sent else None,
            deliveries=counts,
            sink_messages=sink.count(),
            pool_peak_kb=sorted(pool_peaks.values(), reverse=True),
            main_peak_kb=main_peak,
            cpu=cpu,
            cpu_window_s=cpu_window,
        )

    # --- (a) as deployed ---------------------------------------------------------------------------------------------

    def start_deployment(self, env: dict, label: str) -> "Deployment":
        """The processes README's "Running it for real" starts: gunicorn, beat and two workers."""
        deployment = Deployment(self.workdir, env, label, self.args.workers, self.run_id)
        self.deployments.append(deployment)
        deployment.start()
        return deployment

    def send_campaign_deployed(self, url: str, size: int) -> CampaignResult:
        """(a) as users get it: compose and send through /api/v1 on gunicorn, beat and two workers running; timed
        from the send call returning to the stats endpoint saying "sent"."""
        sink = self.start_sink(f"campaign-{size}")
        env = self.env(url, sink.port)
        deployment = self.start_deployment(env, str(size))
        timeout = self.args.timeout or 60 + size / 100
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            token = deployment.api_token()
            lists = ["newsletter"]
            status, created = deployment.api(
                token,
                "POST",
                "/campaigns",
                {"subject": SUBJECT, "body": BODY, "body_format": "markdown", "lists": lists},
            )
            if status != 201:
                raise BenchError(f"creating the campaign through the API answered {status}: {created}")
            campaign_id = created["id"]
            time.sleep(SETTLE_SECONDS)
            cpu_before, window_started = deployment.cpu_snapshot(self, url, sink), time.monotonic()
            sink.watch_first_message()
            status, answer = deployment.api(token, "POST", f"/campaigns/{campaign_id}/send", None)
            pressed = time.time()
            if status != 202:
                raise BenchError(f"the send call answered {status}: {answer}")
            pool_peaks: dict[int, int] = {}
            progress: list[tuple[float, int]] = []
            killed_at = stall_noted = None
            next_progress = time.monotonic() + 10
            while True:
                status, stats = deployment.api(token, "GET", f"/campaigns/{campaign_id}/stats", None)
                progress.append((time.time() - pressed, sink.count()))
                if (
                    self.args.kill_worker_at
                    and killed_at is None
                    and progress[-1][1] >= self.args.kill_worker_at * size
                ):
                    deployment.kill_and_restart_worker(0)
                    killed_at = time.time() - pressed
                detail = (stats.get("status_detail") or "") if status == 200 else ""
                if killed_at is not None and stall_noted is None and detail.startswith("Sending stalled"):
                    stall_noted = time.time() - pressed
                for pid in deployment.pool_pids():
                    pool_peaks[pid] = max(pool_peaks.get(pid, 0), peak_memory_kb(pid) or 0)
                if status == 200 and stats["status"] == "sent":
                    seen_sent = time.time()
                    break
                if status == 200 and stats["status"] in ("paused", "cancelled"):
                    raise BenchError(f"the campaign is {stats['status']}: {stats['status_detail']}")
                deployment.check_alive()
                if time.time() - pressed > timeout:
                    raise BenchError(
                        f"the campaign was not sent within {timeout:.0f} s (stats {stats}, {sink.count():,} messages "
                        f"at the sink)\n{deployment.logs()}"
                    )
                if time.monotonic() >= next_progress:
                    print(f"  ... {sink.count():,} of {size:,} messages at the sink")
                    next_progress += 10
                time.sleep(STATS_POLL_SECONDS)
            cpu_after, cpu_window = deployment.cpu_snapshot(self, url, sink), time.monotonic() - window_started
            for pid in deployment.pool_pids():
                pool_peaks[pid] = max(pool_peaks.get(pid, 0), peak_memory_kb(pid) or 0)
            main_peak = max(peak_memory_kb(worker.pid) or 0 for worker in deployment.workers)
            with engine.connect() as connection:
                started, finished, first_sent = self.campaign_times(connection, campaign_id)
                counts = self.delivery_counts(connection, campaign_id)
        finally:
            engine.dispose()
            deployment.stop()
            time.sleep(0.2)
            sink.stop()
        cpu = self.cpu_spent(cpu_before, cpu_after)
        pool_cpu = sorted(
            (
                value - cpu_before["workers"].get(pid, 0.0)
                for pid, value in cpu_after["workers"].items()
                if pid in pool_peaks
            ),
            reverse=True,
        )
        return CampaignResult(
            pool_cpu=pool_cpu,
            subscribers=size,
            # What the user sees: from the send call's answer to the stats endpoint's "sent".
            seconds=seen_sent - pressed,
            polled_seconds=(finished - started).total_seconds(),
            first_at_sink_s=sink.first_message_at - pressed if sink.first_message_at else None,
            first_sent_at_s=(first_sent - started).total_seconds() if first_sent else None,
            deliveries=counts,
            sink_messages=sink.count(),
            pool_peak_kb=sorted(pool_peaks.values(), reverse=True),
            main_peak_kb=main_peak,
            cpu=cpu,
            cpu_window_s=cpu_window,
            progress=progress,
            killed_at_s=killed_at,
            stall_noted_s=stall_noted,
            killed_processes=deployment.concurrency if killed_at is not None else 0,
        )

    @staticmethod
    def campaign_times(connection, campaign_id: int) -> tuple:
        """(started_at, finished_at, first Delivery.sent_at) of the campaign."""
        return connection.execute(
            sa.text(
                "SELECT started_at, finished_at, (SELECT min(sent_at) FROM deliveries WHERE campaign_id = :id)"
                " FROM campaigns WHERE id = :id"
            ),
            {"id": campaign_id},
        ).one()

    @staticmethod
    def cpu_spent(before: dict, after: dict) -> dict[str, float]:
        """CPU seconds by part between two snapshots; 'other' is what the machine spent on anything else."""
        cpu = {}
        for part, value in after.items():
            if isinstance(value, dict):
                cpu[part] = sum(seconds - before[part].get(pid, 0.0) for pid, seconds in value.items())
            else:
                cpu[part] = value - before[part]
        cpu["other"] = max(0.0, cpu.pop("machine") - sum(cpu.values()))
        return cpu

    @staticmethod
    def delivery_counts(connection, campaign_id: int) -> dict[str, int]:
        query = sa.text("SELECT status, count(*) FROM deliveries WHERE campaign_id = :id GROUP BY status")
        return dict(connection.execute(query, {"id": campaign_id}).all())

    # --- tear-down --------------------------------------------------------------------------------------------------

    def cleanup(self) -> None:
        problems = []
        stop_process(self.worker)
        for deployment in self.deployments:
            deployment.stop()
        for sink in self.sinks:
            sink.stop()
        problems += self.drop_databases()
        try:
            keys = list(self.redis.scan_iter(match=f"*{self.key_prefix}*", count=1000))
            if keys:
                self.redis.delete(*keys)
        except redis.RedisError as exc:
            problems.append(f"could not delete Redis keys *{self.key_prefix}*: {exc}")
        if self.args.keep_logs:
            print(f"worker and sink logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        for problem in problems:
            print(problem, file=sys.stderr)


# --- child processes ------------------------------------------------------------------------------------------------


def child_main(mode: str, args: list[str]) -> None:
    """In a child: blast (no app) or, with the app, prepare / naive / press; print one JSON line."""
    if mode == "blast":
        blast_child(*args)
        return
    from uscmail import create_app

    app = create_app()
    with app.app_context():
        {"prepare": prepare_child, "naive": naive_child, "press": press_child}[mode](*args)


def prepare_child(sample_path: str) -> None:
    """Compose the campaign as a draft and build its message for the first subscriber with the campaign builder."""
    from uscmail.campaigns import services
    from uscmail.campaigns.builder import Recipient, prepare
    from uscmail.extensions import db
    from uscmail.models import MailingList, Subscriber

    newsletter = db.session.scalar(sa.select(MailingList).where(MailingList.slug == "newsletter"))
    fields = services.CampaignFields(subject=SUBJECT, body=BODY, list_ids=[newsletter.id])
    campaign = services.create_campaign(fields, "bench")
    db.session.commit()
    first = db.session.execute(
        sa.select(Subscriber.email, Subscriber.name, Subscriber.public_id).order_by(Subscriber.id).limit(1)
    ).one()
    prepared = prepare(campaign)
    message = prepared.build(Recipient(delivery_id=1, email=first.email, name=first.name, public_id=first.public_id))
    Path(sample_path).write_bytes(message)
    print(json.dumps({"campaign_id": campaign.id, "envelope_from": prepared.envelope_from, "bytes": len(message)}))


def naive_child(sample_path: str, count: str) -> None:
    """(b): the documented Flask-Mail loop, `mail.send(Message(...))` per recipient (a new connection each time)."""
    from email import policy
    from email.parser import BytesParser

    from flask import current_app
    from flask_mail import Mail, Message

    from uscmail.extensions import db
    from uscmail.models import Subscriber

    sample = BytesParser(policy=policy.default).parsebytes(Path(sample_path).read_bytes())
    text = sample.get_body(preferencelist=("plain",)).get_content()
    html = sample.get_body(preferencelist=("html",)).get_content()
    list_headers = {name: str(sample[name]) for name in ("List-Unsubscribe", "List-Unsubscribe-Post") if sample[name]}
    mail = Mail(current_app)  # the baseline's own Flask-Mail, configured from the same MAIL_* settings
    started = time.perf_counter()
    recipients = db.session.execute(
        sa.select(Subscriber.email, Subscriber.name).order_by(Subscriber.id).limit(int(count))
    ).all()
    for email, name in recipients:
        message = Message(
            subject=str(sample["Subject"]),
            sender=str(sample["From"]),
            recipients=[(name, email)],
            body=text,
            html=html,
            extra_headers=list_headers,
        )
        mail.send(message)
    seconds = time.perf_counter() - started
    print(json.dumps({"sent": len(recipients), "seconds": seconds}))


def blast_child(sample_path: str, count: str, port: str, envelope_from: str, index: str) -> None:
    """(c): one connection sending the same pre-rendered bytes `count` times, after "go" on stdin."""
    data = Path(sample_path).read_bytes()
    connection = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
    connection.ehlo()
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable between processes
    for n in range(int(count)):
        connection.sendmail(envelope_from, [f"blast{index}.{n}@example.org"], data)
    end = time.perf_counter()
    connection.quit()
    print(json.dumps({"sent": int(count), "start": start, "end": end}), flush=True)


def press_child(campaign_id: str) -> None:
    """Press send the way the campaign page does: mark it sending, commit, then queue the start task."""
    from uscmail.campaigns import services, tasks
    from uscmail.extensions import db
    from uscmail.queueing import after_commit

    campaign = services.get_campaign(int(campaign_id))
    pressed = time.time()
    services.start_sending(campaign, "bench")
    after_commit(tasks.start_campaign, campaign.id)
    db.session.commit()
    print(json.dumps({"pressed": pressed}))


# --- report ---------------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def mb(kb: int) -> float:
    return kb / 1024


def run(args: argparse.Namespace) -> int:
    bench = Bench(args)
    sys.path.insert(0, str(PROJECT_DIR))
    from config import Config  # reads the same environment the workers get

    batch_size, lanes = Config.CAMPAIGN_BATCH_SIZE, Config.CAMPAIGN_LANES
    results: list[CampaignResult] = []
    naive = ceiling = None
    pipeline_error = None  # why (a) could not be measured; (b) and (c) are still reported
    try:
        print(f"uscmail campaign benchmark, run {bench.run_id}, on a {os.cpu_count()}-core machine")
        print(f"command: {shlex.join([sys.executable, *sys.argv])}")
        load_before = os.getloadavg()[0]
        if load_before > 1.0:
            print(f"warning: load average {load_before:.2f} before the start: other work is running, and the figures "
                  "will be low and noisy")  # fmt: skip
        for position, size in enumerate(args.sizes):
            print(f"\n{size:,} subscribers: fresh database, migrations, seed, subscribers...")
            started = time.perf_counter()
            url = bench.create_database(size)
            campaign = bench.prepare_campaign(url)
            print(f"  ready in {time.perf_counter() - started:.1f} s; message {campaign['bytes']:,} bytes")
            if position == 0:
                count = min(args.naive_messages, size)
                print(f"  (b) naive Flask-Mail loop, {count:,} messages...")
                naive = bench.naive_loop(url, count)
                print(f"  (c) smtplib ceiling, {args.blast_messages:,} messages over {args.workers} connections...")
                ceiling = bench.blast(args.blast_messages)
            print(f"  (a) uscmail, {size:,} messages, {args.workers} worker processes...")
            try:
                if args.from_inside:
                    results.append(bench.send_campaign(url, size, campaign["campaign_id"]))
                else:
                    results.append(bench.send_campaign_deployed(url, size))
            except BenchError as exc:
                pipeline_error = f"(a) at {size:,} subscribers: {exc}"
                break
            bench.drop_databases()
        load_after = os.getloadavg()[0]
    finally:
        bench.cleanup()

    print()
    print(f"message: {bench.sample['bytes']:,} bytes (multipart text + HTML, built by the campaign builder)")
    print(
        ("uscmail: one celery worker, " if args.from_inside else "uscmail: two celery workers, each ")
        + f"a prefork pool of {args.workers} processes (--concurrency {args.workers}), "
        f"CAMPAIGN_BATCH_SIZE={batch_size}, CAMPAIGN_LANES={lanes}, no send rate limit; PostgreSQL + Redis"
    )
    print()
    print(f"{'':<58}{'messages':>10}{'seconds':>10}{'msgs/s':>10}  check")
    rows = [
        (f"(a) uscmail end to end, {result.subscribers:,} subscribers", result.subscribers, result.seconds,
         result.rate, result.ok)
        for result in results
    ]  # fmt: skip
    rows += [
        ("(b) naive Flask-Mail loop, mail.send per recipient (1 proc)", naive.messages, naive.seconds, naive.rate,
         naive.ok),
        (f"(c) smtplib, pre-rendered bytes ({args.workers} procs, 1 conn each)", ceiling.messages, ceiling.seconds,
         ceiling.rate, ceiling.ok),
    ]  # fmt: skip
    for label, messages, seconds, rate, ok in rows:
        print(f"{label:<58}{messages:>10,}{seconds:>10.2f}{rate:>10,.0f}  {'OK' if ok else 'MISMATCH'}")
    if args.from_inside:
        print(
            "  (a) is N / (finished_at - started_at) of the campaign row: from pressing send to the last delivery "
            "recorded;"
        )
    else:
        print(
            "  (a) runs as deployed: gunicorn (-w 4), beat and two workers (--concurrency "
            f"{args.workers} each); the campaign is created and sent through /api/v1, and (a) is N / (seconds from "
            "the send call's answer to GET .../stats saying 'sent', polled every "
            f"{STATS_POLL_SECONDS} s);"
        )
    print(
        "  (b) opens a new SMTP connection per message (Flask-Mail's default; no mail.connect() "
        "reuse) and sends\n  the same subject, text, HTML and list headers to each recipient, so it renders nothing "
        "per recipient."
    )
    for result in results:
        print(
            f"  check {result.subscribers:,}: deliveries {result.deliveries}, {result.sink_messages:,} messages at the "
            + (
                f"sink; the bench saw 'sent' {result.polled_seconds:.2f} s after pressing send (polling every 0.2 s)"
                if args.from_inside
                else f"sink; the campaign row's started_at to finished_at: {result.polled_seconds:.2f} s"
            )
        )
    print(f"  check (b): {naive.sink_messages:,} at the sink; (c): {ceiling.sink_messages:,} at the sink")

    print()
    passed = True
    for result in results:
        vs_naive, vs_ceiling = result.rate / naive.rate, result.rate / ceiling.rate
        first = result.first_at_sink_s
        first_ok = first is not None and first <= TARGET_FIRST_DELIVERY_S
        passed &= vs_naive >= TARGET_VS_NAIVE and vs_ceiling >= TARGET_VS_CEILING and first_ok
        print(f"{result.subscribers:,} subscribers:")
        print(f"  a/b = {vs_naive:.3f}   (target ≥ {TARGET_VS_NAIVE}: {verdict(vs_naive >= TARGET_VS_NAIVE)})")
        print(f"  a/c = {vs_ceiling:.3f}   (target ≥ {TARGET_VS_CEILING}: {verdict(vs_ceiling >= TARGET_VS_CEILING)})")
        print(
            f"  first delivery: {first:.2f} s from pressing send to the first message at the sink "
            f"(target ≤ {TARGET_FIRST_DELIVERY_S:.0f} s: {verdict(first_ok)})"
            if first is not None
            else "  first delivery: no message reached the sink"
        )
        if result.first_sent_at_s is not None:
            print(
                f"    first Delivery.sent_at - started_at = {result.first_sent_at_s:.2f} s (sent_at is written when "
                "a batch's outcomes are stored, after its last message)"
            )
        if result.killed_at_s is not None:
            killed = result.killed_at_s
            print(
                f"  worker killed (SIGKILL, main and pool processes) and restarted {killed:.1f} s after the send call: "
                f"msg/s over the 5 s before {result.rate_between(killed - 5, killed):,.0f}, the 10 s after "
                f"{result.rate_between(killed, killed + 10):,.0f}, 10 to 20 s after "
                f"{result.rate_between(killed + 10, killed + 20):,.0f}"
            )
            noted = "never" if result.stall_noted_s is None else f"{result.stall_noted_s - killed:.1f} s after the kill"
            pause = result.longest_pause_after_kill()
            print(
                f"    longest pause of the sink's counter after the kill: {pause:.2f} s (target: sending resumes "
                f"within 10 s: {verdict(pause <= 10)}); the stats said the campaign stalled: {noted}"
            )
        tenths = result.rates_by_tenth()
        if len(tenths) == 10:
            print("  msg/s by tenth of the campaign (sink counter): " + ", ".join(f"{rate:,.0f}" for rate in tenths))
        if len(tenths) == 10 and result.subscribers >= 100_000:  # a smaller tenth lasts about one stats poll
            print(
                f"    rate at {result.subscribers * 9 // 10:,} / rate at {result.subscribers // 10:,} "
                f"(ninth tenth / second tenth) = {tenths[8] / tenths[1]:.2f} (target: within 10%); the last tenth "
                "includes the last batches ending"
            )
        pool = result.pool_peak_kb
        print(
            f"  worker peak memory (VmHWM): max {mb(max(pool)):.0f} MB, sum {mb(sum(pool)):.0f} MB over the "
            f"{len(pool)} pool processes; main process {mb(result.main_peak_kb):.0f} MB"
        )
        cpu = result.cpu
        print(
            f"  CPU seconds while sending: workers {cpu['workers']:.1f}, PostgreSQL {cpu['postgres']:.1f}, "
            f"Redis {cpu['redis']:.1f}, smtp-sink {cpu['smtp-sink']:.1f}, "
            + (f"gunicorn {cpu['web']:.1f}, beat {cpu['beat']:.1f}, " if "web" in cpu else "")
            + f"this bench {cpu['bench']:.1f}, "
            f"anything else {cpu['other']:.1f}\n    (of {os.cpu_count() * result.cpu_window_s:.0f} core-seconds in "
            f"{result.cpu_window_s:.1f} s; {cpu['workers'] * 1e6 / result.subscribers:.0f} µs of worker CPU per "
            "message; 'this bench' includes whatever presses send and polls the stats)"
        )
        if result.pool_cpu:
            # Lanes are Celery tasks: a pool process with little CPU had no lane for much of the send.
            shares = ", ".join(f"{seconds:.1f}" for seconds in result.pool_cpu)
            print(f"  CPU seconds of each worker pool process: {shares}")
        share = cpu["other"] / (os.cpu_count() * result.cpu_window_s)
        if share > 0.1:
            print(f"  warning: other work took {share:.0%} of the machine during this send; the figures are low")
    if pipeline_error:
        print(f"benchmark failed: {pipeline_error}", file=sys.stderr)
    elif len(results) > 1:
        smallest, largest = results[0], results[-1]
        growth = max(largest.pool_peak_kb) / max(smallest.pool_peak_kb)
        passed &= growth <= TARGET_MEMORY_GROWTH
        print(
            f"worker peak memory (max over pool processes) at {largest.subscribers:,} vs {smallest.subscribers:,}: "
            f"{growth:.2f}× (target ≤ {TARGET_MEMORY_GROWTH}×: {verdict(growth <= TARGET_MEMORY_GROWTH)})"
        )
    else:
        print(
            f"(worker memory growth: run with --subscribers {results[0].subscribers},{results[0].subscribers * 10} "
            f"to compare two sizes; target ≤ {TARGET_MEMORY_GROWTH}×)"
        )

    print()
    print(
        f"load average before/after: {load_before:.2f} / {load_after:.2f} "
        "(anything else running on the machine takes CPU from the senders and skews the figures)"
    )
    if pipeline_error:
        return 2
    if not all(result.ok for result in results) or not naive.ok or not ceiling.ok:
        return 1
    return 3 if args.fail_under_target and not passed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child[0], args.child[1:])
        return 0
    return run_with_clean_up(run, args, (BenchError, sa.exc.OperationalError, redis.RedisError))


if __name__ == "__main__":
    sys.exit(main())
