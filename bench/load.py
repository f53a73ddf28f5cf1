"""Load benchmark (issue #14): signups, one-click unsubscribes and preference-page views at a steady rate while a
campaign sends, on uscmail as deployed, through the public interface only.

Usage: .venv/bin/python bench/load.py [--subscribers 20000] [--rate 200] [--duration 60] [--send-rate 0] ...
       (`make load`)

1. A fresh PostgreSQL database with N confirmed Newsletter subscribers (bench/campaign.py's Bench), and uscmail as
   deployed (bench/campaign.py's Deployment): gunicorn with README's command line (`-w 4`, uscmail.webworker's sync
   workers), beat and two Celery workers (`--concurrency 2` each) on a Redis queue of this run only, sending into
   Postfix's smtp-sink; `--send-rate N` sets SEND_RATE_PER_SECOND, as an operator sets their relay's limit (0, the
   default: none); `--worker-cpu-weight W` puts the web and the workers in CPU cgroups, the workers' weighted W
   against the web's 100, as docs/deploy.md's `CPUWeight=` drop-in does (CpuGroups).
2. Baseline: a campaign created with POST /api/v1/campaigns and sent with POST .../send; its send rate is
   recipients / (seconds from the send call's answer to GET .../stats saying "sent"), as bench/campaign.py times (a).
3. Under load: a second campaign to the same list; once it is sending, an open-loop generator issues --rate
   requests/s in total for --duration seconds, a third of them of each kind:
   - signups, the full form flow of a browser: GET /subscribe (session cookie, CSRF token, signed start time,
     consent version), then, 3 s later (a person filling in the form; never sooner than SIGNUP_MIN_FILL_SECONDS after
     the form arrived), POST /subscribe with a new random address. The GET counts as a request of its own: the
     signups' third of the rate is half GETs, half POSTs. The GETs start 3 s before the window, so that within it
     every kind runs at its steady rate; the last POSTs come 3 s after it.
   - one-click unsubscribes (RFC 8058): POST to the List-Unsubscribe URL of the baseline campaign's mail with the
     body `List-Unsubscribe=One-Click`, each link used once;
   - preference-page views: GET of a subscriber's preference link.
   The links are made by the app's own link functions (uscmail.links.make_unsubscribe_token with the campaign's id,
   as the campaign builder signs them; uscmail.subscriptions.mails.preferences_url) in a child process, for
   subscribers picked at random. Requests are scheduled at fixed times and each one's latency is measured from its
   scheduled time, not from when it went out (no coordinated omission); a pool of threads, each with an http.client
   connection (gunicorn's sync workers close it after every answer, so every request opens a new one), sends them.
   The generator's own CPU and how late it handed requests out are printed, to show it is not the bottleneck.
   Campaigns must be sending for the whole window: as many to the same list as would last through it at the rate
   alone are all sent before it (they take turns, as campaigns sending at once do; one sent during the load would
   wait in the web's backlog like any request). The send rate under load is the campaign messages that reached the
   sink within the window: smtp-sink's counter at both ends, less the confirmation mails the workers sent meanwhile
   (each new address's per-address mail counter, read from the database), divided by the window's length; both are
   sampled every second without asking the web app, whose answers, the stats endpoint's too, wait behind its backlog
   when it is overloaded. The fewest messages at the sink in any one second shows that sending never stopped.
4. A table per kind of request (sent, answered req/s, p50/p99/max ms from the scheduled time, answers >= 400 by
   status, 5xx, connection errors), the send rates and their ratio, CPU by process over the window, and PASS/FAIL
   against the targets: no 5xx, the achieved rate (answers to the window's requests / the time from the window's
   start to the last of them, at least the window) within 2% of --rate, and the send rate under load at least 2/3
   of the baseline's. The exit status is 3 if a target is missed, 1 if a check fails, 2 if the run failed.
5. Checks after the load: every signup answered with the "check your inbox" redirect is stored (once the workers
   have applied it: the run waits), every one-click unsubscribe answered 2xx left its subscriber unsubscribed from
   the Newsletter, every campaign ended "sent" with each delivery sent or skipped (unsubscribed meanwhile), and the
   sink received exactly the campaigns' messages plus the confirmation mails.

Rate limits: only signups are limited per client (SIGNUP_RATE_LIMIT, 5 an hour). Behind its proxy (docs/deploy.md,
Caddy) uscmail is run with TRUSTED_PROXIES=1 and keys the limit on the address in X-Forwarded-For; the run does the
same, and every simulated person sends from an address of their own, so no limit is raised and none throttles.

Needs PostgreSQL (trust auth for postgres) and Redis on 127.0.0.1, and smtp-sink (`apt-get install -y postfix`).
Everything the run creates (database, Redis keys, processes, temporary files) is removed at the end, also on Ctrl-C
or an error.
"""

import argparse
import contextlib
import http.client
import itertools
import json
import math
import os
import queue
import random
import select
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy as sa
from campaign import BODY, STATS_POLL_SECONDS, SUBJECT, Bench, BenchError, Deployment, Sink  # bench/campaign.py
from common import add_service_options, child_pids, process_cpu, run_with_clean_up  # bench/common.py
from signup import CSRF_FIELD, STARTED_FIELD, VERSION_FIELD  # bench/signup.py

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Targets from issue #14.
TARGET_RATE_TOLERANCE = 0.02
TARGET_SEND_RATE_RATIO = 2 / 3

