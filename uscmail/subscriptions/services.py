"""The supporter journey: request a subscription, confirm it, unsubscribe, manage preferences, erase.

Services flush but never commit; the caller (a view, a task, the CLI) commits and only then queues mail.
"""

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import limits
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..extensions import db
from ..models import (
    Consent,
    ConsentMethod,
    ConsentWording,
    MailingList,
    SignupRequest,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
    utcnow,
)
from ..suppression import address_hmac, suppress, suppression_reasons
from ..validation import InvalidInput
from .consent import current_wording, wording


def claim_signup_mail(subscriber_id: int) -> bool:
    """Count one signup mail (confirmation or "already subscribed") against CONFIRMATION_MAILS_PER_ADDRESS.

    One atomic UPDATE of the subscriber's window and count, so every web and worker process, on SQLite or PostgreSQL,
    shares the same counter. False once the limit is reached: that mail is not sent. The caller commits.
    """
    return subscriber_id in claim_signup_mails([subscriber_id])


def claim_signup_mails(subscriber_ids: list[int]) -> set[int]:
    """claim_signup_mail for one mail to each of several different subscribers, in one UPDATE: those allowed."""
    rate = limits.parse(current_app.config["CONFIRMATION_MAILS_PER_ADDRESS"])
    now = utcnow()
    window_over = sa.or_(
        Subscriber.signup_mail_window_start.is_(None),
        Subscriber.signup_mail_window_start <= now - timedelta(seconds=rate.get_expiry()),
    )
    claimed = db.session.scalars(
        sa.update(Subscriber)
        .where(Subscriber.id.in_(subscriber_ids), sa.or_(window_over, Subscriber.signup_mail_count < rate.amount))
        .values(
            signup_mail_count=sa.case((window_over, 1), else_=Subscriber.signup_mail_count + 1),
            signup_mail_window_start=sa.case((window_over, now), else_=Subscriber.signup_mail_window_start),
        )
        .returning(Subscriber.id)
        .execution_options(synchronize_session=False)
    )
    return set(claimed)


class PublicList(NamedTuple):
    """A list as the signup form and the preference centre show it: what they read of it on every view."""

    id: int
    slug: str
    name: str
    description: str


# The tables the busiest pages' statements, built once below, read and write.
_lists, _subscribers = MailingList.__table__, Subscriber.__table__
_subscriptions, _consents = Subscription.__table__, Consent.__table__
PUBLIC_LISTS = (
    sa.select(_lists.c.id, _lists.c.slug, _lists.c.name, _lists.c.description)
    .where(_lists.c.public.is_(True), _lists.c.archived.is_(False))
    .order_by(_lists.c.id)
)


def public_lists() -> list[PublicList]:
    """Lists offered on the signup form, in a stable order. One statement built once, and plain rows, not objects:
    the busiest pages read them on every view."""
    return [PublicList(*row) for row in db.session.connection().execute(PUBLIC_LISTS)]


# The lists the preference centre offers a person: the public ones, and those they are on now (confirmed or pending).
# A private or archived list they left, or were removed from, is not offered again.
ON_NOW = (SubscriptionStatus.CONFIRMED, SubscriptionStatus.PENDING)


def offered_lists(subscriber: Subscriber) -> list[MailingList | PublicList]:
    """The lists the preference centre offers this person (see ON_NOW), in id order."""
    offered = {mailing_list.id: mailing_list for mailing_list in public_lists()}
    for subscription in subscriber.subscriptions:
        if subscription.status in ON_NOW:
            offered.setdefault(subscription.list_id, subscription.mailing_list)
    return [offered[list_id] for list_id in sorted(offered)]


@dataclass(frozen=True)
class PreferenceView:
    """What the preference page shows of a person when it is opened: their address, name and language, the lists it
    offers them (id and name, as offered_lists) and those they are confirmed on."""

    email: str
    name: str | None
    locale: str
    offered: list[tuple[int, str]]
    confirmed_list_ids: list[int]


