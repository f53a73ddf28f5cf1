"""The organisers' JSON API, /api/v1: a thin layer over the subscriber and list services, authenticated by bearer
tokens only (never the session cookie), so it is exempt from CSRF protection."""

from datetime import datetime

from flask import url_for

from ..extensions import db
from ..models import ConsentMethod, MailingList, Subscriber, Subscription, SubscriptionStatus
from ..organisers.models import Role
from ..queueing import after_commit
from ..subscribers import lists as list_services
from ..subscribers import services
from ..subscriptions import services as journey
from ..subscriptions.tasks import send_signup_mail
from ..suppression import is_suppressed
from . import bp, inputs
from .bearer import ApiError, current_api_organiser, token_required

SEARCH_ARGS = {"q", "list", "status", "after", "limit"}
SUPPRESSED = (
    "This address is on the suppression list (erased, complained or hard-bounced) and must never be mailed again, "
    "so it can't be subscribed."
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def list_json(mailing_list: MailingList, counts: dict[int, dict[str, int]]) -> dict:
    """A list as the API shows it, with subscriber counts by status."""
    return {
        "slug": mailing_list.slug,
        "name": mailing_list.name,
        "description": mailing_list.description,
        "public": mailing_list.public,
        "archived": mailing_list.archived,
        "created_at": _iso(mailing_list.created_at),
        "counts": counts.get(mailing_list.id, {status.value: 0 for status in SubscriptionStatus}),
    }


def subscriber_json(subscriber: Subscriber, subscriptions: list[Subscription] | None = None) -> dict:
    """A subscriber as the API shows it: only what we hold, and no link identifiers."""
    rows = subscriber.subscriptions if subscriptions is None else subscriptions
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "locale": subscriber.locale,
        "created_at": _iso(subscriber.created_at),
        "updated_at": _iso(subscriber.updated_at),
        "subscriptions": [
            {
                "list": row.mailing_list.slug,
                "status": row.status.value,
                "reason": row.status_reason.value,
                "created_at": _iso(row.created_at),
                "confirmed_at": _iso(row.confirmed_at),
                "unsubscribed_at": _iso(row.unsubscribed_at),
            }
            for row in sorted(rows, key=lambda row: row.list_id)
        ],
    }


def subscriber_or_404(subscriber_id: int) -> Subscriber:
    """The subscriber with this id, or ApiError 404."""
    subscriber = services.get_subscriber(subscriber_id) if subscriber_id <= inputs.MAX_ID else None
    if subscriber is None:
        raise ApiError(404, "There is no subscriber with that id.")
    return subscriber


@bp.get("/lists")
@token_required(Role.VIEWER)
def lists():
    """Every list, archived ones included, with counts by status."""
    counts = services.list_counts()
    return {"items": [list_json(mailing_list, counts) for mailing_list in list_services.all_lists()]}


@bp.get("/lists/<slug>")
@token_required(Role.VIEWER)
def list_detail(slug: str):
    """One list by slug."""
    mailing_list = next((m for m in list_services.all_lists() if m.slug == slug), None)
    if mailing_list is None:
        raise ApiError(404, "There is no list with that slug.")
    return list_json(mailing_list, services.list_counts())


@bp.get("/subscribers")
@token_required(Role.VIEWER)
def subscribers():
    """Search subscribers, newest first; pass `next_after` back as `after` for the next page."""
    args = inputs.query_args(SEARCH_ARGS)
    query = args.get("q", "")
    if len(query) > 320 or any(ord(ch) < 32 or ord(ch) == 127 for ch in query):
        raise inputs.bad_request("'q' must be up to 320 characters without control characters.")
    mailing_list = inputs.lists_by_slug([args["list"]], joining=False)[0] if args.get("list") else None
    status = None
    if args.get("status"):
        status = inputs.enum_field(args, "status", SubscriptionStatus)
    page = services.search_subscribers(
        query=query,
        list_id=mailing_list.id if mailing_list else None,
        status=status,
        after=inputs.int_arg(args, "after", None, 1, inputs.MAX_ID),
        limit=inputs.int_arg(args, "limit", 50, 1, services.PAGE_SIZE_MAX),
    )
    by_subscriber = services.subscriptions_of([subscriber.id for subscriber in page.subscribers])
    return {
        "items": [subscriber_json(s, by_subscriber[s.id]) for s in page.subscribers],
        "next_after": page.next_after,
    }


@bp.get("/subscribers/<int:subscriber_id>")
@token_required(Role.VIEWER)
def subscriber_detail(subscriber_id: int):
    """One subscriber with their subscriptions."""
    return subscriber_json(subscriber_or_404(subscriber_id))


