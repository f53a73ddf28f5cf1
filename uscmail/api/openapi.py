"""The OpenAPI 3.1 document for /api/v1 (organisers, bearer tokens) and /api/v1/public (the signup endpoint), put
together from its parts: openapi_subscribers.py, openapi_campaigns.py and openapi_events.py, which share the building
blocks in openapi_parts.py."""

from functools import cache

from .openapi_campaigns import campaign_paths, campaign_schemas
from .openapi_events import event_paths, event_schemas
from .openapi_subscribers import subscriber_paths, subscriber_schemas


@cache
def openapi_document() -> dict:
    """The whole document (built once per process; it does not depend on the request)."""
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
        "paths": {**subscriber_paths(), **campaign_paths(), **event_paths()},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "uscm_…"}},
            "schemas": {**subscriber_schemas(), **campaign_schemas(), **event_schemas()},
        },
    }
