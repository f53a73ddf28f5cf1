"""Campaign messages from the fast builder: the same mail the standard library would build, exact MIME and headers."""

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from email import policy
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
import sqlalchemy as sa

from tests.factories import mailing_list, make_campaign
from uscmail.campaigns import builder, render
from uscmail.campaigns.builder import Recipient
from uscmail.campaigns.models import BodyFormat, Campaign
from uscmail.campaigns.render import MailValues
from uscmail.links import (
    UnsubscribeLink,
    external_url,
    make_preferences_token,
    make_unsubscribe_token,
    read_unsubscribe_link,
)
from uscmail.models import Subscriber, Subscription, SubscriptionStatus
from uscmail.subscribers import services as subscriber_services
from uscmail.subscribers.services import ConsentBasis, ConsentMethod
from uscmail.validation import InvalidInput

BODY = """# Solidarity news

Dear {{ subscriber.name }}, we protest outside the embassy at **49–51 Portland Place** on the 5th.
Read [the report](https://example.org/report). Not for you? [Unsubscribe]({{ unsubscribe_url }}).

- Bring a placard
- Bring a friend: ئۇيغۇرلار بىلەن بىرلىكتە 团结 ✊
"""
HTML_BODY = (
    "<h2>Hello {{ subscriber.name }}</h2><p>A line that is long enough to need soft line breaks when it is encoded "
    "as quoted-printable, with = signs, trailing spaces   </p><p>--=_ not a boundary</p><p>.</p>"
    '<p><a href="{{ preferences_url }}">Your preferences</a> · 中文 · 😀</p>'
)
NAMES = [
    "Alex",
    None,
    "",
    "ئۇيغۇر خەلقى",
    "李明",
    "Zoë 😀✊",
    "Eve\r\nBcc: spy@example.org",
    "<script>alert(1)</script>",
    'Ayşe "Gül" <x@y>',
    'Backslash \\ and "quotes"',
    "=?utf-8?q?Not_an_encoded_word?=",
    "A very long name " * 8,
]
BOTH_LISTS = ("newsletter", "london-protest-reminders")
# The sender, reply address and preheader of every campaign here.
FROM_THE_CAMPAIGN = {
    "from_name": "Uyghur Solidarity Campaign ✊",
    "from_email": "news@example.org",
    "reply_to": "info@example.org",
    "preheader": "Portland Place, noon",
}
SUBJECTS = [
    "Protest on the 5th",
    "ئۇيغۇرلار ئۈچۈن ھەرىكەت — 维吾尔团结 ✊",
    "A long plain subject line that will certainly need folding because it goes on and on and on about the protest",
]
EXPECTED_HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version", "Content-Type", "List-Id",
    "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID", "Precedence", "Auto-Submitted",
}  # fmt: skip


def recipient(index: int, name: str | None, email: str | None = None) -> Recipient:
    return Recipient(delivery_id=1000 + index, email=email or f"person{index}@example.org", name=name,
                     public_id=f"pub{index:04d}abcdefghijklm_-")  # fmt: skip


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert message.defects == []
    for part in message.walk():
        assert part.defects == []
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """The decoded text and HTML parts, in that order (and nothing else)."""
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = message.get_payload()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content_charset() == rich.get_content_charset() == "utf-8"
    return plain.get_content().replace("\r\n", "\n"), rich.get_content().replace("\r\n", "\n")


def links(campaign: Campaign, public_id: str) -> tuple[str, str]:
    """Unsubscribe and preference links made the ordinary (slow) way, with uscmail.links."""
    unsubscribe_token = make_unsubscribe_token(public_id, campaign.list_ids, campaign.id)
    return (
        external_url("subscriptions.unsubscribe", token=unsubscribe_token),
        external_url("subscriptions.preferences", token=make_preferences_token(public_id)),
    )


