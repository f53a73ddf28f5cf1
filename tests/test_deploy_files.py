"""SECURITY.md's and docs/deploy.md's claims, checked against the production files in deploy/ and against config.py.

Every setting they name is one config.py reads; every file they name exists; every unit runs confined, as an
unprivileged user, from the project's own virtualenv; the settings example is refused as shipped and accepted once
its placeholders are replaced; the Procfile runs what the units run; the proxy, Redis and PostgreSQL files do what the
documents say.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.conftest import PROJECT_DIR
from tests.deploy_support import (
    DEPLOY_DIR,
    ENV_EXAMPLE,
    INSTALL_DIR,
    STATE_DIR,
    UNITS,
    read_env_file,
    read_procfile,
    read_unit,
)

DOCUMENTS = [PROJECT_DIR / "SECURITY.md", PROJECT_DIR / "docs" / "deploy.md"]
SETTING_NAME = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`")
# Names in backquotes that are not uscmail settings: psql's, and deploy/uscmail-flask's own.
NOT_SETTINGS = {"ON_ERROR_STOP", "USCMAIL_ENV_FILE"}
FILE_NAME = re.compile(r"(?<![\w/.])((?:deploy|docs|uscmail|bench|tests)/[\w.@/-]*[\w@]|requirements\.txt)")
CONFIG_SOURCE = (PROJECT_DIR / "config.py").read_text()


def read_by_config(name: str) -> bool:
    """True if config.py reads the environment variable `name`."""
    return (
        re.search(rf"""(environ\.get|env_bool|env_list)\(\s*"{name}"|getenv\(\s*"{name}\"""", CONFIG_SOURCE) is not None
    )


def test_every_setting_the_documents_and_the_example_name_is_read_by_config():
    named = {name for document in DOCUMENTS for name in SETTING_NAME.findall(document.read_text())}
    named |= set(read_env_file(ENV_EXAMPLE, commented=True))
    assert {"SECRET_KEY", "TOTP_ENCRYPTION_KEY_FALLBACKS", "TRUSTED_PROXIES", "DATABASE_URL"} <= named
    unknown = sorted(name for name in named - NOT_SETTINGS if not read_by_config(name))
    assert not unknown, f"named but not read by config.py: {unknown}"


def test_every_file_the_documents_name_exists():
    named = {name for document in DOCUMENTS for name in FILE_NAME.findall(document.read_text())}
    assert {"deploy/uscmail-web.service", "deploy/postgresql-roles.sql", "deploy/Caddyfile"} <= named
    missing = sorted(name for name in named if not (PROJECT_DIR / name).exists())
    assert not missing, f"named but missing: {missing}"


def test_each_thing_an_operator_must_do_points_at_the_file_that_does_it():
    section = (PROJECT_DIR / "SECURITY.md").read_text().split("## What an operator must do", 1)[1]
    points = [point for point in section.split("\n- ")[1:]]
    assert len(points) >= 8
    for point in points[:-1]:  # the last one (the development mail viewer) needs no file
        files = FILE_NAME.findall(point)
        assert any(name.startswith(("deploy/", "docs/")) for name in files), point[:80]
    for topic in ("TLS", "Backups", "rotation", "Least-privilege", "Redis", "Firewall", "Updates"):
        assert topic in section, topic


@pytest.mark.parametrize("name", UNITS)
def test_the_units_run_confined_as_an_unprivileged_user(name):
    unit = read_unit(name)
    assert unit["User"] == ["uscmail"] and unit["Group"] == ["uscmail"]
    for setting, value in {
        "NoNewPrivileges": "true",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "PrivateDevices": "true",
        "RestrictSUIDSGID": "true",
        "EnvironmentFile": "/etc/uscmail/uscmail.env",
        "WorkingDirectory": INSTALL_DIR,
        "StateDirectory": "uscmail",
        "ReadWritePaths": f"{INSTALL_DIR}/instance",
    }.items():
        assert unit.get(setting) == [value], f"{name}: {setting}={unit.get(setting)}"
    # No capabilities, except binding port 25 for the bounce receiver.
    capabilities = "CAP_NET_BIND_SERVICE" if name == "uscmail-bounces.service" else ""
    assert unit["CapabilityBoundingSet"] == [capabilities]
    assert unit.get("AmbientCapabilities", [""]) == [capabilities]
    # The program is the project's own virtualenv's, as installed by docs/deploy.md (and by `make`, here).
    program = shlex.split(unit["ExecStart"][0])[0]
    assert program.startswith(f"{INSTALL_DIR}/.venv/bin/")
    assert (PROJECT_DIR / program.removeprefix(f"{INSTALL_DIR}/")).exists()