@bp.post("/subscribers")
@token_required(Role.EDITOR)
def add_subscriber():
    """Add an address to lists, with the consent basis the organiser states; needs_confirmation mails a link."""
    payload = inputs.json_body(
        allowed={"email", "name", "lists", "consent_basis", "consent_note"},
        required={"email", "lists", "consent_basis", "consent_note"},
    )
    email = inputs.string_field(payload, "email")
    name = inputs.string_field(payload, "name", nullable=True)
    slugs = inputs.slug_list(payload, "lists")
    basis = inputs.enum_field(payload, "consent_basis", services.ConsentBasis)
    note = inputs.printable(inputs.string_field(payload, "consent_note"), "'consent_note'", 200)
    chosen = inputs.lists_by_slug(slugs, joining=True)
    subscriber, outcome = services.add_subscriber(
        email, name, chosen, basis, note, ConsentMethod.API, current_api_organiser()
    )
    if outcome is services.AddOutcome.SUPPRESSED:
        raise ApiError(409, SUPPRESSED)
    subscriber_id = subscriber.id
    mail = "not_needed"
    if outcome is services.AddOutcome.CONFIRMATION_NEEDED:
        mail = "queued" if journey.claim_signup_mail(subscriber_id) else "limit_reached"
    if mail == "queued":
        after_commit(send_signup_mail, subscriber_id, [mailing_list.id for mailing_list in chosen])
    db.session.commit()
    body = {"outcome": outcome.value, "confirmation_mail": mail, "subscriber": subscriber_json(subscriber)}
    if outcome is services.AddOutcome.ALREADY_SUBSCRIBED:
        return body, 200
    return body, 201, {"Location": url_for(".subscriber_detail", subscriber_id=subscriber_id)}


@bp.patch("/subscribers/<int:subscriber_id>")
@token_required(Role.EDITOR)
def update_subscriber(subscriber_id: int):
    """Change the name and/or subscribe (confirmed, on the organiser's word) or unsubscribe per list."""
    subscriber = subscriber_or_404(subscriber_id)
    payload = inputs.json_body(allowed={"name", "subscriptions"})
    if not payload:
        raise inputs.bad_request("Send at least one of: name, subscriptions.")
    wanted = payload.get("subscriptions", {})
    if not isinstance(wanted, dict) or not all(isinstance(value, bool) for value in wanted.values()):
        raise inputs.bad_request("'subscriptions' must be an object of list slugs to true or false.")
    joining = inputs.lists_by_slug([slug for slug, on in wanted.items() if on], joining=True)
    leaving = inputs.lists_by_slug([slug for slug, on in wanted.items() if not on], joining=False)
    if joining and is_suppressed(subscriber.email):
        raise ApiError(409, SUPPRESSED)
    organiser = current_api_organiser()
    if "name" in payload:
        services.update_subscriber(subscriber, inputs.string_field(payload, "name", nullable=True), organiser)
    status = {row.list_id: row.status for row in subscriber.subscriptions}
    for mailing_list in joining:
        if status.get(mailing_list.id) is not SubscriptionStatus.CONFIRMED:
            services.set_subscription(subscriber, mailing_list, True, organiser)
    for mailing_list in leaving:
        if status.get(mailing_list.id) in (SubscriptionStatus.PENDING, SubscriptionStatus.CONFIRMED):
            services.set_subscription(subscriber, mailing_list, False, organiser)
    db.session.commit()
    return subscriber_json(subscriber)


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
@token_required(Role.EDITOR)
def unsubscribe(subscriber_id: int):
    """Unsubscribe from the lists named in `lists`, or from every list when the body is empty or has no `lists`."""
    subscriber = subscriber_or_404(subscriber_id)
    payload = inputs.json_body(allowed={"lists"}, empty_ok=True)
    chosen = inputs.lists_by_slug(inputs.slug_list(payload, "lists"), joining=False) if "lists" in payload else None
    left = services.unsubscribe_from(subscriber, chosen, current_api_organiser())
    db.session.commit()
    return {"left": left, "subscriber": subscriber_json(subscriber)}


@bp.delete("/subscribers/<int:subscriber_id>")
@token_required(Role.ADMIN)
def erase_subscriber(subscriber_id: int):
    """Erase a subscriber (GDPR): everything goes but the suppression HMAC, so they are never mailed again."""
    services.erase(subscriber_or_404(subscriber_id), current_api_organiser())
    db.session.commit()
    return "", 204