# Each list the preference centre offers (offered_lists' rule), with the person's subscription to it if any; a row
# with no list if none is offered.
_on_now = _subscriptions.alias("on_now")
_ON_NOW_IDS = (
    sa.select(_on_now.c.list_id)
    .where(_on_now.c.subscriber_id == _subscribers.c.id, _on_now.c.status.in_(ON_NOW))
    .correlate(_subscribers)
)
PREFERENCE_VIEW = (
    sa.select(
        _subscribers.c.email,
        _subscribers.c.name,
        _subscribers.c.locale,
        _lists.c.id.label("list_id"),
        _lists.c.name.label("list_name"),
        _subscriptions.c.status,
    )
    .select_from(
        _subscribers.outerjoin(
            _lists,
            sa.or_(sa.and_(_lists.c.public.is_(True), _lists.c.archived.is_(False)), _lists.c.id.in_(_ON_NOW_IDS)),
        ).outerjoin(
            _subscriptions,
            sa.and_(_subscriptions.c.subscriber_id == _subscribers.c.id, _subscriptions.c.list_id == _lists.c.id),
        )
    )
    .where(_subscribers.c.public_id == sa.bindparam("public_id"))
    .order_by(_lists.c.id)
)


def preference_view(public_id: str) -> PreferenceView | None:
    """The preference page of the subscriber a token points to, read in one statement as plain values (the page is
    opened far more often than saved); None if they were erased."""
    rows = db.session.connection().execute(PREFERENCE_VIEW, {"public_id": public_id}).all()
    if not rows:
        return None
    offered = [(row.list_id, row.list_name) for row in rows if row.list_id is not None]
    confirmed = [row.list_id for row in rows if row.status is SubscriptionStatus.CONFIRMED]
    person = rows[0]
    return PreferenceView(person.email, person.name, person.locale, offered, confirmed)


def public_lists_by_slug(slugs: list[str], offered: list[PublicList] | None = None) -> list[PublicList]:
    """The public lists named by slug (among `offered`, if the caller has them); InvalidInput if any is unknown or none
    is given."""
    if not slugs:
        raise InvalidInput(_("Please choose at least one list."))
    available = {mailing_list.slug: mailing_list for mailing_list in (offered or public_lists())}
    unknown = [slug for slug in slugs if slug not in available]
    if unknown:
        raise InvalidInput(_("Unknown list: %(lists)s", lists=", ".join(sorted(set(map(str, unknown)))[:5])))
    return [available[slug] for slug in dict.fromkeys(slugs)]


@dataclass(frozen=True)
class SignupResult:
    """What a signup request led to: the subscriber to mail and the lists asked for, or nothing to send.

    `subscriber`, `lists` (those asked for) and `pending_list_ids` (those of them not confirmed: each has an open
    opt-in now) are given by request_subscription, which has them loaded, so the mail can be written without reading
    them again.
    """

    subscriber_id: int | None
    list_ids: list[int]
    locale: str = "en"
    subscriber: Subscriber | None = None
    lists: list[MailingList] | None = None
    pending_list_ids: list[int] | None = None


@dataclass(frozen=True)
class Asked:
    """One signup as request_subscriptions takes it."""

    email: str
    name: str | None
    lists: list[MailingList]
    method: ConsentMethod
    wording_version: str
    requested_at: datetime | None = None
    locale: str = "en"


def request_subscription(
    email: str,
    name: str | None,
    lists: list[MailingList],
    method: ConsentMethod,
    wording_version: str,
    requested_at: datetime | None = None,
    locale: str = "en",
) -> SignupResult:
    """Record a signup request: a pending subscription and consent per list that is not already confirmed.

    An existing subscriber's stored data (name, language, confirmed or unsubscribed rows) is never changed by an
    unconfirmed request; the change happens on confirmation. A new subscriber gets the signup's language. Suppressed
    addresses are not recorded at all.
    """
    [result] = request_subscriptions([Asked(email, name, lists, method, wording_version, requested_at, locale)])
    return result


