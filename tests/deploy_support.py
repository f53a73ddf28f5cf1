"""Reading the production files in deploy/ as systemd and a shell would: unit files, the settings file, the Procfile."""

import re
import shlex
from pathlib import Path

from tests.conftest import PROJECT_DIR

DEPLOY_DIR = PROJECT_DIR / "deploy"
UNITS = ("uscmail-web.service", "uscmail-worker@.service", "uscmail-beat.service", "uscmail-bounces.service")
ENV_EXAMPLE = DEPLOY_DIR / "uscmail.env.example"
# Where the production files put things, and the folder the units' programs run from.
INSTALL_DIR, STATE_DIR, SETTINGS_DIR = "/opt/uscmail", "/var/lib/uscmail", "/etc/uscmail"
SETTING = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def read_unit(name: str) -> dict[str, list[str]]:
    """The [Service] section of a unit file: each key with its values, in order (a key may be given many times)."""
    section, service = None, {}
    for line in (DEPLOY_DIR / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            service.setdefault(key.strip(), []).append(value.strip())
    return service


def unit_command(unit: dict[str, list[str]], instance: str, hostname: str, paths: dict[str, str]) -> list[str]:
    """The unit's ExecStart as argv, its specifiers (%i, %H, %%) filled in and the production paths mapped."""
    (line,) = unit["ExecStart"]
    line = re.sub(r"%[iH%]", lambda match: {"%i": instance, "%H": hostname, "%%": "%"}[match.group(0)], line)
    return [map_paths(argument, paths) for argument in shlex.split(line)]


def unit_environment(unit: dict[str, list[str]], paths: dict[str, str]) -> dict[str, str]:
    """The unit's Environment= settings, with the production paths mapped."""
    pairs = (value.partition("=") for values in unit.get("Environment", []) for value in shlex.split(values))
    return {name: map_paths(value, paths) for name, _, value in pairs}


def map_paths(value: str, paths: dict[str, str]) -> str:
    """`value` with each production folder (/opt/uscmail, /var/lib/uscmail, /etc/uscmail) replaced by its stand-in."""
    for production, stand_in in paths.items():
        value = value.replace(production, stand_in)
    return value


def read_env_file(path: Path, commented: bool = False) -> dict[str, str]:
    """NAME=value lines as systemd's EnvironmentFile= reads them (quotes removed); with `commented`, also the
    settings shown commented out (`# NAME=value`)."""
    settings = {}
    for line in path.read_text().splitlines():
        match = SETTING.match(line.strip())
        if not match or (line.lstrip().startswith("#") and not commented):
            continue
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        settings[name] = value
    return settings


def write_env_file(path: Path, settings: dict[str, str]) -> None:
    """A settings file both systemd and a POSIX shell read the same way (every value double-quoted)."""
    for name, value in settings.items():
        assert not set(value) & set('"$`\\\n'), f"{name}'s value cannot be written to an env file"
    path.write_text("".join(f'{name}="{value}"\n' for name, value in settings.items()))
    path.chmod(0o640)


def read_procfile() -> dict[str, str]:
    """The Procfile's process types and their commands."""
    lines = (DEPLOY_DIR / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))
