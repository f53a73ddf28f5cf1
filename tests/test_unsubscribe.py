"""Unsubscribing: the RFC 8058 one-click POST as mail providers send it, and the unsubscribe page."""

import re

import pytest
import sqlalchemy as sa

from tests.conftest import form_fields
from tests.factories import sign_up_subscriber
from uscmail.models import (
    Consent,
    MailingList,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from uscmail.subscriptions import mails, services
from uscmail.suppression import suppress

BOTH_LISTS = ("newsletter", "london-protest-reminders")
BOUNDARY = "----OneClickBoundary7MA4YWxkTrZu0gW"


def list_id(slug: str) -> int:
    [mailing_list] = services.public_lists_by_slug([slug])
    return mailing_list.id


def unsubscribe_path(subscriber: Subscriber, slugs) -> str:
    """The link a list mail for these lists carries, as a path."""
    url = mails.unsubscribe_url(subscriber, [list_id(slug) for slug in slugs])
    return url.removeprefix("https://lists.uscuk.test")


def state(db, email):
    """Per list slug: (status, reason, unsubscribed_at, [consent withdrawn_at...]) as the database holds it now."""
    db.session.rollback()
    rows = db.session.execute(
        sa.select(
            MailingList.slug,
            Subscription.status,
            Subscription.status_reason,
            Subscription.unsubscribed_at,
            Subscription.subscriber_id,
            Subscription.list_id,
        )
        .join(Subscription.mailing_list)
        .join(Subscriber)
        .where(Subscriber.email == email)
    ).all()
    result = {}
    for slug, status, reason, unsubscribed_at, subscriber_id, mailing_list_id in rows:
        withdrawn = db.session.scalars(
            sa.select(Consent.withdrawn_at).where(
                Consent.subscriber_id == subscriber_id, Consent.list_id == mailing_list_id
            )
        ).all()
        result[slug] = (status, reason, unsubscribed_at, withdrawn)
    db.session.rollback()
    return result


def one_click(app, path, encoding="urlencoded", body=None, content_type=None):
    """POST the way Gmail and Yahoo do: no cookie, no session, no CSRF token, only List-Unsubscribe=One-Click."""
    if encoding == "urlencoded":
        body, content_type = "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
    elif encoding == "multipart":
        body = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            f"One-Click\r\n--{BOUNDARY}--\r\n"
        )
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return app.test_client(use_cookies=False).post(path, data=body, content_type=content_type)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_at_once_without_cookie_or_csrf(app, db, encoding):
    subscriber = sign_up_subscriber("one.click@example.org", ["newsletter"])
    path = unsubscribe_path(subscriber, ["newsletter"])

    response = one_click(app, path, encoding)

    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert "You have been unsubscribed" in response.get_data(as_text=True)
    status, reason, unsubscribed_at, withdrawn = state(db, "one.click@example.org")["newsletter"]
    assert (status, reason) == (SubscriptionStatus.UNSUBSCRIBED, StatusReason.ONE_CLICK)
    assert unsubscribed_at is not None
    assert withdrawn == [unsubscribed_at]


def test_repeating_the_one_click_post_is_harmless(app, db):
    subscriber = sign_up_subscriber("twice@example.org", ["newsletter"])
    path = unsubscribe_path(subscriber, ["newsletter"])
    assert one_click(app, path).status_code == 200
    after_first = state(db, "twice@example.org")

    again = one_click(app, path, "multipart")

    assert again.status_code == 200
    assert "Location" not in again.headers
    assert "You have been unsubscribed" in again.get_data(as_text=True)
    assert state(db, "twice@example.org") == after_first


