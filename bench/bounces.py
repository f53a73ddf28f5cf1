"""Bounce receiver benchmark: 100,000 mixed bounces and complaints into `flask bounces serve`, as deployed.

Usage: .venv/bin/python bench/bounces.py [--messages 100000] [--processes 2] [--connections 8]

It makes a PostgreSQL database with one sent campaign to as many subscribers as there are messages, starts the
receiver (`flask --app uscmail bounces serve --processes P`, its own processes, over TCP), and has C client
connections deliver the messages as MTAs would: a null sender, the message's return path as the recipient, one
message per transaction, each answered only once it is committed. The mix, each message about a different
delivery: 45% hard bounces and 25% soft bounces (real DSNs from Postfix, Exim, Sendmail, qmail, Exchange, Gmail,
Outlook and Yahoo: tests/fixtures/bounces), 10% ARF complaints carrying the original message, 10% delay warnings and
auto-replies (read and ignored), 10% garbage and forged bounces (kept aside).

It prints messages/s from the first message to the last answer, the receiver's peak memory, and checks that nothing
was lost: every message answered 250, one bounce event per bounce or complaint, one set-aside row per garbage or
forged message, every hard bounce and complaint suppressed. Target: at least 500 messages/s on this machine.
Needs PostgreSQL and Redis on 127.0.0.1 (as bench/campaign.py, whose database set-up it uses).
"""

import argparse
import fcntl
import functools
import os
import re
import resource
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from campaign import (
    VENV_BIN,
    Bench,
    BenchError,
    machine_busy_seconds,
    peak_memory_kb,
    steal_seconds,
    stop_process,
)
from common import add_service_options, child_pids, free_port, process_cpu

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from tests.bounce_support import arf_report, fixture  # noqa: E402 - after the path is set
from uscmail.bounces.returnpath import DELIVERY, ReturnPaths  # noqa: E402

TARGET_RATE = 500
CLAIM = 4  # messages a client connection takes from the shared queue at a time
BOUNCE_ADDRESS = "bounces@uscuk.example"
HARD = ["postfix_01", "exim_01", "dsn_11", "yahoo_11", "qmail_05", "microsoft_01", "sendmail_01", "simple_17"]
SOFT = ["dsn_02", "simple_44", "yahoo_01", "simple_42"]
IGNORED = ["dsn_05", "qmail_08"]
GARBAGE = [b"Subject: hello\r\n\r\nIs this the campaign?\r\n", b"\x00\x01\x02 not mail at all\r\n" * 20]


@functools.cache
def real(name: str) -> bytes:
    """A fixture, read once per client: the clients stand in for MTAs elsewhere, and must cost this machine little."""
    return fixture(name)


def kind_of(index: int) -> str:
    """The mix, by message number: hard, soft, complaint, ignored, set aside."""
    slot = index % 20
    if slot < 9:
        return "hard"
    if slot < 14:
        return "soft"
    if slot < 16:
        return "complaint"
    if slot < 18:
        return "ignored"
    return "set_aside"


def message(index: int, return_path: str) -> tuple[list[str], bytes]:
    """Message number `index`, about the delivery whose return path is given: (recipients, raw)."""
    kind = kind_of(index)
    if kind == "hard":
        return [return_path], real(HARD[index % len(HARD)])
    if kind == "soft":
        return [return_path], real(SOFT[index % len(SOFT)])
    if kind == "ignored":
        return [return_path], real(IGNORED[index % len(IGNORED)])
    if kind == "complaint":
        original = (
            f"Return-Path: <{return_path}>\r\nFrom: USC-UK <news@uscuk.example>\r\nTo: supporter@example.org\r\n"
            "Subject: Solidarity news\r\nMessage-ID: <bench@uscuk.example>\r\n\r\nThe newsletter.\r\n"
        ).encode()
        return [BOUNCE_ADDRESS], arf_report(original)
    if index % 40 < 20:
        return [BOUNCE_ADDRESS], real(HARD[0])  # a real DSN, but to no return path of ours: forged
    return [BOUNCE_ADDRESS], GARBAGE[index % 2]


