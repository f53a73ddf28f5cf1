"""The whole supporter journey over real parts: form, worker, SMTP, confirmation, welcome, one-click unsubscribe."""

import re

import sqlalchemy as sa

from tests.conftest import form_fields
from uscmail.models import StatusReason, Subscription, SubscriptionStatus

LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")


def subscription_status(db, email):
    from uscmail.models import Subscriber

    rows = db.session.execute(
        sa.select(Subscription.status, Subscription.status_reason).join(Subscriber).where(Subscriber.email == email)
    ).all()
    db.session.rollback()
    return rows


def test_signup_confirm_welcome_and_one_click_unsubscribe(client, db, worker, smtp_sink, signup):
    response = signup("Amina@Example.org", name="Amina")
    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/thanks"

    [confirmation] = smtp_sink.wait_for("amina@example.org")
    assert confirmation.message["Subject"] == "Please confirm your subscription to USC-UK"
    assert confirmation.message.get_content_type() == "multipart/alternative"
    confirm_path = LINK.search(confirmation.text()).group(1)
    assert confirm_path.startswith("/confirm/")
    assert "amina" not in confirm_path.lower()
    assert subscription_status(db, "amina@example.org") == [(SubscriptionStatus.PENDING, StatusReason.SIGNUP_FORM)]

    # A GET, as a mail scanner would do, changes nothing.
    page = client.get(confirm_path)
    assert page.status_code == 200
    assert "Confirm my subscription" in page.get_data(as_text=True)
    assert subscription_status(db, "amina@example.org")[0][0] is SubscriptionStatus.PENDING

    confirmed = client.post(confirm_path, data=form_fields(page.get_data(as_text=True)))
    assert confirmed.status_code == 200
    assert subscription_status(db, "amina@example.org")[0][0] is SubscriptionStatus.CONFIRMED

    welcome = smtp_sink.wait_for("amina@example.org", count=2)[1]
    assert welcome.message["Subject"] == "Welcome to the Uyghur Solidarity Campaign UK"
    unsubscribe_url = welcome.message["List-Unsubscribe"].strip("<>")
    assert welcome.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe_url in welcome.text()
    assert unsubscribe_url in welcome.html()

    # Gmail's one-click POST: no cookie, no CSRF token.
    one_click = client.application.test_client().post(
        unsubscribe_url.removeprefix("https://lists.uscuk.test"),
        data={"List-Unsubscribe": "One-Click"},
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    assert subscription_status(db, "amina@example.org") == [(SubscriptionStatus.UNSUBSCRIBED, StatusReason.ONE_CLICK)]
