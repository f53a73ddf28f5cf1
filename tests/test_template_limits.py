"""Organiser templates can't use up the machine: every campaign body, reminder template and notice runs in one
sandbox with limits on values, loops, output and time; pages and the API answer a refusal with a clear 4xx, quickly.
The attacks are the security review's own payloads."""

import time

import pytest

from tests.api_support import issue_token
from tests.factories import newsletter
from tests.pages import alert, compose_data, form_data, post_from, text
from uscmail.campaigns import render
from uscmail.campaigns.models import BodyFormat
from uscmail.campaigns.render import TemplateRefused

CAMPAIGNS = "/organisers/campaigns"
EVENTS = "/organisers/events"
# Each is answered within this many seconds (the render limit is one second; the checks stop at the first refusal).
QUICK = 5.0

CAMPAIGN_ATTACKS = [
    ("{{ (((9**1000)**1000)**30) > 0 }}", "over 4,096 bits"),
    ('{{ "1".zfill(2000000000) }}', "over 100,000 characters"),
    (
        '{% for a in "x" * 10000 %}{% for b in "x" * 10000 %}{% for c in "x" * 10000 %}'
        "{% endfor %}{% endfor %}{% endfor %}",
        "repeat more than 10,000 times",
    ),
    ('{% if subscriber.name == "Zed" %}{{ 1 / 0 }}{% endif %}Hello', "division by zero"),
    ('{{ "{:>999999999}".format(1) }}', "not allowed"),
    ('{{ "x".ljust(999999999) }}', "over 100,000 characters"),
    ('{{ "ab" | replace("", "y" * 60000) }}', "over 100,000 characters"),
    ('{{ ("x" * 60000) ~ ("x" * 60000) }}', "over 100,000 characters"),
    ('{{ ["x" * 50000, "x" * 50000, "x" * 50000] | join("") }}', "over 100,000 characters"),
    ('{{ "x" | center(999999999) }}', "The template uses the filter `center`, which is not available."),
    ("{% set a = 'x' * 90000 %}" + "{% for i in 'y' * 20 %}{{ a }}{% endfor %}", "over 1,000,000 characters"),
    ("{{ (5).to_bytes(1000000000, 'big') }}", "not allowed"),
]


@pytest.mark.parametrize(("body", "message"), CAMPAIGN_ATTACKS)
def test_a_campaign_body_that_would_use_up_the_machine_is_refused_quickly_on_the_compose_page(
    db, sign_in_as, body, message
):
    editor = sign_in_as("editor")
    started = time.monotonic()
    response = post_from(editor, f"{CAMPAIGNS}/new", f"{CAMPAIGNS}/new", **compose_data(body=body))
    assert time.monotonic() - started < QUICK
    assert response.status_code == 400
    assert message in alert(text(response)).replace("&#39;", "'").replace("&#34;", '"')


@pytest.mark.parametrize(("body", "message"), CAMPAIGN_ATTACKS[:4])
def test_the_preview_and_the_api_refuse_them_too(db, sign_in_as, api, body, message):
    editor = sign_in_as("editor")
    started = time.monotonic()
    preview = post_from(editor, f"{CAMPAIGNS}/new", f"{CAMPAIGNS}/preview", **compose_data(body=body))
    assert preview.status_code == 422 and message in text(preview)
    token = issue_token(db, "editor", email="api-editor@example.org")
    fields = {"subject": "News", "body": body, "lists": [newsletter().slug]}
    answer = api("POST", "/api/v1/campaigns", token=token, json=fields)
    assert answer.status_code == 422 and message in answer.get_json()["error"]
    assert time.monotonic() - started < 2 * QUICK


def test_a_render_stops_at_its_deadline(db, app):
    # Each step is small and allowed; together they would run for several seconds, far past the one-second limit.
    body = "{% set a = 'x' * 90000 %}{% for i in 'y' * 9999 %}{{ a.split('x') | length > 1 }}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(TemplateRefused, match="takes too long to fill in"):
        render.check_template(body, BodyFormat.MARKDOWN)
    assert time.monotonic() - started < 1 + 0.5


def test_ordinary_templates_still_work(db):
    body = (
        '{% for word in ["Free", "Uyghur", "people"] %}{{ word | upper }}{% if not loop.last %} {% endif %}{% endfor %}'
        " {{ subscriber.name.split()[0] if subscriber.name else 'friend' }} {{ 2 ** 10 }} {{ 'a' * 3 }}"
        " {{ ('Dear ' ~ subscriber.name) | replace('Dear', 'Hello') }} {{ [1, 2, 3] | sum }}"
    )
    render.check_template(body, BodyFormat.MARKDOWN)
    mail = render.render_preview(
        _draft(body),
        name="Ayşe Gül",
    )
    assert "FREE UYGHUR PEOPLE Ayşe 1024 aaa Hello Ayşe Gül 6" in mail.text


def _draft(body: str):
    from uscmail.campaigns.models import Campaign, CampaignKind

    return Campaign(
        kind=CampaignKind.NEWSLETTER, subject="s", body=body, from_name="USC-UK", from_email="news@uscuk.test"
    )


# Reminder templates: the same sandbox, every failure a clear 4xx

REMINDER_ATTACKS = [
    ("{{ 1/0 }}", "division by zero"),
    ("{{ 'a'+1 }}", "can only concatenate str"),
    ("{{ range(10**6)|length }}", "The template uses `range`, which is not available."),
    ("{{ (((9**1000)**1000)**30) > 0 }}", "over 4,096 bits"),
]


@pytest.mark.parametrize(("template", "message"), REMINDER_ATTACKS)
@pytest.mark.parametrize("field", ["subject_template", "body_template"])
def test_a_reminder_template_that_fails_is_refused_on_the_event_form(db, sign_in_as, field, template, message):
    started = time.monotonic()
    response = post_from(sign_in_as("editor"), f"{EVENTS}/new", f"{EVENTS}/new", **form_data(**{field: template}))
    assert time.monotonic() - started < QUICK
    assert response.status_code == 400
    shown = alert(text(response)).replace("&#39;", "'")
    assert "The reminder template can't be used" in shown and message in shown


@pytest.mark.parametrize(("template", "message"), REMINDER_ATTACKS)
def test_a_reminder_template_that_fails_is_refused_by_the_api(db, api, template, message):
    token = issue_token(db, "editor")
    event = {
        "title": "Vigil for the disappeared",
        "place": "Parliament Square, London",
        "list": "london-protest-reminders",
        "start_time": "18:00",
        "body_template": template,
    }
    answer = api("POST", "/api/v1/events", token=token, json=event)
    assert answer.status_code == 422
    assert message in answer.get_json()["error"]