def reference(campaign: Campaign, person: Recipient) -> EmailMessage:
    """What the standard library builds from a full render for this recipient."""
    unsubscribe_url, preferences_url = links(campaign, person.public_id)
    values = MailValues(person.name, unsubscribe_url, preferences_url, render.web_version_url(campaign))
    mail = render.render_mail(campaign, values)
    message = EmailMessage()
    message["Subject"] = campaign.subject
    message["From"] = Address(display_name=campaign.from_name, addr_spec=campaign.from_email)
    username, _, domain = person.email.rpartition("@")
    message["To"] = Address(display_name=" ".join((person.name or "").split()), username=username, domain=domain)
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message.set_content(mail.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(mail.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return parse(message.as_bytes(policy=policy.SMTP if person.email.isascii() else policy.SMTPUTF8))


def utf8(value: str) -> str:
    """A header value as sent: the parser leaves raw UTF-8 (RFC 6532, SMTPUTF8 mail) as escaped bytes."""
    return value.encode("ascii", "surrogateescape").decode("utf-8")


def to_display_name(data: bytes) -> str:
    """The To display name as RFC 2047 readers show it. Python's address parser keeps the space between adjacent
    encoded words, which RFC 2047 (6.2) says to ignore, so names long enough to need several are decoded here."""
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    raw = re.search(r"^To: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M).group(1).replace("\r\n", "")
    phrase = raw.rpartition("<")[0].strip()
    if "=?" in phrase:
        return "".join(part.decode(charset or "ascii") for part, charset in decode_header(phrase))
    return utf8(parse(data)["To"].addresses[0].display_name)


def assert_same_mail(data: bytes, campaign: Campaign, person: Recipient) -> EmailMessage:
    """`data` parses cleanly into the mail the standard library builds for this recipient."""
    message, expected = parse(data), reference(campaign, person)
    for header in ("Subject", "From", "List-Unsubscribe"):
        assert str(message[header]) == str(expected[header]), header
    assert to_display_name(data) == " ".join((person.name or "").split())
    assert utf8(message["To"].addresses[0].addr_spec) == utf8(expected["To"].addresses[0].addr_spec) == person.email
    assert parts(message) == parts(expected)
    return message


# The fast path builds the same mail as the standard library


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("body_format", [BodyFormat.MARKDOWN, BodyFormat.HTML])
def test_fast_messages_equal_the_standard_library_build(db, subject, body_format):
    campaign = make_campaign(
        subject,
        BODY if body_format is BodyFormat.MARKDOWN else HTML_BODY,
        BOTH_LISTS,
        body_format=body_format,
        **FROM_THE_CAMPAIGN,
    )
    prepared = builder.prepare(campaign)

    for index, name in enumerate(NAMES):
        person = recipient(index, name)
        data = prepared.build(person)

        message = assert_same_mail(data, campaign, person)
        assert message["Subject"] == subject


@pytest.mark.parametrize(
    "body",
    [
        "Dear {{ subscriber.name | upper }}!",
        "{% if subscriber.name %}Dear {{ subscriber.name }}!{% else %}Dear all!{% endif %}",
        "{{ subscriber.name }} has {{ subscriber.name | length }} letters. {{ 'x' ~ subscriber.name ~ 'y' }}",
        "{% for letter in subscriber.name %}[{{ letter }}]{% endfor %} [Leave]({{ unsubscribe_url }})",
        "{% set who = subscriber.name %}{% if who == 'Bob' %}Hi Bob!{% endif %} Dear {{ who }}.",
    ],
)
def test_templates_that_transform_personal_values_are_right_for_every_recipient(db, body):
    campaign = make_campaign(SUBJECTS[0], body, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    prepared = builder.prepare(campaign)

    for index, name in enumerate(["Bob", "Alex", None, "李明", "<b>x</b>", "Bob"]):
        person = recipient(index, name)
        assert_same_mail(prepared.build(person), campaign, person)
    plain, _ = parts(parse(prepared.build(recipient(0, "Bob"))))
    if "upper" in body:
        assert "Dear BOB!" in plain
    if "letters" in body:
        assert "Bob has 3 letters. xBoby" in plain


def test_recipients_without_a_name_get_the_fallback_word(db):
    campaign = make_campaign(
        SUBJECTS[0],
        'Dear {{ subscriber.name or "comrade" }}, and {{ subscriber.name }}.',
        BOTH_LISTS,
        body_format=BodyFormat.MARKDOWN,
        **FROM_THE_CAMPAIGN,
    )
    prepared = builder.prepare(campaign)

    for index, name in enumerate([None, "", "  \r\n ", "Alex"]):
        person = recipient(index, name)
        plain, rich = parts(assert_same_mail(prepared.build(person), campaign, person))
        expected = "Dear Alex, and Alex." if name == "Alex" else "Dear comrade, and supporter."
        assert expected in plain and expected in rich
    assert prepared.bodies[False].html is not None  # substituted, not rendered per recipient


def test_a_plain_template_takes_the_fast_path_and_a_transforming_one_does_not(db):
    fast = builder.prepare(
        make_campaign(
            SUBJECTS[0],
            "Dear {{ subscriber.name }}, {{ unsubscribe_url }}",
            BOTH_LISTS,
            body_format=BodyFormat.MARKDOWN,
            **FROM_THE_CAMPAIGN,
        )
    )
    slow = builder.prepare(
        make_campaign(
            SUBJECTS[0],
            "Dear {{ subscriber.name | title }}",
            BOTH_LISTS,
            body_format=BodyFormat.MARKDOWN,
            **FROM_THE_CAMPAIGN,
        )
    )

    assert fast.bodies[True].html is not None and fast.bodies[False].html is not None
    assert slow.bodies[True].html is None
    # Without a name the template's output is the same for everyone, so that variant still substitutes.
    assert slow.bodies[False].html is not None


# Headers


def test_every_message_carries_the_list_headers(app, db):
    campaign = make_campaign(SUBJECTS[0], BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    prepared = builder.prepare(campaign)
    person = recipient(7, "Alex")
    before = datetime.now(UTC).replace(microsecond=0)

    data = prepared.build(person)

    message = parse(data)
    unsubscribe_url, _ = links(campaign, person.public_id)
    assert set(message.keys()) == EXPECTED_HEADERS
    assert len(message.keys()) == len(EXPECTED_HEADERS)
    assert message["From"].addresses[0].display_name == "Uyghur Solidarity Campaign ✊"
    assert message["From"].addresses[0].addr_spec == prepared.envelope_from == "news@example.org"
    assert message["Reply-To"] == "info@example.org"
    # The Message-ID names the campaign, and its tag does not give away the delivery's number.
    assert re.fullmatch(rf"<{campaign.public_id}\.[0-9a-f]{{20}}@example\.org>", message["Message-ID"])
    assert "1007" not in message["Message-ID"]
    assert prepared.build(person) != data and parse(prepared.build(person))["Message-ID"] == message["Message-ID"]
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == '"Newsletter" <newsletter.example.org>'
    assert message["List-Unsubscribe"] == f"<{unsubscribe_url}>"
    assert f"\r\nList-Unsubscribe: <{unsubscribe_url}>\r\n".encode() in data  # never folded inside the URL
    assert read_unsubscribe_link(unsubscribe_url.rsplit("/", 1)[1]) == UnsubscribeLink(
        person.public_id, campaign.list_ids, campaign.id
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == f"{campaign.id}:newsletter:uscmail:example.org"
    assert message["Precedence"] == "bulk"
    assert message["Auto-Submitted"] == "no"
    assert before <= message["Date"].datetime <= datetime.now(UTC)
    assert message["Date"].datetime.utcoffset().total_seconds() == 0
    boundary = message.get_boundary()
    assert boundary.startswith("=_") and len(boundary) > 20
    assert parse(prepared.build(person)).get_boundary() != boundary


def test_lines_end_in_crlf_and_headers_are_folded(db):
    campaign = make_campaign(
        SUBJECTS[2] + " ✊ " + SUBJECTS[1], HTML_BODY, BOTH_LISTS, body_format=BodyFormat.HTML, **FROM_THE_CAMPAIGN
    )
    prepared = builder.prepare(campaign)

    data = prepared.build(recipient(1, "A very long name with 😀 emoji " * 6))

    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    head, _ = data.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        assert line.isascii()
        assert len(line) <= 78 or line.startswith(b"List-Unsubscribe: <"), line
        assert line.strip(), "a header line of only white space"
    assert all(len(line) <= 76 for line in data[len(head) + 4 :].split(b"\r\n"))
    message = parse(data)
    assert message["Subject"] == SUBJECTS[2] + " ✊ " + SUBJECTS[1]
    assert to_display_name(data) == " ".join(("A very long name with 😀 emoji " * 6).split())


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: spy@example.org", "Eve\nBcc: spy@example.org", "Eve\rBcc: spy@example.org", "\r\n\r\nBody"]
)
def test_a_name_cannot_add_headers(db, name):
    prepared = builder.prepare(
        make_campaign(SUBJECTS[0], BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    )

    data = prepared.build(recipient(1, name))

    message = parse(data)
    assert message["Bcc"] is None
    assert set(message.keys()) == EXPECTED_HEADERS
    assert to_display_name(data) == " ".join(name.split())


def test_a_subject_cannot_add_headers(db):
    with pytest.raises(InvalidInput, match="line breaks"):
        make_campaign(
            "News\r\nBcc: spy@example.org", BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN
        )
    # Even if a row held one (written by something other than the service), it stays one line.
    campaign = make_campaign(SUBJECTS[0], BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    campaign.subject = "News\r\nBcc: spy@example.org"

    message = parse(builder.prepare(campaign).build(recipient(1, "Alex")))

    assert message["Bcc"] is None and message["Subject"] == "News Bcc: spy@example.org"


def test_a_test_send_is_marked_and_gets_its_own_message_ids(db):
    campaign = make_campaign(SUBJECTS[0], BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    prepared = builder.prepare(campaign, test=True)
    person = Recipient(delivery_id=None, email="organiser@example.org", name="Sam", public_id="test-public-id")

    first, second = parse(prepared.build(person)), parse(prepared.build(person))

    assert first["Subject"] == "[Test] " + campaign.subject
    assert first["Message-ID"] != second["Message-ID"]
    assert re.fullmatch(rf"<{campaign.public_id}\.test-[0-9a-f]{{16}}@example\.org>", first["Message-ID"])


def test_a_non_ascii_address_is_sent_as_smtputf8(db):
    campaign = make_campaign(SUBJECTS[0], BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    prepared = builder.prepare(campaign)
    person = recipient(3, "李明", email="李明@例子.example")

    assert prepared.needs_smtputf8(person)
    assert not prepared.needs_smtputf8(recipient(4, "李明"))
    data = prepared.build(person)

    assert_same_mail(data, campaign, person)
    assert data.decode("utf-8").startswith("From: Uyghur Solidarity Campaign ✊ <news@example.org>\r\n")


# The links work


def test_the_one_click_link_in_a_built_message_unsubscribes(app, db):
    campaign = make_campaign(SUBJECTS[0], BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    subscriber, _ = subscriber_services.add_subscriber(
        "reader@example.org", "Reader", [mailing_list()], ConsentBasis.PRIOR_CONSENT, "Paper form",
        ConsentMethod.IMPORT, "test",
    )  # fmt: skip
    db.session.commit()
    person = Recipient(1, subscriber.email, subscriber.name, subscriber.public_id)
    message = parse(builder.prepare(campaign).build(person))
    path = message["List-Unsubscribe"].strip("<>").removeprefix("https://lists.uscuk.test")

    response = app.test_client(use_cookies=False).post(
        path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    db.session.rollback()
    status = db.session.scalar(
        sa.select(Subscription.status).where(
            Subscription.subscriber_id == subscriber.id, Subscription.list_id == mailing_list().id
        )
    )
    assert status is SubscriptionStatus.UNSUBSCRIBED
    plain, rich = parts(message)
    assert f"Unsubscribe: https://lists.uscuk.test{path}" in plain and f'href="https://lists.uscuk.test{path}"' in rich
    assert db.session.get(Subscriber, subscriber.id) is not None


# SpamAssassin, when installed (Debian package `spamassassin`)

UNWANTED_RULES = re.compile(r"\b(MISSING_\w+|MIME_HTML_ONLY|MPART_ALT_DIFF\w*|INVALID_DATE\w*|DEAR_\w+)\b")


@pytest.mark.skipif(shutil.which("spamassassin") is None, reason="spamassassin is not installed (Debian: spamassassin)")
@pytest.mark.parametrize("body_format", [BodyFormat.MARKDOWN, BodyFormat.HTML])
@pytest.mark.parametrize("name", ["Ayşe Gül", None])  # None: the greeting falls back to the word for a nameless reader
def test_spamassassin_finds_nothing_wrong_with_the_message(db, tmp_path, body_format, name):
    campaign = make_campaign(
        SUBJECTS[1],
        BODY if body_format is BodyFormat.MARKDOWN else HTML_BODY,
        BOTH_LISTS,
        body_format=body_format,
        **FROM_THE_CAMPAIGN,
    )
    data = builder.prepare(campaign).build(recipient(1, name))

    result = subprocess.run(
        ["spamassassin", "-L", "-t"],
        input=data,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
        check=True,
    )

    report = result.stdout.decode(errors="replace")
    status = re.search(r"^X-Spam-Status: (.*?)^\S", report, re.M | re.S).group(1)
    tests = set(re.findall(r"[A-Z0-9_]{4,}", status.split("tests=", 1)[1]))
    assert "HTML_MESSAGE" in tests  # the report is real: it saw the HTML part
    assert not UNWANTED_RULES.findall(" ".join(tests)), tests
    assert status.startswith("No,")


CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\nUID:x@example.org\r\n"
    "DTSTAMP:20270101T000000Z\r\nDTSTART:20270305T180000Z\r\nSUMMARY:Protest ✊\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.mark.parametrize("email", ["ayse@example.org", "ayşe@example.org"])
def test_a_calendar_invitation_travels_as_an_attachment_after_the_alternatives(db, email):
    campaign = make_campaign(SUBJECTS[0], BODY, BOTH_LISTS, body_format=BodyFormat.MARKDOWN, **FROM_THE_CAMPAIGN)
    campaign.calendar = CALENDAR
    prepared = builder.prepare(campaign)
    message = parse(prepared.build(Recipient(delivery_id=5, email=email, name="Ayşe", public_id="p" * 22)))
    assert message.get_content_type() == "multipart/mixed"
    alternative, invite = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert invite.get_content_type() == "text/calendar" and invite.get_param("method") == "PUBLISH"
    assert invite.get_filename() == "invite.ics"
    assert invite.get_content().replace("\r\n", "\n") == CALENDAR.replace("\r\n", "\n")
    assert "Ayşe" in message.get_body(preferencelist=("plain",)).get_content()
    assert not message.defects and not any(part.defects for part in message.walk())
