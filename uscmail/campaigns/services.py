"""Campaign operations, called the same way from pages, the API, the CLI and tests. They flush; the caller commits,
and tasks are queued with `after_commit` (uscmail/queueing.py), so they start only once that commit is done."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..bounces import services as bounce_services
from ..bounces.models import BounceKind
from ..extensions import db
from ..mail.messages import sender_address
from ..models import MailingList, Subscription, SubscriptionStatus, utcnow
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput, single_line_text, unsendable
from . import progress, render
from .models import BodyFormat, Campaign, CampaignKind, CampaignStatus, Delivery, DeliveryStatus
from .progress import delivery_counts
from .revisions import next_revision
from .senders import campaign_sender, check_sender, sender_email

SUBJECT_MAX_LENGTH = 255
PREHEADER_MAX_LENGTH = 255
FROM_NAME_MAX_LENGTH = 200
# A page of the campaign list (the API's `limit`).
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 50, 200
BODY_MAX_LENGTH = 500_000


@dataclass
class CampaignFields:
    """What an organiser writes; every field is checked by `clean_fields` before it is stored."""

    subject: str
    body: str
    list_ids: list[int]
    body_format: BodyFormat = BodyFormat.MARKDOWN
    preheader: str = ""
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    public: bool = False


class TransitionRefused(InvalidInput):
    """The campaign is not in a state that allows this action (e.g. pausing a sent campaign)."""


def _single_line(value: str | None, what: str, max_length: int, required: bool) -> str:
    return single_line_text(value, what, max_length, required=required, missing=f"Please give the campaign a {what}.")


def _target_lists(list_ids: list[int]) -> list[MailingList]:
    if not list_ids:
        raise InvalidInput("Choose at least one list to send to.")
    lists = list(db.session.scalars(sa.select(MailingList).where(MailingList.id.in_(set(list_ids)))))
    if len(lists) != len(set(list_ids)):
        raise InvalidInput("One of the chosen lists does not exist.")
    if any(mailing_list.archived for mailing_list in lists):
        raise InvalidInput("Archived lists can't be sent to; choose an active list.")
    return sorted(lists, key=lambda mailing_list: mailing_list.id)


def clean_body(body: str | None, body_format: BodyFormat) -> str:
    """The body as written, if it can be stored and sent; else InvalidInput saying why."""
    body = body or ""
    if not body.strip():
        raise InvalidInput("Please write the body of the campaign.")
    # NUL and lone surrogates cannot be stored (PostgreSQL refuses them); no control character belongs in a mail.
    if unsendable(body):
        raise InvalidInput("The body contains characters that can't be sent (NUL or a broken character).")
    if len(body) > BODY_MAX_LENGTH:
        raise InvalidInput(f"The body is too long (at most {BODY_MAX_LENGTH:,} characters).")
    render.check_template(body, body_format)
    return body


def clean_fields(fields: CampaignFields) -> tuple[dict, list[MailingList]]:
    """Check and normalise what the organiser wrote; return column values and target lists, or raise InvalidInput.

    The body is compiled in the sandbox here, so a template that reaches for config or Python internals is refused
    when it is saved, not when it is sent.
    """
    default_sender = sender_address()
    subject = _single_line(fields.subject, "subject", SUBJECT_MAX_LENGTH, required=True)
    preheader = _single_line(fields.preheader, "preheader", PREHEADER_MAX_LENGTH, required=False)
    from_name = _single_line(fields.from_name, "sender name", FROM_NAME_MAX_LENGTH, required=False)
    from_name = from_name or default_sender.display_name or "USC-UK"
    from_email = (fields.from_email or "").strip() or default_sender.addr_spec
    from_email = campaign_sender(from_email)
    reply_to = sender_email(fields.reply_to, "reply-to address") if (fields.reply_to or "").strip() else None
    try:
        body_format = BodyFormat(fields.body_format)
    except ValueError:
        raise InvalidInput("The body format must be markdown or html.") from None
    body = clean_body(fields.body, body_format)
    render.check_subject(subject)
    lists = _target_lists(fields.list_ids)
    values = {
        "subject": subject,
        "preheader": preheader,
        "body_format": body_format,
        "body": body,
        "from_name": from_name,
        "from_email": from_email,
        "reply_to": reply_to,
        "public": bool(fields.public),
    }
    return values, lists


def create_campaign(
    fields: CampaignFields, actor: Organiser | str, kind: CampaignKind = CampaignKind.NEWSLETTER
) -> Campaign:
    """A new draft."""
    values, lists = clean_fields(fields)
    campaign = Campaign(kind=kind, created_by_id=actor.id if isinstance(actor, Organiser) else None, **values)
    campaign.lists = lists
    db.session.add(campaign)
    db.session.flush()
    audit.record(actor, "campaign.create", "campaign", campaign.id, kind=kind.value)
    return campaign


def update_campaign(
    campaign: Campaign, fields: CampaignFields, actor: Organiser | str, revision: int | None = None, **details
) -> Campaign:
    """Change a draft or scheduled campaign; refused once sending has begun, and (given the `revision` the change
    was based on) refused with EditConflict if the campaign has changed since then."""
    if not campaign.editable:
        raise TransitionRefused(f"This campaign is {campaign.status.value}; it can no longer be changed.")
    values, lists = clean_fields(fields)
    for translated in campaign.translations:
        try:
            render.check_template(translated.body, values["body_format"])
        except InvalidInput as exc:
            raise InvalidInput(f"The {translated.locale} translation: {exc}") from None
    next_revision(campaign, revision)
    for key, value in values.items():
        setattr(campaign, key, value)
    campaign.lists = lists
    db.session.flush()
    audit.record(actor, "campaign.update", "campaign", campaign.id, **details)
    return campaign


def get_campaign(campaign_id: int) -> Campaign | None:
    """The campaign with this id, or None."""
    return db.session.get(Campaign, campaign_id)


def campaigns_page(
    kind: CampaignKind | None = None, status: CampaignStatus | None = None, limit: int = 100
) -> list[Campaign]:
    """Most recent campaigns first, optionally of one kind or status."""
    statement = sa.select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if kind is not None:
        statement = statement.where(Campaign.kind == kind)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    return list(db.session.scalars(statement))


def eligible_subscribers(list_ids: list[int]) -> sa.Select:
    """SELECT of the ids of subscribers confirmed on any of these lists (each once)."""
    return (
        sa.select(Subscription.subscriber_id)
        .where(Subscription.list_id.in_(list_ids), Subscription.status == SubscriptionStatus.CONFIRMED)
        .distinct()
    )


def recipient_count(list_ids: list[int]) -> int:
    """How many people would receive a campaign to these lists now."""
    if not list_ids:
        return 0
    return db.session.scalar(sa.select(sa.func.count()).select_from(eligible_subscribers(list_ids).subquery()))


def _transition(campaign: Campaign, allowed: set[CampaignStatus], new: CampaignStatus, refusal: str, **values) -> None:
    """Move the campaign to `new` only if it is still in one of `allowed` (a worker may have moved it meanwhile)."""
    result = db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status.in_(allowed))
        .values(status=new, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(campaign)
    if result.rowcount != 1:
        raise TransitionRefused(refusal.format(status=campaign.status.value))


def schedule(campaign: Campaign, when: datetime, actor: Organiser | str) -> None:
    """Send automatically at `when` (an aware datetime, which must be in the future)."""
    if when.tzinfo is None:
        raise InvalidInput("The schedule needs a time zone.")
    if when <= utcnow() + timedelta(seconds=30):
        raise InvalidInput("Choose a time in the future for the campaign to go out.")
    _transition(
        campaign,
        {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED},
        CampaignStatus.SCHEDULED,
        "This campaign is {status}; it can't be scheduled.",
        scheduled_at=when,
    )
    audit.record(actor, "campaign.schedule", "campaign", campaign.id, scheduled_at=when.isoformat())


def unschedule(campaign: Campaign, actor: Organiser | str) -> None:
    """Back to draft; nothing will be sent."""
    _transition(
        campaign,
        {CampaignStatus.SCHEDULED},
        CampaignStatus.DRAFT,
        "This campaign is {status}, not scheduled.",
        scheduled_at=None,
    )
    audit.record(actor, "campaign.unschedule", "campaign", campaign.id)


def start_sending(campaign: Campaign, actor: Organiser | str) -> None:
    """Mark a draft or scheduled campaign as sending; the caller commits and then queues `tasks.start_campaign`."""
    check_sender(campaign)
    if recipient_count(campaign.list_ids) == 0:
        raise InvalidInput("Nobody is confirmed on the chosen lists, so there is no one to send to.")
    _transition(
        campaign,
        {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED},
        CampaignStatus.SENDING,
        "This campaign is {status}; it can't be sent again.",
        started_at=utcnow(),
        status_detail=None,
    )
    audit.record(actor, "campaign.send", "campaign", campaign.id)


def pause(campaign: Campaign, actor: Organiser | str, reason: str | None = None) -> None:
    """Stop sending after the batches in flight; resume() carries on with what was not sent."""
    _transition(
        campaign,
        {CampaignStatus.SENDING},
        CampaignStatus.PAUSED,
        "This campaign is {status}; only a campaign that is sending can be paused.",
        status_detail=reason,
    )
    audit.record(actor, "campaign.pause", "campaign", campaign.id)


def resume(campaign: Campaign, actor: Organiser | str) -> None:
    """Carry on sending a paused campaign; the caller commits and then queues `tasks.start_campaign`."""
    check_sender(campaign)
    _transition(
        campaign,
        {CampaignStatus.PAUSED},
        CampaignStatus.SENDING,
        "This campaign is {status}; only a paused campaign can be resumed.",
        status_detail=None,
        connection_failures=0,
    )
    audit.record(actor, "campaign.resume", "campaign", campaign.id)


def cancel(campaign: Campaign, actor: Organiser | str) -> None:
    """Stop for good: nothing more is sent, and the rows not yet sent are marked skipped."""
    _transition(
        campaign,
        {CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED},
        CampaignStatus.CANCELLED,
        "This campaign is {status}; it can't be cancelled.",
        finished_at=utcnow(),
    )
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SKIPPED, error="campaign cancelled")
        .execution_options(synchronize_session=False)
    )
    record_tallies(campaign.id)
    audit.record(actor, "campaign.cancel", "campaign", campaign.id)


def resend_failed(campaign: Campaign, actor: Organiser | str) -> int:
    """Queue the failed deliveries again (not the `unknown` ones, which may have arrived); return how many.

    The caller commits and then queues `tasks.start_campaign`.
    """
    if campaign.status not in (CampaignStatus.SENT, CampaignStatus.PAUSED, CampaignStatus.SENDING):
        raise TransitionRefused(f"This campaign is {campaign.status.value}; there is nothing to resend.")
    check_sender(campaign)
    result = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.FAILED)
        .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None, error=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        raise InvalidInput("No deliveries of this campaign have failed.")
    if campaign.status is CampaignStatus.SENT:
        _transition(
            campaign,
            {CampaignStatus.SENT},
            CampaignStatus.SENDING,
            "This campaign is {status}.",
            finished_at=None,
        )
    audit.record(actor, "campaign.resend_failed", "campaign", campaign.id, count=result.rowcount)
    return result.rowcount


@dataclass
class CampaignStats:
    """Where a campaign's deliveries stand, for the progress bar and the API."""

    status: str
    status_detail: str | None
    recipients: int
    pending: int
    sent: int
    failed: int
    skipped: int
    unknown: int
    rate_per_second: float
    seconds_remaining: int | None
    snapshot_done: bool
    # Reports that came back (uscmail/bounces), each recipient counted once per kind.
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    # People who left through the campaign's unsubscribe links (a count kept on the campaign, never who).
    unsubscribes: int = 0

    @property
    def done(self) -> int:
        """Deliveries that reached an end state."""
        return self.sent + self.failed + self.skipped + self.unknown

    @property
    def percent(self) -> int:
        """Share of deliveries in an end state, 0–100."""
        return int(100 * self.done / self.recipients) if self.recipients else 0

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "status": self.status,
            "status_detail": self.status_detail,
            "recipients": self.recipients,
            "pending": self.pending,
            "sent": self.sent,
            "failed": self.failed,
            "skipped": self.skipped,
            "unknown": self.unknown,
            "done": self.done,
            "percent": self.percent,
            "rate_per_second": self.rate_per_second,
            "seconds_remaining": self.seconds_remaining,
            "snapshot_done": self.snapshot_done,
            "hard_bounces": self.hard_bounces,
            "soft_bounces": self.soft_bounces,
            "complaints": self.complaints,
            "unsubscribes": self.unsubscribes,
        }


