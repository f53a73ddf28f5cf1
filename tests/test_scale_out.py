"""Issue #14: Celery over Redis and PostgreSQL is the distributed engine, nothing home-made. Three stand-ins for
separate machines send one campaign; one of them is killed mid-send; every recipient still gets exactly one message.

Each "machine" is a `celery -A worker worker` process group with its own --hostname (worker@machine-N), its own folder
(the working directory, and every setting that would otherwise point into the shared instance folder), and an
environment built from scratch (PATH, PYTHONPATH as the systemd unit sets it, the app's settings: nothing inherited).
They reach PostgreSQL, Redis and the SMTP sink by TCP address only. Machine 3 runs in a network namespace of its own,
joined to this one by a veth pair: the shared PostgreSQL and Redis listen on 127.0.0.1 alone (and must not be
reconfigured), so small TCP relays on the host end of the veth carry its traffic to them and to the sink, and from
inside the namespace 127.0.0.1:5432 is refused. Where the machine does not allow `ip netns add`, machine 3 runs
without a namespace (through the same relays, on 127.0.0.1), and the test says so in its output.

What tests/test_campaign_sending.py proves on one machine (a killed worker's journal applied, its lanes restarted,
nobody mailed twice) is not repeated; here the point is that it holds across machines that share nothing but the
database and the broker, with beat's reaper (running alongside machine 1) healing the campaign without help.

PostgreSQL and Redis only: on the SQLite run (one file, an embedded broker) there is nothing to share across machines.
"""

import asyncio
import collections
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.campaign_support import counts, start, status_of, wait_for_status
from tests.conftest import BACKEND, DATABASE_NAME, PROJECT_DIR, REDIS_URL, TEST_ENV, CeleryProcess
from tests.factories import add_confirmed, make_campaign
from tests.test_campaign_sending import batches_under_way, received_per_address
from tests.waiting import wait_until
from uscmail.campaigns.models import CampaignStatus, Delivery, DeliveryStatus
from uscmail.models import Subscriber

pytestmark = pytest.mark.skipif(
    BACKEND != "postgres",
    reason="needs the PostgreSQL run (USCMAIL_TEST_BACKEND=postgres): machines share only PostgreSQL and Redis",
)

RECIPIENTS = 3000
CONCURRENCY = 2  # pool processes per machine: each holds one SMTP connection, so at most this many are on the wire
# Small batches, a short lease and a reaper every second, so the dead machine's share is recovered within seconds.
CAMPAIGN_SETTINGS = {
    "CAMPAIGN_BATCH_SIZE": "50",
    "CAMPAIGN_LANES": "6",
    "CAMPAIGN_LEASE_SECONDS": "3",
    "CAMPAIGN_STALL_SECONDS": "2",
    "CAMPAIGN_REAP_SECONDS": "1",
    "CAMPAIGN_RETRY_BACKOFF": "0.5",
}
# The app's settings every machine shares (as each machine's copy of the settings file would).
SHARED_SETTINGS = (
    "USCMAIL_ENV", "SECRET_KEY", "MAIL_DEFAULT_SENDER", "MAIL_SENDERS", "BASE_URL", "RATELIMIT_KEY_PREFIX",
)  # fmt: skip
PG_PORT, REDIS_PORT = 5432, 6379


