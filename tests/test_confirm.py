"""Double opt-in: the confirmation page, its one-time link, and the welcome mail that follows."""

import json
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode

from tests.conftest import form_fields
from uscmail import links
from uscmail.models import Consent, ConsentMethod, StatusReason, Subscriber, Subscription, SubscriptionStatus
from uscmail.subscriptions import mails, services
from uscmail.subscriptions.consent import CURRENT_VERSION

BASE_URL = "https://lists.uscuk.test"
LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")


def request_signup(db, email, slugs=("newsletter",), name=None) -> tuple[int, str]:
    """Record a pending signup as the form does; return the subscriber id and the link path from its real mail."""
    lists = services.public_lists_by_slug(list(slugs))
    result = services.request_subscription(email, name, lists, ConsentMethod.FORM, CURRENT_VERSION)
    subscriber = db.session.get(Subscriber, result.subscriber_id)
    message = mails.confirmation_message(subscriber, lists)
    db.session.commit()
    return result.subscriber_id, LINK.search(message.get_body(("plain",)).get_content()).group(1)


def state(db, subscriber_id):
    """What the database holds now: each subscription and consent, and the confirmation nonce."""
    db.session.rollback()
    subscriptions = db.session.execute(
        sa.select(Subscription.list_id, Subscription.status, Subscription.status_reason, Subscription.confirmed_at)
        .where(Subscription.subscriber_id == subscriber_id)
        .order_by(Subscription.list_id)
    ).all()
    consents = db.session.execute(
        sa.select(Consent.list_id, Consent.confirmed_at, Consent.withdrawn_at)
        .where(Consent.subscriber_id == subscriber_id)
        .order_by(Consent.list_id)
    ).all()
    nonce = db.session.scalar(sa.select(Subscriber.confirm_nonce).where(Subscriber.id == subscriber_id))
    db.session.rollback()
    return subscriptions, consents, nonce


def token_signed_ago(app, payload, seconds: int) -> str:
    """A confirmation token signed with the app's key as if `seconds` ago."""

    class SignerInThePast(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    serializer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=links.CONFIRM, signer=SignerInThePast)
    return serializer.dumps(payload)


def test_opening_the_link_shows_a_button_and_changes_nothing(client, db):
    subscriber_id, confirm_path = request_signup(db, "amina@example.org", ["newsletter", "london-protest-reminders"])
    before = state(db, subscriber_id)

    page = client.get(confirm_path)

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Confirm my subscription" in text
    assert "Newsletter" in text
    assert "London protest reminders" in text
    assert state(db, subscriber_id) == before
    assert before[0][0].status is SubscriptionStatus.PENDING