def record_tallies(campaign_id: int) -> None:
    """Store the final sent and failed counts on a campaign that has ended."""
    counts = delivery_counts(campaign_id)
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(sent_count=counts.get(DeliveryStatus.SENT, 0), failed_count=counts.get(DeliveryStatus.FAILED, 0))
        .execution_options(synchronize_session=False)
    )


RATE_WINDOW = timedelta(seconds=30)


def send_rate(campaign: Campaign, sent: int, recent: float | None = None) -> float:
    """Messages a second: while sending, `recent` (from the counts of the last half minute, progress.py) or else
    counted from the rows sent over the last RATE_WINDOW (or since the send began, if that is sooner); once the send
    has finished, its average from start to finish; 0 while paused."""
    started, now = campaign.started_at, utcnow()
    if started is None:
        return 0.0
    if campaign.status is not CampaignStatus.SENDING:
        if campaign.finished_at is None or not sent:  # paused, or nothing sent: no rate to speak of
            return 0.0
        return round(sent / max((campaign.finished_at - started).total_seconds(), 0.001), 1)
    if recent is not None:
        return round(max(0.0, recent), 1)
    since = max(started, now - RATE_WINDOW)
    counted = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.SENT, Delivery.sent_at >= since)
    )
    return round(counted / max((now - since).total_seconds(), 1.0), 1)


