"""Coordination benchmark: how many messages a second PostgreSQL and Redis can coordinate when no SMTP is involved,
the rate beyond which adding worker machines stops helping a campaign.

Usage: .venv/bin/python bench/coordination.py [--subscribers 200000] [--processes 1,2,4,8]

Every worker shares PostgreSQL (claims, outcome writes, checkpoints, finish checks) and Redis (the send journal).
This bench runs the real batch code (campaigns/batches.py: claim, recipients, checkpoints, heartbeats, journal,
bulk outcome write) in P processes at once, one campaign lane each, with a null transport in place of SMTP: each
message "sent" the moment it would be built. For each P it composes a fresh campaign to N subscribers, writes its
delivery rows, then starts the P lanes together and times them from "go" to the last row written "sent".

It prints msg/s for each P, the CPU seconds PostgreSQL, Redis and the lane processes spent, and PostgreSQL's CPU per
message. On this machine the lane processes and PostgreSQL share the same cores, so the measured rate is a floor;
the line "PostgreSQL alone could coordinate" divides the cores by PostgreSQL's own CPU per message, the rate a
database server with those cores to itself would reach before it, and not the workers, is what limits a campaign.

Needs PostgreSQL (trust auth for postgres) and Redis on 127.0.0.1, like bench/campaign.py, whose database setup
it uses. Everything it creates is removed at the end.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from campaign import BODY, SUBJECT, Bench, BenchError, machine_busy_seconds  # bench/campaign.py
from common import add_service_options, process_cpu

PROJECT_DIR = Path(__file__).resolve().parent.parent
TARGET_RATE = 20_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=200_000, help="recipients of each campaign (200000)")
    parser.add_argument("--processes", default="1,2,4,8", help="lane processes to run at once, comma-separated")
    add_service_options(parser, "the send path's coordination")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="with the largest --processes, EXPLAIN (ANALYZE, BUFFERS) every statement of one batch at 10%% and at "
        "90%% of the campaign, and print their times and buffers side by side",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child:
        try:
            args.counts = [int(count) for count in args.processes.split(",")]
        except ValueError:
            parser.error("--processes takes numbers separated by commas")
        if args.subscribers < 1 or min(args.counts) < 1:
            parser.error("--subscribers and --processes must be positive")
    return args


# --- children -------------------------------------------------------------------------------------------------------


def setup_child(lanes: str) -> None:
    """Compose a campaign to every subscriber, press send, write every delivery row, and give it `lanes` lanes."""
    from uscmail.campaigns import lanes as campaign_lanes
    from uscmail.campaigns import sending, services
    from uscmail.extensions import db
    from uscmail.models import MailingList

    newsletter = db.session.scalar(sa.select(MailingList).where(MailingList.slug == "newsletter"))
    campaign = services.create_campaign(
        services.CampaignFields(subject=SUBJECT, body=BODY, list_ids=[newsletter.id]), "bench"
    )
    db.session.commit()
    services.start_sending(campaign, "bench")
    db.session.commit()
    sending.snapshot(campaign.id, on_first_chunk=lambda: None)
    started = campaign_lanes.start_lanes(campaign.id, list(range(int(lanes))))
    db.session.commit()
    print(json.dumps({"campaign_id": campaign.id, "lanes": [[lane.number, lane.generation] for lane in started]}))


class Explainer:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement one batch runs, each in a savepoint rolled back before the
    statement itself runs; executemany statements (the bulk outcome write) are explained with their first row."""

    def __init__(self, engine):
        self.engine, self.plans = engine, {}

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self.explain)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, "before_cursor_execute", self.explain)

    def explain(self, connection, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH", "INSERT", "DELETE")):
            return
        if executemany:
            parameters = parameters[0]
        cursor.execute("SAVEPOINT bench_explain")
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
        [plan] = cursor.fetchone()[0]
        cursor.execute("ROLLBACK TO SAVEPOINT bench_explain")
        label = " ".join(statement.split())[:90]
        top = plan["Plan"]
        buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
        previous = self.plans.get(label, (0.0, 0))
        self.plans[label] = (max(previous[0], plan["Execution Time"]), max(previous[1], buffers))


def lane_child(campaign_id: str, number: str, generation: str, explain: str = "") -> None:
    """Run one lane with a null transport until it has nothing left, after "go" on stdin; with `explain`, EXPLAIN
    the statements of its first batch past 10% and past 90% of the campaign's rows."""
    from uscmail.campaigns import batches
    from uscmail.campaigns.lanes import Lane
    from uscmail.campaigns.models import Delivery
    from uscmail.campaigns.outcomes import Outcome, OutcomeKind
    from uscmail.extensions import db

    def null_send(connection, prepared, recipient):
        return Outcome(recipient.delivery_id, OutcomeKind.SENT)

    batches.send_one = null_send
    batches.smtp_connection = lambda: None
    lane = Lane(int(campaign_id), int(number), generation)
    batches.prepared_campaign(batches.db.session.get(batches.Campaign, lane.campaign_id))  # as a warm worker has it
    batches.db.session.commit()
    print("ready", flush=True)
    sys.stdin.readline()
    low, high = db.session.execute(
        sa.select(sa.func.min(Delivery.id), sa.func.max(Delivery.id)).where(Delivery.campaign_id == lane.campaign_id)
    ).one()
    db.session.commit()
    marks = [0.1, 0.9] if explain else []
    plans = {}
    start, sent, after = time.perf_counter(), 0, 0
    while True:
        if marks and (after - low) / max(1, high - low) >= marks[0]:
            with Explainer(db.engine) as explainer:
                result = batches.send_batch(lane, after)
            plans[f"{marks.pop(0):.0%}"] = explainer.plans
        else:
            result = batches.send_batch(lane, after)
        sent, after = sent + result.sent, result.claimed_up_to or after
        if result.again_in is None:
            break
        time.sleep(result.again_in)
    print(json.dumps({"sent": sent, "start": start, "end": time.perf_counter(), "plans": plans}), flush=True)


def child_main(mode: str, args: list[str]) -> None:
    from uscmail import create_app

    with create_app().app_context():
        {"setup": setup_child, "lane": lane_child}[mode](*args)


# --- the run --------------------------------------------------------------------------------------------------------


def run_lanes(bench: Bench, url: str, processes: int, explain: bool = False) -> dict:
    env = bench.env(url, 0)
    setup = subprocess.run(
        [sys.executable, __file__, "--child", "setup", str(processes)],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if setup.returncode != 0:
        raise BenchError(f"setting up the campaign failed:\n{setup.stderr[-4000:]}")
    answer = json.loads(setup.stdout.strip().splitlines()[-1])
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                "lane",
                str(answer["campaign_id"]),
                str(number),
                generation,
                *(["explain"] if explain and number == 0 else []),
            ],
            env=env,
            cwd=PROJECT_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for number, generation in answer["lanes"]
    ]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            raise BenchError("a lane process did not start")
    database = bench.database_pids(url)
    redis_pid = int(bench.redis.info("server")["process_id"])
    watched = {"PostgreSQL": database, "Redis": [redis_pid], "lane processes": [child.pid for child in children]}

    def cpu() -> dict[str, float]:
        return {part: sum(process_cpu(pid) or 0.0 for pid in pids) for part, pids in watched.items()}

    cpu_before, busy_before = cpu(), machine_busy_seconds()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [json.loads(child.stdout.readline()) for child in children]
    cpu_after, busy_after = cpu(), machine_busy_seconds()
    for child in children:
        child.wait(timeout=30)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        statuses = dict(
            connection.execute(
                sa.text("SELECT status, count(*) FROM deliveries WHERE campaign_id = :id GROUP BY status"),
                {"id": answer["campaign_id"]},
            ).all()
        )
        campaign_status = connection.scalar(
            sa.text("SELECT status FROM campaigns WHERE id = :id"), {"id": answer["campaign_id"]}
        )
    engine.dispose()
    seconds = max(result["end"] for result in results) - min(result["start"] for result in results)
    sent = sum(result["sent"] for result in results)
    return {
        "processes": processes,
        "sent": sent,
        "seconds": seconds,
        "rate": sent / seconds,
        "cpu": {part: cpu_after[part] - cpu_before[part] for part in watched},
        "machine_cpu": busy_after - busy_before,
        "statuses": statuses,
        "campaign_status": campaign_status,
        "plans": next((result["plans"] for result in results if result["plans"]), {}),
    }


