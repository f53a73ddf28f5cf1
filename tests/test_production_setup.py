"""The production configuration, started from deploy/'s own files on this machine, sends a campaign.

As docs/deploy.md sets it up: deploy/postgresql-roles.sql makes the database with an owner role and an app role that
may only read and write rows; deploy/uscmail-flask runs the migrations as the owner and everything else as the app
role, with a settings file made from deploy/uscmail.env.example (its placeholders replaced by fresh secrets, and the
harness's PostgreSQL, Redis and SMTP sink in place of the real ones); gunicorn, two workers and beat are started with
the ExecStart lines of the systemd units, as separate processes. Then, as an operator's script would, supporters are
imported with the CLI and a campaign is created and sent through /api/v1 with an API token, until its stats say
"sent": every supporter got exactly one mail, signed with the DKIM key the documented command made.

PostgreSQL and Redis are needed whatever USCMAIL_TEST_BACKEND says: the test makes its own database and queue. On the
SQLite run it is skipped only if neither is reachable; on the PostgreSQL run it never is.
"""

import collections
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid

import dkim
import pytest
import redis
import sqlalchemy as sa
from cryptography.fernet import Fernet

from tests.conftest import BACKEND, PG_ADMIN_URL, PROJECT_DIR, TEST_REDIS_URL
from tests.deploy_support import (
    DEPLOY_DIR,
    ENV_EXAMPLE,
    INSTALL_DIR,
    SETTINGS_DIR,
    STATE_DIR,
    read_env_file,
    read_unit,
    unit_command,
    unit_environment,
    write_env_file,
)
from tests.waiting import wait_until

SUPPORTERS = 300
SUBJECT = "Portland Place on the 5th"
BODY = "Dear {{ subscriber.name }},\n\nJoin us outside the embassy on the 5th at 6 pm.\n"
# How long to wait for everything to start, and for the campaign to go out (upper bounds, not targets: the speed
# of sending is measured by bench/campaign.py).
START_SECONDS, SEND_SECONDS = 90, 120


