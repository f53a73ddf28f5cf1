"""Organiser pages for campaigns: the list, composing with a live preview, the campaign page with its actions and live
progress, and a confirmation step before sending or cancelling.

Views parse input, call the campaign services, commit, and only then queue tasks; every route checks the role itself.
"""

from collections.abc import Callable

from flask import Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for

from ..extensions import db
from ..inputguard import database_id
from ..organisers import access
from ..organisers.models import Role
from ..queueing import after_commit
from ..subscribers import lists as list_services
from ..subscribers import services as subscriber_services
from ..validation import InvalidInput
from . import languages, render, saved_templates, services, tasks, testcopy
from .archive import mail_document
from .forms import (
    ActionForm,
    CampaignForm,
    ConfirmSendForm,
    SaveAsTemplateForm,
    ScheduleForm,
    TestSendForm,
    london_input_value,
    london_short,
    london_text,
    parse_london_time,
)
from .models import Campaign, CampaignStatus, SavedTemplate
from .revisions import EditConflict
from .services import TransitionRefused

bp = Blueprint("campaigns", __name__, url_prefix="/organisers/campaigns")
bp.before_request(access.load_current_session)

# Ids in URLs fit PostgreSQL's integer column; larger ones are simply not found.
ID = "int(max=2147483647)"
CANCELLABLE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)


def duration_text(seconds: int | None) -> str:
    """'3 min 20 s' for a time remaining; campaigns.js words it the same way."""
    if seconds is None:
        return "not known yet"
    if seconds == 0:
        return "none"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def people(count: int) -> str:
    """'1 person', '1,204 people'."""
    return f"{count:,} {'person' if count == 1 else 'people'}"


bp.add_app_template_filter(london_text, "london")
bp.add_app_template_filter(london_short, "london_short")
bp.add_app_template_filter(duration_text, "duration")
bp.add_app_template_filter(people, "people")


def campaign_or_404(campaign_id: int) -> Campaign:
    """The campaign, or a 404 page."""
    campaign = services.get_campaign(campaign_id)
    if campaign is None:
        abort(404)
    return campaign


def status_for(refusal: InvalidInput) -> int:
    """409 when the campaign's status does not allow the action (someone or the worker moved it on) or it changed
    since the page was opened, 429 when the organiser has sent too many test mails, else 400."""
    if isinstance(refusal, testcopy.TestSendLimited):
        return 429
    return 409 if isinstance(refusal, TransitionRefused | EditConflict) else 400


def back_to(campaign_id: int, message: str):
    """Tell the organiser what happened and return to the campaign page (the caller has committed)."""
    flash(message)
    return redirect(url_for(".campaign", campaign_id=campaign_id))


# The list


@bp.get("")
@access.role_required(Role.VIEWER)
def index():
    """Campaigns, newest first, with their delivery counts once sending has begun."""
    campaigns = services.campaigns_page()
    # Live counts only for campaigns still under way; ended ones carry their final tallies.
    live = (CampaignStatus.SENDING, CampaignStatus.PAUSED)
    stats = {campaign.id: services.campaign_stats(campaign) for campaign in campaigns if campaign.status in live}
    return render_template("campaigns/index.html", campaigns=campaigns, stats=stats)


# Composing


def render_compose(
    form: CampaignForm,
    campaign: Campaign | None,
    error: str | None = None,
    status: int = 400,
    from_template: SavedTemplate | None = None,
):
    """The compose page: the form, target lists with their confirmed counts, and the preview frame; with an error,
    the form as the organiser sent it (nothing they typed is lost)."""
    chosen = set(form.lists.data or [])
    # Archived lists are offered only if the campaign still names one, so saving explains why it can't stay.
    lists = [m for m in list_services.all_lists() if not m.archived or str(m.id) in chosen]
    counts = subscriber_services.list_counts()
    return render_template(
        "campaigns/compose.html",
        form=form,
        campaign=campaign,
        lists=lists,
        confirmed={list_id: row.get("confirmed", 0) for list_id, row in counts.items()},
        chosen=chosen,
        error=error,
        saved_templates=saved_templates.all_templates() if campaign is None else [],
        from_template=from_template,
    ), status if error else 200


