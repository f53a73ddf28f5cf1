"""The sender health page (/organisers/deliverability): the DNS records receivers check against what they should say,
the bounce and complaint rates of recent campaigns, a SpamAssassin check of any campaign, and, for administrators
only (it may hold anyone's address), the mail bounce handling set aside.

Views call the health, rates, spamcheck and setaside modules, commit, and render; every route checks the role itself.
"""

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from ..campaigns import services as campaign_services
from ..extensions import db
from ..inputguard import database_id
from ..organisers import access
from ..organisers.models import Role
from ..subscribers.forms import ActionForm
from . import health, rates, setaside, spamcheck
from .health import Verdict
from .models import SetAsideMail

bp = Blueprint("deliverability", __name__, url_prefix="/organisers/deliverability")
bp.before_request(access.load_current_session)


@bp.context_processor
def source_words() -> dict:
    """The pages name each way mail arrives in words."""
    return {"source_words": setaside.SOURCE_WORDS}


# Ids in URLs fit PostgreSQL's integer column; larger ones are simply not found.
ID = "int(max=2147483647)"
SPAM_CHECK_CAMPAIGNS = 10
SET_ASIDE_PAGE = 50


@bp.get("")
@access.role_required(Role.VIEWER)
def health_page():
    """DNS records, campaign rates, the spam check's buttons, and how much mail is set aside."""
    sections = health.dns_report(current_app._get_current_object())
    thresholds = rates.Thresholds.from_config(current_app.config)
    checks = [check for section in sections for check in section.checks]
    return render_template(
        "bounces/health.html",
        sections=sections,
        checks=checks,
        attention=[check for check in checks if check.verdict is not Verdict.MATCHES],
        rates=rates.recent_campaign_rates(current_app.config["HEALTH_CAMPAIGNS"], thresholds),
        thresholds=thresholds,
        campaigns=campaign_services.campaigns_page(limit=SPAM_CHECK_CAMPAIGNS),
        spamassassin=spamcheck.program() is not None,
        set_aside_count=setaside.count(),
        action_form=ActionForm(),
    )


@bp.post(f"/campaigns/<{ID}:campaign_id>/spam-check")
@access.role_required(Role.VIEWER)
def spam_check(campaign_id: int):
    """Run SpamAssassin on the campaign's message and show its score and rules, or why it could not run."""
    campaign = campaign_services.get_campaign(campaign_id)
    if campaign is None:
        abort(404)
    report, problem, status = None, None, 200
    try:
        if spamcheck.program() is None:
            raise spamcheck.SpamCheckFailed("SpamAssassin is not installed on this server, so this check can't run.")
        spamcheck.count_check(g.organiser.id)
        report = spamcheck.check_message(spamcheck.campaign_message(campaign))
    except spamcheck.SpamChecksLimited as exc:
        problem, status = str(exc), 429
    except spamcheck.SpamCheckFailed as exc:
        problem = str(exc)
    return render_template("bounces/spam_check.html", campaign=campaign, report=report, error=problem), status


# Set-aside mail: administrators only


def mail_or_404(mail_id: int) -> SetAsideMail:
    """The set-aside message, or a 404 page."""
    mail = setaside.get(mail_id)
    if mail is None:
        abort(404)
    return mail


@bp.get("/set-aside")
@access.role_required(Role.ADMIN)
def set_aside_list():
    """Set-aside mail, newest first, a page at a time: when, from where, why, how big."""
    raw = (request.args.get("before") or "").strip()
    before = database_id(raw) if raw else None
    if raw and before is None:
        error = "That page link is broken; start again from the first page."
        page = dict(mails=[], next_before=None, paged=True, total=None, error=error)
        return render_template("bounces/set_aside.html", **page), 400
    mails = setaside.page(before, SET_ASIDE_PAGE + 1)
    return render_template(
        "bounces/set_aside.html",
        mails=mails[:SET_ASIDE_PAGE],
        next_before=mails[SET_ASIDE_PAGE - 1].id if len(mails) > SET_ASIDE_PAGE else None,
        paged=before is not None,
        total=setaside.count(),
        error=None,
    )


@bp.get(f"/set-aside/<{ID}:mail_id>")
@access.role_required(Role.ADMIN)
def set_aside_mail(mail_id: int):
    """One set-aside message as plain text, never as HTML; the reading is audited."""
    mail = mail_or_404(mail_id)
    setaside.record_reading(mail, g.organiser)
    db.session.commit()
    return render_template("bounces/set_aside_mail.html", mail=mail, text=setaside.readable_text(mail.content))


@bp.route(f"/set-aside/<{ID}:mail_id>/delete", methods=["GET", "POST"])
@access.role_required(Role.ADMIN)
def delete_set_aside_mail(mail_id: int):
    """Delete one set-aside message after a confirmation."""
    mail = mail_or_404(mail_id)
    if request.method == "POST":
        setaside.delete(mail, g.organiser)
        db.session.commit()
        flash("The message is deleted.")
        return redirect(url_for(".set_aside_list"))
    return render_template("bounces/set_aside_delete.html", mail=mail, form=ActionForm())
