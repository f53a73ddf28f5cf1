"""Helpers for tests of the organisers' JSON API: tokens, the shape of errors, schema checks, role checks, the audit
log."""

import sqlalchemy as sa
from jsonschema import Draft202012Validator

from tests.factories import make_api_organiser
from uscmail.organisers import api_tokens
from uscmail.organisers import services as organiser_services
from uscmail.organisers.models import AuditEvent


def issue_token(db, role: str, email: str | None = None, name: str = "script") -> str:
    """A live token for a (new) organiser with this role."""
    email = email or f"{role}@example.org"
    organiser = organiser_services.organiser_by_email(email)
    if organiser is None:
        # Tokens never involve the password: an unusable hash saves an Argon2 run per organiser.
        organiser = make_api_organiser(email, role)
    raw = api_tokens.create_token(organiser, name, "test")
    db.session.commit()
    return raw


def audit_actions(db, action_prefix: str = "") -> list[tuple[str, str, str | None, dict]]:
    """The audit log so far (action, actor, object id, details), oldest first, optionally only some actions."""
    db.session.rollback()
    rows = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action.startswith(action_prefix)).order_by(AuditEvent.id)
    )
    return [(row.action, row.actor, row.object_id, row.details) for row in rows]


def assert_json_error(response, status: int, fragment: str = "") -> None:
    """The response is a JSON error with this status whose message contains `fragment`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert set(response.json) == {"error"} and fragment in response.json["error"]


def assert_matches(app, schema_name: str, body) -> None:
    """The body matches the component schema of that name in our own OpenAPI document."""
    from uscmail.api.openapi import openapi_document

    with app.app_context():
        document = openapi_document()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    Draft202012Validator(schema).validate(body)


def assert_roles_enforced(api, viewer: str, writes: list[tuple], reads: list[str]) -> None:
    """Every write needs the editor role (403 for a viewer, 401 without a token); every read works for a viewer and
    needs a valid token."""
    for method, path, body in writes:
        assert_json_error(api(method, path, viewer, json=body), 403, "needs the editor role")
        response = api(method, path, json=body)
        assert_json_error(response, 401, "Send an API token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for path in reads:
        assert api("GET", path, viewer).status_code == 200
        assert_json_error(api("GET", path, "uscm_not-a-token"), 401, "not valid")
        assert_json_error(api("GET", path), 401, "Send an API token")