def client_child(port: str, secret: str, first_delivery: str, queue: str, total: str) -> None:
    """One MTA's connection: it takes the next messages from the queue it shares with the other connections (as an
    MTA's delivery agents share its queue: a connection answered sooner delivers more), one transaction each.

    The clients stand in for MTAs on other machines, so they must cost this one little: each speaks SMTP over a
    plain socket with each fixture's wire form (dot-stuffed, CRLF) made once. As Postfix's smtp client does when the
    server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go together and the three answers are read after; the
    data goes once DATA's 354 has come. Without PIPELINING, each command waits for its answer."""
    paths = ReturnPaths(BOUNCE_ADDRESS, secret)
    first = int(first_delivery)
    refused = 0
    with socket.create_connection(("127.0.0.1", int(port)), timeout=120) as connection:
        replies = connection.makefile("rb")
        _reply(replies)
        connection.sendall(b"EHLO bench.example\r\n")
        pipelining = b"PIPELINING" in _reply(replies, every_line=True).upper()
        # Connected and ready, as MTAs with bounces queued would be: the clock starts when every client is.
        print("ready", flush=True)
        sys.stdin.readline()
        for index in taken(Path(queue), int(total)):
            recipients, raw = message(index, paths.address(DELIVERY, first + index))
            steps = [b"MAIL FROM:<>\r\n", *(f"RCPT TO:<{to}>\r\n".encode() for to in recipients), b"DATA\r\n"]
            if pipelining:
                connection.sendall(b"".join(steps))
                answers = [_reply(replies) for _ in steps]
            else:
                answers = []
                for command in steps:
                    connection.sendall(command)
                    answers.append(_reply(replies))
                    if not answers[-1].startswith((b"250", b"354")):
                        break
            if all(answer.startswith((b"250", b"354")) for answer in answers) and len(answers) == len(steps):
                connection.sendall(wire(raw))
                if not _reply(replies).startswith(b"250"):
                    refused += 1
                continue
            refused += 1
            if answers[-1].startswith(b"354"):  # DATA accepted though a command before it was not: end it empty
                connection.sendall(b".\r\n")
                _reply(replies)
            connection.sendall(b"RSET\r\n")
            _reply(replies)
        connection.sendall(b"QUIT\r\n")
    print(refused)


def taken(queue: Path, total: int) -> Iterator[int]:
    """Message numbers below `total`, taken from the shared queue file (the next free number) CLAIM at a time."""
    with queue.open("r+b", buffering=0) as counter:
        while True:
            fcntl.flock(counter, fcntl.LOCK_EX)
            try:
                counter.seek(0)
                start = int(counter.read() or 0)
                counter.seek(0)
                counter.write(b"%20d" % (start + CLAIM))
            finally:
                fcntl.flock(counter, fcntl.LOCK_UN)
            if start >= total:
                return
            yield from range(start, min(start + CLAIM, total))


def _reply(replies, every_line: bool = False) -> bytes:
    """The last line of one SMTP reply (or all its lines)."""
    lines = []
    while True:
        line = replies.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines) if every_line else line


@functools.lru_cache(maxsize=64)
def wire(raw: bytes) -> bytes:
    """A message as sent after DATA, as smtplib would send it: every line end CRLF, leading dots doubled, the final
    dot (made once per fixture)."""
    text = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", raw)
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", text) + b".\r\n"


