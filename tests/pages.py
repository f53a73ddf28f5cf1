"""Helpers for tests that drive the organiser pages with a test browser, and valid forms to start from."""

import re

from tests.conftest import form_fields
from tests.factories import newsletter, reminders_list
from tests.waiting import wait_until
from uscmail.reminders.planning import DEFAULT_BODY, DEFAULT_SUBJECT


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


def compose_data(**changes) -> dict:
    """A valid compose form for the Newsletter list."""
    data = {
        "subject": "Spring newsletter",
        "preheader": "News from the campaign",
        "body_format": "markdown",
        "body": "Dear {{ subscriber.name }},\n\nJoin us at **Portland Place** on the 5th.",
        "lists": [str(newsletter().id)],
        "from_name": "USC-UK",
        "from_email": "news@uscuk.test",
        "reply_to": "",
    }
    data.update(changes)
    return data


def form_data(**changes) -> dict:
    """A valid event form: the 5th of every month at 18:00, reminded 3 days before at 10:00 and on the day at 08:00."""
    data = {
        "title": "Vigil for the disappeared",
        "recurrence": "monthday",
        "month_day": "5",
        "ordinal": "1",
        "weekday": "SA",
        "weekly_day": "SA",
        "rrule": "",
        "first_date": "2027-01-01",
        "start_time": "18:00",
        "duration_minutes": "90",
        "place": "Parliament Square, London",
        "map_url": "https://www.openstreetmap.org/?mlat=51.5007&mlon=-0.1268",
        "list_id": str(reminders_list().id),
        "days_before": ["3", "0", "", ""],
        "at": ["10:00", "08:00", "", ""],
        "subject_template": DEFAULT_SUBJECT,
        "body_template": DEFAULT_BODY,
    }
    data.update(changes)
    return data


def wait_for_job(browser, location: str, timeout: float = 30.0):
    """Reload a background job's page until it stops asking to be refreshed (the worker has finished); that page."""
    finished = []

    def done() -> bool:
        page = browser.get(location)
        if "Refresh" not in page.headers:
            finished.append(page)
        return bool(finished)

    wait_until(done, timeout, f"the job at {location} to finish")
    return finished[0]