def print_plans(plans: dict[str, dict[str, list]]) -> None:
    """Each statement's execution time and shared buffers at 10% and at 90% of the campaign."""
    if len(plans) < 2:
        return
    early, late = plans["10%"], plans["90%"]
    print()
    print("EXPLAIN (ANALYZE, BUFFERS) of one batch's statements, at 10% and at 90% of the campaign's rows:")
    print(f"  {'ms 10%':>8} {'ms 90%':>8} {'buf 10%':>8} {'buf 90%':>8}  statement")
    for label in sorted(set(early) | set(late), key=lambda label: -max(late.get(label, (0, 0))[0], 0)):
        (ms_early, buf_early), (ms_late, buf_late) = early.get(label, (0, 0)), late.get(label, (0, 0))
        print(f"  {ms_early:>8.2f} {ms_late:>8.2f} {buf_early:>8} {buf_late:>8}  {label}")


def report(args: argparse.Namespace, results: list[dict]) -> bool:
    cores = os.cpu_count() or 1
    print()
    print(
        f"{'lane processes':>16} {'messages':>10} {'seconds':>8} {'msg/s':>9}  CPU seconds (PostgreSQL / Redis / lanes)"
    )
    for result in results:
        cpu = result["cpu"]
        print(
            f"{result['processes']:>16} {result['sent']:>10,} {result['seconds']:>8.2f} {result['rate']:>9,.0f}  "
            f"{cpu['PostgreSQL']:.1f} / {cpu['Redis']:.1f} / {cpu['lane processes']:.1f} "
            f"(machine {result['machine_cpu']:.1f} of {result['seconds'] * cores:.1f})"
        )
    ok = all(
        result["statuses"] == {"sent": args.subscribers} and result["campaign_status"] == "sent" for result in results
    )
    print(f"  check: every delivery row 'sent' and every campaign 'sent': {'OK' if ok else 'FAILED'}")
    for result in results:
        if not ok:
            print(f"    {result['processes']} processes: {result['statuses']}, campaign {result['campaign_status']}")
    for result in results:
        print_plans(result["plans"])
    best = max(results, key=lambda result: result["rate"])
    pg_per_message = best["cpu"]["PostgreSQL"] / best["sent"]
    print()
    print(
        f"coordination ceiling measured here: {best['rate']:,.0f} msg/s with {best['processes']} lane processes "
        f"(target ≥ {TARGET_RATE:,}: {'PASS' if best['rate'] >= TARGET_RATE else 'FAIL'})"
    )
    print(
        f"  PostgreSQL CPU per message: {pg_per_message * 1e6:.0f} µs; PostgreSQL alone could coordinate "
        f"{cores / pg_per_message:,.0f} msg/s on {cores} cores of its own"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child[0], args.child[1:])
        return 0
    campaign_args = argparse.Namespace(pg_admin_url=args.pg_admin_url, redis_url=args.redis_url)
    bench = Bench(campaign_args)
    print(f"uscmail coordination benchmark, run {bench.run_id}, on a {os.cpu_count()}-core machine")
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    try:
        print(f"{args.subscribers:,} subscribers: fresh database...")
        url = bench.create_database(args.subscribers)
        results = []
        for processes in args.counts:
            print(f"  {processes} lane processes, {args.subscribers:,} messages, null transport...")
            results.append(run_lanes(bench, url, processes, explain=args.explain and processes == max(args.counts)))
        return 0 if report(args, results) else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for key in bench.redis.scan_iter(f"{bench.key_prefix}*"):
            bench.redis.delete(key)
        for problem in bench.drop_databases():
            print(problem, file=sys.stderr)
        shutil.rmtree(bench.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
