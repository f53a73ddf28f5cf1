"""Fault injection (`make chaos`): uscmail as deployed sends 20,000-recipient campaigns while signups arrive and a
reminder falls due, and one fault at a time is thrown at it at a random moment; after each run the outcome is checked
message by message.

Usage: .venv/bin/python bench/chaos.py [--runs 10] [--subscribers 20000] [--seed N]   (see --help; `make chaos`)

Everything runs on loopback and is this run's own, so it can be broken without touching anything else:
- a PostgreSQL cluster (initdb in a temporary directory, run as the postgres user, on a free port);
- a Redis server with the settings of deploy/redis-uscmail.conf (AOF, fsync every second), on a free port;
- an SMTP relay (aiosmtpd in a child process) that records every message it accepts and can be told to go down
  (connections refused, open ones dropped) or to answer 421 to every third message;
- gunicorn (README's command line), two Celery workers (concurrency 2) and beat, as bench/campaign.py starts them.

Each run: a new campaign to the Newsletter's subscribers is created and sent through /api/v1; a thread submits the
signup form through gunicorn twice a second; an event whose reminder falls due a minute or two later is created and
resumed through /api/v1. When the relay has received a random share (10–60 %) of the campaign, one fault is thrown,
the faults taking turns over the runs:
  worker     SIGKILL one worker's main and pool processes, start it again 5 s later;
  redis      restart Redis (SIGTERM, as systemd does; AOF keeps the queue);
  postgres   restart PostgreSQL (`pg_ctl restart -m fast`: every connection is cut, open transactions abort);
  beat       SIGKILL beat, start it again 5 s later;
  relay      the relay refuses connections for 30 s, then answers 421 to every third message for 30 s.
Then nobody touches anything until the stats endpoint says "sent" (a campaign that needs an organiser fails the run).
Checked after each run, against the relay's record and the database:
- every eligible subscriber got exactly one copy, except deliveries marked `unknown`, which got at most one, and
  there are at most as many of those as connections were open (one per worker process);
- no accepted signup was lost: each "check your email" answer has its pending subscriber and its confirmation mail;
- the reminder was sent once: one reminder row, and each of the reminder list's subscribers got one copy.
Settings differing from the defaults, for a run measured in minutes: CAMPAIGN_RETRY_BACKOFF=5 (4xx retried after 5,
10, 20 s), REMINDER_CHECK_SECONDS=5, the per-client signup limit raised (one client sends all signups). The run ends
with a table of the faults and outcomes and exits 1 if any run failed.
"""

import argparse
import collections
import contextlib
import datetime as dt
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from campaign import BODY, SUBJECT, Bench, BenchError, Deployment, stop_process  # bench/campaign.py
from common import free_port  # bench/common.py
from signup import CSRF_FIELD, STARTED_FIELD, VERSION_FIELD  # bench/signup.py

PROJECT_DIR = Path(__file__).resolve().parent.parent
FAULTS = ("worker", "redis", "postgres", "beat", "relay")
PG_BIN = Path("/usr/lib/postgresql") / "15" / "bin"
REMINDER_SUBSCRIBERS = 300
SIGNUPS_PER_SECOND = 2.0
RELAY_DOWN_SECONDS = 30
RELAY_FLAKY_SECONDS = 30
RESTART_AFTER_SECONDS = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="campaigns sent, each with one fault (default 10)")
    parser.add_argument("--subscribers", type=int, default=20_000, help="recipients of each campaign")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"faults to take turns (default {FAULTS})")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random moments (default: random)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a campaign may take before the run fails")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the services this run owns --------------------------------------------------------------------------------------