class TcpRelays:
    """Plain TCP relays to services on 127.0.0.1, run by one asyncio loop in a thread: what a router or a tunnel
    would be between real machines. Counts the connections each relay carried."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-relays", daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections: collections.Counter[str] = collections.Counter()

    def relay(self, service: str, listen_host: str, target_port: int) -> int:
        """Listen on `listen_host` (a free port) and relay each connection to 127.0.0.1:`target_port`, counting them
        under `service`; the port."""
        serving = self._serve(service, listen_host, target_port)
        server = asyncio.run_coroutine_threadsafe(serving, self.loop).result(10)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def _serve(self, service: str, listen_host: str, target_port: int) -> asyncio.Server:
        async def connect(client_reader, client_writer):
            self.connections[service] += 1
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                client_writer.close()
                return
            self.writers.update((client_writer, upstream_writer))
            await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))

        return await asyncio.start_server(connect, listen_host, 0)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Either side closing (or a killed machine's connection reset) closes the other: these protocols never
        # half-close.
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            self.writers.discard(writer)

    def close(self) -> None:
        """Stop listening, drop every connection still open, and stop the loop."""

        async def shut() -> None:
            for server in self.servers:
                server.close()
            for writer in list(self.writers):
                writer.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Namespace:
    """A network namespace joined to ours by a veth pair: `host_address` is our end, `inside_address` its end."""

    name: str
    host_link: str
    host_address: str
    inside_address: str

    def run(self, *command: str) -> subprocess.CompletedProcess:
        """Run a command inside the namespace."""
        return subprocess.run(["ip", "netns", "exec", self.name, *command], capture_output=True, text=True, timeout=30)


def ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, text=True, timeout=30)


def make_namespace() -> tuple[Namespace | None, str]:
    """A namespace with a veth pair and addresses on a /30 no interface here uses; (None, why) if not permitted."""
    suffix = uuid.uuid4().hex[:6]
    name, host_link, inside_link = f"uscmail-scale-{suffix}", f"usc{suffix}h", f"usc{suffix}n"
    try:
        ip("netns", "add", name)
    except (OSError, subprocess.CalledProcessError) as error:
        return None, f"`ip netns add` failed here: {(getattr(error, 'stderr', '') or str(error)).strip()}"
    in_use = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout
    octet = next(n for n in random.sample(range(1, 255), 254) if f" 10.213.{n}." not in in_use)
    namespace = Namespace(name, host_link, f"10.213.{octet}.1", f"10.213.{octet}.2")
    try:
        ip("link", "add", host_link, "type", "veth", "peer", "name", inside_link)
        ip("link", "set", inside_link, "netns", name)
        ip("addr", "add", f"{namespace.host_address}/30", "dev", host_link)
        ip("link", "set", host_link, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{namespace.inside_address}/30", "dev", inside_link)
        ip("netns", "exec", name, "ip", "link", "set", inside_link, "up")
        # Its own loopback, up: so that 127.0.0.1:5432 inside is refused (nothing listens), not merely unreachable.
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as error:
        remove_namespace(namespace)
        return None, f"the namespace's veth pair could not be set up ({error.stderr.strip()})"
    return namespace, ""


def remove_namespace(namespace: Namespace) -> None:
    """Delete the veth pair (both ends go together) and the namespace."""
    subprocess.run(["ip", "link", "del", namespace.host_link], capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "del", namespace.name], capture_output=True, timeout=30)


@dataclass
class Machine:
    """One stand-in machine: its worker process group, its folder and the environment it was given."""

    number: int
    folder: Path
    env: dict[str, str]
    worker: CeleryProcess
    network: str


@dataclass
class Cluster:
    """The machines, the relays for the namespaced one, and beat; everything is removed by the fixture."""

    root: Path
    queue: str
    relays: TcpRelays
    namespace: Namespace | None
    namespace_problem: str
    machines: list[Machine] = field(default_factory=list)
    beat: CeleryProcess | None = None

    def machine_env(self, folder: Path, host: str, pg_port: int, redis_port: int, smtp_port: int) -> dict[str, str]:
        """A machine's whole environment, from scratch: what its settings file and its unit would give it."""
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT_DIR),
            **{name: TEST_ENV[name] for name in SHARED_SETTINGS},
            "DATABASE_URL": f"postgresql+psycopg://postgres@{host}:{pg_port}/{DATABASE_NAME}",
            "REDIS_URL": f"redis://{host}:{redis_port}/0",
            "MAIL_SERVER": host,
            "MAIL_PORT": str(smtp_port),
            "CELERY_QUEUE": self.queue,
            # Everything that would otherwise derive from the (shared) instance folder.
            "SEND_JOURNAL_DIR": str(folder / "send-journal"),
            "MEDIA_DIR": str(folder / "media"),
            "DEV_MAIL_DIR": str(folder / "devmail"),
            "BACKUP_DIR": str(folder / "backups"),
            **CAMPAIGN_SETTINGS,
        }
        assert "/" not in host and ".sock" not in env["DATABASE_URL"], "TCP addresses only, never a Unix socket"
        return env

    def start_machine(self, number: int, smtp_port: int) -> Machine:
        """Machine `number`: machines 1 and 2 on this network; machine 3 in the namespace (or, without one, through
        the relays on 127.0.0.1)."""
        folder = self.root / f"machine-{number}"
        folder.mkdir()
        wrapper: tuple[str, ...] = ()
        if number < 3:
            env = self.machine_env(folder, "127.0.0.1", PG_PORT, REDIS_PORT, smtp_port)
            network = "this host's network"
        else:
            host = self.namespace.host_address if self.namespace else "127.0.0.1"
            env = self.machine_env(
                folder,
                host,
                self.relays.relay("postgresql", host, PG_PORT),
                self.relays.relay("redis", host, REDIS_PORT),
                self.relays.relay("smtp", host, smtp_port),
            )
            if self.namespace:
                wrapper = ("ip", "netns", "exec", self.namespace.name)
                network = f"network namespace {self.namespace.name}, via {host}"
            else:
                network = f"no network namespace ({self.namespace_problem}); relays on {host}"
        worker = CeleryProcess.worker(
            f"machine-{number}-{uuid.uuid4().hex[:6]}",
            concurrency=CONCURRENCY,
            hostname=f"worker@machine-{number}",
            cwd=folder,
            inherit_env=False,
            wrapper=wrapper,
            **env,
        )
        machine = Machine(number, folder, env, worker, network)
        self.machines.append(machine)
        return machine

    def start_beat(self, machine: Machine) -> None:
        """Exactly one beat, alongside `machine`, with its schedule in that machine's folder."""
        self.beat = CeleryProcess.beat(
            f"beat-{uuid.uuid4().hex[:6]}",
            self.queue,
            schedule=machine.folder / "celerybeat-schedule",
            cwd=machine.folder,
            inherit_env=False,
            **machine.env,
        )


