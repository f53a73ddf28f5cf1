"""Signup throughput benchmark: POST /subscribe against GET /healthz on the same gunicorn server, in one run.

Usage: .venv/bin/python bench/signup.py [--duration 10] [--connections 16] ...   (see --help; `make bench-signup`)

The run sets everything up itself and removes it afterwards, also on Ctrl-C or an error:
- a fresh PostgreSQL database (created, `flask db upgrade`, `flask seed`; dropped at the end);
- Redis as Celery broker and rate-limit store, with a queue and key prefix of this run only (deleted at the end);
- gunicorn as deployed, README's command line (`gunicorn -c python:uscmail.gunicorn_conf -w 4`, sync workers, the
  request log on), on a free loopback port; `--custom-server` takes --workers/--worker-class/--threads instead;
- wrk (Debian package `wrk`) with bench/signup.lua as the load generator, on the same machine.

No Celery worker runs, so the signups wait in the run's backlog in Redis (their ids, for the one drain task the first
of them queued) and MAIL_SERVER points to a closed port: if a signup ever waited on SMTP it would fail, and show here
as errors. After the load, the number of stored signups is checked against the 303 answers and the waiting ids.
Finally a few hundred sequential signups of new and of already-confirmed addresses compare their latency, since
timing must not reveal membership.
"""

import argparse
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy as sa
from common import add_service_options, child_pids, free_port, process_cpu, run_with_clean_up  # bench/common.py

PROJECT_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_DIR / "bench"
LUA_SCRIPT = BENCH_DIR / "signup.lua"
VENV_BIN = Path(sys.executable).parent
# Issue #11, as deployed (README's gunicorn command line): signup req/s ÷ /healthz req/s, and the signups' p99.
TARGET_RATIO = 0.1
TARGET_P99_MS = 250.0
# The per-client signup limit, raised so that one load generator on one IP is never throttled.
BENCH_SIGNUP_RATE_LIMIT = "100000000 per hour"

CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
STARTED_FIELD = re.compile(r'name="started" type="hidden" value="([^"]+)"')
VERSION_FIELD = re.compile(r'name="consent_version" type="hidden" value="([^"]+)"')

# Runs in a child process with the server's environment: applies the stored signups whose address starts with argv[1]
# (the worker's job; no worker runs here), then confirms them through the same service the confirmation page uses.
CONFIRM_SNIPPET = """
import sys
import sqlalchemy as sa
from uscmail import create_app
from uscmail.extensions import db
from uscmail.models import SignupRequest, Subscriber
from uscmail.subscriptions import services

app = create_app()
with app.app_context():
    stored = sa.select(SignupRequest.id).where(SignupRequest.email.startswith(sys.argv[1], autoescape=True))
    for request_id in db.session.scalars(stored).all():
        services.apply_signup_request(request_id)
        services.forget_signup_request(request_id)  # as the worker does once the mail is sent (none is, here)
    db.session.commit()
    query = sa.select(Subscriber).where(Subscriber.email.startswith(sys.argv[1], autoescape=True))
    subscribers = db.session.scalars(query).all()
    confirmed = sum(1 for subscriber in subscribers if services.confirm_subscription(subscriber))
    db.session.commit()
    print(confirmed)
"""