def reachable() -> str | None:
    """Why PostgreSQL or Redis cannot be reached, or None."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
    except (sa.exc.OperationalError, redis.RedisError) as exc:
        return str(exc).splitlines()[0]
    return None


class Production:
    """A database and roles, a settings file and folders of their own, and the processes started from the units."""

    def __init__(self, root, sink_port: int):
        self.run = uuid.uuid4().hex[:8]
        self.root = root
        self.state_dir, self.settings_dir = root / "state", root / "etc"
        self.state_dir.mkdir()
        self.settings_dir.mkdir()
        self.paths = {
            INSTALL_DIR: str(PROJECT_DIR),
            STATE_DIR: str(self.state_dir),
            SETTINGS_DIR: str(self.settings_dir),
        }
        self.owner, self.app_role, self.database = (
            f"uscmail_owner_{self.run}",
            f"uscmail_{self.run}",
            f"uscmail_{self.run}",
        )
        self.queue = f"uscmail-production-{self.run}"
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.settings = self.settings_from_example(sink_port)

    def url(self, role: str) -> str:
        host = PG_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
        return f"postgresql+psycopg://{role}@{host}/{self.database}"

    def settings_from_example(self, sink_port: int) -> dict[str, str]:
        """deploy/uscmail.env.example with fresh secrets and this machine's services in place of the placeholders."""
        example = read_env_file(ENV_EXAMPLE)
        test_values = {
            "SECRET_KEY": secrets.token_urlsafe(36),
            "SUPPRESSION_KEY": secrets.token_urlsafe(36),
            "TOTP_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "DATABASE_URL": self.url(self.app_role),
            "REDIS_URL": TEST_REDIS_URL,
            # The sink speaks plain SMTP without a login.
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(sink_port),
            "MAIL_USE_TLS": "false",
            "MAIL_USERNAME": "",
            "MAIL_PASSWORD": "",
        }
        assert set(test_values) <= set(example), "the example lacks a setting production needs"
        # A queue and key prefix of this run's own, so nothing else on this Redis meets them.
        run_values = {"CELERY_QUEUE": self.queue, "RATELIMIT_KEY_PREFIX": self.queue}
        settings = {name: value.replace(STATE_DIR, self.paths[STATE_DIR]) for name, value in example.items()}
        settings = {name: value.replace(SETTINGS_DIR, self.paths[SETTINGS_DIR]) for name, value in settings.items()}
        return {**settings, **test_values, **run_values}

    def base_env(self) -> dict[str, str]:
        """What systemd gives a service besides its settings: a PATH and a locale, nothing of ours."""
        return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(self.state_dir)}

    def create_database(self) -> None:
        """deploy/postgresql-roles.sql, run by the superuser with this run's names."""
        psql_url = PG_ADMIN_URL.replace("+psycopg", "")
        self.run_checked(["psql", psql_url, "-q", "-v", "ON_ERROR_STOP=1", "-v", f"owner={self.owner}",
                          "-v", f"app={self.app_role}", "-v", f"database={self.database}",
                          "-f", str(DEPLOY_DIR / "postgresql-roles.sql")])  # fmt: skip

    def drop_database(self) -> None:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            for role in (self.app_role, self.owner):
                connection.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        engine.dispose()

    def flask(self, *arguments: str) -> subprocess.Popen:
        """Start deploy/uscmail-flask with this run's settings file; finished() waits for it and gives its output."""
        env = {**self.base_env(), "USCMAIL_ENV_FILE": str(self.settings_dir / "uscmail.env")}
        argv = [str(DEPLOY_DIR / "uscmail-flask"), *arguments]
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def finished(*commands: subprocess.Popen) -> str:
        """Wait for commands started together; the standard output of the last. Each must succeed."""
        for command in commands:
            stdout, stderr = command.communicate(timeout=60)
            assert command.returncode == 0, f"{command.args[1:4]} failed:\n{stdout[-2000:]}{stderr[-3000:]}"
        return stdout

    @staticmethod
    def run_checked(argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{argv[:4]} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"

    def start(self, name: str, unit_name: str, instance: str = "") -> None:
        """Start a unit's ExecStart as systemd would: in its WorkingDirectory, with its EnvironmentFile and
        Environment= settings only; the web app on this run's port instead of 8000."""
        unit = read_unit(unit_name)
        argv = unit_command(unit, instance, f"{socket.gethostname()}-{self.run}", self.paths)
        argv = [argument.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}") for argument in argv]
        env = {**self.base_env(), **self.settings, **unit_environment(unit, self.paths)}
        (workdir,) = unit["WorkingDirectory"]
        log = (self.root / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv, cwd=workdir.replace(INSTALL_DIR, str(PROJECT_DIR)), env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-1500:]}" for name in self.processes)

    def alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}\n{self.logs()}"

    def wait_for(self, what: str, predicate, timeout: float):
        def check():
            self.alive()
            return predicate()

        try:
            return wait_until(check, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()
        except OSError:
            return 0, {}, b""

    def api(self, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
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
            with error:
                return error.code, json.loads(error.read() or b"{}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def forget_redis_keys(self) -> None:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        keys = [key for pattern in (f"{self.queue}*", f"*{self.queue}*") for key in client.scan_iter(pattern)]
        if keys:
            client.delete(*set(keys))
        client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def production(tmp_path, smtp_sink):
    """The production setup's database, settings and folders; its processes stopped and everything removed after."""
    problem = reachable()
    if problem and BACKEND != "postgres":
        pytest.skip(f"the production setup needs PostgreSQL and Redis ({problem})")
    assert problem is None, problem
    setup = Production(tmp_path, smtp_sink.port)
    setup.create_database()
    try:
        yield setup
    finally:
        setup.stop()
        setup.drop_database()
        setup.forget_redis_keys()


def dkim_record(printed: str) -> bytes:
    """The TXT record `flask mail dkim-key` printed, as DNS would answer it (its strings joined)."""
    line = next(line for line in printed.splitlines() if "._domainkey." in line)
    return "".join(re.findall(r'"([^"]*)"', line)).encode()


def test_the_production_files_bring_up_uscmail_and_send_a_campaign(production, smtp_sink):
    settings = production.settings
    # The example as shipped is refused: its placeholders are not secrets.
    assert read_env_file(ENV_EXAMPLE)["SECRET_KEY"] == "change-me"

    # docs/deploy.md, steps 5 and 6: the settings file and the DKIM key it names, the tables (as the owner), the seed.
    key_file = settings["DKIM_PRIVATE_KEY_FILE"]
    assert key_file.startswith(str(production.settings_dir))
    write_env_file(production.settings_dir / "uscmail.env", settings)
    no_dkim = ("DKIM_DOMAIN=", "DKIM_SELECTOR=", "DKIM_PRIVATE_KEY_FILE=")
    selector, domain = settings["DKIM_SELECTOR"], settings["DKIM_DOMAIN"]
    dkim_key = ("mail", "dkim-key", "--domain", domain, "--selector", selector, "--out", key_file)
    printed = production.finished(production.flask(*no_dkim, *dkim_key))
    record = dkim_record(printed)
    production.finished(production.flask(f"DATABASE_URL={production.url(production.owner)}", "db", "upgrade"))
    production.finished(production.flask("seed"))

    # Step 7: gunicorn, two workers and beat, each from its unit's ExecStart; meanwhile, as an operator's script
    # would, supporters are imported with the CLI and an editor gets an API token.
    production.start("web", "uscmail-web.service")
    production.start("worker1", "uscmail-worker@.service", "1")
    production.start("worker2", "uscmail-worker@.service", "2")
    production.start("beat", "uscmail-beat.service")
    people = production.root / "people.csv"
    addresses = [f"supporter{number}@example.net" for number in range(SUPPORTERS)]
    people.write_text("email,name\n" + "".join(f"{address},Supporter {n}\n" for n, address in enumerate(addresses)))
    production.finished(
        production.flask("subscribers", "import", str(people), "--list", "newsletter", "--basis", "prior_consent",
                         "--note", "Sign-up sheet, Portland Place"),
        production.flask("organisers", "create", "ops@example.org", "--role", "editor"),
    )  # fmt: skip
    printed = production.finished(production.flask("organisers", "token", "ops@example.org", "--name", "deploy-test"))
    token = printed.strip().splitlines()[-1]
    production.wait_for("gunicorn", lambda: production.get("/healthz")[0] == 200, START_SECONDS)
    for name in ("worker1", "worker2"):
        production.wait_for(name, lambda name=name: " ready." in production.log(name), START_SECONDS)
    production.wait_for("beat", lambda: "beat: Starting..." in production.log("beat"), START_SECONDS)
    # Beat keeps its schedule in the state folder, the one its unit may write to (as shelve files).
    assert list(production.state_dir.glob("celerybeat-schedule*"))

    # The campaign, through /api/v1.
    draft = {"subject": SUBJECT, "body": BODY, "body_format": "markdown", "lists": ["newsletter"]}
    status, campaign = production.api(token, "POST", "/campaigns", draft)
    assert status == 201, campaign
    status, answer = production.api(token, "POST", f"/campaigns/{campaign['id']}/send")
    assert status == 202, answer

    def sent():
        status, stats = production.api(token, "GET", f"/campaigns/{campaign['id']}/stats")
        assert status == 200, stats
        assert stats["status"] not in ("paused", "cancelled"), stats
        return stats if stats["status"] == "sent" else None

    stats = production.wait_for("the campaign to be sent", sent, SEND_SECONDS)
    assert (stats["recipients"], stats["sent"], stats["failed"], stats["unknown"]) == (SUPPORTERS, SUPPORTERS, 0, 0)

    # Every supporter got exactly one mail, signed with the key the documented command made.
    campaign_mail = [mail for mail in smtp_sink.messages if mail.message["Subject"] == SUBJECT]
    received = collections.Counter(recipient for mail in campaign_mail for recipient in mail.rcpt_tos)
    assert received == dict.fromkeys(addresses, 1)
    assert all(mail.message["DKIM-Signature"] for mail in campaign_mail)
    assert dkim.verify(campaign_mail[0].raw, dnsfunc=lambda name, timeout=5: record)
    assert campaign_mail[0].mail_from.startswith("bounces+") and campaign_mail[0].mail_from.endswith(
        "@" + settings["BOUNCE_ADDRESS"].rsplit("@", 1)[1]
    )

    # Production's web edge: HSTS and the strict policy on pages, the session cookie only over https for this host.
    status, headers, _ = production.get("/organisers/login")
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert re.match(r"__Host-session=.*; Secure; HttpOnly; Path=/; SameSite=Lax", headers["Set-Cookie"])

    # The app ran as a role that may change rows, not the schema.
    engine = sa.create_engine(settings["DATABASE_URL"])
    with engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        connection.execute(sa.text("CREATE TABLE intruder (id int)"))
    engine.dispose()