# A person takes this long from the form arriving to pressing the button; the form refuses anything faster than
# SIGNUP_MIN_FILL_SECONDS (2 s by default; its signed start time has whole seconds, so a little margin).
FILL_SECONDS = 3.0
MIN_FILL_SECONDS = 2.2
KINDS = ("signup form", "signup", "one-click", "preferences")
EXPECTED = {"signup form": 200, "signup": 303, "one-click": 200, "preferences": 200}


class LoadError(BenchError):
    """The load benchmark could not run or its results don't add up."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=20000, help="confirmed Newsletter subscribers (20000)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s in total, all kinds (default 200)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady load (default 60)")
    parser.add_argument(
        "--threads", type=int, default=256, help="generator threads, the most requests in flight (default 256)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery prefork processes per worker (default 2)")
    add_service_options(parser, "the broker and rate-limit counters")
    parser.add_argument(
        "--alone-seconds",
        type=float,
        default=20.0,
        help="seconds of the same load with no campaign first, to measure what it costs (default 20; 0: none)",
    )
    parser.add_argument(
        "--send-rate",
        type=int,
        default=0,
        help="SEND_RATE_PER_SECOND for the deployment, as set for a relay's limit (default 0: as fast as it can)",
    )
    parser.add_argument(
        "--worker-cpu-weight",
        type=int,
        default=0,
        help="put the web and the workers (with beat) in CPU cgroups of their own, the workers' weight this (systemd's"
        " CPUWeight=, 1-10000; the web's is 100), as docs/deploy.md advises (default 0: no cgroups, as systemd-less)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the process and sink logs and print their path")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    if args.subscribers < 1 or args.rate <= 0 or args.duration <= 0 or args.threads < 1 or args.workers < 1:
        parser.error("subscribers, rate, duration, threads and workers must be positive")
    if args.alone_seconds < 0 or args.send_rate < 0:
        parser.error("--alone-seconds and --send-rate must be 0 or more")
    if args.worker_cpu_weight and not 1 <= args.worker_cpu_weight <= 10000:
        parser.error("--worker-cpu-weight must be from 1 to 10000 (or 0: none)")
    return args


# --- the bench: campaign.py's, with its own names and the proxy trusted ------------------------------------------


class CpuGroups:
    """The web in one CPU cgroup and the workers and beat in another, the workers' with a smaller weight: what a
    systemd drop-in with `CPUWeight=` on uscmail-worker@.service does (docs/deploy.md, step 13). Each cgroup is
    scheduled as one, so a weight shares the CPU between the two groups, whatever number of processes each has. Uses
    cgroup v2's cpu.weight where the cpu controller is enabled at the root, else v1's cpu.shares (1024 for weight
    100). Processes forked later (gunicorn's and Celery's replacements) stay in their parent's group."""

    V2 = Path("/sys/fs/cgroup")
    V1 = Path("/sys/fs/cgroup/cpu")

    def __init__(self, run_id: str, worker_weight: int):
        if "cpu" in self.read(self.V2 / "cgroup.subtree_control").split():
            self.root, self.knob, self.value = self.V2, "cpu.weight", lambda weight: weight
        elif (self.V1 / "cpu.shares").exists():
            self.root, self.knob, self.value = self.V1, "cpu.shares", lambda weight: max(2, round(weight * 1024 / 100))
        else:
            raise LoadError("--worker-cpu-weight: no CPU cgroup controller to use (cgroup v2 with cpu, or v1's cpu)")
        self.groups: dict[str, Path] = {}
        try:
            for name, weight in (("web", 100), ("workers", worker_weight)):
                group = self.root / f"uscmail-bench-load-{run_id}-{name}"
                group.mkdir()
                self.groups[name] = group
                (group / self.knob).write_text(str(self.value(weight)))
        except OSError as exc:
            self.remove()
            raise LoadError(f"--worker-cpu-weight: could not make the cgroups ({exc})") from exc

    @staticmethod
    def read(path: Path) -> str:
        try:
            return path.read_text()
        except OSError:
            return ""

    def put(self, name: str, pids: list[int]) -> None:
        for pid in pids:
            (self.groups[name] / "cgroup.procs").write_text(str(pid))

    def describe(self) -> str:
        web, workers = (self.read(group / self.knob).strip() for group in self.groups.values())
        return f"{self.knob} {web} for the web, {workers} for the workers and beat"

    def remove(self) -> None:
        """Move what is left in the groups back to the root, and remove them."""
        for group in self.groups.values():
            for pid in self.read(group / "cgroup.procs").split():
                with contextlib.suppress(OSError):  # gone meanwhile
                    (self.root / "cgroup.procs").write_text(pid)
            try:
                group.rmdir()
            except OSError as exc:
                print(f"warning: could not remove the cgroup {group}: {exc}", file=sys.stderr)
        self.groups = {}


