"""Test harness with real parts: a database (SQLite or PostgreSQL), a live Celery worker process, an SMTP sink.

USCMAIL_TEST_BACKEND=sqlite (default) uses a SQLite file and kombu's SQLAlchemy broker, as `make run` does on a laptop;
USCMAIL_TEST_BACKEND=postgres uses PostgreSQL and Redis on 127.0.0.1. Each run gets its own database, queue and
rate-limit key prefix, so runs never meet.
"""

import contextlib
import contextvars
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tests.smtp_sink import SmtpSink
from tests.waiting import wait_until

# Fixtures for the browser tests: live_server, chromium, visit.
pytest_plugins = ["tests.browser_support"]

PROJECT_DIR = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("USCMAIL_TEST_BACKEND", "sqlite")
RUN_ID = uuid.uuid4().hex[:10]
RUN_DIR = Path(tempfile.mkdtemp(prefix=f"uscmail-test-{RUN_ID}-"))
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SMTP_SINK = SmtpSink()
SMTP_SINK.start()

# The translations' compiled catalogues are not committed: make them (as `make test` does) before any app starts.
from uscmail.i18n import compile_catalogues  # noqa: E402 - after the sink, like the rest of the set-up

compile_catalogues()

if BACKEND == "postgres":
    DATABASE_NAME = f"uscmail_test_{RUN_ID}"
    DATABASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DATABASE_NAME
    REDIS_URL = TEST_REDIS_URL
elif BACKEND == "sqlite":
    DATABASE_NAME = None
    DATABASE_URL = f"sqlite:///{RUN_DIR / 'test.sqlite'}"
    REDIS_URL = ""
else:
    raise RuntimeError(f"USCMAIL_TEST_BACKEND must be sqlite or postgres, not {BACKEND!r}")

TEST_ENV = {
    "USCMAIL_ENV": "test",
    "SECRET_KEY": "test-secret-key-" + "x" * 32,
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_PORT": str(SMTP_SINK.port),
    "MAIL_DEFAULT_SENDER": "USC-UK <news@uscuk.test>",
    # A second sender address campaigns may use (the default sender's is always allowed).
    "MAIL_SENDERS": "USC-UK News <news@example.org>",
    "BASE_URL": "https://lists.uscuk.test",
    "CELERY_QUEUE": f"uscmail-test-{RUN_ID}",
    "RATELIMIT_KEY_PREFIX": f"uscmail-test-{RUN_ID}",
    "DEV_MAIL_DIR": str(RUN_DIR / "devmail"),
    "SEND_JOURNAL_DIR": str(RUN_DIR / "send-journal"),
    "MEDIA_DIR": str(RUN_DIR / "media"),
    # Transient SMTP failures are retried after half a second (doubling), not a minute, so tests see the retry.
    "CAMPAIGN_RETRY_BACKOFF": "0.5",
}
os.environ.update(TEST_ENV)
# The in-process app must reach the broker and database the worker uses.
if not REDIS_URL:
    os.environ.pop("REDIS_URL")


def _create_database() -> None:
    if BACKEND != "postgres":
        return
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{DATABASE_NAME}"'))
    engine.dispose()


def _drop_database() -> None:
    if BACKEND != "postgres":
        return
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def app():
    """The Flask app under TestConfig, with the schema built by the migrations (not create_all)."""
    from flask_migrate import upgrade

    from config import TestConfig
    from uscmail import create_app

    _create_database()
    flask_app = create_app(TestConfig())
    with flask_app.app_context():
        upgrade()
    yield flask_app
    with flask_app.app_context():
        from sqlalchemy.orm import close_all_sessions

        from uscmail.extensions import db

        db.session.remove()
        # Sessions of app contexts pushed by other threads (the live server's, the tests' own) may still hold a
        # connection: give every one back, so dispose() closes them all before the database is dropped.
        close_all_sessions()
        db.engine.dispose()
    _drop_database()


