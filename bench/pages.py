"""CPU a request of the pages `make load` asks for, in one process: where a page's own cost goes, without gunicorn,
the network or other processes.

Usage: .venv/bin/python bench/pages.py [--requests 1000] [--subscribers 3000] [--profile KIND]

A fresh PostgreSQL database (bench/campaign.py's Bench: migrations, seed, N confirmed Newsletter subscribers), the app
created in this process with the environment the other benchmarks give it (TRUSTED_PROXIES=1, Redis for the rate limits
and the queue of this run only, no worker), and Flask's test client. For each kind, R requests (after ten not counted,
for first-use costs), each as bench/load.py sends it (a client address of its own; the one-click links and preference
links made by bench/load.py's make_links for different subscribers; a signup POST with a form fetched at least
SIGNUP_MIN_FILL_SECONDS before); it prints the CPU of this process a request (time.process_time, so the database's own
CPU is not in it) over all R, and the best and the median of its means over each 50 in a row, and the SQL statements a
request. GET /healthz is the floor: Flask and the hooks every request runs. `--profile KIND` prints cProfile's 40
costliest calls (in CPU time, `--sort` cumulative by default; `--callers PATTERN` for who calls what) for that kind;
the profiler itself about doubles the times. Everything the run creates is removed at the end. Compare figures only
from runs made one after another: the host's speed varies, and the best batch is the figure least moved by it.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import redis
import sqlalchemy as sa
from campaign import Bench, BenchError  # bench/campaign.py
from common import add_service_options, run_with_clean_up  # bench/common.py
from load import make_links  # bench/load.py
from signup import CSRF_FIELD, STARTED_FIELD, VERSION_FIELD  # bench/signup.py

PROJECT_DIR = Path(__file__).resolve().parent.parent
KINDS = ("healthz", "signup form", "signup", "one-click", "preferences")
# Requests of each kind sent before the timed ones, so that first-use costs (compiled statements and templates) are
# not counted.
WARM_UP = 10
# Requests timed together: the best and the median of their means are printed too, as the host's noise (other
# machines on it take CPU time in bursts) inflates some batches and not others.
BATCH = 50
# A signup POST's form must be at least this old (the app's SIGNUP_MIN_FILL_SECONDS is 2 s, in whole seconds).
FILL_SECONDS = 3.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests of each kind (default 1000)")
    parser.add_argument("--subscribers", type=int, default=3000, help="confirmed Newsletter subscribers (3000)")
    parser.add_argument("--profile", choices=KINDS, help="print a cProfile (CPU time) of this kind")
    parser.add_argument("--sort", default="cumulative", help="order of the profile's lines (pstats' keys: tottime …)")
    parser.add_argument("--profile-file", help="with --profile: also write the profile to this file (pstats)")
    parser.add_argument("--callers", help="with --profile: the callers of the functions matching this instead")
    add_service_options(parser, "the rate-limit counters and the queue")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.subscribers < 2 * (args.requests + WARM_UP):
        parser.error("--requests must be positive and --subscribers at least twice --requests, plus 20")
    return args


class PagesBench(Bench):
    @property
    def key_prefix(self) -> str:
        return f"uscmail-bench-pages-{self.run_id}"


def run(args: argparse.Namespace) -> int:
    bench = PagesBench(argparse.Namespace(**vars(args), timeout=0, keep_logs=False))
    try:
        print(f"{args.subscribers:,} subscribers: fresh database, migrations, seed, subscribers...")
        url = bench.create_database(args.subscribers)
        os.environ.update({**bench.env(url, 0), "TRUSTED_PROXIES": "1"})
        sys.path.insert(0, str(PROJECT_DIR))
        from uscmail import create_app  # after the environment is set: the app reads it

        app = create_app()
        statements = [0]

        def count(*_):
            statements[0] += 1

        sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
        requests = Requests(app, args.requests)
        print(f"{args.requests:,} requests of each kind, one process, CPU by time.process_time")
        print(f"{'request':<26}{'CPU ms':>8}{'best':>8}{'median':>8}{'wall ms':>9}{'statements':>12}")
        for kind in KINDS:
            send = requests.prepare(kind)
            for n in range(args.requests, args.requests + WARM_UP):
                send(n)
            profiler = cProfile.Profile(time.process_time) if args.profile == kind else None
            statements[0] = 0
            batches = []  # CPU seconds a request, for each BATCH requests in a row
            started, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for first in range(0, args.requests, BATCH):
                cpu = time.process_time()
                for n in range(first, min(first + BATCH, args.requests)):
                    send(n)
                batches.append((time.process_time() - cpu) / (min(first + BATCH, args.requests) - first))
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - started, time.perf_counter() - wall
            per = 1000 / args.requests
            best, median = 1000 * min(batches), 1000 * statistics.median(batches)
            print(
                f"{LABELS[kind]:<26}{cpu * per:>8.2f}{best:>8.2f}{median:>8.2f}{wall * per:>9.2f}"
                f"{statements[0] / args.requests:>12.1f}"
            )
            if profiler:
                if args.profile_file:
                    profiler.dump_stats(args.profile_file)
                stats = pstats.Stats(profiler).sort_stats(args.sort)
                if args.callers:
                    stats.print_callers(args.callers)
                else:
                    stats.print_stats(40)
    finally:
        bench.cleanup()
    return 0


LABELS = {
    "healthz": "GET /healthz (the floor)",
    "signup form": "GET /subscribe",
    "signup": "POST /subscribe",
    "one-click": "POST one-click unsubscribe",
    "preferences": "GET preference page",
}


class Requests:
    """Each kind's requests as bench/load.py sends them; prepare(kind) does the set-up outside the timing."""

    def __init__(self, app, count: int):
        self.app, self.count = app, count + WARM_UP  # indices from `count` on are the warm-up's
        self.addresses = (f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 250 + 1}" for n in range(10**9))
        with app.app_context():
            links, _ = make_links(1, self.count, self.count)
        self.one_click = [link["path"] for link in links["one_click"]]
        self.preferences = links["preferences"]

    def headers(self) -> dict[str, str]:
        return {"X-Forwarded-For": next(self.addresses)}

    def prepare(self, kind: str):
        client = self.app.test_client()
        if kind == "healthz":
            return lambda n: self.expect(client.get("/healthz"), 200)
        if kind == "signup form":
            return lambda n: self.expect(client.get("/subscribe", headers=self.headers()), 200)
        if kind == "one-click":
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            return lambda n: self.expect(
                client.post(self.one_click[n], data=b"List-Unsubscribe=One-Click", headers={**form, **self.headers()}),
                200,
            )
        if kind == "preferences":
            return lambda n: self.expect(client.get(self.preferences[n], headers=self.headers()), 200)
        # A signup: each person's form fetched now (their own client: their session cookie), sent after FILL_SECONDS.
        people = []
        for n in range(self.count):
            person, headers = self.app.test_client(), self.headers()
            page = self.expect(person.get("/subscribe", headers=headers), 200).get_data(as_text=True)
            csrf, started, version = (
                field.search(page).group(1) for field in (CSRF_FIELD, STARTED_FIELD, VERSION_FIELD)
            )
            body = {"csrf_token": csrf, "started": started, "consent_version": version, "lists": "newsletter"}
            people.append((person, headers, {**body, "email": f"pages-{n}-{time.time_ns()}@example.org"}))
        time.sleep(FILL_SECONDS)
        return lambda n: self.expect(people[n][0].post("/subscribe", data=people[n][2], headers=people[n][1]), 303)

    @staticmethod
    def expect(response, status: int):
        if response.status_code != status:
            raise BenchError(f"expected {status}, got {response.status_code}: {response.get_data(as_text=True)[:500]}")
        return response


def main(argv: list[str] | None = None) -> int:
    return run_with_clean_up(run, parse_args(argv), (BenchError, sa.exc.OperationalError, redis.RedisError))


if __name__ == "__main__":
    sys.exit(main())
