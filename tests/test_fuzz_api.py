"""Hostile input against every operation of /api/v1, generated from our own OpenAPI document by schemathesis.

Each operation is called in-process (WSGI) with an admin's bearer token and examples drawn from its schema; no answer
may be a 5xx, and every answer must match the status codes and the response schema the document lists. The run is
bounded and derandomized, so CI sees the same examples every time: FUZZ_EXAMPLES (default 25) examples per operation;
`make fuzz` raises it.
"""

import contextvars
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.api_support import issue_token
from tests.factories import make_campaign, make_event, make_subscriber
from uscmail.api.openapi import openapi_document

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


# The document the app serves at /api/v1/openapi.json (it does not depend on the request or the app's settings).
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture
def admin_token(db):
    """A live token of an admin, who may call every operation."""
    return issue_token(db, "admin", "fuzz-admin@example.org")


@pytest.fixture
def existing_rows(app, db):
    """A subscriber, a draft campaign and a protest event, each with id 1, so the generated ids (which start small)
    reach real rows and their answers' bodies are checked too. Tasks the operations queue (a send, a test copy, a
    signup) are purged afterwards, so no later test's worker meets them."""
    make_subscriber("fuzz-reader@example.org", "Reader", lists=["newsletter"])
    db.session.commit()
    make_campaign()
    make_event()
    yield
    app.extensions["celery"].control.purge()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_5xx_or_off_its_schema(case, app, admin_token, existing_rows, db):
    headers = {"Authorization": f"Bearer {admin_token}"}
    # A fresh context per call: each request gets its own app context and database session, as in production.
    contextvars.Context().run(case.call_and_validate, app=app, headers=headers, checks=CHECKS)
    db.session.rollback()
