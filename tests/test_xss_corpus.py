"""An XSS corpus through every organiser-writable field that someone else sees, then every page that shows it.

The fields (from the forms.py files and templates):
  mailing lists       name, description                   (organiser pages, /subscribe, /, preference centre)
  campaigns           subject, preheader, body, from_name (campaign pages, preview, text version, archive)
  campaign languages  subject, preheader, body            (languages pages, archive web version in that language)
  saved templates     name, subject, preheader, body      (templates page, its edit page, the compose page)
  events              title, place, hold reason           (organiser event pages, /events)
  event languages     subject, body templates             (the event's language page)
  occurrence overrides place, note                        (event page, /events)
  media               alt text                            (media library, image page)
  subscribers         name: set by organisers (rows) and by supporters through the signup form
                                                          (subscriber list and page, preference centre)
  audit log           object id, details                  (audit page)
Organiser accounts have no name field (the address is shown; addresses are validated).

Values are written as rows, so nothing an input filter might remove hides a gap in the output escaping; the signup
form also takes a hostile name the way a supporter would send it. Each page is parsed with lxml: no <script> other
than our own static files, no on* attribute, no javascript: URL, no <object>/<embed>/<base> and no <iframe> but the
sandboxed preview frame, and no evaluated template expression.
"""

from datetime import UTC, date, datetime

import lxml.html
import pytest
import sqlalchemy as sa

from tests.conftest import form_fields
from tests.factories import mailing_list, make_campaign, make_event, make_subscriber
from uscmail.campaigns.models import Campaign, CampaignStatus, CampaignTranslation, SavedTemplate
from uscmail.links import make_preferences_token, make_unsubscribe_token
from uscmail.media.models import ImageFormat, MediaImage
from uscmail.models import MailingList, Subscriber
from uscmail.organisers.models import AuditEvent
from uscmail.reminders.models import EventTranslation, OccurrenceOverride

CORPUS = [
    "<script>alert('xss')</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    '[click](javascript:alert(1)) <a href="javascript:alert(1)">link</a>',
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    "{{7*'7'}} {% print 7*'7' %} ${7*'7'}",
    "Bring {{ banners {% if",  # in a title, place or note, not template code: shown as typed
    "\u202eevil\u202c <b onmouseover=alert(1)>rtl</b>",
    "nul\x00<script>alert(1)</script>",
    '<div style="background:url(javascript:alert(1))" onclick=alert(1)>x</div>' * 40,
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "' onfocus='alert(1)' autofocus='",
]
# What an evaluated {{7*'7'}} would print. Subjects, preheaders and bodies of campaigns, saved templates and reminders
# are templates by design (evaluated in a sandbox): they get 6*'6' instead, so an evaluation there is no finding, and
# 7777777 on a page means a value that is no template (a name, a title, a place) was evaluated.
EVALUATED = "7777777"
BROKEN_TEMPLATE = "{{ banners {% if"
# Our pages draw their own SVG charts, so <svg> itself is allowed; what a payload's SVG or MathML could do (a
# script, a handler, a javascript: link) is checked on every element.
NOT_OURS = {"object", "embed", "base", "frame", "frameset"}


def stored(payload: str, limit: int) -> str:
    """The payload as a column can hold it: no NUL (PostgreSQL refuses it in text) and cut to the column's length."""
    return payload.replace("\x00", "")[:limit]


def as_template(payload: str) -> str:
    """The payload for a field that is a template by design (see EVALUATED); broken template syntax, which such a
    field refuses with a message, left out."""
    return payload.replace("7*'7'", "6*'6'").replace(BROKEN_TEMPLATE, "banners")


def assert_inert(html: str, where: str) -> None:
    """Fail if `html` holds anything a payload could have made: scripts, handlers, javascript: URLs, foreign
    elements, or a template expression evaluated."""
    assert EVALUATED not in html, f"{where}: a template expression was evaluated"
    document = lxml.html.document_fromstring(html)
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.lower()
        assert tag not in NOT_OURS, f"{where}: a <{tag}> element"
        if tag == "script":
            assert (element.get("src") or "").startswith("/static/") and not (element.text or "").strip(), (
                f"{where}: an inline or foreign script: {lxml.html.tostring(element)[:200]!r}"
            )
        if tag == "iframe":
            assert element.get("sandbox") == "" and "preview-frame" in (element.get("class") or ""), where
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), f"{where}: <{tag} {name}={value[:80]!r}>"
            if name.lower() in {"href", "src", "action", "formaction", "xlink:href", "srcdoc", "style"}:
                compact = "".join(value.split()).lower()
                assert "javascript:" not in compact, f"{where}: <{tag} {name}={value[:80]!r}>"