def test_everything_the_processes_write_is_in_a_folder_the_units_make_writable():
    settings = read_env_file(ENV_EXAMPLE)
    beat = shlex.split(read_unit("uscmail-beat.service")["ExecStart"][0])
    written = [settings["MEDIA_DIR"], settings["SEND_JOURNAL_DIR"], beat[beat.index("--schedule") + 1]]
    assert all(path.startswith(STATE_DIR + "/") for path in written), written
    # The other writable place is the app's instance folder (imports in progress, locks): the project's instance/,
    # /opt/uscmail/instance on a server.
    assert create_app_instance_path() == PROJECT_DIR / "instance"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_reads_the_units_without_complaint():
    units = [str(DEPLOY_DIR / name) for name in UNITS]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True)
    # The programs live in /opt/uscmail/.venv on a server, not on this machine.
    complaints = [line for line in result.stderr.splitlines() if line and "is not executable" not in line]
    assert not complaints, complaints


def create_app_instance_path():
    """The instance folder create_app() gives the app."""
    from uscmail.app import PROJECT_DIR as APP_DIR

    return APP_DIR / "instance"


def production_config_problems(settings: dict[str, str]) -> str:
    """What ProductionConfig says about these settings (in a fresh interpreter, as config.py reads os.environ)."""
    probe = "from config import config_from_env\ntry:\n    config_from_env()\nexcept RuntimeError as e:\n    print(e)"
    env = {"PATH": os.environ["PATH"], **settings}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_the_settings_example_is_refused_as_shipped_and_accepted_once_filled_in():
    example = read_env_file(ENV_EXAMPLE)
    assert example["USCMAIL_ENV"] == "production"
    assert example["BASE_URL"].startswith("https://") and example["TRUSTED_PROXIES"] == "1"
    refused = production_config_problems(example)
    assert "SECRET_KEY must be set" in refused and "TOTP_ENCRYPTION_KEY must" in refused
    filled = {
        **example,
        "SECRET_KEY": "s" * 48,
        "SUPPRESSION_KEY": "k" * 48,
        "TOTP_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    assert production_config_problems(filled) == ""
    # Every secret in the example is a placeholder.
    for name in ("SECRET_KEY", "SUPPRESSION_KEY", "TOTP_ENCRYPTION_KEY", "MAIL_PASSWORD"):
        assert example[name] == "change-me", name
    assert ":change-me@" in example["REDIS_URL"]


def comparable(command: str) -> list[str]:
    """A command without its install folder, the worker's per-instance name and beat's schedule path."""
    words = shlex.split(command.replace(f"{INSTALL_DIR}/", ""))
    for option in ("--hostname", "--schedule"):
        if option in words:
            del words[words.index(option) : words.index(option) + 2]
    return words


def test_the_procfile_runs_what_the_units_run():
    procfile = read_procfile()
    units = {"web": "uscmail-web.service", "worker": "uscmail-worker@.service", "beat": "uscmail-beat.service",
             "bounces": "uscmail-bounces.service"}  # fmt: skip
    assert set(procfile) == set(units)
    for process, unit in units.items():
        assert comparable(procfile[process]) == comparable(read_unit(unit)["ExecStart"][0]), process


def test_the_proxy_redis_and_database_files_do_what_the_documents_say():
    web = shlex.split(read_unit("uscmail-web.service")["ExecStart"][0])
    bind = web[web.index("--bind") + 1]
    assert bind.startswith("127.0.0.1:")
    caddy = (DEPLOY_DIR / "Caddyfile").read_text()
    assert re.search(rf"^\s*reverse_proxy {re.escape(bind)} {{$", caddy, re.M)
    assert not re.search(r"^\s*log\b", caddy, re.M), "Caddy must keep no access log"

    redis_conf = (DEPLOY_DIR / "redis-uscmail.conf").read_text()
    for line in ("bind 127.0.0.1 -::1", "requirepass change-me", "appendonly yes", "maxmemory-policy noeviction"):
        assert re.search(rf"^{re.escape(line)}$", redis_conf, re.M), line

    roles = (DEPLOY_DIR / "postgresql-roles.sql").read_text()
    sql = "\n".join(line for line in roles.splitlines() if not line.startswith("--"))
    grants = re.findall(r"GRANT ([A-Z, ]+) ON", sql)
    assert grants == ["CONNECT, TEMPORARY", "USAGE", "SELECT, INSERT, UPDATE, DELETE", "USAGE, SELECT"], grants
    assert "NOSUPERUSER" in sql and "REVOKE ALL ON DATABASE" in sql