class BenchError(RuntimeError):
    """The benchmark could not run or its results don't add up."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load per endpoint (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="open HTTP connections (default 16)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1; the machine has 2 cores)")
    parser.add_argument(
        "--worker-class",
        choices=["gthread", "sync"],
        default="gthread",
        help="gunicorn worker class (default gthread; sync has no keep-alive, so wrk opens a connection per request "
        "and /healthz soon fills the loopback port range with TIME_WAIT sockets)",
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    parser.add_argument(
        "--custom-server",
        dest="as_deployed",
        action="store_false",
        help="start gunicorn with --workers/--worker-class/--threads (default: as deployed, README's command line "
        "`gunicorn -c python:uscmail.gunicorn_conf -w 4`, its request log included)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--sequential", type=int, default=300, help="sequential signups of each kind for the timing check (default 300)"
    )
    add_service_options(parser, "the broker and rate-limit counters")
    parser.add_argument("--keep-logs", action="store_true", help="keep the gunicorn log directory and print its path")
    parser.add_argument(
        "--fail-under-target",
        action="store_true",
        help=f"exit with status 3 if the throughput ratio is under {TARGET_RATIO} (errors and failed checks: 1)",
    )
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.sequential < 0:
        parser.error("--warmup and --sequential must not be negative")
    if args.duration < 1 or args.connections < 1 or args.wrk_threads < 1 or args.workers < 1 or args.threads < 1:
        parser.error("durations, connections, threads and workers must be at least 1")
    if args.wrk_threads > args.connections:
        parser.error("--wrk-threads must not exceed --connections")
    return args


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots (processes started in between count in full)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass
class LoadResult:
    """What one wrk run measured."""

    name: str
    requests: int
    duration_s: float
    issued: int
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    expected_status: int
    # CPU seconds spent during the run by the gunicorn processes, this database's PostgreSQL backends, and wrk.
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_ms_per_request(self, part: str) -> float | None:
        seconds = self.cpu.get(part)
        return None if seconds is None or not self.requests else seconds * 1000 / self.requests

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    @property
    def errors(self) -> int:
        wrong = sum(count for status, count in self.statuses.items() if status != self.expected_status)
        return wrong + sum(self.socket_errors.values())

    @property
    def answered_ok(self) -> int:
        return self.statuses.get(self.expected_status, 0)

    def error_detail(self) -> str:
        wrong = {status: count for status, count in sorted(self.statuses.items()) if status != self.expected_status}
        sockets = {kind: count for kind, count in self.socket_errors.items() if count}
        parts = [f"HTTP {status}: {count}" for status, count in wrong.items()]
        parts += [f"socket {kind}: {count}" for kind, count in sockets.items()]
        return ", ".join(parts)


@dataclass
class SignupForm:
    """The session cookie and hidden fields of one served signup form, reused for every post."""

    cookie: str
    csrf_token: str
    started: str
    consent_version: str


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    env: dict[str, str] = field(default_factory=dict)
    database_created: bool = False
    server: subprocess.Popen | None = None
    port: int = 0
    smtp_port: int = 0
    log_dir: Path | None = None

    @property
    def database_name(self) -> str:
        return f"uscmail_bench_{self.run_id}"

    @property
    def key_prefix(self) -> str:
        return f"uscmail-bench-{self.run_id}"

    @property
    def database_url(self) -> str:
        return self.args.pg_admin_url.rsplit("/", 1)[0] + "/" + self.database_name

    # --- set-up -------------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        if shutil.which("wrk") is None:
            raise BenchError("wrk is not installed; on Debian: apt-get install -y wrk")
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"uscmail-bench-{self.run_id}-"))
        self.port = free_port()
        self.smtp_port = free_port()  # nothing listens there: an SMTP connection would be refused at once
        self.env = {
            **os.environ,
            "USCMAIL_ENV": "development",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.args.redis_url,
            "CELERY_QUEUE": self.key_prefix,
            "RATELIMIT_KEY_PREFIX": self.key_prefix,
            "SIGNUP_RATE_LIMIT": BENCH_SIGNUP_RATE_LIMIT,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.smtp_port),
            "MAIL_TIMEOUT": "5",
            "BASE_URL": "https://lists.uscuk.test",
            "DEV_MAIL_VIEWER": "0",
            "DEV_MAIL_DIR": str(self.log_dir / "devmail"),
            "FLASK_APP": "uscmail",
        }
        for name in ("FLASK_DEBUG", "TRUSTED_PROXIES", "SECRET_KEY_FALLBACKS", "SUPPRESSION_KEY", "CORS_ORIGINS"):
            self.env.pop(name, None)
        client = redis.Redis.from_url(self.args.redis_url)
        client.ping()
        self.redis = client
        self.admin_engine = sa.create_engine(self.args.pg_admin_url, isolation_level="AUTOCOMMIT")
        with self.admin_engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{self.database_name}"'))
        self.database_created = True
        for command in (["db", "upgrade"], ["seed"]):
            self.run_flask(command)
        self.engine = sa.create_engine(self.database_url)

    def run_flask(self, command: list[str]) -> None:
        result = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "uscmail", *command],
            cwd=PROJECT_DIR,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BenchError(f"flask {' '.join(command)} failed:\n{result.stdout}{result.stderr}")

    def start_server(self) -> None:
        if self.args.as_deployed:
            # README's command line: the production settings file (request log on stdout), -w 4, nothing else.
            command = [
                str(VENV_BIN / "gunicorn"), "-c", "python:uscmail.gunicorn_conf", "-w", "4",
                "--bind", f"127.0.0.1:{self.port}", "--error-logfile", str(self.log_dir / "gunicorn.log"),
            ]  # fmt: skip
        else:
            command = [
                str(VENV_BIN / "gunicorn"),
                "--workers", str(self.args.workers),
                "--worker-class", self.args.worker_class,
                "--bind", f"127.0.0.1:{self.port}",
                "--backlog", "2048",
                "--log-level", "warning",
                "--error-logfile", str(self.log_dir / "gunicorn.log"),
            ]  # fmt: skip
            if self.args.worker_class == "gthread":
                command += ["--threads", str(self.args.threads)]
        command.append("uscmail:create_app()")
        # Its own session, so a Ctrl-C reaches only this script, which then stops the server in order.
        self.server = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.server.poll() is not None:
                raise BenchError("gunicorn exited while starting:\n" + self.server_log())
            try:
                status, _, _ = self.http("GET", "/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("gunicorn did not answer /healthz within 30 s:\n" + self.server_log())
            time.sleep(0.1)
        # Load the form a few times so every worker has imported everything and opened its pools before wrk starts.
        for _ in range((4 if self.args.as_deployed else self.args.workers) * 4):
            self.http("GET", "/subscribe")

    def server_log(self) -> str:
        path = self.log_dir / "gunicorn.log" if self.log_dir else None
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else "(no log)"

    def http(self, method: str, path: str, body: str | None = None, headers: dict | None = None, connection=None):
        own = connection is None
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read().decode()
        finally:
            if own:
                connection.close()

    def fetch_form(self) -> SignupForm:
        """Load /subscribe like a browser, then wait the minimum fill time once, so the form may be posted."""
        status, headers, html = self.http("GET", "/subscribe")
        if status != 200:
            raise BenchError(f"GET /subscribe answered {status}")
        cookies = [value.split(";", 1)[0] for name, value in headers if name.lower() == "set-cookie"]
        fields = [pattern.search(html) for pattern in (CSRF_FIELD, STARTED_FIELD, VERSION_FIELD)]
        if not cookies or not all(fields):
            raise BenchError("GET /subscribe did not give a session cookie and the hidden form fields")
        csrf, started, version = (match.group(1) for match in fields)
        time.sleep(self.min_fill_seconds() + 0.2)
        return SignupForm("; ".join(cookies), csrf, started, version)

    def min_fill_seconds(self) -> float:
        from_env = os.environ.get("SIGNUP_MIN_FILL_SECONDS")
        return float(from_env) if from_env else 2.0  # DevelopmentConfig's default

    # --- load ---------------------------------------------------------------------------------------------------

    def wrk(self, name: str, seconds: int, script_args: list[str], expected_status: int) -> LoadResult:
        command = [
            "wrk",
            "--threads", str(self.args.wrk_threads),
            "--connections", str(self.args.connections),
            "--duration", f"{seconds}s",
            "--timeout", "10s",
            "--script", str(LUA_SCRIPT),
            f"http://127.0.0.1:{self.port}",
            "--", *script_args,
        ]  # fmt: skip
        server_before, database_before = self.server_cpu(), self.database_cpu()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run(command, capture_output=True, text=True)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_after, database_after = self.server_cpu(), self.database_cpu()
        cpu = {
            "app": cpu_delta(server_before, server_after),
            "wrk": (children_after.ru_utime + children_after.ru_stime)
            - (children_before.ru_utime + children_before.ru_stime),
        }
        if database_after:
            cpu["postgres"] = cpu_delta(database_before, database_after)
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if result.returncode != 0 or line is None:
            raise BenchError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        data = json.loads(line.removeprefix("BENCH_RESULT "))
        return LoadResult(
            name=name,
            requests=data["requests"],
            duration_s=data["duration_us"] / 1e6,
            issued=data["issued"],
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            statuses={int(status): count for status, count in data["statuses"].items()},
            socket_errors=data["socket_errors"],
            expected_status=expected_status,
            cpu=cpu,
        )

    def server_cpu(self) -> dict[int, float]:
        """CPU seconds used so far by gunicorn and its workers, by pid."""
        pids = [self.server.pid, *child_pids(self.server.pid)]
        return {pid: cpu for pid in pids if (cpu := process_cpu(pid)) is not None}

    def database_cpu(self) -> dict[int, float]:
        """CPU seconds used so far by the PostgreSQL backends serving this run's database (empty if not local)."""
        with self.admin_engine.connect() as connection:
            query = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name")
            pids = list(connection.scalars(query, {"name": self.database_name}))
        return {pid: cpu for pid in pids if (cpu := process_cpu(pid)) is not None}

    def load_health(self, seconds: int) -> LoadResult:
        return self.wrk("GET /healthz", seconds, ["health"], 200)

    def load_signup(self, seconds: int, form: SignupForm, phase: str) -> LoadResult:
        prefix = f"bench-{self.run_id}-{phase}"
        script_args = ["subscribe", prefix, form.cookie, form.csrf_token, form.started, form.consent_version]
        return self.wrk("POST /subscribe", seconds, script_args, 303)

    def count_subscribers(self, prefix: str) -> int:
        with self.engine.connect() as connection:
            query = sa.text("SELECT count(*) FROM signup_requests WHERE starts_with(email, :prefix)")
            return connection.scalar(query, {"prefix": prefix})

    def queued_tasks(self) -> int:
        return self.redis.llen(self.key_prefix)

    def waiting_signups(self) -> int:
        return self.redis.llen(f"{self.key_prefix}:signups:waiting")  # uscmail/subscriptions/backlog.py

    def settled_counts(self) -> tuple[int, int, int, int]:
        """(load-phase subscribers, all subscribers, waiting signups, queued tasks), read once the server has finished
        the requests that were still in flight when wrk stopped (the counts no longer change)."""
        previous = None
        deadline = time.monotonic() + 10
        while True:
            counts = (
                self.count_subscribers(f"bench-{self.run_id}-load-"),
                self.count_subscribers(f"bench-{self.run_id}-"),
                self.waiting_signups(),
                self.queued_tasks(),
            )
            if counts == previous or time.monotonic() > deadline:
                return counts
            previous = counts
            time.sleep(0.5)

    # --- timing of new against already-confirmed addresses -------------------------------------------------------

    def post_signup(self, connection, form: SignupForm, email: str) -> tuple[int, float]:
        body = urllib.parse.urlencode(
            {
                "csrf_token": form.csrf_token,
                "started": form.started,
                "consent_version": form.consent_version,
                "lists": "newsletter",
                "name": "",
                "website": "",
                "email": email,
            }
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": form.cookie}
        started = time.perf_counter()
        status, _, _ = self.http("POST", "/subscribe", body, headers, connection)
        return status, time.perf_counter() - started

    def timing_check(self, form: SignupForm) -> tuple[list[float], list[float]]:
        """Median latency of signups for new addresses and for already-confirmed ones, interleaved one by one."""
        count = self.args.sequential
        confirmed_prefix = f"bench-{self.run_id}-confirmed-"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for n in range(count):
                status, _ = self.post_signup(connection, form, f"{confirmed_prefix}{n}@example.org")
                if status != 303:
                    raise BenchError(f"setting up confirmed addresses: POST /subscribe answered {status}")
        finally:
            connection.close()
        result = subprocess.run(
            [sys.executable, "-c", CONFIRM_SNIPPET, confirmed_prefix],
            cwd=PROJECT_DIR,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or result.stdout.strip() != str(count):
            raise BenchError(f"confirming {count} addresses failed:\n{result.stdout}{result.stderr}")
        new_times, confirmed_times = [], []
        # A fresh keep-alive connection (the server closes idle ones), opened before the first timed request.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            self.http("GET", "/healthz", connection=connection)
            for n in range(count):
                # Alternate the two kinds so drift (caches, autovacuum, other load) affects both alike.
                pairs = [("new", new_times), ("confirmed", confirmed_times)]
                for kind, times in pairs if n % 2 == 0 else reversed(pairs):
                    email = (
                        f"bench-{self.run_id}-timing-{n}@example.org"
                        if kind == "new"
                        else f"{confirmed_prefix}{n}@example.org"
                    )
                    status, elapsed = self.post_signup(connection, form, email)
                    if status != 303:
                        raise BenchError(f"timing check: POST /subscribe for a {kind} address answered {status}")
                    times.append(elapsed)
        finally:
            connection.close()
        return new_times, confirmed_times

    # --- tear-down ----------------------------------------------------------------------------------------------

    def cleanup(self) -> None:
        problems = []
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        if hasattr(self, "engine"):
            self.engine.dispose()
        if self.database_created:
            try:
                with self.admin_engine.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)'))
                self.admin_engine.dispose()
            except Exception as exc:  # noqa: BLE001 - report and carry on cleaning
                problems.append(f"could not drop database {self.database_name}: {exc}")
        if hasattr(self, "redis"):
            try:
                keys = list(self.redis.scan_iter(match=f"*{self.key_prefix}*", count=1000))
                if keys:
                    self.redis.delete(*keys)
            except redis.RedisError as exc:
                problems.append(f"could not delete Redis keys *{self.key_prefix}*: {exc}")
        if self.log_dir is not None:
            if self.args.keep_logs:
                print(f"gunicorn log kept in {self.log_dir}")
            else:
                shutil.rmtree(self.log_dir, ignore_errors=True)
        for problem in problems:
            print(problem, file=sys.stderr)


def ms(seconds: float) -> float:
    return seconds * 1000


def run(args: argparse.Namespace) -> int:
    bench = Bench(args)
    try:
        print(f"uscmail signup benchmark, run {bench.run_id}: setting up PostgreSQL, Redis and gunicorn...")
        bench.prepare()
        bench.start_server()
        form = bench.fetch_form()
        if args.as_deployed:
            server = "as deployed: gunicorn -c python:uscmail.gunicorn_conf -w 4 (sync workers, request log)"
        elif args.worker_class == "gthread":
            server = f"gunicorn, {args.workers} workers, gthread x {args.threads} threads"
        else:
            server = f"gunicorn, {args.workers} sync workers (no keep-alive)"
        print(f"server:  {server}, on 127.0.0.1:{bench.port}; USCMAIL_ENV=development, PostgreSQL + Redis")
        print(
            f"load:    wrk, {args.wrk_threads} thread(s), {args.connections} connections, "
            f"{args.duration} s per endpoint after {args.warmup} s warm-up each, "
            f"on the same {os.cpu_count()}-core machine"
        )
        print(
            f"signup:  SIGNUP_RATE_LIMIT raised to '{BENCH_SIGNUP_RATE_LIMIT}' so the per-client limit never "
            "throttles the single load generator (the limiter still runs and counts every POST in Redis)"
        )
        print(
            f"mail:    no Celery worker runs (tasks only queue in Redis list '{bench.key_prefix}'); "
            f"MAIL_SERVER=127.0.0.1:{bench.smtp_port} is a closed port, so a signup that touched SMTP would fail"
        )
        load_before = os.getloadavg()[0]
        if args.warmup:
            print(f"running: warm-up, {args.warmup} s per endpoint")
            bench.load_health(args.warmup)
            bench.load_signup(args.warmup, form, "warmup")
        print(f"running: GET /healthz for {args.duration} s, then POST /subscribe for {args.duration} s")
        health = bench.load_health(args.duration)
        signup = bench.load_signup(args.duration, form, "load")

        in_flight = signup.issued - signup.requests
        rows, all_rows, waiting, queued = bench.settled_counts()

        if args.sequential:
            print(f"running: {args.sequential} signups of already-confirmed and of new addresses, one at a time")
        new_times, confirmed_times = bench.timing_check(form) if args.sequential else ([], [])
        load_after = os.getloadavg()[0]
        server_log = bench.server_log() if signup.errors or health.errors else ""
    finally:
        bench.cleanup()

    print()
    print(f"{'endpoint':<17}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>8}")
    for result in (health, signup):
        print(
            f"{result.name:<17}{result.rps:>12.1f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}"
            f"{result.requests:>10}{result.errors:>8}"
        )
    for result in (health, signup):
        if result.errors:
            print(f"  errors on {result.name}: {result.error_detail()}")
    if server_log:
        print("  end of the gunicorn error log:\n" + server_log)
    print()
    print(f"{'CPU ms per request':<19}{'gunicorn':>10}{'postgres':>10}{'wrk':>10}{'total':>10}")
    for result in (health, signup):
        parts = [result.cpu_ms_per_request(part) for part in ("app", "postgres", "wrk")]
        cells = "".join(f"{value:>10.3f}" if value is not None else f"{'n/a':>10}" for value in parts)
        print(f"{result.name:<19}{cells}{sum(value or 0 for value in parts):>10.3f}")
    print(
        "  (from /proc: the gunicorn processes, this run's PostgreSQL backends, and wrk; Redis and PostgreSQL's "
        "background writers not included)"
    )
    ratio = signup.rps / health.rps if health.rps else 0.0
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"signup/health throughput ratio: {ratio:.2f} (target ≥ {TARGET_RATIO:.2f}; {verdict} it)")
    p99_verdict = "meets" if signup.p99_ms <= TARGET_P99_MS else "MISSES"
    print(
        f"signup p99 at {args.connections} connections: {signup.p99_ms:.0f} ms "
        f"(target ≤ {TARGET_P99_MS:.0f} ms; {p99_verdict} it)"
    )

    print()
    ok = signup.answered_ok
    # wrk stops with up to one request per connection unanswered; the server may or may not have completed those.
    rows_ok = ok <= rows <= ok + in_flight
    print(
        f"check:   {ok} answers 303 → {rows} stored signups "
        f"(up to {in_flight} more were unanswered when wrk stopped): {'OK' if rows_ok else 'MISMATCH'}"
    )
    # Every accepted signup stores one row and leaves its id in the backlog. The first queued a drain task; with no
    # worker to run it, its mark expires every backlog.SCHEDULED_SECONDS (30) and the next signup queues another.
    tasks_ok = waiting == all_rows and queued >= 1
    print(
        f"check:   {waiting} signups waiting in the backlog for {all_rows} stored signups (warm-up and load), "
        f"{queued} drain tasks queued, none run (no worker) and none waited for: {'OK' if tasks_ok else 'MISMATCH'}"
    )

    if new_times:
        new_median, confirmed_median = statistics.median(new_times), statistics.median(confirmed_times)
        print()
        print(f"timing:  {args.sequential} sequential signups of each kind, interleaved, one request at a time")
        print(f"  new address:               median {ms(new_median):.2f} ms")
        print(f"  already-confirmed address: median {ms(confirmed_median):.2f} ms")
        print(
            f"  difference (new − confirmed): {ms(new_median - confirmed_median):+.2f} ms "
            f"({(new_median - confirmed_median) / confirmed_median:+.0%})"
        )

    print()
    print(
        f"load average before/after: {load_before:.2f} / {load_after:.2f} "
        "(anything else running on the machine takes CPU from the server and skews the figures)"
    )
    if signup.errors or health.errors or not rows_ok or not tasks_ok:
        return 1
    return 3 if args.fail_under_target and (ratio < TARGET_RATIO or signup.p99_ms > TARGET_P99_MS) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_with_clean_up(run, args, (BenchError, sa.exc.OperationalError, redis.RedisError))


if __name__ == "__main__":
    sys.exit(main())
