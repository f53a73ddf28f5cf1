"""Link tokens: no address inside, one purpose each, old keys accepted during rotation, no expiry for unsubscribing."""

import json
import re
import time

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner
from itsdangerous.encoding import base64_decode

from tests.conftest import form_fields
from tests.factories import sign_up_subscriber
from uscmail import links
from uscmail.models import MailingList, Subscriber, Subscription, SubscriptionStatus
from uscmail.subscriptions import mails, services

OLD_KEY = "retired-signing-key-" + "o" * 32
MIDDLE_KEY = "previous-signing-key-" + "m" * 32
NEW_KEY = "current-signing-key-" + "n" * 32
LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")


def newsletter_status(db, email):
    db.session.rollback()
    status = db.session.scalar(
        sa.select(Subscription.status)
        .join(Subscriber)
        .join(MailingList)
        .where(Subscriber.email == email, MailingList.slug == "newsletter")
    )
    db.session.rollback()
    return status


def links_signed_with(app, monkeypatch, key, db, email, confirm):
    """Paths of the unsubscribe, preferences and confirmation links made while `key` was the signing key."""
    subscriber = sign_up_subscriber(email, confirmed=confirm)
    with monkeypatch.context() as patch:
        patch.setitem(app.config, "SECRET_KEY", key)
        patch.setitem(app.config, "SECRET_KEY_FALLBACKS", [])
        [newsletter] = services.public_lists_by_slug(["newsletter"])
        unsubscribe = mails.unsubscribe_url(subscriber, [newsletter.id])
        preferences = mails.preferences_url(subscriber)
        confirm_path = "/confirm/" + links.make_confirm_token(subscriber.public_id, subscriber.confirm_nonce or "")
    return (
        unsubscribe.removeprefix("https://lists.uscuk.test"),
        preferences.removeprefix("https://lists.uscuk.test"),
        confirm_path,
    )


def payload_of(token: str):
    return json.loads(base64_decode(token.split(".")[0]))


def test_unsubscribe_and_preference_links_hold_no_readable_address(db):
    subscriber = sign_up_subscriber("nurgul.private@example.org", name="Nurgul Private")
    [newsletter] = services.public_lists_by_slug(["newsletter"])
    welcome = mails.welcome_message(subscriber, [newsletter.id])
    # The personal links (the welcome mail also links the public protests page, which carries no token).
    links = [
        path for path in LINK.findall(welcome.get_body(("plain",)).get_content()) if not path.startswith("/events")
    ]
    assert sorted(path.split("/")[1] for path in links) == ["preferences", "unsubscribe"]

    for path in links:
        token = path.rsplit("/", 1)[1]
        decoded = b"".join(base64_decode(part) for part in token.split("."))
        for secret in ("nurgul", "private", "example.org", "Nurgul"):
            assert secret.encode() not in decoded
            assert secret not in token
    payloads = {path.split("/")[1]: payload_of(path.rsplit("/", 1)[1]) for path in links}
    assert payloads == {"unsubscribe": [subscriber.public_id, [newsletter.id]], "preferences": subscriber.public_id}


def test_each_token_works_only_for_its_own_purpose(client, db):
    subscriber = sign_up_subscriber("purpose@example.org")
    [newsletter] = services.public_lists_by_slug(["newsletter"])
    unsubscribe_token = links.make_unsubscribe_token(subscriber.public_id, [newsletter.id])
    preferences_token = links.make_preferences_token(subscriber.public_id)
    confirm_token = links.make_confirm_token(subscriber.public_id, "nonce")

    for wrong in (unsubscribe_token, confirm_token):
        assert client.get(f"/preferences/{wrong}").status_code == 400
    for wrong in (unsubscribe_token, preferences_token):
        assert client.get(f"/confirm/{wrong}").status_code == 400
    for wrong in (preferences_token, confirm_token):
        assert client.get(f"/unsubscribe/{wrong}").status_code == 400
        one_click = client.application.test_client(use_cookies=False).post(
            f"/unsubscribe/{wrong}", data={"List-Unsubscribe": "One-Click"}
        )
        assert one_click.status_code == 400
    assert newsletter_status(db, "purpose@example.org") is SubscriptionStatus.CONFIRMED