def test_pressing_the_button_confirms_and_sends_a_welcome_mail(client, db, worker, smtp_sink):
    subscriber_id, confirm_path = request_signup(db, "bilal@example.org", name="Bilal")
    page = client.get(confirm_path)

    confirmed = client.post(confirm_path, data=form_fields(page.get_data(as_text=True)))

    assert confirmed.status_code == 200
    text = confirmed.get_data(as_text=True)
    assert "You're subscribed" in text
    assert re.search(r'href="/preferences/[^"]+"', text)
    [(_, status, reason, confirmed_at)], [(_, consent_confirmed_at, withdrawn_at)], nonce = state(db, subscriber_id)
    assert (status, reason) == (SubscriptionStatus.CONFIRMED, StatusReason.CONFIRMED_BY_SUBSCRIBER)
    assert abs(confirmed_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert consent_confirmed_at == confirmed_at
    assert withdrawn_at is None
    assert nonce is None
    [welcome] = smtp_sink.wait_for("bilal@example.org")
    assert welcome.message["Subject"] == "Welcome to the Uyghur Solidarity Campaign UK"
    assert "Welcome, Bilal!" in welcome.text()
    assert "Newsletter" in welcome.text()


def test_a_used_link_answers_410_and_sends_no_second_welcome(client, db, worker, smtp_sink):
    subscriber_id, confirm_path = request_signup(db, "chen@example.org")
    fields = form_fields(client.get(confirm_path).get_data(as_text=True))
    assert client.post(confirm_path, data=fields).status_code == 200
    smtp_sink.wait_for("chen@example.org")
    after_first = state(db, subscriber_id)

    again = client.get(confirm_path)
    replayed = client.post(confirm_path, data=fields)

    for response in (again, replayed):
        assert response.status_code == 410
        text = response.get_data(as_text=True)
        assert "This link has already been used" in text
        assert 'href="/subscribe"' in text
        assert "Send me a new link" in text
    assert state(db, subscriber_id) == after_first
    smtp_sink.settle()
    assert len(smtp_sink.to("chen@example.org")) == 1


def test_a_tampered_link_answers_400_and_changes_nothing(client, db):
    subscriber_id, confirm_path = request_signup(db, "dilnur@example.org")
    token = confirm_path.removeprefix("/confirm/")
    before = state(db, subscriber_id)
    fields = form_fields(client.get(confirm_path).get_data(as_text=True))
    tampered = "/confirm/" + ("A" if token[0] != "A" else "B") + token[1:]

    shown = client.get(tampered)
    posted = client.post(tampered, data=fields)

    for response in (shown, posted):
        assert response.status_code == 400
        assert "This link doesn't work" in response.get_data(as_text=True)
    assert state(db, subscriber_id) == before


def test_an_expired_link_answers_410_with_a_link_to_sign_up_again(app, client, db):
    subscriber_id, confirm_path = request_signup(db, "erkin@example.org")
    public_id, nonce = links.read_confirm_token(confirm_path.removeprefix("/confirm/"))
    max_age = app.config["CONFIRM_TOKEN_MAX_AGE"]
    fresh = token_signed_ago(app, [public_id, nonce], max_age - 60)
    expired = token_signed_ago(app, [public_id, nonce], max_age + 60)
    fields = form_fields(client.get(f"/confirm/{fresh}").get_data(as_text=True))
    before = state(db, subscriber_id)

    shown = client.get(f"/confirm/{expired}")
    posted = client.post(f"/confirm/{expired}", data=fields)

    for response in (shown, posted):
        assert response.status_code == 410
        text = response.get_data(as_text=True)
        assert "This link has expired" in text
        assert 'href="/subscribe"' in text
    assert state(db, subscriber_id) == before
    assert before[0][0].status is SubscriptionStatus.PENDING


def test_confirming_without_the_csrf_token_is_refused(client, db):
    subscriber_id, confirm_path = request_signup(db, "fatima@example.org")
    before = state(db, subscriber_id)

    response = client.post(confirm_path, data={})

    assert response.status_code == 400
    assert "Please reload the page and try again" in response.get_data(as_text=True)
    assert state(db, subscriber_id) == before
    # The link is still good for the real button press.
    assert "Confirm my subscription" in client.get(confirm_path).get_data(as_text=True)


def test_the_confirmation_link_holds_no_readable_address(db):
    _, confirm_path = request_signup(db, "gulnar.secret@example.org", name="Gulnar")
    token = confirm_path.removeprefix("/confirm/")

    payload_part, timestamp_part, signature_part = token.split(".")
    payload = json.loads(base64_decode(payload_part))

    assert len(payload) == 2
    assert all(isinstance(value, str) for value in payload)
    decoded = base64_decode(payload_part) + base64_decode(timestamp_part) + base64_decode(signature_part)
    for secret in (b"gulnar", b"example.org", b"Gulnar"):
        assert secret not in decoded
        assert secret.decode() not in token


def test_the_welcome_mail_is_a_list_mail_with_one_click_unsubscribe(client, db, worker, smtp_sink):
    subscriber_id, confirm_path = request_signup(db, "hasan@example.org", ["newsletter", "london-protest-reminders"])
    client.post(confirm_path, data=form_fields(client.get(confirm_path).get_data(as_text=True)))

    [welcome] = smtp_sink.wait_for("hasan@example.org")
    message = welcome.message

    assert re.fullmatch(rf"<{re.escape(BASE_URL)}/unsubscribe/[A-Za-z0-9_.-]+>", message["List-Unsubscribe"])
    unsubscribe_url = message["List-Unsubscribe"].strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Unsubscribe: {unsubscribe_url}" in welcome.text()
    assert f'href="{unsubscribe_url}"' in welcome.html()
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert re.fullmatch(r"<[^<>@\s]+@uscuk\.test>", message["Message-ID"])
    assert abs(parsedate_to_datetime(message["Date"]) - datetime.now(UTC)) < timedelta(minutes=5)
    assert "London protest reminders" in welcome.text()
    # The link in the welcome mail leaves both lists just confirmed.
    public_id, list_ids = links.read_unsubscribe_token(unsubscribe_url.rsplit("/", 1)[1])
    assert list_ids == sorted(row.list_id for row in state(db, subscriber_id)[0])
    assert public_id == db.session.get(Subscriber, subscriber_id).public_id