@pytest.fixture
def hostile_rows(db):
    """One of everything, once per payload, written as rows; returns the ids of what the pages are about."""
    ids = {"lists": [], "sent": [], "drafts": [], "templates": [], "events": [], "images": [], "subscribers": []}
    for number, payload in enumerate(CORPUS):
        mailing = MailingList(
            slug=f"xss-{number}", name=stored(payload, 200), description=stored(payload, 2000), public=True
        )
        db.session.add(mailing)
        db.session.flush()
        ids["lists"].append(mailing.id)
        subscriber = make_subscriber(f"xss-{number}@example.org", stored(payload, 200), lists=[mailing])
        ids["subscribers"].append(subscriber.id)
        template = SavedTemplate(
            name=f"{number} {stored(payload, 110)}",
            subject=as_template(stored(payload, 255)),
            preheader=as_template(stored(payload, 255)),
            body=as_template(stored(payload, 20000)),
        )
        db.session.add(template)
        image = MediaImage(format=ImageFormat.PNG, alt_text=stored(payload, 300), width=40, height=30, size_bytes=100)
        db.session.add(image)
        db.session.add(
            AuditEvent(
                actor="test",
                action="xss.test",
                object_type="campaign",
                object_id=stored(payload, 64),
                details={"note": stored(payload, 2000)},
            )
        )
        db.session.flush()
        ids["templates"].append(template.id)
        ids["images"].append(image.id)
    db.session.commit()
    for number, payload in enumerate(CORPUS):
        # Each payload twice: in a sent, public campaign (the archive) and in a draft (its language pages).
        for status in (CampaignStatus.SENT, CampaignStatus.DRAFT):
            campaign = make_campaign(
                as_template(stored(payload, 255)),
                body=as_template(stored(payload, 20000)),
                lists=[mailing_list(f"xss-{number}")],
            )
            campaign = db.session.get(Campaign, campaign.id)
            campaign.preheader = as_template(stored(payload, 255))
            campaign.from_name = stored(payload, 200)
            if status is CampaignStatus.SENT:
                campaign.status = CampaignStatus.SENT
                campaign.public = True
                campaign.started_at = campaign.finished_at = datetime(2026, 11, 1, tzinfo=UTC)
            db.session.add(
                CampaignTranslation(
                    campaign_id=campaign.id,
                    locale="ug",
                    subject=as_template(stored(payload, 255)),
                    preheader=as_template(stored(payload, 255)),
                    body=as_template(stored(payload, 20000)),
                )
            )
            ids["sent" if status is CampaignStatus.SENT else "drafts"].append(campaign.id)
        event = make_event(
            commit=False,
            title=stored(payload, 200),
            place=stored(payload, 300),
            on_hold=number % 2 == 1,
            hold_reason=stored(payload, 500),
        )
        db.session.add(
            EventTranslation(
                event_id=event.id,
                locale="ug",
                subject_template=as_template(stored(payload, 255)),
                body_template=as_template(stored(payload, 5000)),
            )
        )
        db.session.add(
            OccurrenceOverride(
                event_id=event.id,
                occurrence_date=date(2027, 2, 5),
                place=stored(payload, 300),
                note=stored(payload, 1000),
            )
        )
        db.session.commit()
        ids["events"].append(event.id)
    return ids


def organiser_pages(ids: dict) -> list[str]:
    """Every organiser page that shows one of the hostile values."""
    pages = [
        "/organisers/",
        "/organisers/dashboard",
        "/organisers/lists",
        "/organisers/campaigns",
        "/organisers/campaigns/new",
        "/organisers/campaigns/templates",
        "/organisers/events",
        "/organisers/media",
        "/organisers/subscribers",
        "/organisers/audit",
        "/organisers/accounts",
        "/organisers/export",
        "/organisers/import",
    ]
    for list_id in ids["lists"]:
        pages.append(f"/organisers/lists/{list_id}/edit")
    for campaign_id in ids["sent"] + ids["drafts"]:
        base = f"/organisers/campaigns/{campaign_id}"
        pages += [base, base + "/preview", base + "/text", base + "/languages"]
    for campaign_id in ids["drafts"]:
        base = f"/organisers/campaigns/{campaign_id}"
        pages += [base + "/edit", base + "/languages/ug"]
    for template_id in ids["templates"]:
        pages.append(f"/organisers/campaigns/new?template={template_id}")
    for template_id in ids["templates"]:
        pages.append(f"/organisers/campaigns/templates/{template_id}/edit")
    for event_id in ids["events"]:
        base = f"/organisers/events/{event_id}"
        pages += [base, base + "/edit", base + "/preview", base + "/languages/ug"]
    for image_id in ids["images"]:
        pages.append(f"/organisers/media/{image_id}")
    for subscriber_id in ids["subscribers"]:
        pages.append(f"/organisers/subscribers/{subscriber_id}")
    return pages