def request_subscriptions(signups: list[Asked]) -> list[SignupResult]:
    """request_subscription for several signups, in the order given, in a few statements whatever their number:
    the addresses' suppressions, subscribers (with their subscriptions) and open opt-ins read in one query each,
    then the new rows written in one flush. Two signups of one address act as one after the other."""
    if not signups:
        return []
    reasons = suppression_reasons([signup.email for signup in signups])
    # A person whose old, unsubscribed record was purged may come back by confirming again; no one else may.
    welcome = (None, SuppressionReason.UNSUBSCRIBED)
    allowed = {signup.email for signup in signups if reasons.get(signup.email) in welcome}
    known = {}
    if allowed:
        query = (
            sa.select(Subscriber).where(Subscriber.email.in_(allowed)).options(selectinload(Subscriber.subscriptions))
        )
        known = {subscriber.email: subscriber for subscriber in db.session.scalars(query)}
    # (address, list, wording version) of each unconfirmed, unwithdrawn, unexpired opt-in; someone new has none.
    open_consents = set()
    if known:
        emails = {subscriber.id: subscriber.email for subscriber in known.values()}
        query = sa.select(Consent.subscriber_id, Consent.list_id, Consent.wording_version).where(
            Consent.subscriber_id.in_(emails),
            Consent.confirmed_at.is_(None),
            Consent.withdrawn_at.is_(None),
            Consent.created_at > utcnow() - _confirm_window(),
        )
        rows = db.session.execute(query)
        open_consents = {(emails[row.subscriber_id], row.list_id, row.wording_version) for row in rows}
    # Held here: the session keeps only weak references, so each lookup would read the row again.
    wordings = {version: wording(version) for version in {s.wording_version for s in signups if s.email in allowed}}
    results = []
    with db.session.no_autoflush:
        for signup in signups:
            if signup.email not in allowed:
                results.append(None)
                continue
            subscriber = known.get(signup.email)
            if subscriber is None:
                subscriber = Subscriber(
                    email=signup.email,
                    name=signup.name,
                    locale=signup.locale,
                    confirm_nonce=secrets.token_urlsafe(16),
                    subscriptions=[],
                )
                db.session.add(subscriber)
                known[signup.email] = subscriber
            shown = wordings[signup.wording_version]
            results.append((subscriber, _request_lists(subscriber, signup, shown, open_consents)))
    db.session.flush()
    return [
        SignupResult(None, [], signup.locale)
        if found is None
        else SignupResult(found[0].id, [m.id for m in signup.lists], signup.locale, found[0], signup.lists, found[1])
        for signup, found in zip(signups, results, strict=True)
    ]


def _request_lists(
    subscriber: Subscriber, signup: Asked, shown: ConsentWording, open_consents: set[tuple[str, int, str]]
) -> list[int]:
    """Add the pending subscriptions and opt-ins one signup asks for to its subscriber (new or known), with the
    wording it was shown; the lists it asked for that are not confirmed."""
    existing = {s.list_id: s for s in subscriber.subscriptions}
    reason = StatusReason.SIGNUP_API if signup.method is ConsentMethod.API else StatusReason.SIGNUP_FORM
    requested_at = signup.requested_at or utcnow()
    pending = []
    for mailing_list in signup.lists:
        subscription = existing.get(mailing_list.id)
        if subscription is not None and subscription.status is SubscriptionStatus.CONFIRMED:
            continue
        pending.append(mailing_list.id)
        if subscription is None:
            subscription = Subscription(
                list_id=mailing_list.id, status=SubscriptionStatus.PENDING, status_reason=reason
            )
            subscriber.subscriptions.append(subscription)
            existing[mailing_list.id] = subscription
        key = (subscriber.email, mailing_list.id, shown.version)
        if key not in open_consents:
            open_consents.add(key)
            subscriber.consents.add(
                Consent(
                    list_id=mailing_list.id,
                    method=signup.method,
                    wording_version=shown.version,
                    wording_sha256=shown.sha256,
                    created_at=requested_at,
                )
            )
    if subscriber.confirm_nonce is None:
        subscriber.confirm_nonce = secrets.token_urlsafe(16)
    return pending


RECORD_SIGNUP = sa.insert(SignupRequest.__table__).returning(SignupRequest.__table__.c.id)


def record_signup_request(
    email: str,
    name: str | None,
    lists: list[PublicList],
    method: ConsentMethod,
    wording_version: str,
    locale: str = "en",
) -> int:
    """Store a validated signup for the worker to apply: the same single INSERT whatever the address's state (built
    once: a signup POST is among the busiest requests)."""
    values = {
        "email": email,
        "name": name,
        "list_ids": [mailing_list.id for mailing_list in lists],
        "method": method,
        "wording_version": wording_version,
        "locale": locale,
    }
    return db.session.connection().execute(RECORD_SIGNUP, values).scalar_one()


