"""The subscriber part of the OpenAPI document: lists, subscribers and the public signup endpoint."""

from ..i18n import LANGUAGES
from ..models import StatusReason, SubscriptionStatus
from ..subscribers.services import PAGE_SIZE_MAX, AddOutcome, ConsentBasis
from .openapi_parts import NULLABLE_TIMESTAMP, PUBLIC, SLUG, TIMESTAMP, answer, body, closed, errors, operation, ref

LOCALE = {"enum": list(LANGUAGES)}
SUBSCRIBER_ID = {
    "name": "subscriber_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def subscriber_schemas() -> dict:
    """The component schemas of lists, subscribers and the public signup."""
    statuses = [status.value for status in SubscriptionStatus]
    return {
        "Error": closed({"error": {"type": "string"}}),
        "Counts": closed({status: {"type": "integer", "minimum": 0} for status in statuses}),
        "MailingList": closed(
            {
                "slug": SLUG,
                "name": {"type": "string"},
                "description": {"type": "string"},
                "public": {"type": "boolean", "description": "Offered on the signup form."},
                "archived": {"type": "boolean"},
                "created_at": TIMESTAMP,
                "counts": ref("Counts"),
            }
        ),
        "MailingListPage": closed({"items": {"type": "array", "items": ref("MailingList")}}),
        "Subscription": closed(
            {
                "list": SLUG,
                "status": {"enum": statuses},
                "reason": {"enum": [reason.value for reason in StatusReason]},
                "created_at": TIMESTAMP,
                "confirmed_at": NULLABLE_TIMESTAMP,
                "unsubscribed_at": NULLABLE_TIMESTAMP,
            }
        ),
        "Subscriber": closed(
            {
                "id": {"type": "integer"},
                "email": {"type": "string", "format": "email"},
                "name": {"type": ["string", "null"]},
                "locale": {"type": "string"},
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
                "subscriptions": {"type": "array", "items": ref("Subscription")},
            }
        ),
        "SubscriberPage": closed(
            {
                "items": {"type": "array", "items": ref("Subscriber")},
                "next_after": {
                    "type": ["integer", "null"],
                    "description": "Pass as `after` for the next page; null on the last page.",
                },
            }
        ),
        "NewSubscriber": closed(
            {
                "email": {"type": "string", "maxLength": 320},
                "name": {"type": ["string", "null"], "maxLength": 200},
                "lists": {"type": "array", "items": SLUG, "minItems": 1},
                "consent_basis": {
                    "enum": [basis.value for basis in ConsentBasis],
                    "description": "prior_consent: subscribed at once on evidence the organiser holds; "
                    "needs_confirmation: pending, and a double-opt-in mail is sent.",
                },
                "consent_note": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": "The evidence or reason, kept on the consent record.",
                },
            },
            required=["email", "lists", "consent_basis", "consent_note"],
        ),
        "AddResult": closed(
            {
                "outcome": {"enum": [o.value for o in AddOutcome if o is not AddOutcome.SUPPRESSED]},
                "confirmation_mail": {
                    "enum": ["queued", "not_needed", "limit_reached"],
                    "description": "limit_reached: the per-address daily cap on signup mails was reached.",
                },
                "subscriber": ref("Subscriber"),
            }
        ),
        "SubscriberPatch": closed(
            {
                "name": {"type": ["string", "null"], "maxLength": 200},
                "subscriptions": {
                    "type": "object",
                    "additionalProperties": {"type": "boolean"},
                    "description": "List slug to true (subscribe, confirmed on the organiser's word) or false.",
                },
            },
            required=[],
            minProperties=1,
        ),
        "UnsubscribeRequest": closed({"lists": {"type": "array", "items": SLUG, "minItems": 1}}, required=[]),
        "UnsubscribeResult": closed(
            {"left": {"type": "array", "items": SLUG}, "subscriber": ref("Subscriber")},
        ),
        "PublicLists": closed(
            {
                "locale": LOCALE,
                "lists": {
                    "type": "array",
                    "items": closed({"slug": SLUG, "name": {"type": "string"}, "description": {"type": "string"}}),
                },
                "consent": closed(
                    {"version": {"type": "string"}, "text": {"type": "string"}, "sha256": {"type": "string"}}
                ),
            }
        ),
        "PublicSubscribe": {
            "type": "object",
            "properties": {
                "email": {"type": "string"},
                "name": {"type": ["string", "null"]},
                "lists": {"type": "array", "items": SLUG},
                "consent": {"const": True, "description": "The supporter agreed to the consent wording."},
                "consent_version": {"type": "string", "description": "The wording version shown."},
                "locale": {**LOCALE, "description": "The language the wording was shown in, and of the mail."},
                "website": {"type": "string", "description": "Honeypot: leave empty."},
            },
            "required": ["email", "lists", "consent"],
        },
        "PublicAccepted": closed({"status": {"const": "check_inbox"}, "message": {"type": "string"}}),
    }