class CeleryProcess:
    """A real Celery process (a worker or beat) in its own process group, so a test can SIGKILL it and its pool
    children at once. Its output goes to RUN_DIR/<name>.log; it is started and waited for in one step."""

    def __init__(
        self,
        name: str,
        arguments: list[str],
        ready: bytes,
        *,
        cwd: Path = PROJECT_DIR,
        inherit_env: bool = True,
        wrapper: tuple[str, ...] = (),
        **env: str,
    ):
        """Start `celery -A worker <arguments>` with `env` on top of ours; return once `ready` is in its log.

        A stand-in for another machine (tests/test_scale_out.py) runs in a folder of its own (`cwd`), with `env` alone
        (`inherit_env=False`: it must name PYTHONPATH to find the code, as the systemd unit does), and may be started
        through a `wrapper` command that execs it, such as `ip netns exec NAME`, keeping the process group killable.
        """
        self.log_path = RUN_DIR / f"{name}.log"
        self.queue = env.get("CELERY_QUEUE", TEST_ENV["CELERY_QUEUE"])
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "celery", "-A", "worker", *arguments],
            cwd=cwd,
            env={**os.environ, **env} if inherit_env else env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: ready in self.log_path.read_bytes() or self.process.poll() is not None, 60, name)
            running = self.process.poll() is None
        except AssertionError:
            running = False
        if not running:
            self.kill()
            raise RuntimeError(f"Celery process {name} did not start:\n" + self.log())

    @classmethod
    def worker(cls, name: str, concurrency: int = 2, hostname: str | None = None, **options) -> "CeleryProcess":
        """A worker consuming CELERY_QUEUE (this run's unless `options` names another), ready to take tasks; named
        `hostname` (name@<this host> by default). `options`: environment settings, or __init__'s cwd, inherit_env,
        wrapper."""
        arguments = [
            "worker", "--loglevel", "INFO", "--concurrency", str(concurrency), "--hostname", hostname or f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        return cls(name, arguments, b" ready.", **options)

    @classmethod
    def beat(cls, name: str, queue: str, schedule: Path | None = None, **options) -> "CeleryProcess":
        """`celery beat` publishing to `queue`, with its own schedule file (in RUN_DIR unless `schedule` names one),
        once its scheduler has started."""
        schedule = schedule or RUN_DIR / f"{name}-schedule"
        arguments = ["beat", "--loglevel", "INFO", "--schedule", str(schedule)]
        return cls(name, arguments, b"beat: Starting...", **{"CELERY_QUEUE": queue, **options})

    def log(self) -> str:
        """What the process has logged so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process and its children (a worker's pool): no clean-up of any kind runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)
        self._log.close()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), killing it if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def spawn_beat(app):
    """spawn_beat(name, queue, **env) -> a beat process; killed after the test."""
    beats = []

    def spawn(name: str, queue: str, **env: str) -> CeleryProcess:
        beat = CeleryProcess.beat(f"{name}-{uuid.uuid4().hex[:6]}", queue, **{k: str(v) for k, v in env.items()})
        beats.append(beat)
        return beat

    yield spawn
    for beat in beats:
        if beat.process.poll() is None:
            beat.kill()


@pytest.fixture(scope="session")
def celery_worker(app):
    """A real Celery worker process consuming this run's queue (prefork, two processes)."""
    worker = CeleryProcess.worker("worker")
    yield worker.process
    worker.stop()
    if _broker_connection is not None:
        _broker_connection.release()


@pytest.fixture
def spawn_worker(app, smtp_sink):
    """spawn_worker(name, queue=..., **env) -> a further worker with its own settings; stopped after the test.

    Give it its own queue (and publish to it with apply_async(queue=...)) to keep the session worker out of the test.
    """
    workers = []

    def spawn(name: str, queue: str | None = None, concurrency: int = 2, **env: str) -> CeleryProcess:
        env = {key: str(value) for key, value in env.items()}
        if queue:
            env["CELERY_QUEUE"] = queue
        worker = CeleryProcess.worker(f"{name}-{uuid.uuid4().hex[:6]}", concurrency=concurrency, **env)
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        if worker.process.poll() is None:
            worker.kill()


@pytest.fixture
def db(app):
    """A clean database for each test, seeded with the default lists and consent wording."""

    from uscmail.cli import seed_defaults
    from uscmail.extensions import db as database
    from uscmail.extensions import limiter

    with app.app_context():
        tables = database.metadata.sorted_tables
        if BACKEND == "postgres":
            # TRUNCATE: fast, and the audit log's append-only trigger guards against DELETE, not TRUNCATE.
            names = ", ".join(f'"{table.name}"' for table in tables)
            _truncate(database, f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            for table in reversed(tables):
                database.session.execute(table.delete())
        database.session.commit()
        seed_defaults()
        if REDIS_URL:
            # Not limiter.reset(): on Redis it deletes every run's counters ("LIMITS:*"), breaking concurrent runs.
            _reset_redis_counters()
        else:
            limiter.reset()
        yield database
        database.session.rollback()
        database.session.remove()


def _truncate(database, statement: str, attempts: int = 10) -> None:
    """TRUNCATE every table, retried when the last test's worker task still holds a lock and Postgres breaks a deadlock.

    The session worker outlives each test: a task the last test queued may still be reading when this one starts.
    TRUNCATE takes every table's exclusive lock one by one, so it can meet that task half-way; Postgres then cancels
    one side (here, usually the TRUNCATE). Waiting briefly and trying again lets the task finish.
    """
    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            database.session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            database.session.execute(sa.text(statement))
            return
        except OperationalError as error:
            database.session.rollback()
            if attempt == attempts - 1 or getattr(error.orig, "sqlstate", None) not in ("40P01", "55P03"):
                raise
            time.sleep(0.2 * (attempt + 1))


def _reset_redis_counters() -> None:
    if not REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{TEST_ENV['RATELIMIT_KEY_PREFIX']}*", count=1000):
        client.delete(key)


@pytest.fixture
def client(app, db):
    """A test browser with a fresh cookie jar; each of its requests runs in its own app context, as in production."""
    return isolated_client(app)


@contextlib.contextmanager
def recorded_statements(engine, read=None):
    """The SQL statements run on `engine` inside the block, each on one line; with `read`, what
    read(connection, statement) gives for each instead."""
    seen: list = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()) if read is None else read(conn, statement))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