def apply_signup_request(request_id: int) -> SignupResult | None:
    """Turn a stored signup into pending subscriptions and consent (request_subscription), once: the row, locked
    here, is marked with its subscriber and kept until its mail is handed over (forget_signup_request). Asked again
    for a row already applied (its worker lost before the mail went), the result names the subscriber the mail is
    owed to and nothing is applied twice.

    None if the row is gone (the signup is done: a duplicate task, or the sweeper got there first).
    """
    signup = db.session.get(SignupRequest, request_id, with_for_update=True)
    if signup is None:
        return None
    if signup.subscriber_id is not None:
        return SignupResult(signup.subscriber_id, list(signup.list_ids), signup.locale)
    [result] = _apply_locked([signup])
    return result


def apply_signup_requests(request_ids: list[int]) -> list[tuple[int, SignupResult]]:
    """apply_signup_request for a batch of stored signups, in one transaction: their rows locked, and the lists they
    ask for read, once for the batch. Rows already applied (their mail owed: the sweeper's) or gone are left out;
    each result is paired with its row's id, oldest first."""
    signups = db.session.scalars(
        sa.select(SignupRequest)
        .where(SignupRequest.id.in_(request_ids), SignupRequest.subscriber_id.is_(None))
        .order_by(SignupRequest.id)
        .with_for_update()
    ).all()
    return list(zip([signup.id for signup in signups], _apply_locked(signups), strict=True))


def _apply_locked(signups: list[SignupRequest]) -> list[SignupResult]:
    """Apply stored signups whose rows this transaction has locked, and mark each row with its subscriber."""
    if not signups:
        return []
    wanted = {list_id for signup in signups for list_id in signup.list_ids}
    lists = {m.id: m for m in db.session.scalars(sa.select(MailingList).where(MailingList.id.in_(wanted)))}
    results = request_subscriptions(
        [
            Asked(
                signup.email,
                signup.name,
                [lists[list_id] for list_id in signup.list_ids if list_id in lists],
                signup.method,
                signup.wording_version,
                requested_at=signup.created_at,
                locale=signup.locale,
            )
            for signup in signups
        ]
    )
    for signup, result in zip(signups, results, strict=True):
        signup.subscriber_id = result.subscriber_id
    db.session.flush()
    return results


def forget_signup_request(request_id: int) -> None:
    """Delete a stored signup once nothing more is owed for it (its mail handed over, or none to send)."""
    forget_signup_requests([request_id])


def forget_signup_requests(request_ids: list[int]) -> None:
    """forget_signup_request for several at once."""
    if request_ids:
        db.session.execute(sa.delete(SignupRequest).where(SignupRequest.id.in_(request_ids)))


def stale_signup_request_ids(older_than: timedelta) -> list[int]:
    """Signups stored but not applied for a while (their task was lost); the sweeper applies them."""
    cutoff = utcnow() - older_than
    query = sa.select(SignupRequest.id).where(SignupRequest.created_at < cutoff).order_by(SignupRequest.id)
    return list(db.session.scalars(query.limit(1000)))


def _confirm_window() -> timedelta:
    return timedelta(seconds=current_app.config["CONFIRM_TOKEN_MAX_AGE"])


def open_consent_list_ids(subscriber: Subscriber, list_ids: list[int] | None = None) -> list[int]:
    """Lists with an unconfirmed, unwithdrawn, unexpired opt-in for this subscriber (optionally among list_ids)."""
    query = sa.select(Consent.list_id).where(
        Consent.subscriber_id == subscriber.id,
        Consent.confirmed_at.is_(None),
        Consent.withdrawn_at.is_(None),
        Consent.created_at > utcnow() - _confirm_window(),
    )
    if list_ids is not None:
        query = query.where(Consent.list_id.in_(list_ids))
    return sorted(set(db.session.scalars(query)))


def subscriber_by_public_id(public_id: str, with_subscriptions: bool = False) -> Subscriber | None:
    """The subscriber a token points to, or None if erased; with_subscriptions loads their subscriptions (and lists)
    in the same statement, for a page that shows them."""
    query = sa.select(Subscriber).where(Subscriber.public_id == public_id)
    if with_subscriptions:
        query = query.options(joinedload(Subscriber.subscriptions))
    return db.session.scalars(query).unique().one_or_none()


