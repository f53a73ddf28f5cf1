"""A subject may use {{ subscriber.name }} like the body: filled in for each reader, refused on save if it reaches
for anything else, never shown as source to the public."""

from email import policy
from email.parser import BytesParser

import pytest

from tests.campaign_support import start, wait_for_status
from tests.factories import add_confirmed, make_campaign, make_subscriber, newsletter
from uscmail.campaigns import builder
from uscmail.campaigns.builder import Recipient
from uscmail.campaigns.models import CampaignStatus
from uscmail.campaigns.sandbox import SubjectTemplate, literal_source
from uscmail.validation import InvalidInput

PERSONAL = "News for {{ subscriber.name }} ✊"


def subject_of(data: bytes) -> str:
    return str(BytesParser(policy=policy.default).parsebytes(data)["Subject"])


@pytest.mark.parametrize(
    ("email", "name", "expected"),
    [
        ("ayse@example.org", "Ayşe Gül", "News for Ayşe Gül ✊"),
        ("nameless@example.org", None, "News for supporter ✊"),
        ("ayşe@example.org", "Ayşe", "News for Ayşe ✊"),  # built by the standard library (SMTPUTF8)
    ],
)
def test_each_reader_gets_the_subject_with_their_name(db, email, name, expected):
    prepared = builder.prepare(make_campaign(PERSONAL))
    data = prepared.build(Recipient(delivery_id=7, email=email, name=name, public_id="p" * 22))
    assert subject_of(data) == expected


def test_a_test_copy_says_test_and_uses_the_word_for_a_nameless_reader(db):
    prepared = builder.prepare(make_campaign(PERSONAL), test=True)
    data = prepared.build(Recipient(delivery_id=None, email="tester@example.org", name=None, public_id="test"))
    assert subject_of(data) == "[Test] News for supporter ✊"


def test_a_plain_subject_is_left_as_it_is(db):
    prepared = builder.prepare(make_campaign("Solidarity  news: 100% {not a template}"))
    data = prepared.build(Recipient(delivery_id=7, email="a@example.org", name="Alex", public_id="p" * 22))
    assert subject_of(data) == "Solidarity news: 100% {not a template}"


@pytest.mark.parametrize(
    ("subject", "words"),
    [
        ("{{ unsubscribe_url }}", "A subject can use subscriber.name"),
        ("{{ config }}", "A subject can use subscriber.name"),
        ("Hi {{ subscriber.email }}", "subscriber.email"),
        ("{{ subscriber.name.__class__ }}", "The subject can't be used"),
        ("{{ subscriber.name * 100000 }}", "The subject can't be filled in"),
        ("{{ 1 // (subscriber.name|length - 9) }}", "The subject can't be filled in"),
        ("{{ subscriber.name", "The subject can't be used"),
    ],
)
def test_a_subject_that_reaches_for_anything_else_is_refused_on_save(db, subject, words):
    with pytest.raises(InvalidInput, match="subject") as refusal:
        make_campaign(subject)
    assert words in str(refusal.value)


def test_reminder_words_that_look_like_a_template_are_shown_as_they_are():
    title = 'Bring {{ banners }} and {% "flags" %}'
    source = literal_source(title, 255)
    assert SubjectTemplate(source).render("Alex") == title
    assert len(literal_source("{{ x }}" * 100, 255)) <= 255


def test_readers_get_their_own_subject_and_the_archive_never_shows_the_source(db, worker, smtp_sink, client):
    [named] = add_confirmed(1)
    nameless = make_subscriber("nameless@example.org", name=None, lists=[newsletter()]).email
    campaign = make_campaign("{{ subscriber.name or 'Friends' }}, the vigil is on", public=True)
    start(campaign)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    assert str(smtp_sink.wait_for(named)[0].message["Subject"]) == "Supporter 0, the vigil is on"
    assert str(smtp_sink.wait_for(nameless)[0].message["Subject"]) == "Friends, the vigil is on"
    archive = client.get("/archive").get_data(as_text=True)
    assert "Friends, the vigil is on" in archive and "subscriber.name" not in archive
