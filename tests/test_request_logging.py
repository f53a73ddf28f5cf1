"""What `make run` and production log and where they listen: the web server (gunicorn with uscmail.gunicorn_conf, as
`make run` starts it) logs requests without client addresses and with link tokens redacted, and the development web
server and mail catcher listen on 127.0.0.1 only."""

import http.client
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR, RUN_DIR
from tests.waiting import wait_until
from uscmail import devserver

# The client connects from another loopback address, so its address can be looked for in the log.
CLIENT_ADDRESS = "127.0.0.3"
FORWARDED_FOR = "203.0.113.77"
USER_AGENT = "Fingerprintable/1.0"
TOKENS = {
    "unsubscribe": "eyJwIjoiVW5zdWJzY3JpYmVUb2tlbiJ9.Zk3xQa.unsubscribe-secret-part",
    "preferences": "eyJwIjoiUHJlZmVyZW5jZXNUb2tlbiJ9.Zk3xQb.preferences-secret-part",
    "confirm": "eyJwIjoiQ29uZmlybVRva2VuIn0.Zk3xQc.confirm-secret-part",
    "enrol": "WzEsImFWWVBTU2FNUnpDUjJEU3RGVzV5In0.Zk3xQd.enrol-secret-part",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def refused(host: str, port: int) -> bool:
    """True if nothing accepts a connection to host:port."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


def start(argv: list[str], log_path: Path, ready: bytes, **env: str) -> subprocess.Popen:
    """Start a development process as `make run` does, and wait until it has logged `ready`."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        argv, cwd=PROJECT_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    try:
        wait_until(lambda: ready in log_path.read_bytes() or process.poll() is not None, 30, f"{argv[0]} to start")
        running = process.poll() is None
    except AssertionError:
        running = False
    if not running:
        stop(process)
        pytest.fail(f"{argv[0]} did not start:\n{log_path.read_text(errors='replace')}")
    return process


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, as the development runner sends on Ctrl-C; SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


def get(port: int, path: str) -> int:
    """GET path from CLIENT_ADDRESS, claiming to be forwarded for another address; the status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(CLIENT_ADDRESS, 0))
    try:
        headers = {"X-Forwarded-For": FORWARDED_FOR, "Referer": path, "User-Agent": USER_AGENT}
        connection.request("GET", path, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_web_server_logs_requests_without_client_addresses_or_tokens_and_listens_on_loopback(app, db):
    port = free_port()
    log_path = RUN_DIR / f"web-{port}.log"
    web = start(devserver.commands(str(port))["web"], log_path, b"Booting worker")
    try:
        statuses = {
            path: get(port, path)
            for path in (
                f"/unsubscribe/{TOKENS['unsubscribe']}",
                f"/preferences/{TOKENS['preferences']}/erase",
                f"/confirm/{TOKENS['confirm']}?source=someone@example.org",
                f"/organisers/enrol/{TOKENS['enrol']}",
                "/subscribe?email=someone@example.org",
            )
        }
        assert all(status < 500 for status in statuses.values()), statuses
        # A malformed request is warned about in gunicorn's own log, which names the client unless redacted.
        with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(CLIENT_ADDRESS, 0)) as raw:
            raw.sendall(b"NOT HTTP /unsubscribe/" + TOKENS["unsubscribe"].encode() + b"\r\n\r\n")
            raw.recv(1024)
        assert refused("127.0.0.2", port)  # another address of this machine: nothing listens there
    finally:
        stop(web)
    log = log_path.read_text(errors="replace")
    assert f"Listening at: http://127.0.0.1:{port}" in log
    assert "Invalid request from ip=<redacted>: " in log, log
    for line in ('"GET /unsubscribe/<redacted> HTTP/1.1"', '"GET /preferences/<redacted>/erase HTTP/1.1"',
                 '"GET /confirm/<redacted>?<redacted> HTTP/1.1"', '"GET /subscribe?<redacted> HTTP/1.1"',
                 '"GET /organisers/enrol/<redacted> HTTP/1.1"'):  # fmt: skip
        assert line in log, log
    for secret in (*TOKENS.values(), "secret-part", CLIENT_ADDRESS, FORWARDED_FOR, "someone", USER_AGENT):
        assert secret not in log, secret


def test_flask_run_logs_no_client_address_or_token_either(app, db):
    port = free_port()
    log_path = RUN_DIR / f"flask-run-{port}.log"
    argv = [str(Path(sys.executable).parent / "flask"), "--app", "uscmail", "run", "--port", str(port), "--no-reload"]
    server = start(argv, log_path, b"Press CTRL+C")
    try:
        assert get(port, f"/unsubscribe/{TOKENS['unsubscribe']}") == 400
    finally:
        stop(server)
    log = log_path.read_text(errors="replace")
    assert "GET /unsubscribe/<redacted> HTTP/1.1" in log, log  # werkzeug colours the request line
    assert TOKENS["unsubscribe"] not in log and CLIENT_ADDRESS not in log


def test_the_development_mail_catcher_listens_on_loopback_only(tmp_path):
    port = free_port()
    argv = devserver.commands("5000")["mail"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--directory") + 1] = str(tmp_path)
    catcher = start(argv, tmp_path / "catcher.log", b"listening on")
    try:
        assert f"listening on 127.0.0.1:{port}" in (tmp_path / "catcher.log").read_text()
        assert not refused("127.0.0.1", port)
        assert refused("127.0.0.2", port)
    finally:
        stop(catcher)


def test_every_route_that_takes_a_token_is_redacted(app):
    # A new link route (a token in its path) must be added to the redaction, or its tokens would reach the log.
    from uscmail.requestlog import REDACTED, redact_path

    token_routes = [rule.rule for rule in app.url_map.iter_rules() if "token" in rule.arguments]
    assert token_routes
    for route in token_routes:
        path = route.replace("<token>", "SECRET-TOKEN-VALUE")
        assert "SECRET-TOKEN-VALUE" not in redact_path(path) and REDACTED in redact_path(path), route


def test_the_access_log_atoms_are_gunicorns_own_for_those_kept_and_nothing_else():
    """RedactingLogger computes its atoms itself (gunicorn's own gather every header and environ entry): the kept
    ones must read as gunicorn's, the request line and path redacted, and nothing about the client in any."""
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from uscmail.gunicorn_conf import KEPT_ATOMS, RedactingLogger

    response = SimpleNamespace(status="200 OK", sent=1234, headers=[("Content-Type", "text/html")])
    request = SimpleNamespace(headers=[("X-Forwarded-For", FORWARDED_FOR), ("User-Agent", USER_AGENT)])
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/unsubscribe/{TOKENS['unsubscribe']}?email=someone@example.org",
        "PATH_INFO": f"/unsubscribe/{TOKENS['unsubscribe']}",
        "QUERY_STRING": "email=someone@example.org",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": CLIENT_ADDRESS,
        "HTTP_X_FORWARDED_FOR": FORWARDED_FOR,
    }
    took = timedelta(seconds=1, microseconds=2345)
    ours = RedactingLogger(Config()).atoms(response, request, environ, took)
    gunicorns = Logger(Config()).atoms(response, request, environ, took)

    assert set(ours) == {*KEPT_ATOMS, "r", "U", "q"}
    timeless = [atom for atom in KEPT_ATOMS if atom != "t"]  # the time may tick between the two calls
    assert {atom: ours[atom] for atom in timeless} == {atom: gunicorns[atom] for atom in timeless}
    assert ours["r"] == "GET /unsubscribe/<redacted>?<redacted> HTTP/1.1"
    assert (ours["U"], ours["q"]) == ("/unsubscribe/<redacted>", "<redacted>")
    for secret in (TOKENS["unsubscribe"], CLIENT_ADDRESS, FORWARDED_FOR, USER_AGENT, "someone"):
        assert secret not in repr(ours)