SUBSCRIBER_ID = sa.select(_subscribers.c.id).where(_subscribers.c.public_id == sa.bindparam("public_id"))


def subscriber_id_by_public_id(public_id: str) -> int | None:
    """The id of the subscriber a token points to, or None if erased (no object is loaded)."""
    return db.session.connection().execute(SUBSCRIBER_ID, {"public_id": public_id}).scalar()


def confirmation_is_open(subscriber: Subscriber | None, nonce: str) -> bool:
    """True if a confirmation link with this nonce can still be used (constant-time comparison)."""
    return (
        subscriber is not None
        and subscriber.confirm_nonce is not None
        and hmac.compare_digest(subscriber.confirm_nonce, nonce)
    )


def confirm_subscription(subscriber: Subscriber, locale: str | None = None) -> list[int]:
    """Confirm every open opt-in of the subscriber; return the ids of the lists newly confirmed.

    The confirmation nonce is cleared, so the link that led here stops working. With `locale` (the language the
    confirmation page was shown in, by the person's choice), it becomes the language of their mail.
    """
    if locale is not None:
        subscriber.locale = locale
    now = utcnow()
    list_ids = open_consent_list_ids(subscriber)
    by_list = {s.list_id: s for s in subscriber.subscriptions}
    newly_confirmed = []
    for list_id in list_ids:
        subscription = by_list.get(list_id)
        if subscription is None:
            subscription = Subscription(
                subscriber=subscriber,
                list_id=list_id,
                status=SubscriptionStatus.PENDING,
            )
            db.session.add(subscription)
        if subscription.status is not SubscriptionStatus.CONFIRMED:
            subscription.status = SubscriptionStatus.CONFIRMED
            subscription.status_reason = StatusReason.CONFIRMED_BY_SUBSCRIBER
            subscription.confirmed_at = now
            subscription.unsubscribed_at = None
            newly_confirmed.append(list_id)
    db.session.execute(
        sa.update(Consent)
        .where(
            Consent.subscriber_id == subscriber.id,
            Consent.list_id.in_(list_ids),
            Consent.confirmed_at.is_(None),
            Consent.withdrawn_at.is_(None),
        )
        .values(confirmed_at=now)
    )
    subscriber.confirm_nonce = None
    if newly_confirmed:
        db.session.execute(
            sa.delete(Suppression).where(
                Suppression.address_hmac == address_hmac(subscriber.email),
                Suppression.reason == SuppressionReason.UNSUBSCRIBED,
            )
        )
    db.session.flush()
    return newly_confirmed


UNSUBSCRIBED = SubscriptionStatus.UNSUBSCRIBED
# The bounce service's reasons come in at most two kinds a call (a bounce, a complaint): those given "other" get the
# second reason, the rest the first, in one statement.
UNSUBSCRIBE_EVERYWHERE = (
    sa.update(Subscription.__table__)
    .where(
        Subscription.subscriber_id.in_(sa.bindparam("ids", expanding=True)),
        Subscription.status != sa.bindparam("unsubscribed", type_=Subscription.status.type),
    )
    .values(
        status=sa.bindparam("unsubscribed"),
        status_reason=sa.case(
            (
                Subscription.subscriber_id.in_(sa.bindparam("other", expanding=True)),
                sa.bindparam("other_reason", type_=Subscription.status_reason.type),
            ),
            else_=sa.bindparam("reason", type_=Subscription.status_reason.type),
        ),
        unsubscribed_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
    )
)
WITHDRAW_EVERY_CONSENT = (
    sa.update(Consent.__table__)
    .where(Consent.subscriber_id.in_(sa.bindparam("ids", expanding=True)), Consent.withdrawn_at.is_(None))
    .values(withdrawn_at=sa.bindparam("now"))
)


def unsubscribe_everywhere(reasons: dict[int, StatusReason]) -> None:
    """`unsubscribe(subscriber_id, None, reason)` for many subscribers (by id, with the reason for each, of at most two
    kinds) in two statements, for the bounce service, which handles thousands a minute and loads no subscriber."""
    if not reasons:
        return
    first, *others = sorted(set(reasons.values()))
    if len(others) > 1:
        raise ValueError("unsubscribe_everywhere takes at most two reasons at a time")
    other = others[0] if others else first
    now = utcnow()
    ids = list(reasons)
    connection = db.session.connection()  # no ORM objects to keep in step: the caller loaded none
    connection.execute(
        UNSUBSCRIBE_EVERYWHERE,
        {
            "ids": ids,
            "other": [subscriber_id for subscriber_id, reason in reasons.items() if reason is other and other != first],
            "other_reason": other,
            "reason": first,
            "now": now,
            "unsubscribed": UNSUBSCRIBED,
        },
    )
    connection.execute(WITHDRAW_EVERY_CONSENT, {"ids": ids, "now": now})


