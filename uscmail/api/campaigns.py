"""/api/v1/campaigns: compose, preview, test, schedule and send newsletters; a thin layer over the campaign services.

Viewers read, editors write. Tasks are queued only after the commit that made them due.
"""

import re
from datetime import UTC, datetime
from typing import Any

from flask import request, url_for

from ..campaigns import drafts, languages, render, services, tasks, testcopy, translations
from ..campaigns.languages import LANGUAGE_NAMES
from ..campaigns.models import BodyFormat, Campaign, CampaignKind, CampaignStatus
from ..campaigns.services import CampaignFields, TransitionRefused
from ..extensions import db
from ..organisers.models import Role
from ..queueing import after_commit
from . import bp, inputs
from .bearer import ApiError, current_api_organiser, error_response, token_required

LIST_ARGS = {"status", "kind", "limit"}
FIELDS = {
    "subject", "preheader", "body_format", "body", "lists", "from_name", "from_email", "reply_to", "public", "locale",
}  # fmt: skip
NULLABLE_FIELDS = {"from_name", "from_email", "reply_to"}
# A body may hold services.BODY_MAX_LENGTH characters, each up to 6 bytes once JSON-escaped ("\uXXXX"), so these
# requests may be larger than the app-wide MAX_CONTENT_LENGTH.
COMPOSE_MAX_BYTES = 4 * 1024 * 1024
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")


@bp.errorhandler(TransitionRefused)
def transition_refused(error: TransitionRefused):
    """The campaign is in a state that does not allow this: 409 with the services' message."""
    db.session.rollback()
    return error_response(ApiError(409, str(error)))


@bp.errorhandler(testcopy.TestSendLimited)
def test_send_limited(error: testcopy.TestSendLimited):
    """Too many test mails from this organiser: 429 with the services' message and Retry-After."""
    db.session.rollback()
    return error_response(ApiError(429, str(error), {"Retry-After": str(error.retry_after)}))


def _timestamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def campaign_json(campaign: Campaign) -> dict:
    """A campaign as the API shows it; timestamps in UTC."""
    return {
        "id": campaign.id,
        "public_id": campaign.public_id,
        "kind": campaign.kind.value,
        "status": campaign.status.value,
        "status_detail": campaign.status_detail,
        "subject": campaign.subject,
        "preheader": campaign.preheader,
        "body_format": campaign.body_format.value,
        "body": campaign.body,
        "lists": [mailing_list.slug for mailing_list in campaign.lists],
        "from_name": campaign.from_name,
        "from_email": campaign.from_email,
        "reply_to": campaign.reply_to,
        "public": campaign.public,
        "locale": campaign.locale,
        "translations": [
            {"locale": found.locale, "subject": found.subject, "preheader": found.preheader, "body": found.body}
            for found in campaign.translations
        ],
        "scheduled_at": _timestamp(campaign.scheduled_at),
        "started_at": _timestamp(campaign.started_at),
        "finished_at": _timestamp(campaign.finished_at),
        "created_at": _timestamp(campaign.created_at),
        "updated_at": _timestamp(campaign.updated_at),
    }


def campaign_or_404(campaign_id: int) -> Campaign:
    """The campaign with this id, or ApiError 404."""
    campaign = services.get_campaign(campaign_id) if campaign_id <= inputs.MAX_ID else None
    if campaign is None:
        raise ApiError(404, "There is no campaign with that id.")
    return campaign


def _fields(payload: dict[str, Any], current: CampaignFields) -> CampaignFields:
    """`current` with the payload's fields applied; 400 for a wrong type, 422 for an unknown list or unstorable body.

    Everything else (lengths, line breaks, addresses, template syntax, archived lists) is the services' to refuse.
    """
    # The shape first (400), then the values (422).
    for key in sorted((FIELDS - {"lists", "public", "body_format", "locale"}) & set(payload)):
        setattr(current, key, inputs.string_field(payload, key, nullable=key in NULLABLE_FIELDS))
    if "body_format" in payload:
        current.body_format = inputs.enum_field(payload, "body_format", BodyFormat)
    if "public" in payload:
        if not isinstance(payload["public"], bool):
            raise inputs.bad_request("'public' must be true or false.")
        current.public = payload["public"]
    slugs = inputs.slug_list(payload, "lists") if "lists" in payload else None
    if "body" in payload and any(ch == "\x00" or "\ud800" <= ch <= "\udfff" for ch in current.body):
        # Neither can be stored as text (PostgreSQL refuses NUL; a lone surrogate is not UTF-8).
        raise inputs.unprocessable("The body can't contain NUL or unpaired surrogate characters.")
    if slugs is not None:
        # joining=False: archived lists are refused by the services, in the words of sending rather than joining.
        current.list_ids = [mailing_list.id for mailing_list in inputs.lists_by_slug(slugs, joining=False)]
    return current


