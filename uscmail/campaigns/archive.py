"""The public archive of campaigns marked public, and each campaign's web version: no personal data in either.

The web version is the mail's own HTML document, served as it is rather than framed by a page of ours: mail HTML is
laid out for any width, and a frame cannot size itself to its content without a script. What makes it safe is its own
Content-Security-Policy: a `sandbox` (no scripts, no forms, an origin of its own, so no access to our cookies or
pages), nothing loaded but inline styles and https/data images, and no framing by anyone.
"""

import re

import sqlalchemy as sa
from flask import Blueprint, Response, abort, render_template

from ..extensions import db
from ..media import mailimages
from . import render
from .forms import london_date
from .models import Campaign, CampaignStatus
from .sandbox import SubjectTemplate, TemplateRefused

bp = Blueprint("archive", __name__)
bp.add_app_template_filter(london_date, "london_date")

PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# For mail HTML shown inside our organiser pages (the preview frame, itself sandboxed by the page).
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'"
# For the web version, opened on its own: the document sandboxes itself; its links open normally.
WEB_VERSION_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"
)
# Recipients got these: their web version stays readable even if the campaign was stopped part way.
STARTED = (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT)


def mail_document(html: str, policy: str = PREVIEW_CSP, status: int = 200) -> Response:
    """A rendered mail as an HTML response with its own relaxed policy (the app's default keeps an explicit one);
    its images may come from our own site too, where the media library serves them (over http in development)."""
    response = Response(html, status=status, mimetype="text/html")
    origin = mailimages.site_origin()
    if not origin.startswith("https:"):  # https: is allowed already
        policy = policy.replace("img-src ", f"img-src {origin} ", 1)
    response.headers["Content-Security-Policy"] = policy
    return response


def public_campaigns() -> list[Campaign]:
    """Campaigns marked public that have been sent, newest first."""
    return list(
        db.session.scalars(
            sa.select(Campaign)
            .where(Campaign.public.is_(True), Campaign.status == CampaignStatus.SENT)
            .order_by(Campaign.finished_at.desc(), Campaign.id.desc())
        )
    )


def campaign_for_web_version(public_id: str) -> Campaign | None:
    """The campaign whose mail went out (at least in part) under this public id, or None."""
    if not PUBLIC_ID.match(public_id):
        return None
    campaign = db.session.scalar(sa.select(Campaign).where(Campaign.public_id == public_id))
    if campaign is None:
        return None
    stopped_after_start = campaign.status is CampaignStatus.CANCELLED and campaign.started_at is not None
    return campaign if campaign.status in STARTED or stopped_after_start else None


def public_subject(campaign: Campaign) -> str:
    """The subject as a reader without a name got it: a subject template never shows its source in public."""
    try:
        return SubjectTemplate(campaign.subject or "").render(None)
    except TemplateRefused:
        return "Newsletter"


@bp.get("/archive")
def index():
    """The list of past newsletters anyone may read."""
    campaigns = [(campaign, public_subject(campaign)) for campaign in public_campaigns()]
    return render_template("archive/index.html", campaigns=campaigns)


@bp.get("/archive/<public_id>")
def web_version(public_id: str):
    """The web version of a campaign that went out: the same mail without personal data or personal links."""
    campaign = campaign_for_web_version(public_id)
    if campaign is None:
        abort(404)
    try:
        mail = render.render_web_version(campaign)
    except render.TemplateRefused:
        # Saved before a rule that now refuses it (a personal link inside another address): never shown.
        abort(404)
    return mail_document(mail.html, policy=WEB_VERSION_CSP)
