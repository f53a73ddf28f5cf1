"""The campaign part of the OpenAPI document: /api/v1/campaigns and its actions."""

from ..campaigns.languages import LANGUAGE_NAMES
from ..campaigns.models import BodyFormat, CampaignKind, CampaignStatus
from ..campaigns.services import (
    BODY_MAX_LENGTH,
    FROM_NAME_MAX_LENGTH,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    PREHEADER_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
)
from .openapi_parts import NULLABLE_TIMESTAMP, SLUG, TIMESTAMP, answer, body, closed, errors, operation, ref

CAMPAIGN_ID = {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
LOCALE = {"name": "locale", "in": "path", "required": True, "schema": {"enum": list(LANGUAGE_NAMES)}}
CAMPAIGN_ERRORS = {
    404: "No such campaign.",
    409: "The campaign's status does not allow this: e.g. changing, deleting or sending a campaign that is already "
    "sending or sent, resuming one that is not paused. The message says which status it is in.",
    422: "Well-formed, but a value is refused: a blank or over-long subject, line breaks in a header field, an invalid "
    "address, a sender address that is not one of ours (MAIL_SENDERS), a body template that does not compile, an "
    "unknown or archived list, a schedule in the past, no one confirmed on the target lists.",
    429: "The organiser has sent as many test mails as CAMPAIGN_TEST_MAILS_PER_ORGANISER allows; Retry-After says "
    "when to try again.",
}
TAGS = {"tags": ["campaigns"]}
ADDRESS = {"type": "string", "maxLength": 320}
NULLABLE_ADDRESS = {"type": ["string", "null"], "maxLength": 320}


def campaign_errors(*codes: int) -> dict:
    """Error responses worded for campaigns."""
    return errors(*codes, descriptions=CAMPAIGN_ERRORS)


def _editable_fields() -> dict:
    return {
        "subject": {"type": "string", "minLength": 1, "maxLength": SUBJECT_MAX_LENGTH},
        "preheader": {
            "type": "string",
            "maxLength": PREHEADER_MAX_LENGTH,
            "description": "The preview line mail clients show after the subject.",
        },
        "body_format": {"enum": [f.value for f in BodyFormat], "default": BodyFormat.MARKDOWN.value},
        "body": {
            "type": "string",
            "minLength": 1,
            "maxLength": BODY_MAX_LENGTH,
            "description": "The body in Markdown or HTML; a sandboxed template, checked when it is saved.",
        },
        "lists": {"type": "array", "items": SLUG, "minItems": 1, "description": "Slugs of the target lists."},
        "from_name": {
            "type": ["string", "null"],
            "maxLength": FROM_NAME_MAX_LENGTH,
            "description": "Null or blank: the default sender's name.",
        },
        "from_email": {
            **NULLABLE_ADDRESS,
            "description": "One of our sender addresses (MAIL_DEFAULT_SENDER's or MAIL_SENDERS'); null or blank: the "
            "default sender's address.",
        },
        "reply_to": NULLABLE_ADDRESS,
        "public": {"type": "boolean", "default": False, "description": "Listed in the public archive once sent."},
        "locale": {
            "enum": list(LANGUAGE_NAMES),
            "default": "en",
            "description": "The language of the subject and body; not one the campaign has a translation into.",
        },
    }


def campaign_schemas() -> dict:
    """The component schemas of the campaign endpoints."""
    fields = _editable_fields()
    count = {"type": "integer", "minimum": 0}
    return {
        "Campaign": closed(
            {
                "id": {"type": "integer"},
                "public_id": {"type": "string", "description": "Identifies the web version; reveals nothing."},
                "kind": {"enum": [k.value for k in CampaignKind]},
                "status": {"enum": [s.value for s in CampaignStatus]},
                "status_detail": {
                    "type": ["string", "null"],
                    "description": "Why the campaign is paused or stopped, e.g. the mail server refused connections.",
                },
                "subject": {"type": "string"},
                "preheader": {"type": "string"},
                "body_format": {"enum": [f.value for f in BodyFormat]},
                "body": {"type": "string"},
                "lists": {"type": "array", "items": SLUG},
                "from_name": {"type": "string"},
                "from_email": {"type": "string"},
                "reply_to": {"type": ["string", "null"]},
                "public": {"type": "boolean"},
                "locale": {"type": "string", "description": "The language of the subject and body."},
                "translations": {
                    "type": "array",
                    "items": ref("Translation"),
                    "description": "The campaign in other languages: each reader gets theirs, else the campaign's own.",
                },
                "scheduled_at": NULLABLE_TIMESTAMP,
                "started_at": NULLABLE_TIMESTAMP,
                "finished_at": NULLABLE_TIMESTAMP,
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "Translation": closed(
            {
                "locale": {"type": "string"},
                "subject": {"type": "string"},
                "preheader": {"type": "string"},
                "body": {"type": "string"},
            }
        ),
        "TranslationFields": closed(
            {
                "subject": fields["subject"],
                "preheader": fields["preheader"],
                "body": {**fields["body"], "description": "In the campaign's body format, with the same variables."},
            },
            required=["subject", "body"],
        ),
        "CampaignPage": closed({"items": {"type": "array", "items": ref("Campaign")}}),
        "NewCampaign": closed(fields, required=["subject", "body", "lists"]),
        "CampaignPatch": closed(fields, required=[], minProperties=1),
        "NoFields": closed({}, required=[], description="An empty object, or send no body at all."),
        "TestSend": closed(
            {
                "addresses": {
                    "type": "array",
                    "items": ADDRESS,
                    "minItems": 1,
                    "description": "At most CAMPAIGN_TEST_RECIPIENTS_MAX addresses (5 unless configured).",
                }
            }
        ),
        "TestQueued": closed({"addresses": {"type": "array", "items": {"type": "string"}}}),
        "Schedule": closed(
            {
                "send_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "RFC 3339 with its offset (Z or ±hh:mm); at least a minute from now.",
                }
            }
        ),
        "PauseRequest": closed(
            {"reason": {"type": ["string", "null"], "minLength": 1, "maxLength": 500}},
            required=[],
        ),
        "ResendResult": closed(
            {"requeued": {"type": "integer", "minimum": 1}, "campaign": ref("Campaign")},
        ),
        "CampaignStats": closed(
            {
                "status": {"enum": [s.value for s in CampaignStatus]},
                "status_detail": {"type": ["string", "null"]},
                "recipients": {**count, "description": "Deliveries recorded so far (grows until snapshot_done)."},
                "pending": {**count, "description": "Waiting or being sent."},
                "sent": count,
                "failed": count,
                "skipped": count,
                "unknown": {**count, "description": "On the wire when a worker died; never sent again."},
                "done": count,
                "percent": {"type": "integer", "minimum": 0, "maximum": 100},
                "rate_per_second": {
                    "type": "number",
                    "minimum": 0,
                    "description": "While sending, over the last 30 seconds; once sent, the average.",
                },
                "seconds_remaining": {"type": ["integer", "null"], "minimum": 0},
                "snapshot_done": {"type": "boolean", "description": "Every recipient has a delivery row."},
                "hard_bounces": {**count, "description": "Recipients whose address bounced for good (suppressed)."},
                "soft_bounces": {**count, "description": "Recipients whose mail bounced for now (scored)."},
                "complaints": {**count, "description": "Recipients who reported the mail as spam (suppressed)."},
                "unsubscribes": {
                    **count,
                    "description": "People who left a list through this campaign's unsubscribe links (a count only; "
                    "who left is not recorded). Links in mail sent before these counts began are not counted.",
                },
            }
        ),
        "Preview": closed({"subject": {"type": "string"}, "html": {"type": "string"}, "text": {"type": "string"}}),
    }


def _action(
    operation_id: str,
    summary: str,
    status: str,
    result: str,
    schema: dict,
    request: dict | None = None,
    conflict=True,
    limited=False,
) -> dict:
    """A POST on a campaign; `conflict`: it changes the status, so 409 when the current one does not allow it;
    `limited`: it counts against a per-organiser limit, so 429."""
    codes = (400, 401, 403, 404, 409, 415, 422) if conflict else (400, 401, 403, 404, 415, 422)
    codes += (429,) if limited else ()
    return {
        "parameters": [CAMPAIGN_ID],
        "post": operation(
            operation_id,
            summary,
            {status: answer(result, schema), **campaign_errors(*codes)},
            requestBody=request or body(ref("NoFields"), required=False),
            **TAGS,
        ),
    }


def campaign_paths() -> dict:
    """The path items under /api/v1/campaigns."""
    prefix = "/api/v1/campaigns/{campaign_id}"
    return {
        "/api/v1/campaigns": {
            "get": operation(
                "listCampaigns",
                "Campaigns, newest first (viewer).",
                {"200": answer("The campaigns.", ref("CampaignPage")), **campaign_errors(400, 401, 403)},
                parameters=[
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in CampaignStatus]}},
                    {"name": "kind", "in": "query", "schema": {"enum": [k.value for k in CampaignKind]}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": PAGE_SIZE_MAX,
                            "default": PAGE_SIZE_DEFAULT,
                        },
                    },
                ],
                **TAGS,
            ),
            "post": operation(
                "createCampaign",
                "Write a new draft newsletter (editor).",
                {
                    "201": answer("The draft.", ref("Campaign"), headers={"Location": {"schema": {"type": "string"}}}),
                    **campaign_errors(400, 401, 403, 415, 422),
                },
                requestBody=body(ref("NewCampaign")),
                **TAGS,
            ),
        },
        prefix: {
            "parameters": [CAMPAIGN_ID],
            "get": operation(
                "getCampaign",
                "One campaign (viewer).",
                {"200": answer("The campaign.", ref("Campaign")), **campaign_errors(401, 403, 404)},
                **TAGS,
            ),
            "patch": operation(
                "updateCampaign",
                "Change some fields of a draft or scheduled campaign; the others keep their values (editor).",
                {
                    "200": answer("The campaign after the change.", ref("Campaign")),
                    **campaign_errors(400, 401, 403, 404, 409, 415, 422),
                },
                requestBody=body(ref("CampaignPatch")),
                **TAGS,
            ),
            "delete": operation(
                "deleteCampaign",
                "Delete a draft or scheduled campaign (editor); sent ones stay in the history.",
                {"204": answer("Deleted."), **campaign_errors(401, 403, 404, 409)},
                **TAGS,
            ),
        },
        f"{prefix}/test": _action(
            "testCampaign",
            "Mail a test copy, its subject prefixed [Test], to a few addresses (editor). Any status. Test mails count "
            "against the organiser's CAMPAIGN_TEST_MAILS_PER_ORGANISER, and each test is audited (addresses as keyed "
            "digests only).",
            "202",
            "Queued.",
            ref("TestQueued"),
            body(ref("TestSend")),
            conflict=False,
            limited=True,
        ),
        f"{prefix}/schedule": _action(
            "scheduleCampaign",
            "Send a draft automatically at `send_at`, or move a scheduled one (editor).",
            "200",
            "Scheduled.",
            ref("Campaign"),
            body(ref("Schedule")),
        ),
        f"{prefix}/unschedule": _action(
            "unscheduleCampaign", "Back to draft (editor).", "200", "A draft again.", ref("Campaign")
        ),
        f"{prefix}/send": _action(
            "sendCampaign",
            "Start sending now to everyone confirmed on the target lists (editor).",
            "202",
            "Sending; follow it at /stats.",
            ref("Campaign"),
        ),
        f"{prefix}/pause": _action(
            "pauseCampaign",
            "Stop sending after the batches in flight (editor).",
            "200",
            "Paused.",
            ref("Campaign"),
            body(ref("PauseRequest"), required=False),
        ),
        f"{prefix}/resume": _action(
            "resumeCampaign", "Carry on sending a paused campaign (editor).", "202", "Sending.", ref("Campaign")
        ),
        f"{prefix}/cancel": _action(
            "cancelCampaign",
            "Stop a scheduled, sending or paused campaign for good; what was not sent is skipped (editor).",
            "200",
            "Cancelled.",
            ref("Campaign"),
        ),
        f"{prefix}/resend-failed": _action(
            "resendFailed",
            "Send the failed deliveries again; `unknown` ones, which may have arrived, are not (editor).",
            "202",
            "Queued again; 422 if none failed.",
            ref("ResendResult"),
        ),
        f"{prefix}/stats": {
            "parameters": [CAMPAIGN_ID],
            "get": operation(
                "campaignStats",
                "Deliveries by status, the recent send rate and the time remaining (viewer).",
                {"200": answer("The figures.", ref("CampaignStats")), **campaign_errors(401, 403, 404)},
                **TAGS,
            ),
        },
        f"{prefix}/preview": {
            "parameters": [CAMPAIGN_ID],
            "get": operation(
                "previewCampaign",
                "The campaign as a subscriber called Alex would receive it (viewer).",
                {"200": answer("Subject, HTML and text.", ref("Preview")), **campaign_errors(400, 401, 403, 404, 422)},
                parameters=[
                    {
                        "name": "lang",
                        "in": "query",
                        "schema": {"enum": list(LANGUAGE_NAMES)},
                        "description": "As a reader of this language gets it (the campaign's own text if it has no "
                        "translation into it).",
                    }
                ],
                **TAGS,
            ),
        },
        f"{prefix}/translations/{{locale}}": {
            "parameters": [CAMPAIGN_ID, LOCALE],
            "put": operation(
                "putCampaignTranslation",
                "Add or replace the campaign's subject, preheader and body in another language (editor).",
                {
                    "200": answer("The campaign with its translations.", ref("Campaign")),
                    **campaign_errors(400, 401, 403, 404, 409, 415, 422),
                },
                requestBody=body(ref("TranslationFields")),
                **TAGS,
            ),
            "delete": operation(
                "deleteCampaignTranslation",
                "Remove the campaign's translation into one language (editor).",
                {"204": answer("Removed."), **campaign_errors(400, 401, 403, 404, 409)},
                **TAGS,
            ),
        },
    }
