"""Checking pages in the browser tests: axe-core (WCAG 2.2 AA), no sideways scrolling, a screenshot of each."""

from pathlib import Path

from playwright.sync_api import expect

from tests.test_browser import VIEWPORTS, axe_violations, heading, horizontal_overflow

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
        return "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in self.problems.items())
