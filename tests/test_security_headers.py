"""Every page answers with the security headers uscmail/http_security.py promises.

The routes come from the app's URL map, each filled with the id of a real row (a campaign, a list, a subscriber, an
event, an image, a template, an import, a set-aside bounce, an organiser) or a real token, and fetched as a supporter
would (public pages) or a signed-in admin (organiser pages), so a new route is checked without anyone adding it here.
Error answers (404, 403, the sign-in redirect) carry the same headers.
"""

import re
from collections import Counter

import pytest
import sqlalchemy as sa

from tests.api_support import issue_token
from tests.factories import add_subscriber, create_event, make_campaign, newsletter
from tests.media_support import image_bytes
from uscmail import links
from uscmail.campaigns.archive import WEB_VERSION_CSP
from uscmail.http_security import HSTS
from uscmail.organisers import services as organiser_services

# Rules answered with something other than 200 given the samples below, and why.
NOT_200 = {
    # An old export link: its page now lives at /organisers/export.
    "/organisers/export.csv": (303,),
    # The second step of a sign-in exists only during one.
    "/organisers/two-factor": (302,),
    # The set-up page exists only in the middle of a set-up (after its link's button was pressed).
    "/organisers/enrol": (400,),
    # A draft cannot be cancelled: its cancel page sends the organiser back to the campaign.
    "/organisers/campaigns/<int(max=2147483647):campaign_id>/cancel": (302,),
    # Removing a translation asks first, about a translation that exists: the samples have none.
    "/organisers/campaigns/<int(max=2147483647):campaign_id>/languages/<any(en, ug, zh):locale>/remove": (404,),
    "/organisers/events/<int(max=2147483647):event_id>/languages/<any(ug, zh):locale>/remove": (404,),
    # A dry run that has not run has no report yet.
    "/organisers/import/<public_id>/report.csv": (404,),
}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Strict-Transport-Security": HSTS,
}
CSP_PARTS = ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'none'")
# Answers with a policy of their own, stricter where it matters: an uploaded image allows nothing at all, and a
# campaign's preview (the mail's own inline styles, shown in a sandboxed frame of our page) runs no script.
OWN_POLICIES = {
    r"^/media/": "default-src 'none'; sandbox",
    r"^/organisers/.*/preview$": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'"
    ),
    r"^/archive/.": WEB_VERSION_CSP,
}
ID_ATTRIBUTE = re.compile(r'<[^>]*?\sid="([^"]*)"')
NO_STORE = re.compile(r"^/(confirm|unsubscribe|preferences|subscribe|organisers|api)\b")


@pytest.fixture
def samples(app, db, sign_in_as):
    """A signed-in admin, an API token, and a real value for every part of every route."""
    from datetime import UTC, datetime

    from tests.factories import make_organiser, sign_up_subscriber
    from uscmail.bounces.models import BounceSource, SetAsideMail
    from uscmail.campaigns import saved_templates
    from uscmail.campaigns.models import CampaignStatus
    from uscmail.imports.models import ImportJob
    from uscmail.media import services as media_services
    from uscmail.organisers import enrolment

    admin = sign_in_as("admin")
    organiser = organiser_services.organiser_by_email("admin@example.org")
    subscriber = add_subscriber("reader@example.org", "Reader")
    pending = sign_up_subscriber("pending@example.org", confirmed=False)
    campaign = make_campaign()
    sent = make_campaign("Last month's news", public=True)
    sent.status, sent.started_at = CampaignStatus.SENT, datetime.now(UTC)
    newcomer = make_organiser("newcomer@example.org", "editor", enrolled=False, commit=True)
    set_up_link = enrolment.issue_link(newcomer, "test")
    db.session.add(SetAsideMail(source=BounceSource.RECEIVER, reason="not a bounce", size=5, content=b"Hello"))
    event = create_event()
    image = media_services.upload_image(image_bytes("PNG"), "A banner", organiser)
    template = saved_templates.create_template(
        saved_templates.TemplateFields(name="Monthly", subject="News", body="Dear {{ subscriber.name }}"),
        organiser,
    )
    job = ImportJob(organiser_id=organiser.id, dry_run=True, basis="prior_consent", basis_note="Stall sign-ups")
    db.session.add(job)
    db.session.commit()
    ids = {
        "campaign_id": campaign.id,
        "template_id": template.id,
        "event_id": event.id,
        "list_id": newsletter().id,
        "subscriber_id": subscriber.id,
        "image_id": image.id,
        "organiser_id": organiser.id,
        "mail_id": db.session.scalar(sa.select(SetAsideMail.id)),
    }
    words = {
        "slug": newsletter().slug,
        "public_id": sent.public_id,
        "name": image.file_name(),
        "/preferences/": links.make_preferences_token(subscriber.public_id),
        "/unsubscribe/": links.make_unsubscribe_token(subscriber.public_id, [newsletter().id]),
        "/confirm/": links.make_confirm_token(pending.public_id, pending.confirm_nonce),
        "/organisers/enrol/": set_up_link.rsplit("/", 1)[1],
        "filename": "style.css",
    }
    return admin, issue_token(db, "admin", "script@example.org"), ids, words, job