class OwnPostgres:
    """A throw-away PostgreSQL cluster on a free loopback port, restartable at will."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory / "pgdata"
        self.socket_dir = directory / "pgsocket"
        self.log = directory / "postgres.log"
        for path in (self.directory, self.socket_dir):
            path.mkdir()
            shutil.chown(path, "postgres", "postgres")
        self.log.touch()
        shutil.chown(self.log, "postgres", "postgres")
        self._as_postgres(PG_BIN / "initdb", "-D", self.directory, "-U", "postgres", "--auth", "trust", "-E", "UTF8")
        self.start()

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv) -> None:
        command = ["runuser", "-u", "postgres", "--", *map(str, argv)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")

    def _pg_ctl(self, *argv) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.socket_dir} "
            "-c max_connections=200 -c fsync=off -c full_page_writes=off"
        )
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.directory, "-l", self.log, "-o", options, "-w", *argv)

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(BenchError):
            self._pg_ctl("stop", "-m", "immediate")


class OwnRedis:
    """A Redis server with deploy/redis-uscmail.conf's durability (AOF, fsync every second) on a free port."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory / "redis"
        self.directory.mkdir()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"],
            stdout=(self.directory / "redis.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout != b"PONG\n":
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise BenchError("the run's Redis did not start")
            time.sleep(0.05)

    def restart(self) -> None:
        """SIGTERM (Redis writes its AOF and exits, as on `systemctl restart`), then start it again."""
        stop_process(self.process, timeout=20)
        self.start()

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


class Relay:
    """The relay child process (`--child relay`): commands on its stdin, accepted recipients in a file per run."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", "relay", str(self.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        if self.process.stdout.readline().strip() != "ready":
            raise BenchError("the relay did not start")
        self.record: Path | None = None

    def command(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        if self.process.stdout.readline().strip() != "ok":
            raise BenchError(f"the relay did not take {line!r}")

    def new_record(self, name: str) -> None:
        self.record = self.directory / f"relay-{name}.txt"
        self.command(f"record {self.record}")

    def received(self) -> collections.Counter:
        self.command("flush")
        return collections.Counter(self.record.read_text().split())

    def count(self) -> int:
        self.command("flush")
        return self.record.read_text().count("\n")

    def stop(self) -> None:
        stop_process(self.process, timeout=5)


def relay_child(port: str) -> None:
    """An aiosmtpd relay. Commands: `record PATH`, `flush`, `down` (drop connections, refuse new ones), `up`,
    `flaky` (421 at the end of every third message's data), `steady`."""
    from aiosmtpd.controller import Controller

    state = {"flaky": False, "count": 0, "out": None}

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            state["count"] += 1
            if state["flaky"] and state["count"] % 3 == 0:
                return "421 4.3.2 Service not available, try again later"
            if state["out"] is not None:
                state["out"].write("".join(f"{address.lower()}\n" for address in envelope.rcpt_tos))
            return "250 2.0.0 Ok: queued"

    def start() -> Controller:
        controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), enable_SMTPUTF8=True)
        controller.start()
        return controller

    controller = start()
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "record":
            if state["out"] is not None:
                state["out"].close()
            state["out"] = open(argument, "a")  # noqa: SIM115 - kept open across commands
        elif command == "flush" and state["out"] is not None:
            state["out"].flush()
        elif command == "down" and controller is not None:
            controller.stop()  # closes the listening socket and cancels every session: open connections drop
            controller = None
        elif command == "up" and controller is None:
            controller = start()
        elif command in ("flaky", "steady"):
            state["flaky"] = command == "flaky"
        print("ok", flush=True)