class IsolatedClient(FlaskClient):
    """A test client whose requests each get a fresh app context (and so a fresh `g` and database session),
    as in production, even while the test itself holds an app context."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


def isolated_client(app, environ_base: dict | None = None) -> IsolatedClient:
    """A further independent browser (own cookies), with per-request app contexts."""
    client = IsolatedClient(app, app.response_class, use_cookies=True)
    client.environ_base.update(environ_base or {})
    return client


@pytest.fixture
def api(app, db):
    """call(method, path, token=..., **kwargs): a request with `Authorization: Bearer <token>` when a token is given;
    then a rollback, so the test sees what the request committed."""
    client = isolated_client(app)

    def call(method: str, path: str, token: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = client.open(path, method=method, headers=headers, **kwargs)
        db.session.rollback()
        return response

    return call


@pytest.fixture
def editor(db):
    """An API token of an editor (editor@example.org)."""
    from tests.api_support import issue_token

    return issue_token(db, "editor")


@pytest.fixture
def viewer(db):
    """An API token of a viewer (viewer@example.org)."""
    from tests.api_support import issue_token

    return issue_token(db, "viewer")


@pytest.fixture
def smtp_sink():
    """The SMTP sink that the worker delivers to, emptied before each test."""
    SMTP_SINK.clear()
    return SMTP_SINK


@pytest.fixture
def worker(app, celery_worker, smtp_sink):
    """A live worker and an empty sink: for tests that expect mail to arrive. The session worker is shared, so an
    earlier test may have left it a backlog (a hundred signups' mail): wait (a bounded while) until this run's queue
    is empty, so the test's own tasks are not stuck behind another test's."""
    wait_for_empty_queue(app, timeout=60)
    return celery_worker


def queued_messages(app, queue: str = TEST_ENV["CELERY_QUEUE"]) -> int:
    """Messages waiting in `queue` on the broker, not yet taken by a worker."""
    global _broker_connection
    if _broker_connection is None:
        # One connection for the session (closed with the session worker): the SQLAlchemy transport keeps a
        # database connection per channel.
        _broker_connection = app.extensions["celery"].connection_for_write()
    return _broker_connection.default_channel.queue_declare(queue=queue).message_count


_broker_connection = None


def wait_for_empty_queue(app, timeout: float) -> None:
    """Wait up to `timeout` seconds for this run's queue to empty; go on regardless (the test's own waits judge)."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: queued_messages(app) == 0, timeout, "the worker's queue to empty")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the session worker shows what the worker logged while it ran (the test's own tasks and
    errors), so a failure on a machine we can't reach can still be read."""
    report = yield
    start = item.stash.get(WORKER_LOG_START, None)
    if report.failed and start is not None and WORKER_LOG.exists():
        with WORKER_LOG.open("rb") as log:
            log.seek(start)
            written = log.read()[-20_000:].decode(errors="replace")
        report.sections.append(("worker log during this test (last 20 kB)", written))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if "celery_worker" in item.fixturenames or "worker" in item.fixturenames:
        item.stash[WORKER_LOG_START] = WORKER_LOG.stat().st_size if WORKER_LOG.exists() else 0