@pytest.fixture
def cluster(app, db, smtp_sink, tmp_path):
    """Three machines and beat, on a queue of their own; all processes, relays and the namespace removed after."""
    namespace, problem = make_namespace()
    relays = TcpRelays()
    setup = Cluster(tmp_path, f"scale-out-{uuid.uuid4().hex[:6]}", relays, namespace, problem)
    try:
        for number in (1, 2, 3):
            setup.start_machine(number, smtp_sink.port)
        setup.start_beat(setup.machines[0])
        yield setup
    finally:
        for process in [machine.worker for machine in setup.machines] + [setup.beat]:
            if process is not None and process.process.poll() is None:
                process.kill()
        relays.close()
        if namespace:
            remove_namespace(namespace)
        forget_queue(setup.queue)


def forget_queue(queue: str) -> None:
    """Remove what the broker keeps for this test's queue: the queue, its bindings, and the tasks the killed machines
    had taken but not acknowledged (kombu keeps them in one hash for every queue, and would put them back into this
    queue, which nobody reads any more, after its visibility timeout). Other queues' entries are left alone."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    ours = [tag for tag, payload in client.hscan_iter("unacked") if json.loads(payload)[2] == queue]
    if ours:
        client.hdel("unacked", *ours)
        client.zrem("unacked_index", *ours)
    priorities = (f"{queue}\x06\x16{priority}" for priority in range(10))
    client.delete(queue, *priorities, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    client.close()


def batches_sent(machine: Machine) -> int:
    """Batch tasks the machine's worker finished, from its log."""
    return len(re.findall(r"send_batch\[[0-9a-f-]+\] succeeded", machine.worker.log()))


