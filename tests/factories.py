"""Factories for the rows tests need: mailing lists, subscribers with their subscriptions, campaigns, protest events
and organisers. Plain functions; each says whether it commits or leaves that to the caller. Keyword arguments
override any default, so every test can ask for exactly what it needs."""

import uuid
from datetime import UTC, date, datetime, time

import pyotp
import sqlalchemy as sa

from uscmail.campaigns import services as campaign_services
from uscmail.extensions import db
from uscmail.models import (
    ConsentMethod,
    MailingList,
    StatusReason,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    new_public_id,
    utcnow,
)
from uscmail.organisers import credentials
from uscmail.organisers import services as organiser_services
from uscmail.organisers.models import Organiser, Role
from uscmail.reminders import planning
from uscmail.reminders import services as event_services
from uscmail.reminders.models import Event
from uscmail.subscribers import services as subscriber_services
from uscmail.subscriptions import services as signup
from uscmail.subscriptions.consent import CURRENT_VERSION

ORGANISER_PASSWORD = "correct horse battery staple"
NEWSLETTER = "newsletter"
REMINDERS = "london-protest-reminders"


def utc(*args) -> datetime:
    """datetime(*args) in UTC."""
    return datetime(*args, tzinfo=UTC)


# --- mailing lists --------------------------------------------------------------------------------------------------


def mailing_list(slug: str = NEWSLETTER) -> MailingList | None:
    """The list with this slug (the seeded ones: "newsletter", "london-protest-reminders")."""
    return db.session.scalar(sa.select(MailingList).where(MailingList.slug == slug))


def newsletter() -> MailingList:
    """The seeded Newsletter list."""
    return mailing_list(NEWSLETTER)


def reminders_list() -> MailingList:
    """The seeded list that protest reminders go to."""
    return mailing_list(REMINDERS)


def make_list(slug: str, name: str | None = None, **fields) -> MailingList:
    """A new mailing list (public unless public=False), added and flushed; the caller commits."""
    created = MailingList(slug=slug, name=name or slug.replace("-", " ").capitalize(), **fields)
    db.session.add(created)
    db.session.flush()
    return created


def _lists(lists) -> list[MailingList]:
    """Mailing lists given as rows or slugs."""
    return [mailing_list(each) if isinstance(each, str) else each for each in lists]


# --- subscribers ----------------------------------------------------------------------------------------------------


def make_subscriber(
    email: str,
    name: str | None = None,
    lists=(),
    status: SubscriptionStatus = SubscriptionStatus.CONFIRMED,
    reason: StatusReason = StatusReason.ORGANISER,
    **subscription_fields,
) -> Subscriber:
    """A subscriber row with a subscription in `status` on each of `lists` (rows or slugs), written directly, added
    and flushed; the caller commits. `subscription_fields` (created_at, confirmed_at...) go on each subscription."""
    subscriber = Subscriber(email=email, name=name)
    db.session.add(subscriber)
    db.session.flush()
    for chosen in _lists(lists):
        db.session.add(
            Subscription(
                subscriber_id=subscriber.id, list_id=chosen.id, status=status, status_reason=reason,
                **subscription_fields,
            )
        )  # fmt: skip
    db.session.flush()
    return subscriber


def add_subscriber(
    email: str,
    name: str | None = None,
    lists=(NEWSLETTER,),
    basis: str = "prior_consent",
    note: str = "met at a stall",
    method: ConsentMethod = ConsentMethod.API,
) -> Subscriber:
    """A subscriber added by an organiser through the service (confirmed, with consent records unless the basis
    needs confirmation), committed."""

    subscriber, _ = subscriber_services.add_subscriber(
        email, name, _lists(lists), subscriber_services.ConsentBasis(basis), note, method, "test"
    )
    db.session.commit()
    return subscriber


def sign_up_subscriber(
    email: str, lists=(NEWSLETTER,), name: str | None = None, confirmed: bool = True
) -> Subscriber | None:
    """A subscriber who used the signup form for `lists` (public slugs) with today's consent wording, recorded
    through the services as the form does (no mail is sent): pending, or confirmed as if they had followed the
    link if `confirmed`. Committed. None for a suppressed address, which the form records nothing for."""

    chosen = signup.public_lists_by_slug(list(lists))
    result = signup.request_subscription(email, name, chosen, ConsentMethod.FORM, CURRENT_VERSION)
    if result.subscriber_id is None:  # a suppressed address: nothing is recorded
        db.session.commit()
        return None
    subscriber = db.session.get(Subscriber, result.subscriber_id)
    if confirmed:
        signup.confirm_subscription(subscriber)
    db.session.commit()
    return subscriber


