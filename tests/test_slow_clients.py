"""Clients that send slowly cannot tie up the web server: deploy/Caddyfile's Caddy (the proxy docs/deploy.md sets up)
reads each small request body itself before gunicorn's workers, which serve one request at a time, see it.

Real Caddy in front of real gunicorn (uscmail.gunicorn_conf, two workers): twice as many connections as there are
workers each start a signup POST and send its body a byte every half second. Through Caddy, /healthz keeps
answering at once, and a signup whose body dribbles in for several seconds still arrives whole. Straight to
gunicorn, the same connections leave no worker free (the check that this test can fail).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from tests.conftest import PROJECT_DIR, RUN_DIR, form_fields
from tests.test_long_responses import gunicorn, post_slowly, request
from tests.test_request_logging import free_port, stop
from tests.waiting import wait_until
from uscmail.subscriptions.consent import current_version

WORKERS = 2
SLOW_CONNECTIONS = 2 * WORKERS
DECLARED_BODY = 2000


@contextlib.contextmanager
def web_server():
    """gunicorn as deployed, with WORKERS sync workers; yields its port."""
    with gunicorn("uscmail:create_app()", "--workers", str(WORKERS)) as (port, _):
        yield port


@contextlib.contextmanager
def caddy_in_front_of(upstream: int):
    """Caddy with deploy/Caddyfile, plain http on a free loopback port, passing requests to `upstream`."""
    caddy = shutil.which("caddy")
    assert caddy, "Caddy is needed (apt-get install caddy; .ci/run installs it)"
    port = free_port()
    home = RUN_DIR / f"caddy-{port}"
    home.mkdir()
    site = (PROJECT_DIR / "deploy" / "Caddyfile").read_text()
    assert "lists.example.org {" in site and "reverse_proxy 127.0.0.1:8000 {" in site
    site = site.replace("lists.example.org {", f"http://127.0.0.1:{port} {{")
    site = site.replace("reverse_proxy 127.0.0.1:8000 {", f"reverse_proxy 127.0.0.1:{upstream} {{")
    (home / "Caddyfile").write_text("{\n\tadmin off\n\tauto_https off\n}\n" + site)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    log = (home / "caddy.log").open("wb")
    process = subprocess.Popen(
        [caddy, "run", "--config", str(home / "Caddyfile"), "--adapter", "caddyfile"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    try:
        wait_until(lambda: health_seconds(port) is not None or process.poll() is not None, 20, "Caddy to answer")
        assert process.poll() is None, (home / "caddy.log").read_text()
        yield port
    finally:
        stop(process)


def health_seconds(port: int, timeout: float = 3.0) -> float | None:
    """Seconds GET /healthz took to answer 200, or None if it did not within `timeout`."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as answer:
            return time.monotonic() - started if answer.status == 200 else None
    except OSError:
        return None


@contextlib.contextmanager
def dribbling_signups(port: int, count: int):
    """`count` connections, each sending a signup POST's headers and then a byte of its body every half second."""
    stopping = threading.Event()
    connections = []

    def dribble(connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for _ in range(DECLARED_BODY - 1):
                if stopping.wait(0.5):
                    return
                connection.sendall(b"a")

    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(
            f"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {DECLARED_BODY}\r\n\r\n".encode()
        )
        connections.append(connection)
        threading.Thread(target=dribble, args=(connection,), daemon=True).start()
    try:
        time.sleep(1.0)  # the requests have reached whoever reads them
        yield
    finally:
        stopping.set()
        for connection in connections:
            connection.close()


def slowest_health(port: int, seconds: float) -> float | None:
    """The slowest of the /healthz answers over `seconds`, or None if one did not come within 3 s."""
    slowest, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        took = health_seconds(port)
        if took is None:
            return None
        slowest = max(slowest, took)
        time.sleep(0.25)
    return slowest


def test_slow_request_bodies_wait_on_caddy_and_leave_the_workers_free(app, db):
    with web_server() as web, caddy_in_front_of(web) as proxy:
        with dribbling_signups(proxy, SLOW_CONNECTIONS):
            slowest = slowest_health(proxy, 4.0)
            assert slowest is not None and slowest < 1.0, slowest
        # Straight to gunicorn, the same connections hold every worker (what Caddy's buffer prevents).
        with dribbling_signups(web, SLOW_CONNECTIONS):
            assert health_seconds(web) is None


def test_a_signup_whose_body_dribbles_in_through_caddy_arrives_whole(app, db):
    with web_server() as web, caddy_in_front_of(web) as proxy:
        cookies: dict[str, str] = {}
        page = request(proxy, "GET", "/subscribe", cookies)
        form = {"email": "slow@example.org", "lists": "newsletter", "consent_version": current_version(), "website": ""}
        body = urllib.parse.urlencode({**form_fields(page.text), **form}).encode()
        answer = post_slowly(proxy, "/subscribe", cookies, "application/x-www-form-urlencoded", body, 5.0)
        # The whole form reached the app: the signup was accepted, as at any speed.
        assert answer.startswith(b"HTTP/1.1 303"), answer[:300]
        assert b"/subscribe/thanks" in answer.split(b"\r\n\r\n", 1)[0]
