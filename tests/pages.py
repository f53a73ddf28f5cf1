"""Helpers for tests that drive the organiser pages with a test browser."""

import re

from tests.conftest import form_fields


def text(response) -> str:
    """The response body as text."""
    return response.get_data(as_text=True)


def fresh(db):
    """End the test's own transaction so it sees what the requests committed."""
    db.session.rollback()
    return db.session


def post_from(browser, page: str, action: str, **data):
    """Load `page` for its CSRF token, then post `data` to `action`, as the browser would."""
    return browser.post(action, data={**form_fields(text(browser.get(page))), **data})


def alert(page: str) -> str:
    """The text of the page's error alert, or ""."""
    match = re.search(r'<div class="alert alert-error" role="alert" id="page-error"><p>(.*?)</p>', page, re.S)
    return match.group(1) if match else ""


def flashed(page: str) -> str:
    """The text of the page's flashed success message, or ""."""
    match = re.search(r'<div class="alert alert-success" role="status">(.*?)</div>', page, re.S)
    return match.group(1) if match else ""