def add_confirmed(count: int, mailing_list: MailingList | None = None, domain: str = "example.org") -> list[str]:
    """Insert `count` subscribers confirmed on the list (Newsletter by default) in bulk, committed; returns their
    addresses in id order."""
    mailing_list = mailing_list or newsletter()
    tag = uuid.uuid4().hex[:6]
    now = utcnow()
    addresses = [f"s{i:06d}.{tag}@{domain}" for i in range(count)]
    subscriber_rows = [
        {"email": email, "public_id": new_public_id(), "name": f"Supporter {i}", "locale": "en", "signup_mail_count": 0,
         "created_at": now, "updated_at": now}
        for i, email in enumerate(addresses)
    ]  # fmt: skip
    db.session.execute(sa.insert(Subscriber), subscriber_rows)
    ids = db.session.execute(sa.select(Subscriber.id, Subscriber.email).where(Subscriber.email.in_(addresses))).all()
    db.session.execute(
        sa.insert(Subscription),
        [
            {"subscriber_id": subscriber_id, "list_id": mailing_list.id, "status": SubscriptionStatus.CONFIRMED,
             "status_reason": StatusReason.CONFIRMED_BY_SUBSCRIBER, "created_at": now, "confirmed_at": now,
             "updated_at": now}
            for subscriber_id, _ in ids
        ],
    )  # fmt: skip
    db.session.commit()
    return addresses


# --- campaigns ------------------------------------------------------------------------------------------------------


def make_campaign(subject: str = "Solidarity news", body: str | None = None, lists=None, **fields):
    """A committed draft made through the service, to the Newsletter list or the given `lists` (rows or slugs);
    `fields` are any further CampaignFields (body_format, from_email, preheader...)."""

    campaign_fields = campaign_services.CampaignFields(
        subject=subject,
        body="Dear {{ subscriber.name }},\n\nStand with the Uyghur people on the 5th.\n" if body is None else body,
        list_ids=[m.id for m in _lists(lists or [newsletter()])],
        **fields,
    )
    campaign = campaign_services.create_campaign(campaign_fields, "test")
    db.session.commit()
    return campaign


# --- protest events -------------------------------------------------------------------------------------------------

EMBASSY_PROTEST = {
    "title": "Monthly protest at the Chinese Embassy",
    "rrule": "FREQ=MONTHLY;BYMONTHDAY=5",
    "first_date": date(2027, 1, 1),
    "start_time": time(18, 0),
    "place": "Chinese Embassy, 49–51 Portland Place, London W1B 1JL",
    "map_url": "https://www.openstreetmap.org/?mlat=51.5210&mlon=-0.1457",
}
VIGIL = {
    "title": "Vigil for the disappeared",
    "place": "Parliament Square, London",
    "rrule": "FREQ=MONTHLY;BYMONTHDAY=5",
    "first_date": date(2027, 1, 1),
    "start_time": time(18, 0),
}


def make_event(commit: bool = True, **fields):
    """A protest row written directly: the embassy protest on the 5th at 18:00 London time from 2027, active since
    2026, to the reminders list, with the default reminder wording. Committed unless commit=False (then flushed)."""

    values = {
        **EMBASSY_PROTEST,
        "list_id": fields.get("list_id") or reminders_list().id,
        "subject_template": planning.DEFAULT_SUBJECT,
        "body_template": planning.DEFAULT_BODY,
        "active_since": datetime(2026, 1, 1, tzinfo=UTC),
        **fields,
    }
    event = Event(**values)
    db.session.add(event)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return event


def create_event(resumed: bool = False, **fields):
    """An event made through the organisers' service, as the event form and the API make it: a vigil on the 5th at
    18:00 from 2027 to the reminders list, on hold unless `resumed`; committed."""

    values = {**VIGIL, "list_id": fields.get("list_id") or reminders_list().id, **fields}
    event = event_services.create_event(event_services.EventFields(**values), "test")
    if resumed:
        event_services.resume(event, "test")
    db.session.commit()
    return event


# --- organisers -----------------------------------------------------------------------------------------------------


def make_organiser(
    email: str, role: str = "editor", password: str = ORGANISER_PASSWORD, enrolled: bool = True, commit: bool = False
):
    """An organiser created through the service as if they had used their set-up link (a password and an
    authenticator app), unless enrolled=False: then just created, with no password. Committed if `commit`, else the
    caller commits."""
    organiser = organiser_services.create_organiser(email, Role(role), "test")
    if enrolled:
        organiser.password_hash = credentials.hash_password(password)
        organiser.totp_secret = pyotp.random_base32()
        organiser.enrolment_nonce_sha256 = None
    if commit:
        db.session.commit()
    return organiser


def make_api_organiser(email: str, role: str = "editor"):
    """An organiser row written directly with an unusable password, for tests that only need their API tokens (no
    Argon2 run, no audit row); added and flushed, the caller commits."""

    organiser = Organiser(email=email, password_hash="!api-test", role=Role(role))
    db.session.add(organiser)
    db.session.flush()
    return organiser
