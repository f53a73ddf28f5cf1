"""The OpenAPI 3.1 document for /api/v1 (organisers, bearer tokens) and /api/v1/public (the signup endpoint).

The campaign endpoints are described in openapi_campaigns.py, the event endpoints in openapi_events.py."""

from functools import cache

from ..models import StatusReason, SubscriptionStatus
from ..subscribers.services import PAGE_SIZE_MAX, AddOutcome, ConsentBasis

ERRORS = {
    400: "The request does not have the documented shape: malformed JSON, a wrong type, a missing or unknown field "
    "or query parameter, a value outside its enum or range.",
    401: "No API token, or one that is unknown, revoked, or whose organiser is disabled.",
    403: "The token's organiser lacks the role this needs (viewer < editor < admin).",
    404: "No such subscriber or list.",
    409: "The address is on the suppression list (erased, complained or hard-bounced) and can't be subscribed.",
    415: "The body is not JSON (send Content-Type: application/json).",
    422: "Well-formed, but a value is refused: an invalid address or name, an unknown list slug, an archived list "
    "to join, a blank or over-long consent note.",
    429: "Too many requests from this network.",
}


def ref(name: str) -> dict:
    """A $ref to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict) -> dict:
    """An application/json content map."""
    return {"application/json": {"schema": schema}}


def answer(description: str, schema: dict | None = None, **extra) -> dict:
    """A response object, with a JSON body if schema is given."""
    response = {"description": description, **extra}
    if schema is not None:
        response["content"] = json_content(schema)
    return response


def errors(*codes: int, descriptions: dict[int, str] | None = None) -> dict:
    """Error responses for these statuses, each with {"error": message}; `descriptions` replaces ERRORS' wording."""
    wording = {**ERRORS, **(descriptions or {})}
    result = {}
    for code in codes:
        extra = {}
        if code == 401:
            extra["headers"] = {
                "WWW-Authenticate": {"description": 'Bearer realm="uscmail"', "schema": {"type": "string"}}
            }
        result[str(code)] = answer(wording[code], ref("Error"), **extra)
    return result


def body(schema: dict, required: bool = True) -> dict:
    """A JSON request body."""
    return {"required": required, "content": json_content(schema)}


def operation(operation_id: str, summary: str, responses: dict, **extra) -> dict:
    """An operation object."""
    return {"operationId": operation_id, "summary": summary, "responses": responses, **extra}


TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
SLUG = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"}
SUBSCRIBER_ID = {
    "name": "subscriber_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
PUBLIC = {"security": [], "tags": ["public"]}


def closed(properties: dict, required: list[str] | None = None, **extra) -> dict:
    """An object schema with exactly these properties (all required unless listed)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        **extra,
    }


def schemas() -> dict:
    """The component schemas."""
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
                "website": {"type": "string", "description": "Honeypot: leave empty."},
            },
            "required": ["email", "lists", "consent"],
        },
        "PublicAccepted": closed({"status": {"const": "check_inbox"}, "message": {"type": "string"}}),
    }


def paths() -> dict:
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
                "Public lists and the consent wording an embedding site must show verbatim.",
                {"200": answer("The lists and wording.", ref("PublicLists"))},
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


@cache
def openapi_document() -> dict:
    """The whole document (built once per process; it does not depend on the request)."""
    # Imported here: the campaign and event parts build on the helpers above.
    from .openapi_campaigns import campaign_paths, campaign_schemas
    from .openapi_events import event_paths, event_schemas

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "uscmail API",
            "version": "1.0.0",
            "description": "The organisers' API of the USC-UK mailing lists, and the public signup endpoint.\n\n"
            "Authenticate with `Authorization: Bearer <token>`; tokens are issued with "
            "`flask --app uscmail organisers token EMAIL --name NAME` and carry the organiser's role "
            '(viewer reads, editor writes, admin erases). Errors are `{"error": message}`: 400 for a request '
            "that does not match this document, 422 for a value that is refused (unknown list slugs included), "
            "409 for a conflict with the current state (a campaign that is already sending can't be changed), "
            "415 for a body that is not JSON. Nothing changes when a request is refused.",
        },
        "tags": [{"name": "organisers"}, {"name": "campaigns"}, {"name": "events"}, {"name": "public"}],
        "security": [{"bearerAuth": []}],
        "paths": {**paths(), **campaign_paths(), **event_paths()},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "uscm_…"}},
            "schemas": {**schemas(), **campaign_schemas(), **event_schemas()},
        },
    }
