"""Each recent campaign's bounce and complaint rates against the limits mail providers enforce, with a verdict and
advice worded for a volunteer; for the sender health page. Three grouped queries, none per campaign."""

import enum
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from ..extensions import db
from .models import BounceEvent, BounceKind


class RateVerdict(enum.StrEnum):
    """How a campaign's bounce and complaint rates stand against the thresholds."""

    NOTHING_SENT = "nothing sent yet"
    HEALTHY = "healthy"
    WATCH = "watch"
    ACT_NOW = "act now"


@dataclass(frozen=True)
class Thresholds:
    """Rates in percent: below `aim` is healthy; `limit` must never be reached."""

    complaint_aim: float
    complaint_limit: float
    bounce_aim: float
    bounce_limit: float

    @classmethod
    def from_config(cls, config) -> "Thresholds":
        """HEALTH_COMPLAINT_RATE_AIM, …_LIMIT, HEALTH_BOUNCE_RATE_AIM, …_LIMIT."""
        return cls(
            config["HEALTH_COMPLAINT_RATE_AIM"], config["HEALTH_COMPLAINT_RATE_LIMIT"],
            config["HEALTH_BOUNCE_RATE_AIM"], config["HEALTH_BOUNCE_RATE_LIMIT"],
        )  # fmt: skip


@dataclass(frozen=True)
class CampaignRates:
    """One campaign's messages delivered (`sent`) and refused, the people whose message bounced (hard or soft) and
    who complained, the rates in percent, and the verdict with advice."""

    campaign_id: int
    subject: str
    status: CampaignStatus
    started_at: datetime | None
    sent: int
    refused: int
    bounced: int
    complaints: int
    bounce_rate: float | None
    complaint_rate: float | None
    verdict: RateVerdict
    advice: str


def percent(part: int, whole: int) -> float | None:
    """part of whole in percent; None when whole is 0."""
    return 100.0 * part / whole if whole else None


def judge(bounce_rate: float | None, complaint_rate: float | None, limits: Thresholds) -> tuple[RateVerdict, str]:
    """The verdict and the advice for one campaign's rates (percent)."""
    if bounce_rate is None:
        return RateVerdict.NOTHING_SENT, "No message has gone out yet."
    complaints, bounces = complaint_rate or 0.0, bounce_rate
    advice = []
    if complaints >= limits.complaint_limit:
        advice.append(
            f"Complaints are at or over {limits.complaint_limit:g}%, where Gmail starts putting our mail in spam or "
            "refusing it. Don't mail the same people again until you know why they marked it as spam."
        )
    elif complaints >= limits.complaint_aim:
        advice.append(
            f"Complaints are at or over the {limits.complaint_aim:g}% Gmail asks senders to stay under. Check that "
            "everyone on the list asked to be there and that the unsubscribe link is easy to find."
        )
    if bounces >= limits.bounce_limit:
        advice.append(
            f"Bounces are at or over {limits.bounce_limit:g}%: providers read that as a bought or stale list. Find "
            "out where these addresses came from before sending again."
        )
    elif bounces >= limits.bounce_aim:
        advice.append(
            f"Bounces are at or over {limits.bounce_aim:g}%. Dead addresses are removed automatically, but an old or "
            "imported list may need a clean-up."
        )
    if complaints >= limits.complaint_limit or bounces >= limits.bounce_limit:
        return RateVerdict.ACT_NOW, " ".join(advice)
    if advice:
        return RateVerdict.WATCH, " ".join(advice)
    return RateVerdict.HEALTHY, "Complaints and bounces are below the levels mail providers ask for."


RATED_STATUSES = (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT, CampaignStatus.CANCELLED)
ENDED = (DeliveryStatus.SENT, DeliveryStatus.FAILED)  # the messages a rate is taken of


def recent_campaign_rates(limit: int, thresholds: Thresholds) -> list[CampaignRates]:
    """The `limit` campaigns that most recently started sending, newest first, with their rates: three queries."""
    campaigns = db.session.execute(
        sa.select(
            Campaign.id, Campaign.subject, Campaign.status, Campaign.started_at,
            Campaign.sent_count, Campaign.failed_count,
        )
        .where(Campaign.status.in_(RATED_STATUSES), Campaign.started_at.is_not(None))
        .order_by(Campaign.started_at.desc(), Campaign.id.desc())
        .limit(limit)
    ).all()  # fmt: skip
    ids = [campaign.id for campaign in campaigns]
    # Ended campaigns carry their final tallies; only the others' deliveries are counted.
    uncounted = [campaign.id for campaign in campaigns if campaign.sent_count is None or campaign.failed_count is None]
    # Counted on the (campaign, status) index: sent and refused messages of each campaign still without tallies.
    deliveries: dict[int, dict[DeliveryStatus, int]] = {campaign_id: {} for campaign_id in uncounted}
    if uncounted:
        for campaign_id, status, count in db.session.execute(
            sa.select(Delivery.campaign_id, Delivery.status, sa.func.count())
            .where(Delivery.campaign_id.in_(uncounted), Delivery.status.in_(ENDED))
            .group_by(Delivery.campaign_id, Delivery.status)
        ):
            deliveries[campaign_id][DeliveryStatus(status)] = count
    people = {}
    if ids:
        bounce_kinds = (BounceKind.HARD, BounceKind.SOFT)

        def distinct_people(condition):
            return sa.func.count(sa.distinct(sa.case((condition, BounceEvent.subscriber_id))))

        people = {
            row.campaign_id: (row.bounced, row.complaints)
            for row in db.session.execute(
                sa.select(
                    BounceEvent.campaign_id,
                    distinct_people(BounceEvent.kind.in_(bounce_kinds)).label("bounced"),
                    distinct_people(BounceEvent.kind == BounceKind.COMPLAINT).label("complaints"),
                )
                .where(BounceEvent.campaign_id.in_(ids))
                .group_by(BounceEvent.campaign_id)
            )
        }
    rates = []
    for campaign in campaigns:
        if campaign.id in deliveries:
            counts = deliveries[campaign.id]
            sent, refused = counts.get(DeliveryStatus.SENT, 0), counts.get(DeliveryStatus.FAILED, 0)
        else:
            sent, refused = campaign.sent_count, campaign.failed_count
        bounced, complaints = people.get(campaign.id, (0, 0))
        # Bounces of all messages that went out or were refused; complaints of the messages delivered.
        bounce_rate, complaint_rate = percent(bounced, sent + refused), percent(complaints, sent)
        verdict, advice = judge(bounce_rate, complaint_rate, thresholds)
        rates.append(
            CampaignRates(
                campaign.id, campaign.subject, campaign.status, campaign.started_at, sent, refused, bounced,
                complaints, bounce_rate, complaint_rate, verdict, advice,
            )
        )  # fmt: skip
    return rates