def _leaving(
    table: sa.Table, subscriber: sa.ColumnElement, ended: sa.ColumnElement, values: dict, returning: tuple
) -> dict[bool, sa.Update]:
    """One subscriber's UPDATE of `table`, built once: [False] for every list, [True] for the lists in `list_ids`."""
    every = sa.update(table).where(table.c.subscriber_id == subscriber, ended).values(**values).returning(*returning)
    return {False: every, True: every.where(table.c.list_id.in_(sa.bindparam("list_ids", expanding=True)))}


def leaving(subscriber: sa.ColumnElement) -> tuple[dict[bool, sa.Update], dict[bool, sa.Update]]:
    """unsubscribe's two UPDATEs for the subscriber whose id `subscriber` gives (a bound parameter or a subquery):
    subscriptions ended (returning their ids and lists), open consents withdrawn (returning their ids)."""
    leave = _leaving(
        _subscriptions,
        subscriber,
        _subscriptions.c.status != sa.bindparam("unsubscribed", type_=_subscriptions.c.status.type),
        {
            "status": sa.bindparam("unsubscribed"),
            "status_reason": sa.bindparam("reason", type_=_subscriptions.c.status_reason.type),
            "unsubscribed_at": sa.bindparam("now"),
            "updated_at": sa.bindparam("now"),
        },
        (_subscriptions.c.id, _subscriptions.c.list_id),
    )
    withdraw = _leaving(
        _consents,
        subscriber,
        _consents.c.withdrawn_at.is_(None),
        {"withdrawn_at": sa.bindparam("now")},
        (_consents.c.id,),
    )
    return leave, withdraw


LEAVE, WITHDRAW = leaving(sa.bindparam("subscriber"))


def unsubscribe(subscriber_id: int, list_ids: list[int] | None, reason: StatusReason) -> list[int]:
    """End the subscriber's pending or confirmed subscriptions (all lists if list_ids is None); idempotent.

    Returns the ids of the lists actually left. Open and given consents for those lists are marked withdrawn. Two
    UPDATEs built once, whatever the number of lists (one-click unsubscribes come by the hundred a second while a
    campaign goes out); subscriptions and consents already loaded in the session are brought up to date.
    """
    now = utcnow()
    params = {"subscriber": subscriber_id, "now": now}
    if list_ids is not None:
        params["list_ids"] = list(list_ids)
    connection = db.session.connection()
    left = connection.execute(
        LEAVE[list_ids is not None], {**params, "unsubscribed": UNSUBSCRIBED, "reason": reason}
    ).all()
    withdrawn = connection.execute(WITHDRAW[list_ids is not None], params).scalars().all()
    values = {"status": UNSUBSCRIBED, "status_reason": reason, "unsubscribed_at": now, "updated_at": now}
    _keep_in_step(Subscription, [row.id for row in left], values)
    _keep_in_step(Consent, withdrawn, {"withdrawn_at": now})
    return sorted(row.list_id for row in left)


def _keep_in_step(model: type, ids: list[int], values: dict) -> None:
    """Give rows of `model` the session holds the values an UPDATE has just stored (as the ORM's own would)."""
    for row_id in ids:
        loaded = db.session.identity_map.get(identity_key(model, row_id))
        if loaded is not None:
            for name, value in values.items():
                set_committed_value(loaded, name, value)


