"""The supporter journey's mails: confirmation, already-subscribed notice, welcome, preference link.

Each is written in the subscriber's language (or the signup's, for mail about a signup): the worker has no request,
so the templates and subject are rendered inside `force_locale`. Links in mail to a person whose language is not
English open the page in their language (`?lang=`).
"""

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _

from ..extensions import db
from ..i18n import DEFAULT_LOCALE, supported
from ..links import external_url, make_confirm_token, make_preferences_token, make_unsubscribe_token
from ..mail.messages import build_message
from ..models import MailingList, Subscriber
from ..reminders.outlook import protest_outlook


def lists_by_id(list_ids: list[int]) -> list[MailingList]:
    """The lists a mail names, in id order."""
    return list(db.session.scalars(sa.select(MailingList).where(MailingList.id.in_(list_ids)).order_by(MailingList.id)))


def _language(locale: str | None) -> dict:
    # English links stay as they always were; other languages ask the page to open in theirs.
    return {} if locale in (None, DEFAULT_LOCALE) else {"lang": locale}


def mail_locale(subscriber: Subscriber, locale: str | None = None) -> str:
    """The language to write to this subscriber in: `locale` if given and ours, else theirs, else English."""
    return supported(locale) or supported(subscriber.locale) or DEFAULT_LOCALE


def preferences_url(subscriber: Subscriber, locale: str | None = None) -> str:
    """Absolute link to the subscriber's preference centre (opening in `locale`, if given)."""
    token = make_preferences_token(subscriber.public_id)
    return external_url("subscriptions.preferences", token=token, **_language(locale))


def unsubscribe_url(subscriber: Subscriber, list_ids: list[int], locale: str | None = None) -> str:
    """Absolute one-click unsubscribe link for these lists (its page opening in `locale`, if given)."""
    token = make_unsubscribe_token(subscriber.public_id, list_ids)
    return external_url("subscriptions.unsubscribe", token=token, **_language(locale))


def confirmation_message(subscriber: Subscriber, lists: list[MailingList], locale: str | None = None):
    """The double-opt-in mail with a link to the confirmation page, in the language of the signup."""
    token = make_confirm_token(subscriber.public_id, subscriber.confirm_nonce)
    locale = mail_locale(subscriber, locale)
    with force_locale(locale):
        return build_message(
            template="confirm",
            to_email=subscriber.email,
            to_name=subscriber.name,
            subject=_("Please confirm your subscription to USC-UK"),
            confirm_url=external_url("subscriptions.confirm", token=token, **_language(locale)),
            lists=sorted(lists, key=lambda mailing_list: mailing_list.id),
        )


def already_subscribed_message(subscriber: Subscriber, lists: list[MailingList], locale: str | None = None):
    """Sent instead of a confirmation when every list asked for is already confirmed."""
    locale = mail_locale(subscriber, locale)
    with force_locale(locale):
        return build_message(
            template="already_subscribed",
            to_email=subscriber.email,
            to_name=subscriber.name,
            subject=_("You are already subscribed to USC-UK"),
            preferences_url=preferences_url(subscriber, locale),
            lists=sorted(lists, key=lambda mailing_list: mailing_list.id),
        )


def welcome_message(subscriber: Subscriber, list_ids: list[int]):
    """The first list mail after confirming, naming the next protest; it carries the one-click unsubscribe headers."""
    locale = mail_locale(subscriber)
    with force_locale(locale):
        return build_message(
            template="welcome",
            to_email=subscriber.email,
            to_name=subscriber.name,
            subject=_("Welcome to the Uyghur Solidarity Campaign UK"),
            unsubscribe_url=unsubscribe_url(subscriber, list_ids, locale),
            preferences_url=preferences_url(subscriber, locale),
            lists=lists_by_id(list_ids),
            protests=protest_outlook(),
            events_url=external_url("events.index", lang=locale) if locale != "en" else external_url("events.index"),
            calendar_url=external_url("events.feed"),
        )


def preferences_link_message(subscriber: Subscriber):
    """The link to the preference centre, asked for on an unsubscribe page (which never shows it itself)."""
    locale = mail_locale(subscriber)
    with force_locale(locale):
        return build_message(
            template="preferences_link",
            to_email=subscriber.email,
            to_name=subscriber.name,
            subject=_("Your USC-UK preferences link"),
            preferences_url=preferences_url(subscriber, locale),
        )