def test_no_payload_becomes_markup_on_any_organiser_page(db, hostile_rows, sign_in_as):
    browser = sign_in_as("admin")
    for page in organiser_pages(hostile_rows):
        response = browser.get(page)
        assert response.status_code == 200, (page, response.status_code)
        assert_inert(response.get_data(as_text=True), page)


def test_no_payload_becomes_markup_on_any_public_page(db, client, hostile_rows):
    pages = ["/", "/subscribe", "/archive", "/events"]
    for campaign_id in hostile_rows["sent"]:
        public_id = db.session.get(Campaign, campaign_id).public_id
        pages += [f"/archive/{public_id}", f"/archive/{public_id}?lang=ug"]
    for subscriber_id in hostile_rows["subscribers"]:
        subscriber = db.session.get(Subscriber, subscriber_id)
        pages.append(f"/preferences/{make_preferences_token(subscriber.public_id)}")
        pages.append(f"/unsubscribe/{make_unsubscribe_token(subscriber.public_id, hostile_rows['lists'])}")
    db.session.rollback()
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)
        assert_inert(response.get_data(as_text=True), page)


def test_a_hostile_name_through_the_signup_form_and_the_preference_centre_stays_text(
    db, client, signup, sign_in_as, smtp_sink
):
    name = '"><img src=x onerror=alert(1)><script>alert(1)</script>'
    answer = signup("named@example.org", name=name)
    assert answer.status_code == 303
    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "named@example.org"))
    assert subscriber.name == name
    # The confirmation mail (wait for it, too, so its task cannot run into the next test's rows).
    (mail,) = smtp_sink.wait_for("named@example.org")
    assert_inert(mail.html(), "the confirmation mail")
    token = make_preferences_token(subscriber.public_id)
    newsletter_id = mailing_list("newsletter").id
    db.session.rollback()
    # The supporter then changes the name in the preference centre to another payload.
    name = "</title><svg onload=alert(1)>{{7*'7'}}\u202e"
    page = client.get(f"/preferences/{token}").get_data(as_text=True)
    saved = client.post(f"/preferences/{token}", data={**form_fields(page), "name": name, "lists": [newsletter_id]})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert_inert(saved.get_data(as_text=True), "the saved preference centre")
    assert db.session.get(Subscriber, subscriber.id).name == name
    db.session.rollback()
    browser = sign_in_as("admin")
    for page in ("/organisers/subscribers", f"/organisers/subscribers/{subscriber.id}", f"/preferences/{token}"):
        response = browser.get(page)
        assert response.status_code == 200, page
        assert_inert(response.get_data(as_text=True), page)
        assert "&lt;/title&gt;&lt;svg onload" in response.get_data(as_text=True) or page == "/organisers/subscribers", (
            page
        )


def test_no_payload_becomes_markup_in_the_mail_a_worker_sends(db, worker, smtp_sink):
    from tests.campaign_support import start, wait_for_status

    newsletter = mailing_list("newsletter")
    addresses = []
    for number, payload in enumerate(CORPUS):
        addresses.append(f"mail-xss-{number}@example.org")
        make_subscriber(addresses[-1], stored(payload, 200), lists=[newsletter])
    db.session.commit()
    payload = " ".join(stored(value, 60) for value in CORPUS[:10])
    campaign = make_campaign(
        as_template(payload[:255]), body="Dear {{ subscriber.name }},\n\n" + as_template(payload), lists=[newsletter]
    )
    campaign = db.session.get(Campaign, campaign.id)
    campaign.from_name = stored(CORPUS[1], 200)
    campaign.preheader = as_template(stored(CORPUS[0], 255))
    db.session.commit()
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=120)
    for address in addresses:
        (mail,) = smtp_sink.wait_for(address)
        assert_inert(mail.html(), f"the mail to {address}")
        assert EVALUATED not in mail.text() + str(mail.message["Subject"]), address