def fill(rule: str, ids: dict, words: dict, job) -> str:
    """The rule's path with a real value in each part (the last choice of an `any(...)`: a language other than the
    samples' own English)."""

    def value(match: re.Match) -> str:
        converter, name = match.group(1) or "", match.group(2)
        if converter.startswith("any("):
            return re.findall(r"'?([\w-]+)'?", converter[4:-1])[-1]
        if name in ids:
            return str(ids[name])
        if rule.startswith("/organisers/import/"):
            return job.public_id
        if name == "token":
            return next(token for prefix, token in words.items() if rule.startswith(prefix))
        return str(words[name])

    return re.sub(r"<(?:([^:>]+(?:\([^)]*\))?):)?([^>]+)>", value, rule)


def assert_security_headers(response, path: str) -> None:
    """The headers every answer carries, with their promised values."""
    for name, expected in HEADERS.items():
        assert response.headers.get(name) == expected, f"{path}: {name} is {response.headers.get(name)!r}"
    policy = response.headers.get("Permissions-Policy", "")
    assert "camera=()" in policy and "geolocation=()" in policy, f"{path}: Permissions-Policy {policy!r}"
    csp = response.headers.get("Content-Security-Policy", "")
    own_policy = next((policy for pattern, policy in OWN_POLICIES.items() if re.search(pattern, path)), None)
    if own_policy and response.status_code == 200:
        assert csp == own_policy, f"{path}: CSP {csp!r}"
    else:
        assert all(part in csp for part in CSP_PARTS), f"{path}: CSP {csp!r}"
        assert "frame-ancestors 'none'" in csp, f"{path}: may be framed ({csp!r})"
    if NO_STORE.match(path):
        assert response.headers.get("Cache-Control") == "no-store", f"{path} may be cached"


def duplicate_ids(response) -> list[str]:
    """The id attributes an HTML answer uses more than once (each names one element: a label's for=, a link's #,
    aria-describedby and assistive technology find the first one only)."""
    if response.mimetype != "text/html":
        return []
    uses = Counter(ID_ATTRIBUTE.findall(response.get_data(as_text=True)))
    return sorted(name for name, count in uses.items() if count > 1)


def test_every_page_answers_with_the_security_headers(app, samples):
    browser, token, ids, words, job = samples
    checked, unexpected, duplicated = {}, [], []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if "GET" not in rule.methods or rule.rule.startswith("/dev/"):
            continue
        path = fill(rule.rule, ids, words, job)
        if rule.rule.startswith("/api/"):
            response = browser.get(path, headers={"Authorization": f"Bearer {token}"}, buffered=True)
        else:
            response = browser.get(path, buffered=True)
        if response.status_code not in NOT_200.get(rule.rule, (200,)):
            unexpected.append(f"GET {path} -> {response.status_code}")
        assert_security_headers(response, path)
        duplicated.extend(f"GET {path}: {name}" for name in duplicate_ids(response))
        checked[rule.rule] = response.status_code
    assert not unexpected, "\n".join(unexpected)
    assert not duplicated, "ids used twice on a page:\n" + "\n".join(duplicated)
    assert len(checked) > 70
    html = [rule for rule in checked if not rule.startswith("/api/") and checked[rule] == 200]
    assert len(html) > 55, html


def test_error_answers_and_public_pages_carry_them_too(client, db):
    for path in ("/no-such-page", "/organisers/campaigns/99999", "/organisers/", "/unsubscribe/not-a-token",
                 "/media/nothing.png", "/", "/subscribe", "/events.ics", "/healthz"):  # fmt: skip
        response = client.get(path, buffered=True)
        assert response.status_code < 500, path
        assert_security_headers(response, path)
    assert client.get("/organisers/").status_code == 302
    assert client.get("/no-such-page").status_code == 404