def _locale(payload: dict[str, Any]) -> str | None:
    """The payload's `locale`, if given: one of the languages campaigns may be written in, else 400."""
    if "locale" not in payload:
        return None
    locale = inputs.string_field(payload, "locale")
    if locale not in LANGUAGE_NAMES:
        raise inputs.bad_request(f"'locale' must be one of: {', '.join(LANGUAGE_NAMES)}.")
    return locale


def _stored_fields(campaign: Campaign) -> CampaignFields:
    """The campaign's current content, as the fields a partial update starts from."""
    return CampaignFields(
        subject=campaign.subject,
        body=campaign.body,
        list_ids=campaign.list_ids,
        body_format=campaign.body_format,
        preheader=campaign.preheader,
        from_name=campaign.from_name,
        from_email=campaign.from_email,
        reply_to=campaign.reply_to,
        public=campaign.public,
    )


def _no_body() -> None:
    """Action endpoints take no fields: an empty body or {}."""
    inputs.json_body(allowed=set(), empty_ok=True)


@bp.get("/campaigns")
@token_required(Role.VIEWER)
def campaigns():
    """Campaigns, newest first, optionally of one status or kind."""
    args = inputs.query_args(LIST_ARGS)
    status = inputs.enum_field(args, "status", CampaignStatus) if args.get("status") else None
    kind = inputs.enum_field(args, "kind", CampaignKind) if args.get("kind") else None
    limit = inputs.int_arg(args, "limit", services.PAGE_SIZE_DEFAULT, 1, services.PAGE_SIZE_MAX)
    return {"items": [campaign_json(campaign) for campaign in services.campaigns_page(kind, status, limit)]}


@bp.post("/campaigns")
@token_required(Role.EDITOR)
def create_campaign():
    """A new draft newsletter."""
    request.max_content_length = COMPOSE_MAX_BYTES
    payload = inputs.json_body(allowed=FIELDS, required={"subject", "body", "lists"})
    fields = _fields(payload, CampaignFields(subject="", body="", list_ids=[]))
    locale = _locale(payload)
    campaign = services.create_campaign(fields, current_api_organiser())
    if locale:
        translations.set_language(campaign, locale, current_api_organiser())
    db.session.commit()
    return campaign_json(campaign), 201, {"Location": url_for(".campaign_detail", campaign_id=campaign.id)}


@bp.get("/campaigns/<int:campaign_id>")
@token_required(Role.VIEWER)
def campaign_detail(campaign_id: int):
    """One campaign."""
    return campaign_json(campaign_or_404(campaign_id))


@bp.patch("/campaigns/<int:campaign_id>")
@token_required(Role.EDITOR)
def update_campaign(campaign_id: int):
    """Change some fields of a draft or scheduled campaign; the others keep their values."""
    request.max_content_length = COMPOSE_MAX_BYTES
    campaign = campaign_or_404(campaign_id)
    payload = inputs.json_body(allowed=FIELDS)
    if not payload:
        raise inputs.bad_request(f"Send at least one of: {', '.join(sorted(FIELDS))}.")
    if not campaign.editable:
        # Before the values are checked: a change that could never be stored is a conflict, whatever it holds.
        raise TransitionRefused(f"This campaign is {campaign.status.value}; it can no longer be changed.")
    locale = _locale(payload)
    services.update_campaign(campaign, _fields(payload, _stored_fields(campaign)), current_api_organiser())
    if locale:
        translations.set_language(campaign, locale, current_api_organiser())
    db.session.commit()
    return campaign_json(campaign)


@bp.delete("/campaigns/<int:campaign_id>")
@token_required(Role.EDITOR)
def delete_campaign(campaign_id: int):
    """Delete a campaign that was never sent."""
    drafts.delete_draft(campaign_or_404(campaign_id), current_api_organiser())
    db.session.commit()
    return "", 204


@bp.post("/campaigns/<int:campaign_id>/test")
@token_required(Role.EDITOR)
def send_test(campaign_id: int):
    """Mail a test copy, subject prefixed "[Test] ", to a few addresses."""
    campaign = campaign_or_404(campaign_id)
    payload = inputs.json_body(allowed={"addresses"}, required={"addresses"})
    raw = payload["addresses"]
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) for item in raw):
        raise inputs.bad_request("'addresses' must be a non-empty list of email addresses.")
    addresses = testcopy.send_test_copy(campaign, "\n".join(raw), current_api_organiser())
    tasks.queue_test(campaign.id, addresses)
    db.session.commit()
    return {"addresses": addresses}, 202