def test_one_click_leaves_only_the_lists_in_the_link(app, db):
    subscriber = sign_up_subscriber("reminders.only@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, ["london-protest-reminders"])

    assert one_click(app, path).status_code == 200

    lists = state(db, "reminders.only@example.org")
    assert lists["london-protest-reminders"][:2] == (SubscriptionStatus.UNSUBSCRIBED, StatusReason.ONE_CLICK)
    status, reason, unsubscribed_at, withdrawn = lists["newsletter"]
    assert (status, reason, unsubscribed_at) == (
        SubscriptionStatus.CONFIRMED,
        StatusReason.CONFIRMED_BY_SUBSCRIBER,
        None,
    )
    assert withdrawn == [None]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/json", '{"List-Unsubscribe": "One-Click"}'), ("text/plain", "List-Unsubscribe=One-Click")],
)
def test_one_click_in_another_content_type_is_refused(app, db, content_type, body):
    subscriber = sign_up_subscriber("wrong.type@example.org", BOTH_LISTS)
    before = state(db, "wrong.type@example.org")

    response = one_click(app, unsubscribe_path(subscriber, BOTH_LISTS), None, body, content_type)

    assert response.status_code == 415
    assert "application/x-www-form-urlencoded or multipart/form-data" in response.get_data(as_text=True)
    assert state(db, "wrong.type@example.org") == before
    assert before["newsletter"][0] is SubscriptionStatus.CONFIRMED