def subscriber_paths() -> dict:
    """The path items."""
    subscriber_item = {
        "parameters": [SUBSCRIBER_ID],
        "get": operation(
            "getSubscriber",
            "One subscriber with their subscriptions (viewer).",
            {"200": answer("The subscriber.", ref("Subscriber")), **errors(401, 403, 404)},
        ),
        "patch": operation(
            "updateSubscriber",
            "Change the name and/or subscriptions (editor).",
            {
                "200": answer("The subscriber after the change.", ref("Subscriber")),
                **errors(400, 401, 403, 404, 409, 415, 422),
            },
            requestBody=body(ref("SubscriberPatch")),
        ),
        "delete": operation(
            "eraseSubscriber",
            "Erase a subscriber (admin); the address is kept only as a suppression HMAC.",
            {"204": answer("Erased."), **errors(401, 403, 404)},
        ),
    }
    return {
        "/api/v1/openapi.json": {
            "get": operation(
                "getOpenApi",
                "This document.",
                {"200": answer("The OpenAPI 3.1 document.", {"type": "object"})},
                security=[],
            )
        },
        "/api/v1/lists": {
            "get": operation(
                "listLists",
                "Every list, archived ones included, with counts by status (viewer).",
                {"200": answer("The lists.", ref("MailingListPage")), **errors(401, 403)},
            )
        },
        "/api/v1/lists/{slug}": {
            "parameters": [{"name": "slug", "in": "path", "required": True, "schema": SLUG}],
            "get": operation(
                "getList",
                "One list (viewer).",
                {"200": answer("The list.", ref("MailingList")), **errors(401, 403, 404)},
            ),
        },
        "/api/v1/subscribers": {
            "get": operation(
                "searchSubscribers",
                "Search subscribers, newest first, keyset-paginated (viewer).",
                {"200": answer("One page.", ref("SubscriberPage")), **errors(400, 401, 403, 422)},
                parameters=[
                    {
                        "name": "q",
                        "in": "query",
                        "description": "With '@': address prefix; otherwise text in the address or name.",
                        "schema": {"type": "string", "maxLength": 320},
                    },
                    {"name": "list", "in": "query", "description": "A list slug (422 if unknown).", "schema": SLUG},
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in SubscriptionStatus]}},
                    {
                        "name": "after",
                        "in": "query",
                        "description": "The `next_after` of the previous page.",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX, "default": 50},
                    },
                ],
            ),
            "post": operation(
                "addSubscriber",
                "Add an address to lists with a stated consent basis (editor).",
                {
                    "201": answer(
                        "Subscribed, or pending with a confirmation mail.",
                        ref("AddResult"),
                        headers={"Location": {"schema": {"type": "string"}}},
                    ),
                    "200": answer("Already subscribed to every list named; nothing changed.", ref("AddResult")),
                    **errors(400, 401, 403, 409, 415, 422),
                },
                requestBody=body(ref("NewSubscriber")),
            ),
        },
        "/api/v1/subscribers/{subscriber_id}": subscriber_item,
        "/api/v1/subscribers/{subscriber_id}/unsubscribe": {
            "parameters": [SUBSCRIBER_ID],
            "post": operation(
                "unsubscribeSubscriber",
                "Unsubscribe from the lists named, or from every list if the body is empty or has no `lists` (editor).",
                {
                    "200": answer("The lists left and the subscriber.", ref("UnsubscribeResult")),
                    **errors(400, 401, 403, 404, 415, 422),
                },
                requestBody=body(ref("UnsubscribeRequest"), required=False),
            ),
        },
        "/api/v1/public/lists": {
            "get": operation(
                "publicLists",
                "Public lists and the consent wording an embedding site must show verbatim, in a language.",
                {
                    "200": answer("The lists and wording.", ref("PublicLists")),
                    "400": answer("An unknown locale.", ref("Error")),
                },
                parameters=[
                    {
                        "name": "locale",
                        "in": "query",
                        "required": False,
                        "schema": LOCALE,
                        "description": "The language of the consent wording (English by default).",
                    }
                ],
                **PUBLIC,
            )
        },
        "/api/v1/public/subscribe": {
            "post": operation(
                "publicSubscribe",
                "Sign up with double opt-in. Every valid request gets the same answer, subscribed or not.",
                {
                    "202": answer("Accepted; a confirmation mail may be on its way.", ref("PublicAccepted")),
                    "400": answer("Invalid input (address, name, lists, consent).", ref("Error")),
                    **errors(415, 429),
                },
                requestBody=body(ref("PublicSubscribe")),
                **PUBLIC,
            )
        },
    }