@bp.post("/campaigns/<int:campaign_id>/schedule")
@token_required(Role.EDITOR)
def schedule(campaign_id: int):
    """Send automatically at `send_at`."""
    campaign = campaign_or_404(campaign_id)
    payload = inputs.json_body(allowed={"send_at"}, required={"send_at"})
    raw = inputs.string_field(payload, "send_at")
    try:
        # Python 3.11 reads only upper-case T and Z; astimezone overflows past the year 9999.
        when = datetime.fromisoformat(raw.upper()).astimezone(UTC) if RFC3339.fullmatch(raw) else None
    except (ValueError, OverflowError):
        when = None
    if when is None:
        raise inputs.bad_request(
            "'send_at' must be an RFC 3339 date and time with its offset, e.g. 2026-12-05T09:00:00+00:00."
        )
    services.schedule(campaign, when, current_api_organiser())
    db.session.commit()
    return campaign_json(campaign)


@bp.post("/campaigns/<int:campaign_id>/unschedule")
@token_required(Role.EDITOR)
def unschedule(campaign_id: int):
    """Back to draft; nothing will be sent."""
    campaign = campaign_or_404(campaign_id)
    _no_body()
    services.unschedule(campaign, current_api_organiser())
    db.session.commit()
    return campaign_json(campaign)


@bp.post("/campaigns/<int:campaign_id>/send")
@token_required(Role.EDITOR)
def send(campaign_id: int):
    """Start sending now to everyone confirmed on the target lists."""
    campaign = campaign_or_404(campaign_id)
    _no_body()
    services.start_sending(campaign, current_api_organiser())
    after_commit(tasks.start_campaign, campaign.id)
    db.session.commit()
    return campaign_json(campaign), 202


@bp.post("/campaigns/<int:campaign_id>/pause")
@token_required(Role.EDITOR)
def pause(campaign_id: int):
    """Stop sending after the batches in flight, with an optional reason shown to organisers."""
    campaign = campaign_or_404(campaign_id)
    payload = inputs.json_body(allowed={"reason"}, empty_ok=True)
    reason = None
    if payload.get("reason") is not None:
        reason = inputs.printable(inputs.string_field(payload, "reason"), "'reason'", 500)
    services.pause(campaign, current_api_organiser(), reason)
    db.session.commit()
    return campaign_json(campaign)


@bp.post("/campaigns/<int:campaign_id>/resume")
@token_required(Role.EDITOR)
def resume(campaign_id: int):
    """Carry on sending a paused campaign."""
    campaign = campaign_or_404(campaign_id)
    _no_body()
    services.resume(campaign, current_api_organiser())
    after_commit(tasks.start_campaign, campaign.id)
    db.session.commit()
    return campaign_json(campaign), 202


@bp.post("/campaigns/<int:campaign_id>/cancel")
@token_required(Role.EDITOR)
def cancel(campaign_id: int):
    """Stop for good; what was not sent is marked skipped."""
    campaign = campaign_or_404(campaign_id)
    _no_body()
    services.cancel(campaign, current_api_organiser())
    db.session.commit()
    return campaign_json(campaign)


@bp.post("/campaigns/<int:campaign_id>/resend-failed")
@token_required(Role.EDITOR)
def resend_failed(campaign_id: int):
    """Send the failed deliveries again (not the `unknown` ones, which may have arrived)."""
    campaign = campaign_or_404(campaign_id)
    _no_body()
    count = services.resend_failed(campaign, current_api_organiser())
    after_commit(tasks.start_campaign, campaign.id)
    db.session.commit()
    return {"requeued": count, "campaign": campaign_json(campaign)}, 202


@bp.get("/campaigns/<int:campaign_id>/stats")
@token_required(Role.VIEWER)
def stats(campaign_id: int):
    """Deliveries by status, the recent send rate and the time remaining."""
    return services.campaign_stats(campaign_or_404(campaign_id)).as_dict()


@bp.get("/campaigns/<int:campaign_id>/preview")
@token_required(Role.VIEWER)
def preview(campaign_id: int):
    """The campaign as a recipient called Alex would get it; with `lang`, as a reader of that language would."""
    campaign = campaign_or_404(campaign_id)
    args = inputs.query_args({"lang"})
    if "lang" in args and args["lang"] not in LANGUAGE_NAMES:
        raise inputs.bad_request(f"'lang' must be one of: {', '.join(LANGUAGE_NAMES)}.")
    rendered = render.render_preview(languages.in_language(campaign, args.get("lang")))
    return {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}
