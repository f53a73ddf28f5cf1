"""A long streamed response, or an organiser's upload over a slow uplink, is not cut off by the web server's worker
timeout while it makes progress, and a hung request still is (uscmail.liveness); an upload from someone not signed in
is turned away before its body is read.

gunicorn is started with the production settings (uscmail.gunicorn_conf) and a 2 s --timeout, serving an app whose
export sends a batch of five subscribers every half second (tests/slow_export_app.py): 40 subscribers take 4 s, as
a million take about half a minute (measured: 29 s on a 2-core machine) against the 30 s default. Without the
worker's reports the export is cut off after 2 s and the browser gets part of a file.
"""

import contextlib
import http.client
import re
import socket
import sys
import time
import urllib.parse

import pytest

from tests.conftest import RUN_DIR, form_fields
from tests.factories import add_subscriber
from tests.test_request_logging import free_port, start, stop
from tests.waiting import wait_until

SUBSCRIBERS = 40
TIMEOUT_SECONDS = 2


def request(
    port: int, method: str, path: str, cookies: dict[str, str], body: str = "", read: bool = True
) -> http.client.HTTPResponse:
    """A request with the browser's cookies; cookies the answer sets are added to them. Its body is read into .text
    unless `read` is False."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, value = header.split(";", 1)[0].partition("=")
        cookies[name] = value
    if read:
        response.text = response.read().decode()
        connection.close()
    return response


@contextlib.contextmanager
def gunicorn(app_spec: str, *options: str, **env: str):
    """gunicorn with the production settings (uscmail.gunicorn_conf) and `options`, serving `app_spec` on a free
    loopback port; yields (port, log path)."""
    port = free_port()
    log_path = RUN_DIR / f"web-{port}.log"
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:uscmail.gunicorn_conf", *options,
            "--bind", f"127.0.0.1:{port}", app_spec]  # fmt: skip
    web = start(argv, log_path, b"Booting worker", **env)
    try:
        yield port, log_path
    finally:
        stop(web)


def slow_server(seconds_a_batch: float):
    """gunicorn as deployed, one worker with a short timeout, serving the slowed export; yields (port, log path)."""
    return gunicorn(
        "tests.slow_export_app:create_app()", "--workers", "1", "--timeout", str(TIMEOUT_SECONDS),
        SLOW_EXPORT_SECONDS=str(seconds_a_batch),
    )  # fmt: skip


def start_export(port: int, browser) -> http.client.HTTPResponse:
    """The export page's form submitted with the signed-in browser's cookies; the answer, its body not read."""
    cookies = {cookie.key: cookie.value for cookie in browser._cookies.values()}
    page = request(port, "GET", "/organisers/export", cookies)
    assert page.status == 200, page.text
    return request(port, "POST", "/organisers/export", cookies, urllib.parse.urlencode(form_fields(page.text)), False)


def test_an_export_longer_than_the_worker_timeout_arrives_whole(app, db, sign_in_as):
    browser = sign_in_as("admin")
    for number in range(SUBSCRIBERS):
        add_subscriber(f"reader-{number}@example.org", f"Reader {number}")
    db.session.commit()
    with slow_server(0.5) as (port, log_path):
        export = start_export(port, browser)
        export.text = export.read().decode()
        assert export.status == 200, export.text
        rows = export.text.splitlines()
        assert rows[0].startswith("email,name,locale,created_at")
        exported = {row.split(",")[0] for row in rows[1:]}
        assert {f"reader-{number}@example.org" for number in range(SUBSCRIBERS)} <= exported
        # The request took twice the timeout, and the worker was not killed for it.
        logged = re.compile(r'"POST /organisers/export HTTP/1.1" 200 \d+ (\d+\.\d+)s')
        wait_until(lambda: logged.search(log_path.read_text(errors="replace")), 10, "the export's log line")
        log = log_path.read_text(errors="replace")
        assert float(logged.search(log).group(1)) > 2 * TIMEOUT_SECONDS
        assert "WORKER TIMEOUT" not in log


def test_an_export_that_stops_making_progress_is_still_ended_by_the_timeout(app, db, sign_in_as):
    browser = sign_in_as("admin")
    add_subscriber("reader@example.org", "Reader")
    db.session.commit()
    with slow_server(3 * TIMEOUT_SECONDS) as (port, log_path):
        export = start_export(port, browser)
        assert export.status == 200
        with pytest.raises(http.client.IncompleteRead):
            export.read()
        wait_until(lambda: "WORKER TIMEOUT" in log_path.read_text(errors="replace"), 10, "the worker's timeout")


def multipart(fields: dict[str, str], file_name: str, content: bytes) -> tuple[str, bytes]:
    """(Content-Type, body) of a form with text fields and one file, as a browser sends it."""
    boundary = "----uscmail-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def post_slowly(port: int, path: str, cookies: dict[str, str], content_type: str, body: bytes, seconds: float) -> bytes:
    """POST `body` with the browser's cookies, its head at once and its body spread evenly over `seconds`; the whole
    answer."""
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nCookie: {cookie}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    pieces = max(1, int(seconds / 0.1))
    for number in range(pieces):
        connection.sendall(body[number * len(body) // pieces : (number + 1) * len(body) // pieces])
        time.sleep(0.1)
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := connection.recv(65536):
            answer += chunk
    connection.close()
    return answer


def test_an_organisers_upload_slower_than_the_worker_timeout_arrives_whole(app, db, sign_in_as):
    browser = sign_in_as("editor")
    cookies = {cookie.key: cookie.value for cookie in browser._cookies.values()}
    # 400 KB of addresses over 3 s, steadily, as a slow uplink sends it: longer than the 2 s timeout.
    content = b"email,name\n" + b"".join(f"reader-{n}@example.org,Reader {n}\n".encode() for n in range(12000))
    with slow_server(0) as (port, log_path):
        page = request(port, "GET", "/organisers/import", cookies)
        assert page.status == 200, page.text
        fields = {**form_fields(page.text), "lists": "newsletter", "basis": "prior_consent", "note": "Stall sign-ups"}
        content_type, body = multipart(fields, "people.csv", content)
        answer = post_slowly(port, "/organisers/import", cookies, content_type, body, 3.0)
        assert answer.startswith(b"HTTP/1.1 302"), answer[:300]
        assert b"Location: /organisers/import/" in answer
        assert "WORKER TIMEOUT" not in log_path.read_text(errors="replace")


def test_an_upload_from_someone_not_signed_in_is_turned_away_before_its_body(app, db):
    with slow_server(0) as (port, log_path):
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        # A large body declared, and none of it sent: the answer must not wait for it.
        connection.sendall(
            f"POST /organisers/import HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 50000000\r\n\r\n".encode()
        )
        started = time.monotonic()
        answer = connection.recv(65536)
        connection.close()
        assert answer.startswith(b"HTTP/1.1 302"), answer[:300]
        assert b"Location: /organisers/login" in answer
        assert time.monotonic() - started < TIMEOUT_SECONDS