WORKER_LOG = RUN_DIR / "worker.log"
WORKER_LOG_START = pytest.StashKey[int]()


CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
STARTED = re.compile(r'name="started" type="hidden" value="([^"]+)"')


def form_fields(html: str) -> dict[str, str]:
    """The hidden CSRF and timing fields of a rendered form."""
    fields = {"csrf_token": CSRF.search(html).group(1)}
    started = STARTED.search(html)
    if started:
        fields["started"] = started.group(1)
    return fields


def wait_for_signups(db, timeout: float = 30.0) -> None:
    """Wait until the worker has applied every stored signup (the web request only stores it and queues the task)."""
    import sqlalchemy as sa

    from uscmail.models import SignupRequest

    def applied() -> bool:
        waiting = db.session.scalar(sa.select(sa.func.count()).select_from(SignupRequest))
        db.session.rollback()
        return not waiting

    wait_until(applied, timeout, "the worker to apply every stored signup")


@pytest.fixture
def signup(client, db, celery_worker):
    """Submit the signup form like a browser (load it, post it with its hidden fields), then wait until the live
    worker has applied the signup, so the test sees the rows it led to."""

    def submit(email, lists=("newsletter",), name="", extra=None, test_client=None):
        test_client = test_client or client
        page = test_client.get("/subscribe")
        data = {**form_fields(page.get_data(as_text=True)), "consent_version": "2026-11-27"}
        data.update(email=email, name=name, lists=list(lists), website="")
        data.update(extra or {})
        response = test_client.post("/subscribe", data=data)
        wait_for_signups(db)
        return response

    return submit


@pytest.fixture
def sign_in_as(app, db):
    """sign_in_as("editor") -> a browser signed in (password and TOTP) as a new organiser with that role."""
    import pyotp
    import sqlalchemy as sa

    from tests.factories import ORGANISER_PASSWORD, make_organiser
    from uscmail.organisers import services
    from uscmail.organisers.models import Organiser

    def sign_in(role: str = "admin", email: str | None = None) -> IsolatedClient:
        email = email or f"{role}@example.org"
        organiser = services.organiser_by_email(email) or make_organiser(email, role)
        organiser.totp_last_step = None
        db.session.commit()
        browser = isolated_client(app)
        page = browser.get("/organisers/login").get_data(as_text=True)
        answer = browser.post(
            "/organisers/login", data={**form_fields(page), "email": email, "password": ORGANISER_PASSWORD}
        )
        assert answer.status_code == 302, answer.get_data(as_text=True)
        page = browser.get("/organisers/two-factor").get_data(as_text=True)
        code = pyotp.TOTP(organiser.totp_secret).now()
        answer = browser.post("/organisers/two-factor", data={**form_fields(page), "code": code})
        assert answer.status_code == 302, answer.get_data(as_text=True)
        # Each TOTP code works once; forget the step so a second sign-in in the same test can reuse the window.
        # (An UPDATE statement: the ORM object here still believes the step is unset, and would write nothing.)
        db.session.execute(sa.update(Organiser).where(Organiser.id == organiser.id).values(totp_last_step=None))
        db.session.commit()
        return browser

    return sign_in