class LoadBench(Bench):
    """bench/campaign.py's Bench (database, sinks, deployments, clean-up) with this run's key prefix, and the app
    behind a trusted proxy as docs/deploy.md deploys it."""

    @property
    def key_prefix(self) -> str:
        return f"uscmail-bench-load-{self.run_id}"

    def env(self, database_url: str, mail_port: int) -> dict[str, str]:
        env = super().env(database_url, mail_port)
        env["TRUSTED_PROXIES"] = "1"
        env["SEND_RATE_PER_SECOND"] = str(self.args.send_rate)
        return env

    def run_links_child(self, env: dict, *args: str) -> dict:
        """This script's `links` step in a child process with the app's environment; its JSON answer."""
        result = subprocess.run(
            [sys.executable, __file__, "--child", "links", *args],
            env=env,
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LoadError(f"making the links failed:\n{result.stderr[-4000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def make_links(campaign_id: int, unsubscribes: int, views: int) -> tuple[dict[str, list], int]:
    """In an app context: the one-click links of `unsubscribes` subscribers (as the campaign's mail carries them) and
    the preference links of up to `views` others, picked at random, as paths; and the Newsletter's id."""
    from uscmail.extensions import db
    from uscmail.links import external_url, make_unsubscribe_token
    from uscmail.models import MailingList, Subscriber
    from uscmail.subscriptions.mails import preferences_url

    newsletter = db.session.scalar(sa.select(MailingList.id).where(MailingList.slug == "newsletter"))
    subscribers = db.session.scalars(sa.select(Subscriber).order_by(sa.func.random()).limit(unsubscribes + views)).all()
    leaving, viewing = subscribers[:unsubscribes], subscribers[unsubscribes:]

    def local(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    one_click = [
        {
            "public_id": subscriber.public_id,
            "path": local(
                external_url(
                    "subscriptions.unsubscribe",
                    token=make_unsubscribe_token(subscriber.public_id, [newsletter], campaign_id),
                )
            ),
        }
        for subscriber in leaving
    ]
    preferences = [local(preferences_url(subscriber)) for subscriber in viewing]
    return {"one_click": one_click, "preferences": preferences}, newsletter


def links_child(path: str, campaign_id: str, unsubscribes: str, views: str) -> None:
    """make_links, written to `path` as JSON."""
    links, newsletter = make_links(int(campaign_id), int(unsubscribes), int(views))
    Path(path).write_text(json.dumps(links))
    print(
        json.dumps(
            {"one_click": len(links["one_click"]), "preferences": len(links["preferences"]), "list_id": newsletter}
        )
    )


# --- the load generator ---------------------------------------------------------------------------------------------


@dataclass
class Request:
    """One scheduled request and what became of it (times are time.monotonic())."""

    kind: str
    scheduled: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None
    form: "Request | None" = None  # a signup's POST: the GET whose form it sends
    email: str = ""
    public_id: str = ""
    handed_out: float = 0.0  # when the dispatcher queued it
    started: float = 0.0
    answered: float = 0.0
    status: int = 0
    location: str = ""
    error: str = ""
    fields: dict[str, str] | None = None  # a signup GET: the cookie and hidden fields it got
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def latency(self) -> float:
        return self.answered - self.scheduled


def build_schedule(
    args, one_click: list[dict], preferences: list[str], run_id: str, start: float, duration: float | None = None
) -> list[Request]:
    """Every request of the run at its fixed time: each kind evenly spaced at a third of --rate, the signup GETs
    FILL_SECONDS before their POSTs; the window is [start, start + duration)."""
    duration = args.duration if duration is None else duration
    third = args.rate / 3
    count = round(third * duration)
    # Signups whose GET falls in [start - FILL_SECONDS, end): within the window, GETs and POSTs both run at a sixth.
    signups = round(third / 2 * (duration + FILL_SECONDS))
    spread = random.Random(run_id)
    requests: list[Request] = []

    def user_address() -> str:
        # One simulated person, one address (10.0.0.0/8); the same for both requests of a signup.
        return f"10.{spread.randrange(256)}.{spread.randrange(256)}.{spread.randrange(1, 255)}"

    # Each kind's first request at a different offset, so the kinds interleave rather than arrive in bursts of three.
    for n in range(count):
        offset = n / third
        link = one_click[n]
        requests.append(
            Request(
                "one-click",
                start + offset,
                "POST",
                link["path"],
                {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": user_address()},
                b"List-Unsubscribe=One-Click",
                public_id=link["public_id"],
            )
        )
        requests.append(
            Request(
                "preferences",
                start + offset + 1 / (3 * third),
                "GET",
                preferences[n % len(preferences)],
                {"X-Forwarded-For": user_address()},
            )
        )
    for n in range(signups):
        at = start + n / (third / 2) + 2 / (3 * third)
        address = user_address()
        form = Request("signup form", at - FILL_SECONDS, "GET", "/subscribe", {"X-Forwarded-For": address})
        requests.append(form)
        requests.append(
            Request(
                "signup",
                at,
                "POST",
                "/subscribe",
                {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": address},
                form=form,
                email=f"load-{run_id}-{n}-{spread.getrandbits(32):08x}@example.org",
            )
        )
    requests.sort(key=lambda request: request.scheduled)
    return requests


class Generator:
    """Hands each request to a thread pool at its scheduled time; the threads send them on http.client connections."""

    def __init__(self, port: int, threads: int):
        self.port = port
        self.queue: queue.Queue[Request | None] = queue.Queue()
        self.threads = [threading.Thread(target=self.work, daemon=True) for _ in range(threads)]
        self.busy = 0
        self.most_busy = 0
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, requests: list[Request]) -> None:
        """Dispatch every request at its time (this thread), then wait for all answers."""
        for thread in self.threads:
            thread.start()
        try:
            for request in requests:
                delay = request.scheduled - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                request.handed_out = time.monotonic()
                self.queue.put(request)
        finally:
            for _ in self.threads:
                self.queue.put(None)
            for thread in self.threads:
                thread.join()

    def work(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while (request := self.queue.get()) is not None:
            with self.lock:
                self.busy += 1
                self.most_busy = max(self.most_busy, self.busy)
            try:
                connection = self.send(connection, request)
            finally:
                request.done.set()
                with self.lock:
                    self.busy -= 1
        if connection is not None:
            connection.close()

    def send(self, connection, request: Request):
        if request.form is not None and not self.fill_in(request):
            return connection
        request.started = time.monotonic()
        try:
            if connection is not None and closed_by_server(connection):
                connection.close()
                connection = None
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            connection.request(request.method, request.path, body=request.body, headers=request.headers)
            response = connection.getresponse()
            page = response.read()
            request.status = response.status
            request.location = response.getheader("Location") or ""
            if request.kind == "signup form" and response.status == 200:
                request.fields = form_fields(response, page.decode(errors="replace"))
            if response.will_close:
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as exc:
            request.error = type(exc).__name__
            if connection is not None:
                connection.close()
            connection = None
        request.answered = time.monotonic()
        return connection

    @staticmethod
    def fill_in(request: Request) -> bool:
        """A signup POST: wait for its form (a person can't send it sooner), then fill it in; False if there was no
        form to fill in (the GET failed), which counts as an error of the GET only."""
        form = request.form
        form.done.wait()
        if not form.fields:
            request.error = "no form"
            request.answered = time.monotonic()
            return False
        earliest = form.answered + MIN_FILL_SECONDS
        if (wait := earliest - time.monotonic()) > 0:
            time.sleep(wait)
        fields = dict(form.fields)
        request.headers["Cookie"] = fields.pop("cookie")
        request.body = urllib.parse.urlencode(
            {**fields, "lists": "newsletter", "name": "", "website": "", "email": request.email}
        ).encode()
        return True


def closed_by_server(connection: http.client.HTTPConnection) -> bool:
    """Whether a kept-alive connection has been closed by the server while idle (it reads as ready: EOF). A proxy's
    connection pool checks this before reusing a connection, as this does, rather than send into a closed one."""
    return connection.sock is None or bool(select.select([connection.sock], [], [], 0)[0])


def form_fields(response: http.client.HTTPResponse, page: str) -> dict[str, str] | None:
    """The session cookie and hidden fields of a served signup form, or None if any is missing."""
    cookies = [value.split(";", 1)[0] for name, value in response.getheaders() if name.lower() == "set-cookie"]
    found = [pattern.search(page) for pattern in (CSRF_FIELD, STARTED_FIELD, VERSION_FIELD)]
    if not cookies or not all(found):
        return None
    csrf, started, version = (match.group(1) for match in found)
    return {"cookie": "; ".join(cookies), "csrf_token": csrf, "started": started, "consent_version": version}


# --- campaigns ------------------------------------------------------------------------------------------------------


class Campaigns:
    """Campaigns to the Newsletter created, sent and followed through /api/v1, as an organiser's tool would."""

    def __init__(self, deployment: Deployment, token: str):
        self.deployment, self.token = deployment, token
        self.final: dict[int, dict] = {}  # campaign id -> its stats once "sent"
        self.sent_seen_at: dict[int, float] = {}
        self.send_answered_at: dict[int, float] = {}

    def create(self) -> int:
        status, created = self.deployment.api(
            self.token,
            "POST",
            "/campaigns",
            {"subject": SUBJECT, "body": BODY, "body_format": "markdown", "lists": ["newsletter"]},
        )
        if status != 201:
            raise LoadError(f"creating a campaign through the API answered {status}: {created}")
        return created["id"]

    def send(self, campaign_id: int) -> float:
        """Press send; the time.monotonic() of the answer."""
        status, answer = self.deployment.api(self.token, "POST", f"/campaigns/{campaign_id}/send", None)
        answered = time.monotonic()
        if status != 202:
            raise LoadError(f"the send call answered {status}: {answer}")
        self.send_answered_at[campaign_id] = answered
        return answered

    def stats(self, campaign_id: int) -> dict:
        status, stats = self.deployment.api(self.token, "GET", f"/campaigns/{campaign_id}/stats", None)
        if status != 200:
            raise LoadError(f"GET /campaigns/{campaign_id}/stats answered {status}: {stats}")
        if stats["status"] in ("paused", "cancelled"):
            raise LoadError(f"campaign {campaign_id} is {stats['status']}: {stats['status_detail']}")
        if stats["status"] == "sent":
            self.final.setdefault(campaign_id, stats)
            self.sent_seen_at.setdefault(campaign_id, time.monotonic())
        return stats

    def wait_sent(self, campaign_id: int, timeout: float) -> dict:
        """Poll the stats (every STATS_POLL_SECONDS, as bench/campaign.py does) until the campaign is sent."""
        deadline = time.monotonic() + timeout
        while (stats := self.stats(campaign_id))["status"] != "sent":
            self.deployment.check_alive()
            if time.monotonic() > deadline:
                raise LoadError(f"campaign {campaign_id} was not sent within {timeout:.0f} s: {stats}")
            time.sleep(STATS_POLL_SECONDS)
        return stats


@dataclass
class SinkSamples:
    """The sink's counter, less the confirmation mails, sampled through the window (no request to the web app: under
    an overload its answers, the stats endpoint's included, wait behind the backlog)."""

    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, campaign messages so far)
    at_sink: list[int] = field(default_factory=list)  # every message at the sink so far, at the same times

    def take(self, sink: Sink, engine, prefix: str) -> None:
        confirmations = confirmation_mails(engine, prefix)
        received = sink.count()
        self.samples.append((time.monotonic(), received - confirmations))
        self.at_sink.append(received)

    @property
    def messages(self) -> int:
        return self.samples[-1][1] - self.samples[0][1]

    @property
    def seconds(self) -> float:
        return self.samples[-1][0] - self.samples[0][0]

    @property
    def slowest_second(self) -> int:
        """Fewest messages that reached the sink in any one second of the window. Not less the confirmation mails:
        their counter is read a moment before the sink's, and runs ahead of it by the mails on their way."""
        return min(later - earlier for earlier, later in itertools.pairwise(self.at_sink))


def confirmation_mails(engine, prefix: str) -> int:
    """Confirmation mails the workers have sent for this run's signups: each new address gets one, counted on its
    subscriber row (the per-address limit's counter) when it is sent."""
    with engine.connect() as connection:
        query = sa.text("SELECT coalesce(sum(signup_mail_count), 0) FROM subscribers WHERE starts_with(email, :prefix)")
        return connection.scalar(query, {"prefix": prefix})


# --- report ---------------------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class KindResult:
    kind: str
    sent: int
    answered: int
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors_by_status: dict[int, int]
    unexpected: dict[int, int]
    server_errors: int
    connection_errors: int


def summarise(kind: str, requests: list[Request]) -> KindResult:
    sent = [r for r in requests if r.started]
    answered = [r for r in sent if r.status]
    latencies = [r.latency * 1000 for r in answered]
    span = max((r.answered for r in answered), default=0) - min((r.scheduled for r in requests), default=0)
    errors: dict[int, int] = {}
    unexpected: dict[int, int] = {}
    for r in answered:
        if r.status >= 400:
            errors[r.status] = errors.get(r.status, 0) + 1
        elif r.status != EXPECTED[kind]:
            unexpected[r.status] = unexpected.get(r.status, 0) + 1
    return KindResult(
        kind=kind,
        sent=len(sent),
        answered=len(answered),
        rate=len(answered) / span if span > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies, default=float("nan")),
        errors_by_status=dict(sorted(errors.items())),
        unexpected=dict(sorted(unexpected.items())),
        server_errors=sum(count for status, count in errors.items() if status >= 500),
        connection_errors=sum(1 for r in requests if r.error and r.error != "no form"),
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- the run --------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="uscmail-bench-load-"))
    bench = LoadBench(argparse.Namespace(**vars(args), timeout=0), workdir=workdir)
    third = args.rate / 3
    unsubscribes = round(third * args.duration)
    alone_unsubscribes = round(third * args.alone_seconds)
    if unsubscribes + alone_unsubscribes >= args.subscribers:
        raise LoadError(
            f"{unsubscribes + alone_unsubscribes} one-click links are needed, each for a different subscriber: raise"
            " --subscribers"
        )
    engine = cpu_groups = None
    try:
        print(f"uscmail load benchmark, run {bench.run_id}, on a {os.cpu_count()}-core machine")
        print(f"command: {shlex.join([sys.executable, *sys.argv])}")
        load_before = os.getloadavg()[0]
        if load_before > 1.0:
            print(f"warning: load average {load_before:.2f} before the start: other work is running")
        print(f"{args.subscribers:,} subscribers: fresh database, migrations, seed, subscribers...")
        url = bench.create_database(args.subscribers)
        sink: Sink = bench.start_sink("load")
        env = bench.env(url, sink.port)
        deployment = bench.start_deployment(env, "load")
        if args.worker_cpu_weight:
            cpu_groups = CpuGroups(bench.run_id, args.worker_cpu_weight)
            cpu_groups.put("web", [deployment.web.pid, *child_pids(deployment.web.pid)])
            celery = [deployment.beat, *deployment.workers]
            cpu_groups.put("workers", [pid for p in celery for pid in (p.pid, *child_pids(p.pid))])
            print(f"  CPU cgroups: {cpu_groups.describe()}")
        token = deployment.api_token()
        campaigns = Campaigns(deployment, token)
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")

        # The baseline campaign, whose mail the one-click links come from.
        baseline_id = campaigns.create()
        links_path = bench.workdir / "links.json"
        made = bench.run_links_child(
            env, str(links_path), str(baseline_id), str(unsubscribes + alone_unsubscribes), str(unsubscribes)
        )
        links = json.loads(links_path.read_text())
        alone_links = links["one_click"][:alone_unsubscribes]
        links["one_click"] = links["one_click"][alone_unsubscribes:]
        list_id = made["list_id"]
        print(f"  links: {made['one_click']:,} one-click (each used once), {made['preferences']:,} preference pages")
        warm_up(deployment, links["preferences"])
        alone = None
        if args.alone_seconds:
            print(f"the load alone: {args.rate:g} requests/s for {args.alone_seconds:g} s, no campaign...")
            alone = measure_alone(args, bench, deployment, url, sink, engine, alone_links, links["preferences"])

        print("baseline: the campaign alone...")
        time.sleep(1.0)
        cpu_before, window_started = deployment.cpu_snapshot(bench, url, sink), time.monotonic()
        pressed = campaigns.send(baseline_id)
        baseline = campaigns.wait_sent(baseline_id, 60 + args.subscribers / 100)
        baseline_seconds = campaigns.sent_seen_at[baseline_id] - pressed
        baseline_cpu = bench.cpu_spent(cpu_before, deployment.cpu_snapshot(bench, url, sink))
        baseline_window = time.monotonic() - window_started
        baseline_rate = baseline["recipients"] / baseline_seconds
        print(f"  {baseline['recipients']:,} recipients in {baseline_seconds:.2f} s: {baseline_rate:,.0f} msg/s")

        print(f"under load: {args.rate:g} requests/s for {args.duration:g} s while campaigns send...")
        time.sleep(1.0)
        # Enough campaigns to the same list, all sent before the window, to keep sending through it even at the rate
        # alone (they take turns, as any campaigns sending at once do): a campaign sent during the load would wait
        # in the web's backlog like any request.
        cover = baseline_rate * (args.duration + FILL_SECONDS + 15)
        loaded = [campaigns.create() for _ in range(max(1, math.ceil(cover / baseline["recipients"])))]
        for campaign_id in loaded:
            campaigns.send(campaign_id)
        deadline = time.monotonic() + 30
        while campaigns.stats(loaded[0])["sent"] == 0:
            if time.monotonic() > deadline:
                raise LoadError("the loaded campaigns sent nothing within 30 s")
            time.sleep(0.1)
        lead_in = FILL_SECONDS + 0.5  # the first signup GETs come FILL_SECONDS before the window
        start = time.monotonic() + lead_in
        end = start + args.duration
        requests = build_schedule(args, links["one_click"], links["preferences"], bench.run_id, start)
        generator = Generator(deployment.port, args.threads)
        snapshots: list[tuple[float, dict]] = []
        delivered = SinkSamples()
        prefix = f"load-{bench.run_id}-"
        failure: list[BaseException] = []

        def measure_window():
            # CPU by process over exactly the window (the web's backlog answered after it is not counted), and the
            # campaign messages at the sink every second.
            try:
                time.sleep(max(0.0, start - time.monotonic()))
                snapshots.append((time.monotonic(), deployment.cpu_snapshot(bench, url, sink)))
                for second in range(1, math.ceil(args.duration) + 1):
                    delivered.take(sink, engine, prefix)
                    time.sleep(max(0.0, min(start + second, end) - time.monotonic()))
                delivered.take(sink, engine, prefix)
                snapshots.append((time.monotonic(), deployment.cpu_snapshot(bench, url, sink)))
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failure.append(exc)

        meter = threading.Thread(target=measure_window, daemon=True)
        meter.start()
        generator.run(requests)
        meter.join()
        if failure:
            raise failure[0]
        loaded_rate = delivered.messages / delivered.seconds
        (window_started, cpu_before), (window_ended, cpu_after) = snapshots
        cpu_window = window_ended - window_started
        load_cpu = bench.cpu_spent(cpu_before, cpu_after)
        generator_cpu = load_cpu["bench"]
        print(f"  {len(loaded)} campaign(s) sent before the load; waiting for the last to finish...")
        for campaign_id in loaded:
            campaigns.wait_sent(campaign_id, 120 + len(loaded) * args.subscribers / 100)

        print("checks: waiting for the workers to apply the signups...")
        earlier = alone.requests if alone else []
        checks = check_results(bench, engine, earlier + requests, list_id, campaigns, [baseline_id, *loaded], sink)
        load_after = os.getloadavg()[0]
        pool_cpu = {pid: process_cpu(pid) for worker in deployment.workers for pid in child_pids(worker.pid)}
    finally:
        if engine is not None:
            engine.dispose()
        bench.cleanup()
        if cpu_groups is not None:
            cpu_groups.remove()

    # --- the table ---
    window = [r for r in requests if start <= r.scheduled < end]
    results = [summarise(kind, [r for r in requests if r.kind == kind]) for kind in KINDS]
    total = summarise("signup form", window)  # the expected-status column is not used for the total
    window_answered = [r for r in window if r.status]
    last_answer = max((r.answered for r in window_answered), default=end)
    achieved = len(window_answered) / max(args.duration, last_answer - start)
    lag = [r.handed_out - r.scheduled for r in requests if r.handed_out]
    queued = [r.started - r.handed_out for r in requests if r.started]

    print()
    print(
        "server: gunicorn -c python:uscmail.gunicorn_conf -w 4 (sync workers), TRUSTED_PROXIES=1, beat, two workers "
        f"(--concurrency {args.workers} each); PostgreSQL + Redis; smtp-sink; "
        + (f"SEND_RATE_PER_SECOND={args.send_rate}" if args.send_rate else "no send-rate limit")
        + (f"; the workers' CPU weight {args.worker_cpu_weight} (the web's 100)" if args.worker_cpu_weight else "")
    )
    print(
        f"load: {args.rate:g} req/s for {args.duration:g} s, open loop, {args.threads} threads, latency from the "
        "scheduled time; a signup is a GET of the form (its own request) and, 3 s later, its POST"
    )
    print()
    header = f"{'request':<26}{'sent':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'5xx':>6}{'conn err':>9}"
    print(header + "  answers >= 400 by status")
    labels = {
        "signup form": "GET /subscribe",
        "signup": "POST /subscribe",
        "one-click": "POST one-click unsubscribe",
        "preferences": "GET preference page",
    }
    for result in [*results, total]:
        label = labels.get(result.kind, "") if result is not total else f"all, within the {args.duration:g} s"
        errors = ", ".join(f"{status}: {count}" for status, count in result.errors_by_status.items()) or "none"
        print(
            f"{label:<26}{result.sent:>7}{result.rate:>8.1f}{result.p50_ms:>9.1f}{result.p99_ms:>9.1f}"
            f"{result.max_ms:>9.1f}{result.server_errors:>6}{result.connection_errors:>9}  {errors}"
        )
        if result.unexpected and result is not total:
            print(f"  {label}: other answers than {EXPECTED[result.kind]}: {result.unexpected}")
    print(
        "  req/s: answered requests / (last answer - first scheduled time) of each kind; the signup GETs run 3 s "
        "ahead of the window, their POSTs end 3 s after it"
    )
    print(
        f"generator: {generator_cpu:.1f} CPU s over the {cpu_window:.1f} s window ({generator_cpu / cpu_window:.0%} of "
        f"one core, with the stats polls); handed out late by p99 {percentile(lag, 0.99) * 1000:.1f} ms, max "
        f"{max(lag) * 1000:.1f} ms; waited for a free thread p99 {percentile(queued, 0.99) * 1000:.1f} ms; at most "
        f"{generator.most_busy} of {args.threads} threads busy"
        " (a thread is busy until its answer: a full pool means late answers)"
    )
    print()
    ratio = loaded_rate / baseline_rate
    print(
        f"campaign send rate alone:     {baseline_rate:>7,.0f} msg/s  ({baseline['recipients']:,} recipients, "
        f"{baseline_seconds:.2f} s from the send call's answer to the stats saying 'sent')"
    )
    print(
        f"campaign send rate under load: {loaded_rate:>6,.0f} msg/s  ({delivered.messages:,} campaign messages "
        f"reached the sink in the {delivered.seconds:.1f} s window: its counter at both ends, less the confirmation "
        "mails sent meanwhile)"
    )
    print(f"ratio under load / alone: {ratio:.2f}")
    print(
        f"  {len(loaded)} campaign(s) to the same list, all sent before the window, were sending through it: the "
        f"fewest messages at the sink in any second of it: {delivered.slowest_second:,} (confirmation mails "
        f"included: at most {args.rate / 6:.0f} a second); each, from the send call's "
        "answer to 'sent' (polled through the loaded web app), relative to the window: "
        + ", ".join(
            f"{campaigns.send_answered_at[c] - start:+.1f} to {campaigns.sent_seen_at[c] - start:+.1f} s"
            for c in loaded
        )
    )
    print()
    for label, cpu, seconds in (("alone", baseline_cpu, baseline_window), ("under load", load_cpu, cpu_window)):
        print(
            f"CPU seconds, campaign {label} ({seconds:.1f} s, {os.cpu_count() * seconds:.0f} core-seconds): "
            f"gunicorn {cpu['web']:.1f}, workers {cpu['workers']:.1f}, PostgreSQL {cpu['postgres']:.1f}, "
            f"Redis {cpu['redis']:.1f}, smtp-sink {cpu['smtp-sink']:.1f}, beat {cpu['beat']:.1f}, "
            f"this bench {cpu['bench']:.1f}, anything else {cpu['other']:.1f}"
        )
    # Requests the web finished within the window (those answered after it ran on the backlog, not counted above).
    answered_in_window = sum(1 for r in requests if r.status and start <= r.answered < end)
    if answered_in_window:
        print(
            f"  gunicorn CPU per request answered within the window: {load_cpu['web'] * 1000 / answered_in_window:.1f}"
            f" ms ({answered_in_window} answers, {answered_in_window / args.duration:.1f}/s); the window's last "
            f"request was answered {last_answer - end:.1f} s after it"
        )
    campaign_cores = sum(baseline_cpu[part] for part in SERVER_PARTS) / baseline_window
    if alone:
        per_request = {part: alone.cpu[part] * 1000 / alone.answered for part in SERVER_PARTS}
        load_cores = sum(per_request.values()) * args.rate / 1000
        ceiling = max(0.0, min(1.0, (os.cpu_count() - load_cores) / campaign_cores))
        print(
            f"the load alone ({args.alone_seconds:g} s at {args.rate:g} req/s, no campaign; {alone.answered} answers, "
            f"achieved rate {alone.rate:.1f}/s, p99 {alone.p99_ms:.0f} ms; CPU counted until its signups' mails were "
            "sent): "
            "CPU per request: "
            + ", ".join(f"{part} {ms:.2f} ms" for part, ms in per_request.items())
            + f"; in all {sum(per_request.values()):.2f} ms, so {args.rate:g} req/s take {load_cores:.2f} cores"
        )
        print(
            f"  ceiling: the campaign alone kept {campaign_cores:.2f} cores busy; with {load_cores:.2f} of the "
            f"{os.cpu_count()} cores taken by the load, the send rate under load can reach at most "
            f"({os.cpu_count()} - {load_cores:.2f}) / {campaign_cores:.2f} = {ceiling:.2f} of the rate alone"
        )
    if pool_cpu:
        print("  CPU seconds of each worker pool process, whole run: " + ", ".join(
            f"{seconds:.1f}" for seconds in pool_cpu.values() if seconds is not None))  # fmt: skip
    print()
    for line, ok in checks:
        print(f"check: {line}: {'OK' if ok else 'MISMATCH'}")
    print()
    server_errors = sum(result.server_errors for result in results)
    rate_ok = abs(achieved - args.rate) <= TARGET_RATE_TOLERANCE * args.rate
    ratio_ok = ratio >= TARGET_SEND_RATE_RATIO
    print(f"5xx answers: {server_errors} (target 0: {verdict(server_errors == 0)})")
    print(
        f"achieved rate: {achieved:.1f} req/s ({len(window_answered)} answers to the window's {len(window)} requests "
        f"over {max(args.duration, last_answer - start):.2f} s; target {args.rate:g} ± 2%: {verdict(rate_ok)})"
    )
    print(f"send rate under load / alone: {ratio:.2f} (target ≥ {TARGET_SEND_RATE_RATIO:.2f}: {verdict(ratio_ok)})")
    print(f"load average before/after: {load_before:.2f} / {load_after:.2f}")
    if not all(ok for _, ok in checks):
        return 1
    return 0 if server_errors == 0 and rate_ok and ratio_ok else 3


# uscmail's processes as deployed and the services it uses: what the load and the campaign cost is counted on these.
SERVER_PARTS = ("web", "workers", "postgres", "redis", "smtp-sink", "beat")


@dataclass
class AloneCost:
    """What the load cost with no campaign sending: CPU seconds by part, the answers it got (all of them: the CPU is
    theirs), and the rate achieved within its window."""

    requests: list[Request]
    cpu: dict[str, float]
    answered: int
    rate: float
    p99_ms: float


def measure_alone(args, bench, deployment, url, sink, engine, one_click, preferences) -> AloneCost:
    """The same mix at the same rate for --alone-seconds with no campaign: the CPU every process spent on it, from
    before the first request until the workers had sent the mail of every signup it made (so the signups' work in
    the workers is counted; a little idle time before and after is counted too, so this errs high)."""
    start = time.monotonic() + FILL_SECONDS + 0.5
    requests = build_schedule(args, one_click, preferences, bench.run_id + "a", start, args.alone_seconds)
    before = deployment.cpu_snapshot(bench, url, sink)
    Generator(deployment.port, args.threads).run(requests)
    accepted = [r.email for r in requests if r.kind == "signup" and r.location.endswith("/subscribe/thanks")]
    deadline = time.monotonic() + 120
    with engine.connect() as connection:
        query = sa.text("SELECT coalesce(sum(signup_mail_count), 0) FROM subscribers WHERE email = ANY(:emails)")
        while connection.scalar(query, {"emails": accepted}) < len(accepted):
            if time.monotonic() > deadline:
                raise LoadError("the signups of the load alone were not all mailed within 120 s")
            time.sleep(0.2)
    cpu = bench.cpu_spent(before, deployment.cpu_snapshot(bench, url, sink))
    answered = [r for r in requests if r.status]
    if not answered:
        raise LoadError("no request of the load alone was answered")
    # As the window's achieved rate: answers to the requests scheduled within it, over at least its length.
    window = [r for r in answered if start <= r.scheduled < start + args.alone_seconds]
    span = max(args.alone_seconds, max((r.answered for r in window), default=start) - start)
    return AloneCost(
        requests, cpu, len(answered), len(window) / span, percentile([r.latency * 1000 for r in answered], 0.99)
    )


def warm_up(deployment: Deployment, preferences: list[str]) -> None:
    """Load the pages a few times so every gunicorn worker has imported and opened everything before the baseline."""
    for n in range(16):
        deployment.get("/subscribe")
        deployment.get(preferences[n % len(preferences)])


def check_results(bench, engine, requests, list_id, campaigns, campaign_ids, sink) -> list[tuple[str, bool]]:
    """After the load: stored signups, unsubscribed subscribers, every campaign's deliveries, the sink's count."""
    thanks = [
        r for r in requests if r.kind == "signup" and r.status == 303 and r.location.endswith("/subscribe/thanks")
    ]
    emails = [r.email for r in thanks]
    left = [r.public_id for r in requests if r.kind == "one-click" and 200 <= r.status < 300]
    checks = []
    with engine.connect() as connection:
        deadline = time.monotonic() + 120
        while True:
            waiting = connection.scalar(
                sa.text("SELECT count(*) FROM signup_requests WHERE email = ANY(:emails)"), {"emails": emails}
            )
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        stored = connection.scalar(
            sa.text(
                "SELECT count(DISTINCT b.id) FROM subscribers b JOIN subscriptions s ON s.subscriber_id = b.id"
                " WHERE b.email = ANY(:emails) AND s.list_id = :list_id AND s.status = 'pending'"
            ),
            {"emails": emails, "list_id": list_id},
        )
        checks.append(
            (
                f"{len(emails)} signups answered 'check your inbox' → {stored} pending Newsletter subscriptions "
                f"({waiting} signups still waiting for a worker)",
                stored == len(emails) and not waiting,
            )
        )
        unsubscribed = connection.scalar(
            sa.text(
                "SELECT count(*) FROM subscribers b JOIN subscriptions s ON s.subscriber_id = b.id"
                " WHERE b.public_id = ANY(:ids) AND s.list_id = :list_id AND s.status = 'unsubscribed'"
            ),
            {"ids": left, "list_id": list_id},
        )
        checks.append(
            (f"{len(left)} one-click answers 2xx → {unsubscribed} subscribers unsubscribed", unsubscribed == len(left))
        )
        counted = connection.scalar(
            sa.text("SELECT unsubscribe_count FROM campaigns WHERE id = :id"), {"id": campaign_ids[0]}
        )
        checks.append((f"the baseline campaign counts {counted} unsubscribes from its links", counted == len(left)))
        sent_total = 0
        for campaign_id in campaign_ids:
            counts = dict(
                connection.execute(
                    sa.text("SELECT status, count(*) FROM deliveries WHERE campaign_id = :id GROUP BY status"),
                    {"id": campaign_id},
                ).all()
            )
            stats = campaigns.final.get(campaign_id, {})
            sent_total += counts.get("sent", 0)
            ok = (
                stats.get("status") == "sent"
                and set(counts) <= {"sent", "skipped"}
                and sum(counts.values()) == stats.get("recipients")
                and counts.get("sent", 0) == stats.get("sent")
            )
            checks.append((f"campaign {campaign_id} {stats.get('status')}, deliveries {counts}", ok))
        confirmations = connection.scalar(
            sa.text("SELECT coalesce(sum(signup_mail_count), 0) FROM subscribers WHERE email = ANY(:emails)"),
            {"emails": emails},
        )
    deadline = time.monotonic() + 10
    while sink.count() < sent_total + confirmations and time.monotonic() < deadline:
        time.sleep(0.2)
    received = sink.count()
    checks.append(
        (
            f"smtp-sink received {received:,} = {sent_total:,} campaign messages + {confirmations:,} confirmation "
            "mails",
            received == sent_total + confirmations,
        )
    )
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        from uscmail import create_app

        with create_app().app_context():
            links_child(*args.child[1:])
        return 0
    return run_with_clean_up(run, args, (BenchError, sa.exc.OperationalError, redis.RedisError))


if __name__ == "__main__":
    sys.exit(main())
