"""How many people left through a campaign's links: the campaign id rides in the signed unsubscribe token (no address
in it), each person who leaves raises one number on the campaign, and nothing records who left from which campaign.
Links made before (without a campaign id) keep working."""

import base64
import json

import sqlalchemy as sa

from tests.api_support import assert_matches
from tests.campaign_support import VIGIL_BODY, VIGIL_SUBJECT, start, wait_for_status
from tests.conftest import form_fields
from tests.factories import make_campaign, sign_up_subscriber
from tests.pages import fresh, text
from tests.test_unsubscribe import one_click
from uscmail.campaigns import builder
from uscmail.campaigns.builder import Recipient
from uscmail.campaigns.models import Campaign, CampaignStatus
from uscmail.extensions import db as database
from uscmail.links import UNSUBSCRIBE, _untimed, make_unsubscribe_token, read_unsubscribe_link
from uscmail.models import MailingList, Subscriber, Subscription, SubscriptionStatus

PEOPLE = ("amina.u@example.org", "bilal.u@example.org", "chen.u@example.org")


def unsubscribe_count(db, campaign_id: int) -> int:
    return fresh(db).scalar(sa.select(Campaign.unsubscribe_count).where(Campaign.id == campaign_id))


def status_on(db, email: str, slug: str = "newsletter") -> SubscriptionStatus:
    return fresh(db).scalar(
        sa.select(Subscription.status)
        .join(Subscriber)
        .join(MailingList)
        .where(Subscriber.email == email, MailingList.slug == slug)
    )


def payload(token: str):
    """The readable part of a signed token: base64url JSON before the first dot."""
    encoded = token.split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


def sent_campaign(db, smtp_sink) -> tuple[int, dict[str, str]]:
    """A campaign sent by the real worker to PEOPLE; their List-Unsubscribe paths as they arrived."""
    for email in PEOPLE:
        sign_up_subscriber(email, ["newsletter", "london-protest-reminders"])
    database.session.commit()
    campaign = make_campaign(VIGIL_SUBJECT, VIGIL_BODY)
    start(campaign)
    paths = {}
    for email in PEOPLE:
        [mail] = smtp_sink.wait_for(email)
        paths[email] = mail.message["List-Unsubscribe"].strip("<>").removeprefix("https://lists.uscuk.test")
    wait_for_status(campaign.id, CampaignStatus.SENT)
    return campaign.id, paths


def test_each_person_who_leaves_through_a_campaigns_link_is_counted_once(app, db, worker, smtp_sink, api, editor):
    campaign_id, paths = sent_campaign(db, smtp_sink)
    amina, bilal, chen = PEOPLE

    # The token names the campaign and the list, and a random public id: nobody's address.
    token = paths[amina].rsplit("/", 1)[1]
    readable = payload(token)
    assert read_unsubscribe_link(token).campaign_id == campaign_id
    assert readable[2] == campaign_id and "@" not in json.dumps(readable) and "amina" not in json.dumps(readable)

    assert one_click(app, paths[amina]).status_code == 200  # the mail client's one-click button
    assert one_click(app, paths[amina]).status_code == 200  # pressed again: already gone, not counted again
    assert status_on(db, amina) is SubscriptionStatus.UNSUBSCRIBED
    assert unsubscribe_count(db, campaign_id) == 1

    # Bilal opens the link, presses the button, then also leaves everything: one person, counted once.
    browser = app.test_client()
    page = text(browser.get(paths[bilal]))
    assert "Unsubscribe" in page
    browser.post(paths[bilal], data={"from_page": "1"})
    page = text(browser.get(paths[bilal]))
    assert browser.post(paths[bilal] + "/everything", data=form_fields(page)).status_code == 200
    assert status_on(db, bilal, "london-protest-reminders") is SubscriptionStatus.UNSUBSCRIBED
    assert unsubscribe_count(db, campaign_id) == 2

    # Chen leaves everything straight away from the page: counted.
    page = text(browser.get(paths[chen]))
    assert browser.post(paths[chen] + "/everything", data=form_fields(page)).status_code == 200
    assert unsubscribe_count(db, campaign_id) == 3

    stats = api("GET", f"/api/v1/campaigns/{campaign_id}/stats", editor)
    assert stats.json["unsubscribes"] == 3
    assert_matches(app, "CampaignStats", stats.json)
    # Nothing ties a subscription to the campaign it was left from: the schema has no place for it.
    for table in ("subscriptions", "consents", "subscribers"):
        columns = {column.name for column in database.metadata.tables[table].columns}
        assert not any("campaign" in name for name in columns), table