def update_preferences(
    subscriber: Subscriber, name: str | None, wanted_list_ids: set[int], locale: str | None = None
) -> None:
    """Apply the preference centre: new name (and language of mail, if given), join ticked offered lists at once,
    leave unticked ones; lists not offered (see `offered_lists`) are ignored.

    Holding the preference link proves the mailbox is theirs, so joining needs no further confirmation.
    """
    subscriber.name = name
    if locale is not None:
        subscriber.locale = locale
    # Checked here, not only in the form: a crafted POST naming a private list someone was removed from changes nothing.
    offered = {mailing_list.id for mailing_list in offered_lists(subscriber)}
    wanted = wanted_list_ids & offered
    unwanted = offered - wanted
    unsubscribe(subscriber.id, sorted(unwanted), StatusReason.PREFERENCE_CENTRE)
    for list_id in sorted(wanted):
        subscribe_confirmed(subscriber, list_id, StatusReason.PREFERENCE_CENTRE, ConsentMethod.PREFERENCE_CENTRE)
    db.session.flush()


def subscribe_confirmed(
    subscriber: Subscriber, list_id: int, reason: StatusReason, method: ConsentMethod, basis: str | None = None
) -> bool:
    """Confirm a subscription at once (no confirmation mail), with a consent record given and confirmed now, for
    callers that already know the mailbox is theirs or hold evidence of consent. False if it already was confirmed."""
    subscription = next((s for s in subscriber.subscriptions if s.list_id == list_id), None)
    if subscription is not None and subscription.status is SubscriptionStatus.CONFIRMED:
        return False
    now = utcnow()
    if subscription is None:
        subscription = Subscription(subscriber=subscriber, list_id=list_id)
        db.session.add(subscription)
    subscription.status = SubscriptionStatus.CONFIRMED
    subscription.status_reason = reason
    subscription.confirmed_at = now
    subscription.unsubscribed_at = None
    wording = current_wording()
    db.session.add(
        Consent(
            subscriber_id=subscriber.id,
            list_id=list_id,
            method=method,
            wording_version=wording.version,
            wording_sha256=wording.sha256,
            basis=basis,
            created_at=now,
            confirmed_at=now,
        )
    )
    return True


def erase_subscriber(subscriber: Subscriber) -> None:
    """Remove everything held about a subscriber, keeping only the suppression HMAC so they are never mailed again."""
    suppress(subscriber.email, SuppressionReason.ERASED)
    db.session.delete(subscriber)
    db.session.flush()


def purge_unconfirmed(now: datetime | None = None) -> int:
    """Delete signups never confirmed within the retention period; return how many subscribers were removed.

    Pending subscriptions and open opt-ins older than the cutoff go; a subscriber left with no subscription that was
    ever confirmed goes too.
    """
    now = now or utcnow()
    cutoff = now - timedelta(days=current_app.config["UNCONFIRMED_RETENTION_DAYS"])
    db.session.execute(
        sa.delete(Subscription).where(
            Subscription.status == SubscriptionStatus.PENDING,
            Subscription.created_at < cutoff,
        )
    )
    db.session.execute(
        sa.delete(Consent).where(
            Consent.confirmed_at.is_(None),
            Consent.withdrawn_at.is_(None),
            Consent.created_at < cutoff,
        )
    )
    has_subscription = sa.select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id).exists()
    has_consent = sa.select(Consent.id).where(Consent.subscriber_id == Subscriber.id).exists()
    result = db.session.execute(
        sa.delete(Subscriber).where(Subscriber.created_at < cutoff, ~has_subscription, ~has_consent)
    )
    db.session.flush()
    return result.rowcount or 0


def purge_unsubscribed(now: datetime | None = None) -> int:
    """Erase subscribers whose every subscription ended more than UNSUBSCRIBED_RETENTION_DAYS ago (0 keeps them).

    Only a suppression HMAC (reason "unsubscribed") stays, so an import cannot add them back; they may sign up again
    themselves. Returns how many subscribers were erased (at most 10,000 a run; the beat task runs again).
    """
    days = current_app.config["UNSUBSCRIBED_RETENTION_DAYS"]
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    still_wanted = (
        sa.select(Subscription.id)
        .where(
            Subscription.subscriber_id == Subscriber.id,
            sa.or_(Subscription.status != SubscriptionStatus.UNSUBSCRIBED, Subscription.unsubscribed_at >= cutoff),
        )
        .exists()
    )
    has_any = sa.select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id).exists()
    expired = db.session.scalars(sa.select(Subscriber).where(has_any, ~still_wanted).limit(10_000)).all()
    for subscriber in expired:
        suppress(subscriber.email, SuppressionReason.UNSUBSCRIBED)
        db.session.delete(subscriber)
    db.session.flush()
    return len(expired)
