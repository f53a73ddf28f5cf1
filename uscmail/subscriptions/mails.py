"""The supporter journey's mails: confirmation, already-subscribed notice, welcome, preference link."""

import sqlalchemy as sa

from ..extensions import db
from ..links import external_url, make_confirm_token, make_preferences_token, make_unsubscribe_token
from ..mail.messages import build_message
from ..models import MailingList, Subscriber
from ..reminders.outlook import protest_outlook


def _lists(list_ids: list[int]) -> list[MailingList]:
    return list(db.session.scalars(sa.select(MailingList).where(MailingList.id.in_(list_ids)).order_by(MailingList.id)))


def preferences_url(subscriber: Subscriber) -> str:
    """Absolute link to the subscriber's preference centre."""
    return external_url("subscriptions.preferences", token=make_preferences_token(subscriber.public_id))


def unsubscribe_url(subscriber: Subscriber, list_ids: list[int]) -> str:
    """Absolute one-click unsubscribe link for these lists."""
    token = make_unsubscribe_token(subscriber.public_id, list_ids)
    return external_url("subscriptions.unsubscribe", token=token)


def confirmation_message(subscriber: Subscriber, list_ids: list[int]):
    """The double-opt-in mail with a link to the confirmation page."""
    token = make_confirm_token(subscriber.public_id, subscriber.confirm_nonce)
    return build_message(
        template="confirm",
        to_email=subscriber.email,
        to_name=subscriber.name,
        subject="Please confirm your subscription to USC-UK",
        confirm_url=external_url("subscriptions.confirm", token=token),
        lists=_lists(list_ids),
    )


def already_subscribed_message(subscriber: Subscriber, list_ids: list[int]):
    """Sent instead of a confirmation when every list asked for is already confirmed."""
    return build_message(
        template="already_subscribed",
        to_email=subscriber.email,
        to_name=subscriber.name,
        subject="You are already subscribed to USC-UK",
        preferences_url=preferences_url(subscriber),
        lists=_lists(list_ids),
    )


def welcome_message(subscriber: Subscriber, list_ids: list[int]):
    """The first list mail after confirming, naming the next protest; it carries the one-click unsubscribe headers."""
    return build_message(
        template="welcome",
        to_email=subscriber.email,
        to_name=subscriber.name,
        subject="Welcome to the Uyghur Solidarity Campaign UK",
        unsubscribe_url=unsubscribe_url(subscriber, list_ids),
        preferences_url=preferences_url(subscriber),
        lists=_lists(list_ids),
        protests=protest_outlook(),
        events_url=external_url("events.index"),
        calendar_url=external_url("events.feed"),
    )


def preferences_link_message(subscriber: Subscriber):
    """The link to the preference centre, asked for on an unsubscribe page (which never shows it itself)."""
    return build_message(
        template="preferences_link",
        to_email=subscriber.email,
        to_name=subscriber.name,
        subject="Your USC-UK preferences link",
        preferences_url=preferences_url(subscriber),
    )