def test_the_campaign_page_shows_its_unsubscribes(app, db, worker, smtp_sink, sign_in_as):
    campaign_id, paths = sent_campaign(db, smtp_sink)
    one_click(app, paths[PEOPLE[0]])
    page = text(sign_in_as("viewer").get(f"/organisers/campaigns/{campaign_id}"))
    assert '<dt>Unsubscribed</dt><dd><span data-stat="unsubscribes">1</span>' in page
    assert "a count only, we never record who" in page


def test_links_without_a_campaign_id_still_unsubscribe_and_count_nothing(app, db):
    person = sign_up_subscriber("old.link@example.org", ["newsletter"])
    campaign = make_campaign("Sent before counting began")
    old_token = make_unsubscribe_token(person.public_id, campaign.list_ids)
    assert len(payload(old_token)) == 2

    assert one_click(app, f"/unsubscribe/{old_token}").status_code == 200

    assert status_on(db, "old.link@example.org") is SubscriptionStatus.UNSUBSCRIBED
    assert unsubscribe_count(db, campaign.id) == 0


def test_a_token_whose_campaign_id_was_changed_is_refused(app, db):
    person = sign_up_subscriber("tamper@example.org", ["newsletter"])
    campaign = make_campaign("Signed")
    token = make_unsubscribe_token(person.public_id, campaign.list_ids, campaign.id)
    signature = token.split(".", 1)[1]
    forged = base64.urlsafe_b64encode(json.dumps([person.public_id, campaign.list_ids, 999]).encode()).rstrip(b"=")

    for bad in (f"{forged.decode()}.{signature}", token[:-2] + "xx"):
        assert one_click(app, f"/unsubscribe/{bad}").status_code == 400
    for odd in ([person.public_id, campaign.list_ids, "1"], [person.public_id, campaign.list_ids, True],
                [person.public_id, campaign.list_ids, 1, 2]):  # fmt: skip
        assert one_click(app, f"/unsubscribe/{_untimed(UNSUBSCRIBE).dumps(odd)}").status_code == 400
    assert status_on(db, "tamper@example.org") is SubscriptionStatus.CONFIRMED
    assert unsubscribe_count(db, campaign.id) == 0


def test_a_signed_id_of_a_campaign_that_is_gone_unsubscribes_and_counts_nothing(app, db):
    person = sign_up_subscriber("gone.campaign@example.org", ["newsletter"])
    token = make_unsubscribe_token(person.public_id, [person.subscriptions[0].list_id], 2_000_000_000)
    assert one_click(app, f"/unsubscribe/{token}").status_code == 200
    assert status_on(db, "gone.campaign@example.org") is SubscriptionStatus.UNSUBSCRIBED


def test_test_copies_name_no_campaign(app, db):
    campaign = make_campaign("Test copy")
    person = Recipient(delivery_id=None, email="me@example.org", name=None, public_id="test")
    message = builder.prepare(campaign, test=True).build(person)
    link = message.split(b"List-Unsubscribe: <", 1)[1].split(b">", 1)[0].decode()
    assert read_unsubscribe_link(link.rsplit("/", 1)[1]).campaign_id is None
    real = builder.prepare(campaign).build(person)
    link = real.split(b"List-Unsubscribe: <", 1)[1].split(b">", 1)[0].decode()
    assert read_unsubscribe_link(link.rsplit("/", 1)[1]).campaign_id == campaign.id