@bp.route("/new", methods=["GET", "POST"], defaults={"campaign_id": None})
@bp.route(f"/<{ID}:campaign_id>/edit", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def compose(campaign_id: int | None):
    """Write a new campaign or change one that has not started sending; errors leave nothing stored."""
    campaign = campaign_or_404(campaign_id) if campaign_id is not None else None
    if campaign is not None and not campaign.editable:
        return back_to(campaign.id, f"This campaign is {campaign.status.value}; it can no longer be changed.")
    if request.method == "GET":
        template_id = request.args.get("template") if campaign is None else None
        if template_id is not None:
            # "New campaign from template": the form filled in from it; nothing is stored until saved.
            template = saved_templates.get_template(database_id(template_id) or 0)
            if template is None:
                abort(404)
            return render_compose(CampaignForm.for_template(template), None, from_template=template)
        return render_compose(CampaignForm.for_campaign(campaign), campaign)
    form = CampaignForm()
    try:
        if campaign is None:
            campaign = services.create_campaign(form.campaign_fields(), g.organiser)
        else:
            services.update_campaign(campaign, form.campaign_fields(), g.organiser, form.based_on_revision())
    except InvalidInput as exc:
        db.session.rollback()
        return render_compose(form, campaign, error=str(exc), status=status_for(exc))
    db.session.commit()
    return back_to(campaign.id, "The campaign is saved.")


def preview_document(campaign: Campaign):
    """The campaign rendered as the mail's HTML, or a short page saying why it can't be (422)."""
    try:
        html = render.render_preview(campaign).html
    except InvalidInput as exc:
        return mail_document(render_template("campaigns/preview_error.html", message=str(exc)), status=422)
    return mail_document(html)


@bp.post("/preview")
@access.role_required(Role.EDITOR)
def preview():
    """The mail as the form stands, unsaved, for the compose page's sandboxed preview frame."""
    form = CampaignForm()
    try:
        values, lists = services.clean_fields(form.campaign_fields())
    except InvalidInput as exc:
        db.session.rollback()
        return mail_document(render_template("campaigns/preview_error.html", message=str(exc)), status=422)
    # Built in memory only: never added to the session, so nothing of it can be stored.
    campaign = Campaign(**values)
    campaign.lists = lists
    return preview_document(campaign)


def version_asked(campaign: Campaign) -> Campaign | languages.CampaignInLanguage:
    """The campaign in the language the query string asks for (`?lang=ug`), else its own."""
    locale = request.args.get("lang")
    return languages.in_language(campaign, locale) if locale else campaign


@bp.get(f"/<{ID}:campaign_id>/preview")
@access.role_required(Role.VIEWER)
def saved_preview(campaign_id: int):
    """The saved campaign's mail (in the language asked for), for the preview frames of the campaign, compose and
    translation pages."""
    return preview_document(version_asked(campaign_or_404(campaign_id)))


@bp.get(f"/<{ID}:campaign_id>/text")
@access.role_required(Role.VIEWER)
def text_version(campaign_id: int):
    """The plain-text part of the saved campaign (in the language asked for), as mail clients without HTML show it."""
    campaign = version_asked(campaign_or_404(campaign_id))
    error, text = None, ""
    try:
        text = render.render_preview(campaign).text
    except InvalidInput as exc:
        error = str(exc)
    return render_template("campaigns/text.html", campaign=campaign, text=text, error=error)


# The campaign page


def render_campaign(
    campaign: Campaign,
    error: str | None = None,
    status: int = 400,
    schedule_form: ScheduleForm | None = None,
    test_form: TestSendForm | None = None,
    template_form: SaveAsTemplateForm | None = None,
):
    """The campaign page: facts, progress, the actions its status allows, the preview; with an error if given."""
    if schedule_form is None:
        schedule_form = ScheduleForm(data={"send_at": london_input_value(campaign.scheduled_at)})
    return render_template(
        "campaigns/campaign.html",
        campaign=campaign,
        stats=services.campaign_stats(campaign) if campaign.started_at else None,
        recipients=services.recipient_count(campaign.list_ids) if campaign.editable else None,
        schedule_form=schedule_form,
        test_form=test_form or TestSendForm(),
        template_form=template_form or SaveAsTemplateForm(),
        test_limit=current_app.config["CAMPAIGN_TEST_RECIPIENTS_MAX"],
        test_allowance=testcopy.allowance(),
        action_form=ActionForm(),
        language_names=languages.LANGUAGE_NAMES,
        error=error,
    ), status if error else 200


@bp.get(f"/<{ID}:campaign_id>")
@access.role_required(Role.VIEWER)
def campaign(campaign_id: int):
    """Where the campaign stands and what can be done with it."""
    return render_campaign(campaign_or_404(campaign_id))


@bp.get(f"/<{ID}:campaign_id>/stats.json")
@access.role_required(Role.VIEWER)
def stats(campaign_id: int):
    """Delivery counts, rate and time remaining, for the live progress bar."""
    return jsonify(services.campaign_stats(campaign_or_404(campaign_id)).as_dict())


@bp.post(f"/<{ID}:campaign_id>/test")
@access.role_required(Role.EDITOR)
def send_test(campaign_id: int):
    """Send a test copy (subject marked "[Test]") to a few addresses, within the organiser's test-mail limit."""
    campaign = campaign_or_404(campaign_id)
    form = TestSendForm()
    try:
        addresses = testcopy.send_test_copy(campaign, form.addresses.data, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return render_campaign(campaign, error=str(exc), status=status_for(exc), test_form=form)
    tasks.queue_test(campaign.id, addresses)
    db.session.commit()
    return back_to(campaign.id, f"Test sent to {len(addresses)} address{'' if len(addresses) == 1 else 'es'}.")


@bp.post(f"/<{ID}:campaign_id>/schedule")
@access.role_required(Role.EDITOR)
def schedule(campaign_id: int):
    """Send automatically at a date and time given in London time."""
    campaign = campaign_or_404(campaign_id)
    form = ScheduleForm()
    try:
        when = parse_london_time(form.send_at.data)
        services.schedule(campaign, when, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return render_campaign(campaign, error=str(exc), status=status_for(exc), schedule_form=form)
    db.session.commit()
    return back_to(campaign.id, f"Scheduled for {london_text(when)}.")


@bp.route(f"/<{ID}:campaign_id>/send", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def send_now(campaign_id: int):
    """Confirm with the number of people it will reach, then start sending; the count is checked again on POST."""
    campaign = campaign_or_404(campaign_id)
    if not campaign.editable:
        return back_to(campaign.id, f"This campaign is {campaign.status.value}; it can't be sent again.")
    count = services.recipient_count(campaign.list_ids)
    form = ConfirmSendForm()
    error = None
    if request.method == "POST":
        if form.expected.data != str(count):
            error = f"The number of recipients changed since you looked: it is now {people(count)}. Check and confirm."
        else:
            try:
                services.start_sending(campaign, g.organiser)
            except InvalidInput as exc:
                db.session.rollback()
                error = str(exc)
            else:
                after_commit(tasks.start_campaign, campaign.id)
                db.session.commit()
                return back_to(campaign.id, f"Sending to {people(count)} has started.")
    form.expected.data = str(count)
    return render_template(
        "campaigns/confirm_send.html", campaign=campaign, count=count, form=form, error=error
    ), 409 if error else 200


@bp.route(f"/<{ID}:campaign_id>/cancel", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def cancel(campaign_id: int):
    """Stop a scheduled, sending or paused campaign for good, after a confirmation."""
    campaign = campaign_or_404(campaign_id)
    form = ActionForm()
    if campaign.status not in CANCELLABLE:
        return back_to(campaign.id, f"This campaign is {campaign.status.value}; it can't be cancelled.")
    error = None
    if request.method == "POST":
        try:
            services.cancel(campaign, g.organiser)
        except InvalidInput as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            return back_to(campaign.id, "The campaign is cancelled. Nothing more will be sent.")
    stats = services.campaign_stats(campaign) if campaign.started_at else None
    return render_template(
        "campaigns/confirm_cancel.html", campaign=campaign, stats=stats, form=form, error=error
    ), 409 if error else 200


# One-button actions: each returns the message to show, and whether sending must be (re)started after the commit.


def _unschedule(campaign: Campaign) -> tuple[str, bool]:
    services.unschedule(campaign, g.organiser)
    return "The campaign is no longer scheduled; it is a draft again.", False


def _pause(campaign: Campaign) -> tuple[str, bool]:
    # The reason is shown wherever the campaign is (pages, API): no address in it; the audit log says who.
    services.pause(campaign, g.organiser, reason="Paused by an organiser.")
    return "Paused. Messages already on their way finish; the rest wait until you resume.", False


def _resume(campaign: Campaign) -> tuple[str, bool]:
    services.resume(campaign, g.organiser)
    return "Sending resumes.", True


def _resend_failed(campaign: Campaign) -> tuple[str, bool]:
    count = services.resend_failed(campaign, g.organiser)
    return f"{people(count).capitalize()} whose message failed will be sent it again.", True


ACTIONS: dict[str, Callable[[Campaign], tuple[str, bool]]] = {
    "unschedule": _unschedule,
    "pause": _pause,
    "resume": _resume,
    "resend-failed": _resend_failed,
}


@bp.post(f"/<{ID}:campaign_id>/<any(unschedule, pause, resume, 'resend-failed'):action>")
@access.role_required(Role.EDITOR)
def act(campaign_id: int, action: str):
    """Unschedule, pause, resume or resend to failed; refusals are explained on the page."""
    campaign = campaign_or_404(campaign_id)
    try:
        message, start = ACTIONS[action](campaign)
    except InvalidInput as exc:
        db.session.rollback()
        return render_campaign(campaign, error=str(exc), status=status_for(exc))
    if start:
        after_commit(tasks.start_campaign, campaign_id)
    db.session.commit()
    return back_to(campaign_id, message)