def test_one_click_with_a_tampered_token_is_refused(app, db):
    subscriber = sign_up_subscriber("tampered@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, BOTH_LISTS)
    prefix, token = path.rsplit("/", 1)
    tampered = f"{prefix}/{'A' if token[0] != 'A' else 'B'}{token[1:]}"
    before = state(db, "tampered@example.org")

    response = one_click(app, tampered)

    assert response.status_code == 400
    assert "Something in that request wasn&#39;t right" in response.get_data(as_text=True)
    assert state(db, "tampered@example.org") == before


def test_one_click_for_an_erased_subscriber_answers_200_and_records_nothing(app, db):
    subscriber = sign_up_subscriber("gone@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, BOTH_LISTS)
    services.erase_subscriber(subscriber)
    db.session.commit()

    response = one_click(app, path)

    assert response.status_code == 200
    assert "You have been unsubscribed" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0


def test_unsubscribe_page_offers_the_choices_and_changes_nothing(client, db):
    subscriber = sign_up_subscriber("page@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, ["newsletter"])
    before = state(db, "page@example.org")

    page = client.get(path)

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert re.search(rf'<form method="post" action="{re.escape(path)}">', text)
    assert '<button type="submit" class="button">Unsubscribe</button>' in text
    assert f'action="{path}/everything"' in text
    assert "Unsubscribe from everything" in text
    assert "Stop receiving:" in text
    assert "<li>Newsletter</li>" in text
    assert "London protest reminders" not in text
    # Providers and link scanners open this page: it offers to email the preference link, never shows it.
    assert "/preferences/" not in text
    assert f'action="{path}/preferences-link"' in text and "Email me a link to my preferences" in text
    assert state(db, "page@example.org") == before
    assert before["newsletter"][0] is SubscriptionStatus.CONFIRMED


def test_the_button_on_the_unsubscribe_page_leaves_the_list(client, db):
    subscriber = sign_up_subscriber("button@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, ["newsletter"])
    client.get(path)

    response = client.post(path, data={"from_page": "1"})

    assert response.status_code == 200
    assert "You won't receive any more emails from this list." in response.get_data(as_text=True)
    lists = state(db, "button@example.org")
    assert lists["newsletter"][:2] == (SubscriptionStatus.UNSUBSCRIBED, StatusReason.UNSUBSCRIBE_LINK)
    assert lists["london-protest-reminders"][0] is SubscriptionStatus.CONFIRMED


@pytest.mark.parametrize("from_page", [{"from_page": "1"}, {"List-Unsubscribe": "One-Click"}])
def test_leaving_two_lists_at_once_says_so(client, db, from_page):
    subscriber = sign_up_subscriber("two.lists@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, BOTH_LISTS)

    text = client.post(path, data=from_page).get_data(as_text=True)

    assert "You won't receive any more emails from these 2 lists." in text and "this list" not in text
    assert {status for status, *_ in state(db, "two.lists@example.org").values()} == {SubscriptionStatus.UNSUBSCRIBED}


def test_unsubscribe_from_everything_needs_the_csrf_token(client, db):
    subscriber = sign_up_subscriber("no.token@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, ["newsletter"])
    client.get(path)
    before = state(db, "no.token@example.org")

    response = client.post(f"{path}/everything", data={})

    assert response.status_code == 400
    assert "Please reload the page and try again" in response.get_data(as_text=True)
    assert state(db, "no.token@example.org") == before


def test_unsubscribe_from_everything_leaves_every_list(client, db):
    subscriber = sign_up_subscriber("everything@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, ["newsletter"])
    page = client.get(path)

    response = client.post(f"{path}/everything", data=form_fields(page.get_data(as_text=True)))

    assert response.status_code == 200
    assert "You won't receive any more emails from our lists." in response.get_data(as_text=True)
    lists = state(db, "everything@example.org")
    assert set(lists) == set(BOTH_LISTS)
    for status, reason, unsubscribed_at, withdrawn in lists.values():
        assert (status, reason) == (SubscriptionStatus.UNSUBSCRIBED, StatusReason.UNSUBSCRIBE_LINK)
        assert withdrawn == [unsubscribed_at]


def press_email_me_a_link(client, path):
    """Open the unsubscribe page, press Unsubscribe, then "Email me a link to my preferences", as a person would."""
    page = client.get(path).get_data(as_text=True)
    result = client.post(path, data={"from_page": "1"})
    assert "You have been unsubscribed" in result.get_data(as_text=True)
    assert "/preferences/" not in result.get_data(as_text=True) + page
    return client.post(path + "/preferences-link", data=form_fields(result.get_data(as_text=True)))


def test_the_preference_link_is_emailed_to_the_subscriber_and_opens_the_preference_centre(
    client, db, worker, smtp_sink
):
    subscriber = sign_up_subscriber("ask.link@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, ["newsletter"])

    answer = press_email_me_a_link(client, path)

    assert answer.status_code == 200 and "Check your inbox" in answer.get_data(as_text=True)
    [mail] = smtp_sink.wait_for("ask.link@example.org")
    assert mail.message["Subject"] == "Your USC-UK preferences link"
    assert "List-Unsubscribe" not in mail.message
    link = re.search(r"https://lists\.uscuk\.test(/preferences/\S+)", mail.text()).group(1)
    assert "For ask.link@example.org" in client.get(link).get_data(as_text=True)


def test_the_preference_link_mail_is_limited_per_address(app, client, db, worker, smtp_sink):
    subscriber = sign_up_subscriber("flood.me@example.org", BOTH_LISTS)
    path = unsubscribe_path(subscriber, ["newsletter"])
    answers = [press_email_me_a_link(client, path) for _ in range(4)]

    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.get_data(as_text=True) for answer in answers}) == 1  # the same answer every time
    smtp_sink.wait_for("flood.me@example.org", count=3)
    smtp_sink.settle()
    assert len(smtp_sink.to("flood.me@example.org")) == 3  # CONFIRMATION_MAILS_PER_ADDRESS: 3 a day


def test_asking_for_the_preference_link_needs_the_csrf_token(client, db):
    subscriber = sign_up_subscriber("no.csrf@example.org", BOTH_LISTS)

    response = client.post(unsubscribe_path(subscriber, ["newsletter"]) + "/preferences-link", data={})

    assert response.status_code == 400


@pytest.mark.parametrize("reason", [SuppressionReason.COMPLAINT, SuppressionReason.HARD_BOUNCE])
def test_no_preference_link_goes_to_a_suppressed_address(client, db, worker, smtp_sink, reason):
    subscriber = sign_up_subscriber("complained@example.org", BOTH_LISTS)
    suppress("complained@example.org", reason)
    db.session.commit()

    answer = press_email_me_a_link(client, unsubscribe_path(subscriber, ["newsletter"]))

    assert answer.status_code == 200 and "Check your inbox" in answer.get_data(as_text=True)
    smtp_sink.settle()
    assert smtp_sink.to("complained@example.org") == []