# --- one run ---------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    run: int
    fault: str
    at_share: float = 0.0
    fault_at: float = 0.0
    sent_after: float = 0.0
    deliveries: collections.Counter = field(default_factory=collections.Counter)
    duplicates: int = 0
    missing: int = 0
    strays: int = 0
    unknown: int = 0
    signups_accepted: int = 0
    signups_refused: collections.Counter = field(default_factory=collections.Counter)
    signups_lost: int = 0
    confirmations_missing: int = 0
    reminder_rows: int = 0
    reminder_copies: collections.Counter = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Signups(threading.Thread):
    """Submit the signup form through gunicorn at a steady pace, as visitors would, and keep every answer."""

    def __init__(self, deployment: Deployment, run: int):
        super().__init__(daemon=True)
        self.deployment, self.run_number = deployment, run
        self.stopping = threading.Event()
        self.accepted: list[str] = []
        self.refused: collections.Counter = collections.Counter()

    def post(self, email: str) -> int:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(), NoRedirect())
        opener.addheaders = [("User-Agent", "chaos")]
        base = f"http://127.0.0.1:{self.deployment.port}"
        try:
            page = opener.open(base + "/subscribe", timeout=10).read().decode()
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0
        fields = [pattern.search(page) for pattern in (CSRF_FIELD, STARTED_FIELD, VERSION_FIELD)]
        csrf, started, version = (match.group(1) if match else "" for match in fields)
        data = {
            "csrf_token": csrf,
            "started": started,
            "consent_version": version,
            "email": email,
            "name": "",
            "lists": "newsletter",
            "website": "",
        }
        request = urllib.request.Request(base + "/subscribe", data=urllib.parse.urlencode(data).encode())
        try:
            with opener.open(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def run(self) -> None:
        number, interval, next_at = 0, 1 / SIGNUPS_PER_SECOND, time.monotonic()
        while not self.stopping.is_set():
            number += 1
            email = f"chaos{self.run_number}-{number}-{secrets.token_hex(3)}@signups.example"
            status = self.post(email)
            if status == 303:
                self.accepted.append(email)
            else:
                self.refused[status] += 1
            next_at += interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Keep a 303 as the answer (it is the signup form's "check your email"), as an HTTPError."""

    def redirect_request(self, *args, **kwargs):
        return None


class Chaos:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.random = random.Random(args.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="uscmail-chaos-"))
        os.chmod(self.workdir, 0o755)  # noqa: S103 - the postgres user must reach its data directory inside
        self.postgres = OwnPostgres(self.workdir)
        self.redis = OwnRedis(self.workdir)
        self.relay = Relay(self.workdir)
        namespace = argparse.Namespace(
            pg_admin_url=self.postgres.admin_url, redis_url=self.redis.url, workers=2, timeout=None
        )
        self.bench = Bench(namespace, workdir=self.workdir)
        self.url = self.bench.create_database(args.subscribers)
        self.engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        self.add_reminder_subscribers()
        env = self.bench.env(self.url, self.relay.port)
        env.update(
            CAMPAIGN_RETRY_BACKOFF="5",
            REMINDER_CHECK_SECONDS="5",
            SIGNUP_RATE_LIMIT="100000000 per hour",
            SIGNUP_MIN_FILL_SECONDS="0",
        )
        self.deployment = Deployment(self.workdir, env, "chaos", 2, self.bench.run_id)
        self.deployment.start()
        self.token = self.deployment.api_token()

    def add_reminder_subscribers(self) -> None:
        with self.engine.begin() as connection:
            list_id = connection.scalar(sa.text("SELECT id FROM mailing_lists WHERE slug = 'london-protest-reminders'"))
            connection.execute(
                sa.text(
                    "INSERT INTO subscribers (public_id, email, name, locale, signup_mail_count, created_at,"
                    " updated_at) SELECT md5('chaos-reminder-' || i), 'marcher' || i || '@reminders.example',"
                    " 'Marcher ' || i, 'en', 0, now(), now() FROM generate_series(1, :size) AS i"
                ),
                {"size": REMINDER_SUBSCRIBERS},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO subscriptions (subscriber_id, list_id, status, status_reason, created_at,"
                    " confirmed_at, updated_at) SELECT id, :list_id, 'confirmed', 'confirmed_by_subscriber', now(),"
                    " now(), now() FROM subscribers WHERE email LIKE '%@reminders.example'"
                ),
                {"list_id": list_id},
            )

    def api(self, method: str, path: str, body: dict | None = None, expect: tuple = (200, 201, 202)) -> dict:
        """An API call that must succeed; retried for a while, since a fault may be under way."""
        deadline = time.monotonic() + 60
        while True:
            try:
                status, answer = self.deployment.api(self.token, method, path, body)
            except (OSError, ValueError) as exc:
                status, answer = 0, {"error": str(exc)}
            if status in expect:
                return answer
            if time.monotonic() > deadline:
                raise BenchError(f"{method} {path} answered {status}: {answer}")
            time.sleep(0.5)

    def reminder_event(self, run: int) -> int:
        """A daily event whose same-day reminder falls due 60–120 s from now, created and resumed via the API."""
        now = dt.datetime.now(dt.UTC)
        due = (now + dt.timedelta(seconds=120)).replace(second=0, microsecond=0)
        if due.date() != now.date():
            raise BenchError("the run would cross midnight UTC: start it after 00:05")
        event = self.api("POST", "/events", {
            "title": f"Chaos vigil {run}", "place": "Portland Place, London", "list": "london-protest-reminders",
            "rrule": "FREQ=DAILY", "first_date": now.date().isoformat(), "timezone": "UTC",
            "start_time": "23:59", "reminder_offsets": [{"days_before": 0, "at": due.strftime("%H:%M")}],
        })  # fmt: skip
        event_id = event["id"]
        self.api("POST", f"/events/{event_id}/resume", {})
        return event_id

    def throw(self, fault: str) -> None:
        if fault == "worker":
            number = self.random.randrange(len(self.deployment.workers))
            os.killpg(self.deployment.workers[number].pid, signal.SIGKILL)
            self.deployment.workers[number].wait()
            time.sleep(RESTART_AFTER_SECONDS)
            self.deployment.workers[number] = self.deployment.spawn_worker(number)
        elif fault == "beat":
            os.killpg(self.deployment.beat.pid, signal.SIGKILL)
            self.deployment.beat.wait()
            time.sleep(RESTART_AFTER_SECONDS)
            self.deployment.beat = self.deployment.spawn("beat", self.deployment.beat.args)
        elif fault == "redis":
            self.redis.restart()
        elif fault == "postgres":
            self.postgres.restart()
        elif fault == "relay":
            self.relay.command("down")
            time.sleep(RELAY_DOWN_SECONDS)
            self.relay.command("up")
            self.relay.command("flaky")
            time.sleep(RELAY_FLAKY_SECONDS)
            self.relay.command("steady")

    def one_run(self, run: int, fault: str) -> Outcome:
        outcome = Outcome(run, fault, at_share=self.random.uniform(0.1, 0.6))
        self.relay.new_record(f"run{run}")
        size = self.args.subscribers
        created = self.api("POST", "/campaigns", {
            "subject": f"{SUBJECT} ({run})", "body": BODY, "body_format": "markdown", "lists": ["newsletter"],
        })  # fmt: skip
        campaign_id = created["id"]
        event_id = self.reminder_event(run)
        signups = Signups(self.deployment, run)
        signups.start()
        self.api("POST", f"/campaigns/{campaign_id}/send")
        pressed = time.monotonic()
        thrown = None
        while True:
            if thrown is None and self.relay.count() >= outcome.at_share * size:
                outcome.fault_at = time.monotonic() - pressed
                thrown = threading.Thread(target=self.throw, args=(fault,), daemon=True)
                thrown.start()
            status, stats = self.stats(campaign_id)
            if status == "sent" and thrown is not None and not thrown.is_alive():
                break
            if status in ("paused", "cancelled"):
                outcome.problems.append(f"campaign {status}: {stats.get('status_detail')}")
                break
            if time.monotonic() - pressed > self.args.timeout:
                outcome.problems.append(f"not sent after {self.args.timeout:.0f} s: {stats}")
                break
            time.sleep(0.5)
        outcome.sent_after = time.monotonic() - pressed
        if thrown is not None:
            thrown.join()
        self.wait_for_reminder(event_id, outcome)
        signups.stopping.set()
        signups.join()
        self.check(campaign_id, event_id, signups, outcome)
        self.api("POST", f"/events/{event_id}/hold", {"reason": "chaos run over"})
        return outcome

    def stats(self, campaign_id: int) -> tuple[str, dict]:
        try:
            status, stats = self.deployment.api(self.token, "GET", f"/campaigns/{campaign_id}/stats", None)
        except (OSError, ValueError):
            return "", {}
        return (stats.get("status", ""), stats) if status == 200 else ("", stats)

    def wait_for_reminder(self, event_id: int, outcome: Outcome) -> None:
        """Until the reminder's campaign is sent (it may fall due after the newsletter is done)."""
        deadline = time.monotonic() + 240
        query = sa.text(
            "SELECT c.status FROM reminders r JOIN campaigns c ON c.id = r.campaign_id WHERE r.event_id = :event"
        )
        while time.monotonic() < deadline:
            with contextlib.suppress(sa.exc.OperationalError), self.engine.connect() as connection:
                statuses = connection.scalars(query, {"event": event_id}).all()
                if statuses and all(status == "sent" for status in statuses):
                    return
            time.sleep(1)
        outcome.problems.append("the reminder's campaign was not sent within 4 minutes")

    def check(self, campaign_id: int, event_id: int, signups: Signups, outcome: Outcome) -> None:
        received = self.relay.received()
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT s.email, d.status FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
                    " WHERE d.campaign_id = :campaign"
                ),
                {"campaign": campaign_id},
            ).all()
            eligible = connection.scalar(
                sa.text(
                    "SELECT count(*) FROM subscriptions s JOIN mailing_lists l ON l.id = s.list_id"
                    " WHERE l.slug = 'newsletter' AND s.status = 'confirmed'"
                    " AND s.subscriber_id IN (SELECT id FROM subscribers WHERE email LIKE 'supporter%@example.org')"
                )
            )
            reminders = connection.execute(
                sa.text("SELECT campaign_id FROM reminders WHERE event_id = :event AND status IN ('sent', 'late')"),
                {"event": event_id},
            ).all()
            reminder_statuses = collections.Counter(
                connection.scalars(
                    sa.text(
                        "SELECT d.status FROM deliveries d JOIN reminders r ON r.campaign_id = d.campaign_id"
                        " WHERE r.event_id = :event"
                    ),
                    {"event": event_id},
                ).all()
            )
        outcome.deliveries = collections.Counter(status for _, status in rows)
        if len(rows) != eligible:
            outcome.problems.append(f"{len(rows)} deliveries for {eligible} eligible subscribers")
        for email, status in rows:
            copies = received.pop(email.lower(), 0)
            if copies > 1:
                outcome.duplicates += 1
            elif status == "sent" and copies == 0:
                outcome.missing += 1
            elif status == "unknown":
                outcome.unknown += 1
            elif status != "sent":
                outcome.missing += 1
        campaign_strays = [address for address in received if address.endswith("@example.org")]
        outcome.strays = len(campaign_strays)
        if outcome.duplicates:
            outcome.problems.append(f"{outcome.duplicates} subscribers got the campaign twice")
        if outcome.missing:
            outcome.problems.append(f"{outcome.missing} subscribers did not get the campaign")
        if outcome.strays:
            outcome.problems.append(f"{outcome.strays} copies went to addresses without a delivery")
        open_connections = 2 * len(self.deployment.workers)
        if outcome.unknown > open_connections:
            outcome.problems.append(f"{outcome.unknown} deliveries unknown (at most {open_connections} allowed)")
        # Signups: each accepted one is stored and its confirmation mail arrived.
        outcome.signups_accepted = len(signups.accepted)
        outcome.signups_refused = signups.refused
        self.wait_for_confirmations(signups.accepted, received)
        received = self.relay.received()
        # Read once the mail has come (or the wait is over): a signup is applied up to SIGNUP_BATCH_SECONDS after
        # its answer, with the others of its second.
        with self.engine.connect() as connection:
            stored = set(
                connection.scalars(sa.text("SELECT email FROM subscribers WHERE email LIKE :pattern"), {
                    "pattern": f"chaos{outcome.run}-%@signups.example"
                }).all()
            )  # fmt: skip
        lost = [email for email in signups.accepted if email not in stored]
        unmailed = [email for email in signups.accepted if received.get(email.lower(), 0) == 0]
        outcome.signups_lost, outcome.confirmations_missing = len(lost), len(unmailed)
        if lost:
            outcome.problems.append(f"{len(lost)} accepted signups not stored")
        if unmailed:
            outcome.problems.append(f"{len(unmailed)} accepted signups got no confirmation mail")
        # The reminder: one row, one copy each.
        outcome.reminder_rows = len(reminders)
        outcome.reminder_copies = collections.Counter(
            copies for address, copies in received.items() if address.endswith("@reminders.example")
        )
        if len(reminders) != 1:
            outcome.problems.append(f"{len(reminders)} sent reminders for one due reminder")
        got = sum(outcome.reminder_copies.values())
        twice = sum(n for copies, n in outcome.reminder_copies.items() if copies > 1)
        if twice or got + reminder_statuses.get("unknown", 0) < REMINDER_SUBSCRIBERS:
            outcome.problems.append(
                f"reminder copies: {dict(outcome.reminder_copies)} for {REMINDER_SUBSCRIBERS} subscribers"
                f" (deliveries {dict(reminder_statuses)})"
            )

    def wait_for_confirmations(self, accepted: list[str], received: collections.Counter, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.relay.received()
            if all(received.get(email.lower(), 0) for email in accepted):
                return
            time.sleep(1)

    def close(self, keep: bool) -> list[str]:
        """Stop everything; remove the working directory unless `keep` (its logs explain a failed run)."""
        problems = []
        for step in (self.deployment.stop, self.relay.stop, self.engine.dispose):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - clean up the rest whatever one step does
                problems.append(f"{step.__qualname__}: {exc}")
        self.redis.stop()
        self.postgres.stop()
        if keep:
            problems.append(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


def print_table(outcomes: list[Outcome]) -> None:
    print()
    header = (
        f"{'run':>3}  {'fault':<8}  {'at':>4}  {'thrown':>6}  {'sent in':>7}  {'deliveries':<24}  {'dup':>3}  "
        f"{'miss':>4}  {'signups ok/refused':<22}  {'lost':>4}  {'reminder':<10}  result"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        deliveries = ", ".join(f"{count} {status}" for status, count in sorted(o.deliveries.items()))
        refused = ", ".join(f"{n}×{status or 'conn'}" for status, n in sorted(o.signups_refused.items()))
        reminder = f"{o.reminder_rows} row, {sum(o.reminder_copies.values())}"
        print(
            f"{o.run:>3}  {o.fault:<8}  {o.at_share:>4.0%}  {o.fault_at:>5.1f}s  {o.sent_after:>6.1f}s  "
            f"{deliveries:<24}  {o.duplicates:>3}  {o.missing:>4}  "
            f"{f'{o.signups_accepted} / {refused or 0}':<22}  {o.signups_lost + o.confirmations_missing:>4}  "
            f"{reminder:<10}  {'PASS' if o.ok else 'FAIL: ' + '; '.join(o.problems)}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        if args.child[0] == "relay":
            relay_child(*args.child[1:])
        return 0
    if os.geteuid() != 0:
        print("bench/chaos.py runs its own PostgreSQL as the postgres user: run it as root (or with sudo)")
        return 2
    if args.seed is None:
        args.seed = secrets.randbelow(10**6)
    faults = [fault.strip() for fault in args.faults.split(",") if fault.strip()]
    unknown = set(faults) - set(FAULTS)
    if unknown or not faults:
        print(f"--faults takes some of {', '.join(FAULTS)}")
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a timeout or CI stops it through the clean-up too
    print(f"chaos: {args.runs} runs of {args.subscribers:,} recipients, faults {faults}, seed {args.seed}")
    chaos = None
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        chaos = Chaos(args)
        for run in range(1, args.runs + 1):
            fault = faults[(run - 1) % len(faults)]
            outcome = chaos.one_run(run, fault)
            outcomes.append(outcome)
            print(
                f"run {run}: {fault} at {outcome.at_share:.0%} ({outcome.fault_at:.1f} s), sent after "
                f"{outcome.sent_after:.1f} s: {'PASS' if outcome.ok else 'FAIL: ' + '; '.join(outcome.problems)}",
                flush=True,
            )
    except (BenchError, KeyboardInterrupt) as exc:
        print(f"chaos stopped: {exc}")
        if chaos is not None:
            print(chaos.deployment.logs())
        outcomes.append(Outcome(len(outcomes) + 1, "-", problems=[f"stopped: {str(exc)[:200]}"]))
    finally:
        if chaos is not None:
            for problem in chaos.close(keep=any(not o.ok for o in outcomes)):
                print(f"clean-up: {problem}")
    print_table(outcomes)
    failed = sum(not o.ok for o in outcomes)
    seconds = time.monotonic() - started
    print(f"\n{len(outcomes) - failed} of {len(outcomes)} runs passed in {seconds:.0f} s (seed {args.seed})")
    return 1 if failed or len(outcomes) < args.runs else 0


if __name__ == "__main__":
    sys.exit(main())