def campaign_stats(campaign: Campaign) -> CampaignStats:
    """Counts by status (while sending, at most a second old: progress.py), the send rate and the time remaining."""
    if campaign.status is CampaignStatus.SENDING:
        counts, recent = progress.live_counts(campaign)
    else:
        counts, recent = delivery_counts(campaign.id), None
    pending = counts.get(DeliveryStatus.PENDING, 0) + counts.get(DeliveryStatus.SENDING, 0)
    rate = send_rate(campaign, counts.get(DeliveryStatus.SENT, 0), recent)
    remaining = int(pending / rate) if rate and pending else (0 if not pending else None)
    reports = bounce_services.campaign_counts([campaign.id])[campaign.id]
    return CampaignStats(
        status=campaign.status.value,
        status_detail=campaign.status_detail,
        recipients=sum(counts.values()),
        pending=pending,
        sent=counts.get(DeliveryStatus.SENT, 0),
        failed=counts.get(DeliveryStatus.FAILED, 0),
        skipped=counts.get(DeliveryStatus.SKIPPED, 0),
        unknown=counts.get(DeliveryStatus.UNKNOWN, 0),
        rate_per_second=rate,
        seconds_remaining=remaining,
        snapshot_done=campaign.snapshot_done,
        hard_bounces=reports[BounceKind.HARD],
        soft_bounces=reports[BounceKind.SOFT],
        complaints=reports[BounceKind.COMPLAINT],
        unsubscribes=campaign.unsubscribe_count or 0,
    )