def seed_campaign(url: str, count: int) -> int:
    """One sent campaign with a delivery to each subscriber; returns the first delivery's id."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        campaign_id = connection.scalar(
            sa.text(
                "INSERT INTO campaigns (public_id, kind, subject, preheader, body_format, body, from_name, from_email,"
                " status, public, snapshot_done, connection_failures, created_at, updated_at)"
                " VALUES ('benchbounces', 'newsletter', 'Solidarity news', '', 'markdown', 'Hello', 'USC-UK',"
                " 'news@uscuk.example', 'sent', false, true, 0, now(), now()) RETURNING id"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO deliveries (campaign_id, subscriber_id, status, attempts, sent_at)"
                " SELECT :campaign, id, 'sent', 1, now() FROM subscribers ORDER BY id LIMIT :count"
            ),
            {"campaign": campaign_id, "count": count},
        )
        first = connection.scalar(sa.text("SELECT min(id) FROM deliveries WHERE campaign_id = :c"), {"c": campaign_id})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM (ANALYZE) deliveries, subscribers, subscriptions"))
        connection.execute(sa.text("CHECKPOINT"))
    engine.dispose()
    return first


def check(url: str, total: int) -> dict:
    """What the database holds after the run, against the mix."""
    expected = {kind: sum(1 for index in range(total) if kind_of(index) == kind) for kind in
                ("hard", "soft", "complaint", "ignored", "set_aside")}  # fmt: skip
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        events = dict(connection.execute(sa.text("SELECT kind, count(*) FROM bounce_events GROUP BY kind")).all())
        set_aside = connection.scalar(sa.text("SELECT count(*) FROM set_aside_mail"))
        suppressed = dict(
            connection.execute(sa.text("SELECT reason, count(*) FROM suppressions GROUP BY reason")).all()
        )
    engine.dispose()
    return {"expected": expected, "events": events, "set_aside": set_aside, "suppressed": suppressed}


def run(args: argparse.Namespace) -> int:
    bench = Bench(args)
    receiver = None
    try:
        print(f"Preparing {args.messages:,} subscribers, one sent campaign to them, and the receiver…", flush=True)
        url = bench.create_database(args.messages)
        first_delivery = seed_campaign(url, args.messages)
        port = free_port()
        env = bench.env(url, 0)
        env["BOUNCE_ADDRESS"] = BOUNCE_ADDRESS
        log_path = bench.workdir / "receiver.log"
        with log_path.open("wb") as log:
            receiver = subprocess.Popen(
                [str(VENV_BIN / "flask"), "--app", "uscmail", "bounces", "serve", "--port", str(port),
                 "--processes", str(args.processes)],
                cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise BenchError("the receiver did not start:\n" + log_path.read_text(errors="replace"))
        receivers = child_pids(receiver.pid) or [receiver.pid]
        cpu_before = {pid: process_cpu(pid) or 0.0 for pid in receivers}
        print(f"Sending {args.messages:,} messages over {args.connections} connections to {args.processes} "
              "receiver processes…", flush=True)  # fmt: skip
        queue = bench.workdir / "queue"
        queue.write_bytes(b"0")
        client_command = [sys.executable, __file__, "--child", "client", str(port), env["SECRET_KEY"],
                          str(first_delivery), str(queue), str(args.messages)]  # fmt: skip
        clients = [
            subprocess.Popen(
                client_command,
                cwd=PROJECT_DIR,
                env={**env, "PYTHONPATH": f"{PROJECT_DIR}:{PROJECT_DIR / 'bench'}"},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.connections)
        ]
        for client in clients:
            if client.stdout.readline().strip() != "ready":
                raise BenchError("a client could not connect to the receiver")
        # The clients' start-up (imports, connecting) is before the clock and out of their CPU figure.
        client_startup = sum(process_cpu(client.pid) or 0.0 for client in clients)
        machine_before, steal_before = machine_busy_seconds(), steal_seconds()
        clients_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        for client in clients:
            client.stdin.write("go\n")
            client.stdin.flush()
        refused = sum(int(client.communicate()[0].strip() or 0) for client in clients)
        elapsed = time.monotonic() - started
        machine, steal = machine_busy_seconds() - machine_before, steal_seconds() - steal_before
        clients_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (
            (clients_after.ru_utime + clients_after.ru_stime)
            - (clients_before.ru_utime + clients_before.ru_stime)
            - client_startup
        )
        # The receivers' database connections were opened during the run: all their CPU is the run's.
        database_cpu = sum(process_cpu(pid) or 0.0 for pid in bench.database_pids(url))
        cpu = sum((process_cpu(pid) or 0.0) - cpu_before[pid] for pid in receivers)
        peaks = [peak_memory_kb(pid) or 0 for pid in receivers]
        stop_process(receiver)
        result = check(url, args.messages)
    finally:
        stop_process(receiver)
        bench.cleanup()
    rate = args.messages / elapsed
    expected, events = result["expected"], result["events"]
    hard_seen = events.get("hard", 0)
    print(f"\n{args.messages:,} messages in {elapsed:.1f} s: {rate:,.0f} messages/s "
          f"(target ≥ {TARGET_RATE}): {'MET' if rate >= TARGET_RATE else 'NOT MET'}")  # fmt: skip
    print(f"Receiver: {len(receivers)} processes, CPU {cpu:.0f} s ({1e6 * cpu / args.messages:,.0f} µs a message), "
          f"peak memory {max(peaks) / 1024:.0f} MB per process ({sum(peaks) / 1024:.0f} MB together)")  # fmt: skip
    per_message = {"receiver": cpu, "PostgreSQL": database_cpu, "the sending MTAs (bench clients)": client_cpu}
    per_message["time taken by other machines on this host (steal)"] = steal
    per_message["anything else"] = max(0.0, machine - sum(per_message.values()))
    print("CPU per message: " + ", ".join(f"{part} {1e6 * seconds / args.messages:,.0f} µs"
                                          for part, seconds in per_message.items())
          + f"; {machine:.0f} of {elapsed * (os.cpu_count() or 1):.0f} core-seconds used")  # fmt: skip
    print(f"Refused by the receiver: {refused}")
    print(f"Bounce events by kind: {events} (expected hard {expected['hard']:,} — some real DSNs name a 5.7.x or "
          f"4.x.x code and count as soft —, soft+hard {expected['hard'] + expected['soft']:,}, complaints "
          f"{expected['complaint']:,})")  # fmt: skip
    print(f"Set aside: {result['set_aside']:,} (expected {expected['set_aside']:,}); ignored by design: "
          f"{expected['ignored']:,} delays and auto-replies")  # fmt: skip
    print(f"Suppressed: {result['suppressed']}")
    recorded = sum(events.values())
    nothing_lost = (
        refused == 0
        and recorded == expected["hard"] + expected["soft"] + expected["complaint"]
        and events.get("complaint", 0) == expected["complaint"]
        and result["set_aside"] == expected["set_aside"]
        and recorded + result["set_aside"] + expected["ignored"] == args.messages
        and hard_seen > 0
    )
    print(f"Nothing lost (each message recorded, set aside, or ignored by design): {'yes' if nothing_lost else 'NO'}")
    return 0 if nothing_lost and rate >= TARGET_RATE else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2, help="receiver processes (flask bounces serve)")
    parser.add_argument("--connections", type=int, default=8, help="client connections at once")
    add_service_options(parser, "the receiver's REDIS_URL")
    parser.add_argument("--keep-logs", action="store_true", help="keep the receiver's log and the work directory")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        client_child(*args.child[1:])
        return 0
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
