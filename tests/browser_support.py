"""Browser-test fixtures shared by the test modules (registered in conftest.py): a live server, one headless
Debian Chromium per module, and `visit` contexts that record every request their pages make."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.live_server import LiveServer

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def live_server(app):
    """The session's app over HTTP on 127.0.0.1; it queues into the broker the worker consumes."""
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the whole module."""
    expect.set_options(timeout=15_000)  # a busy CI machine can take more than the default 5 s to answer
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A fresh browser context (no cookies) on the live server that records every request its pages make."""

    def __init__(self, browser, origin: str, **options):
        self.origin = origin
        self.context = browser.new_context(base_url=origin, **options)
        self.requests: list[str] = []
        self.server_errors: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.on("response", self._note_server_error)
        self.page = self.context.new_page()

    def _note_server_error(self, response) -> None:
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.url}")

    def foreign_requests(self) -> list[str]:
        """Requests that went anywhere but the live server."""
        ours = urlsplit(self.origin)
        return [url for url in self.requests if urlsplit(url)[:2] != ours[:2]]


@pytest.fixture
def visit(chromium, live_server, db):
    """Open browser contexts on the live server; they are closed after the test."""
    visits = []

    def open_visit(**options) -> Visit:
        opened = Visit(chromium, live_server.url, **options)
        visits.append(opened)
        return opened

    yield open_visit
    for opened in visits:
        opened.context.close()
