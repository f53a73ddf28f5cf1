"""Benchmark the CSV import and subscriber search on PostgreSQL.

For each size (100,000 and 1,000,000 rows by default) it writes a CSV file, creates a fresh database, runs the
migrations, and imports the file in a child process that reports its time and peak memory (ru_maxrss). After the
largest import it times search_subscribers (median of several runs). Usage:

    .venv/bin/python bench/import.py [--sizes 100000,1000000] [--runs 7]

Needs PostgreSQL at 127.0.0.1:5432 with trust auth for the user postgres (override with BENCH_PG_ADMIN_URL).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def write_csv(path: Path, rows: int) -> None:
    """A realistic file: semicolons, a BOM, a name column, 1% duplicates and 0.5% invalid addresses."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        out.write("Name;Email\n")
        for i in range(rows):
            if i % 200 == 199:
                out.write(f"Broken {i};not-an-address-{i}\n")
            elif i % 100 == 99:
                out.write(f"Duplicate {i};person{i - 1}@example.org\n")
            else:
                out.write(f"Person {i};person{i}@example.org\n")


def admin_execute(sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(sql))
    engine.dispose()


def child_env(database_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "USCMAIL_ENV": "development",
        "SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "REDIS_URL": "",
        "PYTHONPATH": str(PROJECT_DIR),
    }


def run_child(mode: str, database_url: str, *args: str) -> dict:
    """Run this script in a child process (so ru_maxrss is that run's own peak) and return its JSON answer."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, *args],
        env=child_env(database_url),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode != 0:
        raise RuntimeError(output.stderr[-4000:])
    return json.loads(output.stdout.strip().splitlines()[-1])


def child_main(mode: str, args: list[str]) -> None:
    """In the child: set up the schema, import a file, or time searches; print one JSON line."""
    from uscmail import create_app

    app = create_app()
    with app.app_context():
        from uscmail.extensions import db

        if mode == "setup":
            from flask_migrate import upgrade

            from uscmail.cli import seed_defaults

            upgrade()
            seed_defaults()
            print(json.dumps({"ok": True}))
        elif mode == "import":
            from uscmail.imports import services
            from uscmail.subscribers.services import ConsentBasis

            lists = services.resolve_lists(["newsletter"])
            started = time.perf_counter()
            with open(args[0], "rb") as binary, open(os.devnull, "w") as report:
                result = services.import_subscribers(
                    binary, lists, ConsentBasis.PRIOR_CONSENT, "benchmark", "bench", report=report
                )
            db.session.commit()
            seconds = time.perf_counter() - started
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(json.dumps({"seconds": seconds, "rows": result.rows, "imported": result.imported,
                              "skipped": result.skipped, "peak_mb": peak_kb / 1024}))  # fmt: skip
        elif mode == "search":
            print(json.dumps(time_searches(int(args[0]))))


def time_searches(runs: int) -> dict:
    """Median milliseconds of each kind of search at the current database size."""
    import sqlalchemy as sa

    from uscmail.extensions import db
    from uscmail.models import Subscriber, SubscriptionStatus
    from uscmail.subscribers.services import mailing_list_by_slug, search_subscribers

    # Autovacuum would analyse the freshly filled tables within a minute or so; do it now rather than wait.
    db.session.execute(sa.text("ANALYZE"))
    db.session.commit()
    newsletter = mailing_list_by_slug("newsletter")
    lowest = db.session.scalar(sa.select(sa.func.min(Subscriber.id)))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
    cases = {
        "address prefix ('person54321@')": lambda: search_subscribers("person54321@"),
        "name substring ('son 77777')": lambda: search_subscribers("son 77777"),
        "list + status (newsletter, confirmed), first page": lambda: search_subscribers(
            list_id=newsletter.id, status=SubscriptionStatus.CONFIRMED
        ),
        "deep keyset page (after the 60th-oldest id)": lambda: search_subscribers(after=lowest + 60),
    }
    medians = {"subscribers": total}
    for label, search in cases.items():
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            page = search()
            timings.append((time.perf_counter() - started) * 1000)
            db.session.rollback()
        medians[label] = {"median_ms": round(statistics.median(timings), 2), "found": len(page.subscribers)}
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child_main(options.child[0], options.child[1:])
        return
    sizes = [int(size) for size in options.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="uscmail-bench-import-"))
    for size in sizes:
        source = workdir / f"people-{size}.csv"
        started = time.perf_counter()
        write_csv(source, size)
        megabytes = source.stat().st_size / 1e6
        print(f"\n{size:,} rows: file {megabytes:.1f} MB written in {time.perf_counter() - started:.1f} s")
        name = f"uscmail_bench_{uuid.uuid4().hex[:8]}"
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        admin_execute(f'CREATE DATABASE "{name}"')
        try:
            run_child("setup", url)
            outcome = run_child("import", url, str(source))
            print(f"  import: {outcome['seconds']:.1f} s, {outcome['rows'] / outcome['seconds']:,.0f} rows/s, "
                  f"peak memory (ru_maxrss) {outcome['peak_mb']:.0f} MB")  # fmt: skip
            print(f"  imported {outcome['imported']:,}; skipped {outcome['skipped']}")
            if size == max(sizes):
                searches = run_child("search", url, str(options.runs))
                print(f"  search at {searches.pop('subscribers'):,} subscribers (median of {options.runs} runs):")
                for label, figures in searches.items():
                    print(f"    {label}: {figures['median_ms']} ms ({figures['found']} found)")
        finally:
            admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            source.unlink(missing_ok=True)
    workdir.rmdir()


if __name__ == "__main__":
    main()
