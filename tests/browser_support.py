"""Browser-test fixtures shared by the test modules (registered in conftest.py): a live server, one headless
Debian Chromium per module, and `visit` contexts that record every request their pages make; and what the browser
tests check pages with: axe-core (WCAG 2.2 AA), sideways scrolling, screenshots, signing an editor in."""

from pathlib import Path
from urllib.parse import urlsplit

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect, sync_playwright

from tests.factories import ORGANISER_PASSWORD, make_organiser
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


# Screenshots and rendered mails for a person to look at.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE = Axe()
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
    "resultTypes": ["violations"],
}
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 375, "height": 812}}


def heading(page):
    """The page's one h1."""
    return page.get_by_role("heading", level=1)


def axe_violations(page) -> list[str]:
    """axe-core's WCAG 2.2 A/AA violations on the page, one readable line per rule and per element."""
    lines = []
    for violation in AXE.run(page, options=AXE_OPTIONS).response["violations"]:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    at {target}: {summary}")
    return lines


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when nothing sticks out)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


# The innermost elements whose right edge is past the viewport, to name in a failure.
STICKING_OUT = """
() => [...document.querySelectorAll("main *")]
  .filter((element) => element.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .filter((element) => ![...element.children].some((child) =>
    child.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5))
  .slice(0, 5)
  .map((element) => `${element.tagName.toLowerCase()}${element.id ? "#" + element.id : ""}`
    + `${element.className ? "." + String(element.className).split(" ").join(".") : ""}`
    + ` (right edge at ${Math.round(element.getBoundingClientRect().right)}px)`)
"""


class Inspector:
    """Checks each page it is given: axe, no sideways scrolling; saves a screenshot; collects what is wrong."""

    def __init__(self, page, scheme: str, viewport: str, directory: Path, prefix: str):
        self.page = page
        self.scheme = scheme
        self.viewport = viewport
        self.directory, self.prefix = directory, prefix
        self.problems: dict[str, list[str]] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, title: str) -> None:
        expect(heading(self.page)).to_have_text(title)
        self.page.wait_for_load_state("load")
        found = axe_violations(self.page)
        overflow = horizontal_overflow(self.page)
        if overflow > 0:
            found.append(f"page is {overflow}px wider than the {VIEWPORTS[self.viewport]['width']}px viewport")
            found.extend(f"    sticking out: {element}" for element in self.page.evaluate(STICKING_OUT))
        if found:
            self.problems[name] = found
        # Chromium paints a sandboxed frame only once it has been on screen.
        for frame in self.page.locator("iframe").all():
            frame.scroll_into_view_if_needed()
            self.page.wait_for_timeout(400)
        path = self.directory / f"{self.prefix}-{name}-{self.viewport}-{self.scheme}.png"
        self.page.screenshot(path=path, full_page=True)

    def report(self) -> str:
        """Every problem found, by page, for an assertion message."""
        return "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in self.problems.items())


EDITOR = "editor.browser@example.org"


def create_editor() -> str:
    """An editor with a TOTP secret; returns the secret."""
    editor = make_organiser(EDITOR, "editor", commit=True)
    return editor.totp_secret


def sign_in_editor(page, secret: str) -> None:
    """Password, then the current TOTP code, as a person does."""
    sign_in(page, EDITOR, secret)


def sign_in(page, email: str, secret: str) -> None:
    """An organiser signs in with a password and the current TOTP code, as a person does."""
    page.goto("/organisers/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(ORGANISER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("textbox").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    expect(heading(page)).to_have_text("Organisers")
