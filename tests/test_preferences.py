"""The preference centre: name and lists, leaving everything, and erasing one's data for good."""

import re

import pytest
import sqlalchemy as sa

from tests.conftest import form_fields, recorded_statements
from tests.factories import make_list, sign_up_subscriber
from uscmail import links
from uscmail.models import (
    Consent,
    ConsentMethod,
    MailingList,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from uscmail.subscriptions import mails, services
from uscmail.subscriptions.consent import CURRENT_VERSION
from uscmail.suppression import address_hmac

BASE_URL = "https://lists.uscuk.test"
TICKED = re.compile(r'<input type="checkbox" name="lists" id="list-\d+" value="(\d+)" checked>')


def list_ids() -> dict[str, int]:
    return {mailing_list.slug: mailing_list.id for mailing_list in services.public_lists()}


def preferences_path(subscriber: Subscriber) -> str:
    return mails.preferences_url(subscriber).removeprefix(BASE_URL)


def state(db, email):
    """The subscriber's name, each list's (status, reason), and each consent's (list, method, confirmed, withdrawn)."""
    db.session.rollback()
    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        return None
    lists = {s.mailing_list.slug: (s.status, s.status_reason) for s in subscriber.subscriptions}
    consents = db.session.execute(
        sa.select(Consent.list_id, Consent.method, Consent.confirmed_at, Consent.withdrawn_at)
        .where(Consent.subscriber_id == subscriber.id)
        .order_by(Consent.id)
    ).all()
    result = (subscriber.name, lists, consents)
    db.session.rollback()
    return result


def save(client, path, name, lists, with_csrf=True):
    """Load the preference centre, then submit it as a browser would."""
    page = client.get(path)
    data = form_fields(page.get_data(as_text=True)) if with_csrf else {}
    data.update(name=name, lists=[str(value) for value in lists])
    return client.post(path, data=data)


def test_preference_centre_shows_the_address_and_current_lists(client, db):
    subscriber = sign_up_subscriber("amina@example.org", name="Amina")

    page = client.get(preferences_path(subscriber))

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "For amina@example.org" in text
    assert 'value="Amina"' in text
    assert '<label for="list-{}" dir="auto">Newsletter</label>'.format(list_ids()["newsletter"]) in text
    assert (
        '<label for="list-{}" dir="auto">London protest reminders</label>'.format(
            list_ids()["london-protest-reminders"]
        )
        in text
    )
    assert TICKED.findall(text) == [str(list_ids()["newsletter"])]
    assert "Unsubscribe from everything" in text
    assert "Erase my data" in text


def test_the_preference_page_reads_the_person_and_their_subscriptions_in_one_statement(client, db):
    """A busy page (every mail links it): one SELECT for the subscriber, the lists offered them and their
    subscriptions to those, and nothing written."""
    subscriber = sign_up_subscriber("one-read@example.org", ("newsletter", "london-protest-reminders"))
    path = preferences_path(subscriber)
    db.session.rollback()
    with recorded_statements(db.engine) as seen:
        page = client.get(path)
    assert page.status_code == 200
    assert sorted(TICKED.findall(page.get_data(as_text=True))) == sorted(
        str(list_ids()[slug]) for slug in ("newsletter", "london-protest-reminders")
    )
    assert all(statement.startswith("SELECT") for statement in seen), seen
    assert len([s for s in seen if "FROM subscribers" in s]) == 1, seen
    assert len(seen) == 1, seen


OFFERED = re.compile(r'<input type="checkbox" name="lists" id="list-\d+" value="(\d+)"')


def test_the_page_offers_what_the_saving_form_accepts(client, db):
    """The page's one statement offers the lists offered_lists gives the form that saves it, ticked where confirmed:
    public ones, and any they are on now (private or archived too); not a private or archived list they left."""
    subscriber = sign_up_subscriber("offered@example.org", lists=["newsletter", "london-protest-reminders"])
    method = ConsentMethod.IMPORT
    on_private, left_private = make_list("on-private", public=False), make_list("left-private", public=False)
    on_archived, left_archived = make_list("on-archived"), make_list("left-archived")
    for joined in (on_private, left_private, on_archived, left_archived):
        services.subscribe_confirmed(subscriber, joined.id, StatusReason.ORGANISER, method, basis="met")
    services.unsubscribe(
        subscriber.id, [left_private.id, left_archived.id, list_ids()["newsletter"]], StatusReason.ORGANISER
    )
    on_archived.archived = left_archived.archived = True
    db.session.commit()
    expected = [str(offered.id) for offered in services.offered_lists(subscriber)]
    path = preferences_path(subscriber)
    db.session.rollback()

    html = client.get(path).get_data(as_text=True)

    assert OFFERED.findall(html) == expected
    public = [str(list_id) for list_id in list_ids().values()]
    assert set(expected) == {*public, str(on_private.id), str(on_archived.id)}
    ticked = {str(list_ids()["london-protest-reminders"]), str(on_private.id), str(on_archived.id)}
    assert set(TICKED.findall(html)) == ticked


def test_a_person_offered_no_list_still_gets_their_page(client, db):
    """With every public list archived and none joined, the page is theirs, with no list to tick (not "gone")."""
    subscriber = sign_up_subscriber("nothing.offered@example.org")
    services.unsubscribe(subscriber.id, None, StatusReason.ORGANISER)
    for mailing_list in db.session.scalars(sa.select(MailingList)):
        mailing_list.archived = True
    db.session.commit()

    page = client.get(preferences_path(subscriber))

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "For nothing.offered@example.org" in text
    assert OFFERED.findall(text) == []


def test_changing_the_name_is_saved(client, db):
    subscriber = sign_up_subscriber("name.change@example.org", name="Amina")
    before = state(db, "name.change@example.org")

    response = save(client, preferences_path(subscriber), "Amina Yusuf", [list_ids()["newsletter"]])

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Your preferences are saved." in text
    assert 'value="Amina Yusuf"' in text
    name, lists, consents = state(db, "name.change@example.org")
    assert name == "Amina Yusuf"
    assert (lists, consents) == before[1:]


def test_ticking_a_list_joins_it_at_once_with_consent_evidence(client, db):
    subscriber = sign_up_subscriber("second.list@example.org")
    ids = list_ids()

    response = save(client, preferences_path(subscriber), "", [ids["newsletter"], ids["london-protest-reminders"]])

    assert response.status_code == 200
    assert sorted(TICKED.findall(response.get_data(as_text=True))) == sorted(map(str, ids.values()))
    _, lists, consents = state(db, "second.list@example.org")
    assert lists["london-protest-reminders"] == (SubscriptionStatus.CONFIRMED, StatusReason.PREFERENCE_CENTRE)
    assert lists["newsletter"] == (SubscriptionStatus.CONFIRMED, StatusReason.CONFIRMED_BY_SUBSCRIBER)
    [(list_id, method, confirmed_at, withdrawn_at)] = [
        c for c in consents if c.list_id == ids["london-protest-reminders"]
    ]
    assert method is ConsentMethod.PREFERENCE_CENTRE
    assert confirmed_at is not None
    assert withdrawn_at is None
    wording = db.session.scalar(
        sa.select(Consent.wording_version).where(Consent.list_id == list_id, Consent.method == method)
    )
    assert wording == CURRENT_VERSION


def test_unticking_a_list_leaves_it(client, db):
    subscriber = sign_up_subscriber("untick@example.org", lists=["newsletter", "london-protest-reminders"])
    ids = list_ids()

    response = save(client, preferences_path(subscriber), "", [ids["london-protest-reminders"]])

    assert response.status_code == 200
    assert TICKED.findall(response.get_data(as_text=True)) == [str(ids["london-protest-reminders"])]
    _, lists, consents = state(db, "untick@example.org")
    assert lists["newsletter"] == (SubscriptionStatus.UNSUBSCRIBED, StatusReason.PREFERENCE_CENTRE)
    assert lists["london-protest-reminders"][0] is SubscriptionStatus.CONFIRMED
    withdrawn = {c.list_id: c.withdrawn_at is not None for c in consents}
    assert withdrawn == {ids["newsletter"]: True, ids["london-protest-reminders"]: False}


def test_a_list_the_form_does_not_offer_cannot_be_joined(client, db):
    subscriber = sign_up_subscriber("private.list@example.org")
    private = make_list("organisers-only", "Organisers only", public=False)
    db.session.commit()
    private_id = private.id

    response = save(client, preferences_path(subscriber), "", [list_ids()["newsletter"], private_id])

    assert response.status_code == 200
    assert "Organisers only" not in response.get_data(as_text=True)
    _, lists, _ = state(db, "private.list@example.org")
    assert set(lists) == {"newsletter"}


@pytest.mark.parametrize("removed_by", [StatusReason.ORGANISER, StatusReason.PREFERENCE_CENTRE])
def test_a_private_list_someone_left_is_not_offered_or_accepted_again(client, db, removed_by):
    subscriber = sign_up_subscriber("removed@example.org")
    private = make_list("core-team", "Core team", public=False)
    services.subscribe_confirmed(subscriber, private.id, StatusReason.ORGANISER, ConsentMethod.IMPORT, basis="met")
    db.session.commit()
    private_id, path = private.id, preferences_path(subscriber)
    assert "Core team" in client.get(path).get_data(as_text=True)  # offered while they are on it
    services.unsubscribe(subscriber.id, [private_id], removed_by)
    db.session.commit()

    page = client.get(path).get_data(as_text=True)
    response = save(client, path, "", [list_ids()["newsletter"], private_id])  # a crafted POST with its id

    assert "Core team" not in page
    assert response.status_code == 200 and "Core team" not in response.get_data(as_text=True)
    _, lists, _ = state(db, "removed@example.org")
    assert lists["core-team"] == (SubscriptionStatus.UNSUBSCRIBED, removed_by)
    assert lists["newsletter"][0] is SubscriptionStatus.CONFIRMED


def test_an_archived_list_someone_left_is_not_offered_again(client, db):
    subscriber = sign_up_subscriber("archived@example.org", lists=["newsletter", "london-protest-reminders"])
    reminders = db.session.scalar(sa.select(MailingList).where(MailingList.slug == "london-protest-reminders"))
    services.unsubscribe(subscriber.id, [reminders.id], StatusReason.ORGANISER)
    reminders.archived = True
    db.session.commit()

    response = save(client, preferences_path(subscriber), "", [list_ids()["newsletter"], reminders.id])

    assert "London protest reminders" not in response.get_data(as_text=True)
    _, lists, _ = state(db, "archived@example.org")
    assert lists["london-protest-reminders"][0] is SubscriptionStatus.UNSUBSCRIBED


def test_unsubscribe_from_everything_in_the_preference_centre(client, db):
    subscriber = sign_up_subscriber("leave.all@example.org", lists=["newsletter", "london-protest-reminders"])
    path = preferences_path(subscriber)
    page = client.get(path)

    response = client.post(f"{path}/leave", data=form_fields(page.get_data(as_text=True)))

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "You won't receive any more emails from our lists." in text
    assert f'href="{path}"' in text
    _, lists, consents = state(db, "leave.all@example.org")
    assert set(lists.values()) == {(SubscriptionStatus.UNSUBSCRIBED, StatusReason.PREFERENCE_CENTRE)}
    assert all(consent.withdrawn_at is not None for consent in consents)


@pytest.mark.parametrize(
    ("name", "lists", "message"),
    [
        ("Amina\r\nBcc: everyone@example.org", None, "Your name can&#39;t contain line breaks or control characters."),
        ("A" * 10_000, None, "Please keep your name under 200 characters."),
        ("Amina", ["newsletter"], "Please choose lists from the form."),
    ],
    ids=["line-break-in-name", "ten-thousand-character-name", "list-that-is-not-a-number"],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(client, db, name, lists, message):
    subscriber = sign_up_subscriber("bad.input@example.org", name="Original")
    before = state(db, "bad.input@example.org")
    wanted = lists if lists is not None else list(list_ids().values())

    response = save(client, preferences_path(subscriber), name, wanted)

    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert f'<div class="alert alert-error" role="alert"><p>{message}</p></div>' in text
    assert "Your preferences are saved." not in text
    assert state(db, "bad.input@example.org") == before


def test_preference_changes_need_the_csrf_token(client, db):
    subscriber = sign_up_subscriber(
        "no.csrf@example.org", lists=["newsletter", "london-protest-reminders"], name="Kept"
    )
    path = preferences_path(subscriber)
    before = state(db, "no.csrf@example.org")

    saved = save(client, path, "Changed", [], with_csrf=False)
    left = client.post(f"{path}/leave", data={})

    for response in (saved, left):
        assert response.status_code == 400
        assert "Please reload the page and try again" in response.get_data(as_text=True)
    assert state(db, "no.csrf@example.org") == before


def test_a_tampered_preferences_link_is_refused(client, db):
    subscriber = sign_up_subscriber("tampered.prefs@example.org", name="Kept")
    path = preferences_path(subscriber)
    fields = form_fields(client.get(path).get_data(as_text=True))
    prefix, token = path.rsplit("/", 1)
    tampered = f"{prefix}/{'A' if token[0] != 'A' else 'B'}{token[1:]}"
    before = state(db, "tampered.prefs@example.org")

    responses = [
        client.get(tampered),
        client.post(tampered, data={**fields, "name": "Changed", "lists": []}),
        client.post(f"{tampered}/leave", data=fields),
        client.get(f"{tampered}/erase"),
        client.post(f"{tampered}/erase", data={**fields, "confirm": "y"}),
    ]

    assert [response.status_code for response in responses] == [400] * 5
    assert "tampered.prefs@example.org" not in responses[0].get_data(as_text=True)
    assert state(db, "tampered.prefs@example.org") == before


@pytest.mark.parametrize("page", ["confirm", "unsubscribe", "preferences", "erase", "bad-link"])
def test_pages_behind_a_token_send_no_referrer_and_are_not_cached(client, db, page):
    subscriber = sign_up_subscriber("headers@example.org")
    paths = {
        "confirm": "/confirm/" + links.make_confirm_token(subscriber.public_id, "nonce"),
        "unsubscribe": mails.unsubscribe_url(subscriber, [list_ids()["newsletter"]]).removeprefix(BASE_URL),
        "preferences": preferences_path(subscriber),
        "erase": preferences_path(subscriber) + "/erase",
        "bad-link": "/preferences/not-a-token",
    }

    response = client.get(paths[page])

    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_erase_page_asks_for_confirmation_and_changes_nothing(client, db):
    subscriber = sign_up_subscriber("erase.page@example.org")
    before = state(db, "erase.page@example.org")

    page = client.get(preferences_path(subscriber) + "/erase")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "This can't be undone." in text
    assert '<input type="checkbox" name="confirm" id="confirm" value="y" required>' in text
    assert "Yes, erase my data and never email me again" in text
    assert state(db, "erase.page@example.org") == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


@pytest.mark.parametrize("missing", ["ticked box", "csrf token"])
def test_erasing_needs_the_box_ticked_and_the_csrf_token(client, db, missing):
    subscriber = sign_up_subscriber("erase.refused@example.org")
    path = preferences_path(subscriber) + "/erase"
    fields = form_fields(client.get(path).get_data(as_text=True))
    before = state(db, "erase.refused@example.org")
    data = fields if missing == "ticked box" else {"confirm": "y"}

    response = client.post(path, data=data)

    assert response.status_code == 400
    text = response.get_data(as_text=True)
    if missing == "ticked box":
        assert "Please tick the box to confirm that you want your data erased." in text
    else:
        assert "Please reload the page and try again" in text
    assert state(db, "erase.refused@example.org") == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def erase(client, subscriber):
    path = preferences_path(subscriber) + "/erase"
    fields = form_fields(client.get(path).get_data(as_text=True))
    return client.post(path, data={**fields, "confirm": "y"})


def test_erasing_keeps_nothing_but_the_suppression_hmac(client, db):
    subscriber = sign_up_subscriber("zumrat.erased@example.org", lists=["newsletter"], name="Zumrat Erased")
    save(client, preferences_path(subscriber), "Zumrat Erased", list(list_ids().values()))
    sign_up_subscriber("stays@example.org")
    erased_id = subscriber.id

    response = erase(client, subscriber)

    assert response.status_code == 200
    assert "Your data is erased" in response.get_data(as_text=True)
    db.session.rollback()
    for column in (Subscriber.id, Subscription.subscriber_id, Consent.subscriber_id):
        assert db.session.scalar(sa.select(sa.func.count()).where(column == erased_id)) == 0
    assert state(db, "stays@example.org")[1] == {
        "newsletter": (SubscriptionStatus.CONFIRMED, StatusReason.CONFIRMED_BY_SUBSCRIBER)
    }
    [suppression] = db.session.scalars(sa.select(Suppression)).all()
    assert suppression.address_hmac == address_hmac("zumrat.erased@example.org")
    assert suppression.reason is SuppressionReason.ERASED
    # Nothing anywhere in the database still names the person.
    tables = sa.MetaData()
    tables.reflect(bind=db.engine)
    for table in tables.sorted_tables:
        for row in db.session.execute(sa.select(table)):
            for column, value in row._mapping.items():
                for needle in ("zumrat", "erased@example.org"):
                    assert needle not in str(value).lower(), f"{table.name}.{column} still holds {needle!r}"


def test_links_of_an_erased_subscriber_answer_gracefully(app, client, db):
    subscriber = sign_up_subscriber("erased.links@example.org")
    preferences = preferences_path(subscriber)
    unsubscribe = mails.unsubscribe_url(subscriber, [list_ids()["newsletter"]]).removeprefix(BASE_URL)
    confirm = "/confirm/" + links.make_confirm_token(subscriber.public_id, "nonce")
    assert erase(client, subscriber).status_code == 200

    for path in (preferences, preferences + "/erase"):
        gone = client.get(path)
        assert gone.status_code == 410
        assert "This link no longer works." in gone.get_data(as_text=True)
    assert client.get(confirm).status_code == 410
    assert client.get(unsubscribe).status_code == 200
    one_click = app.test_client(use_cookies=False).post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert "You have been unsubscribed" in one_click.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


def test_signing_up_again_after_erasure_sends_nothing_and_answers_as_usual(client, db, worker, smtp_sink, signup):
    subscriber = sign_up_subscriber("erased.again@example.org")
    assert erase(client, subscriber).status_code == 200

    again = signup("Erased.Again@example.org", lists=["newsletter", "london-protest-reminders"])
    stranger = signup("stranger@example.org")

    assert again.status_code == stranger.status_code == 303
    assert again.headers["Location"] == stranger.headers["Location"] == "/subscribe/thanks"
    smtp_sink.wait_for("stranger@example.org")
    smtp_sink.settle()
    assert smtp_sink.to("erased.again@example.org") == []
    db.session.rollback()
    assert db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == "erased.again@example.org")) is None