def process_environment(pid: int) -> dict[str, str]:
    """The environment a process was started with, as the kernel holds it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if entry)


def test_three_machines_send_one_campaign_and_one_dies_mid_send(cluster, db, api, viewer, smtp_sink, capsys):
    machines = {machine.number: machine for machine in cluster.machines}
    # Each machine has only what it was given, and calls itself by its own name.
    for number, machine in machines.items():
        assert process_environment(machine.worker.process.pid) == machine.env
        assert Path(f"/proc/{machine.worker.process.pid}/cwd").resolve() == machine.folder.resolve()
        assert f"worker@machine-{number} ready." in machine.worker.log()
    namespace = cluster.namespace
    if namespace:
        ours = os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{machines[3].worker.process.pid}/ns/net") != ours
        probe = "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=5)"
        refused = namespace.run(sys.executable, "-c", probe)
        assert "ConnectionRefusedError" in refused.stderr, "inside the namespace, 127.0.0.1:5432 is not PostgreSQL"

    smtp_sink.delay = 0.02  # slow enough that the kill lands mid-send
    addresses = add_confirmed(RECIPIENTS)
    campaign = make_campaign()
    start(campaign, queue=cluster.queue)

    for machine in machines.values():
        wait_until(lambda m=machine: batches_sent(m), timeout=30, what=f"machine {machine.number} to send a batch")
    # Every database session of this run comes over TCP (a Unix-socket session has no client address).
    sessions = db.session.execute(
        sa.text("SELECT count(*), count(client_addr) FROM pg_stat_activity WHERE datname = :name"),
        {"name": DATABASE_NAME},
    ).one()
    db.session.rollback()
    assert sessions[0] == sessions[1] > 3
    doomed = machines[3]
    wait_until(lambda: batches_under_way(doomed.worker) > 0, timeout=30, what="a batch under way on machine 3")
    doomed.worker.kill()
    at_kill = smtp_sink.count()
    assert status_of(campaign.id) is CampaignStatus.SENDING and at_kill < RECIPIENTS, "the kill landed mid-send"
    relayed = dict(cluster.relays.connections)
    assert set(relayed) == {"postgresql", "redis", "smtp"}, "machine 3 reached each service through the relays"

    # Nobody helps: beat's reaper, running on the surviving machines, recovers machine 3's share.
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    received = received_per_address(smtp_sink)
    assert max(received.values()) == 1, "nobody is mailed twice"
    assert set(received) <= set(addresses)
    final = counts(campaign.id)
    unknown = final.get(DeliveryStatus.UNKNOWN, 0)
    assert unknown <= CONCURRENCY, "only what was on machine 3's connections when it died is in doubt"
    assert final == {
        DeliveryStatus.SENT: RECIPIENTS - unknown,
        **({DeliveryStatus.UNKNOWN: unknown} if unknown else {}),
    }
    status_by_address = dict(
        db.session.execute(
            sa.select(Subscriber.email, Delivery.status)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.campaign_id == campaign.id)
        ).all()
    )
    db.session.rollback()
    sent = {address for address, status in status_by_address.items() if status is DeliveryStatus.SENT}
    assert sent <= set(received), "every delivery marked sent arrived"
    assert set(addresses) - set(received) <= set(status_by_address) - sent, "whoever got nothing is marked unknown"

    stats = api("GET", f"/api/v1/campaigns/{campaign.id}/stats", token=viewer)
    assert stats.status_code == 200, stats.get_data(as_text=True)
    body = stats.json
    assert (body["status"], body["recipients"], body["pending"], body["failed"]) == ("sent", RECIPIENTS, 0, 0)
    assert (body["sent"], body["unknown"]) == (RECIPIENTS - unknown, unknown)
    assert smtp_sink.count() == len(received) >= RECIPIENTS - unknown

    batches = {number: batches_sent(machine) for number, machine in machines.items()}
    with capsys.disabled():
        print(
            f"\nscale-out: machine 3 ran in {machines[3].network}; batches finished per machine {batches}; "
            f"{at_kill} of {RECIPIENTS} arrived when machine 3 was killed; {unknown} marked unknown; "
            f"machine 3's connections through the relays {relayed}"
        )