def test_links_signed_with_a_retired_key_keep_working_while_it_is_a_fallback(
    app, client, db, monkeypatch, worker, smtp_sink
):
    unsubscribe, preferences, _ = links_signed_with(app, monkeypatch, OLD_KEY, db, "rotated@example.org", True)
    _, _, confirm_path = links_signed_with(app, monkeypatch, OLD_KEY, db, "rotated-pending@example.org", False)
    monkeypatch.setitem(app.config, "SECRET_KEY", NEW_KEY)
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [MIDDLE_KEY, OLD_KEY])

    page = client.get(preferences)
    assert page.status_code == 200
    assert "rotated@example.org" in page.get_data(as_text=True)
    assert "Unsubscribe from everything" in client.get(unsubscribe).get_data(as_text=True)

    confirm_page = client.get(confirm_path)
    assert "Confirm my subscription" in confirm_page.get_data(as_text=True)
    assert client.post(confirm_path, data=form_fields(confirm_page.get_data(as_text=True))).status_code == 200
    assert newsletter_status(db, "rotated-pending@example.org") is SubscriptionStatus.CONFIRMED
    smtp_sink.wait_for("rotated-pending@example.org")

    one_click = app.test_client(use_cookies=False).post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert newsletter_status(db, "rotated@example.org") is SubscriptionStatus.UNSUBSCRIBED


def test_links_signed_with_a_retired_key_are_refused_once_it_is_dropped(app, client, db, monkeypatch):
    unsubscribe, preferences, _ = links_signed_with(app, monkeypatch, OLD_KEY, db, "dropped@example.org", True)
    _, _, confirm_path = links_signed_with(app, monkeypatch, OLD_KEY, db, "dropped-pending@example.org", False)
    monkeypatch.setitem(app.config, "SECRET_KEY", NEW_KEY)
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [MIDDLE_KEY])

    assert client.get(preferences).status_code == 400
    assert client.get(unsubscribe).status_code == 400
    refused = client.get(confirm_path)
    assert refused.status_code == 400
    assert "This link doesn't work" in refused.get_data(as_text=True)
    one_click = app.test_client(use_cookies=False).post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 400
    assert newsletter_status(db, "dropped@example.org") is SubscriptionStatus.CONFIRMED
    assert newsletter_status(db, "dropped-pending@example.org") is SubscriptionStatus.PENDING


@pytest.mark.parametrize("kind", ["unsubscribe", "preferences", "confirm"])
def test_new_links_are_signed_with_the_current_key_not_a_fallback(app, db, monkeypatch, kind):
    make, read = {
        "unsubscribe": (lambda: links.make_unsubscribe_token("abc", [1]), links.read_unsubscribe_token),
        "preferences": (lambda: links.make_preferences_token("abc"), links.read_preferences_token),
        "confirm": (lambda: links.make_confirm_token("abc", "nonce"), links.read_confirm_token),
    }[kind]
    monkeypatch.setitem(app.config, "SECRET_KEY", NEW_KEY)
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [MIDDLE_KEY, OLD_KEY])
    token = make()

    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [])
    assert read(token)
    monkeypatch.setitem(app.config, "SECRET_KEY", OLD_KEY)
    with pytest.raises(links.TokenInvalid):
        read(token)


def test_unsubscribe_and_preference_links_never_expire(app, db, monkeypatch):
    subscriber = sign_up_subscriber("decade@example.org")
    [newsletter] = services.public_lists_by_slug(["newsletter"])
    unsubscribe = mails.unsubscribe_url(subscriber, [newsletter.id]).removeprefix("https://lists.uscuk.test")
    preferences = mails.preferences_url(subscriber).removeprefix("https://lists.uscuk.test")
    confirm_token = links.make_confirm_token(subscriber.public_id, "nonce")
    # No timestamp is signed into them: payload and signature only.
    assert len(unsubscribe.rsplit("/", 1)[1].split(".")) == 2
    assert len(preferences.rsplit("/", 1)[1].split(".")) == 2

    ten_years = 10 * 365 * 24 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) + ten_years)
    visitor = app.test_client(use_cookies=False)

    with pytest.raises(links.TokenExpired):
        links.read_confirm_token(confirm_token)
    page = visitor.get(preferences)
    assert page.status_code == 200
    assert "decade@example.org" in page.get_data(as_text=True)
    assert visitor.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert newsletter_status(db, "decade@example.org") is SubscriptionStatus.UNSUBSCRIBED
