"""Organiser pages for events (the recurring protests): the list, creating and editing, and the event page with hold
and resume, the next dates with their reminders and per-date changes, the reminder log and the next reminder's preview.

Views parse input, call the event operations, commit, and only then queue a notice's campaign; every route checks the
role itself.
"""

from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from ..campaigns import services as campaign_services
from ..campaigns import tasks as campaign_tasks
from ..campaigns.archive import mail_document
from ..campaigns.languages import LANGUAGE_NAMES
from ..campaigns.services import TransitionRefused
from ..extensions import db
from ..models import utcnow
from ..organisers import access
from ..organisers.models import Role
from ..queueing import after_commit
from ..subscribers import lists as list_services
from ..validation import InvalidInput
from . import services, translations
from .forms import EventForm, HoldForm, OverrideForm, ResumeForm, offset_key_words, offset_words, parse_date
from .models import Event, ReminderStatus
from .planning import default_list, overrides_of

bp = Blueprint("reminders", __name__, url_prefix="/organisers/events")
bp.before_request(access.load_current_session)

# Ids in URLs fit PostgreSQL's integer column; larger ones are simply not found.
ID = "int(max=2147483647)"
LONDON = ZoneInfo("Europe/London")
LOG_LENGTH = 20


def duration_words(minutes: int) -> str:
    """'2 hours', '1 hour 30 minutes', '45 minutes'."""
    hours, rest = divmod(minutes, 60)
    parts = [f"{hours} hour{'' if hours == 1 else 's'}"] if hours else []
    if rest or not hours:
        parts.append(f"{rest} minute{'' if rest == 1 else 's'}")
    return " ".join(parts)


def day_words(day: date) -> str:
    """'Saturday 5 December 2026'."""
    return f"{day:%A} {day.day} {day:%B %Y}"


bp.add_app_template_filter(duration_words, "duration_words")
bp.add_app_template_filter(day_words, "day_words")
bp.add_app_template_filter(offset_key_words, "offset_key_words")
bp.add_app_template_global(offset_words, "offset_words")


def event_or_404(event_id: int) -> Event:
    """The event, or a 404 page."""
    event = services.get_event(event_id)
    if event is None:
        abort(404)
    return event


def back_to(event_id: int, message: str):
    """Tell the organiser what happened and return to the event page (the caller has committed)."""
    flash(message)
    return redirect(url_for(".event", event_id=event_id))


def status_for(refusal: InvalidInput) -> int:
    """409 when the event's state does not allow the action (someone else got there first), else 400."""
    return 409 if isinstance(refusal, TransitionRefused) else 400


def london_today() -> date:
    """Today's date on London's wall clock."""
    return utcnow().astimezone(LONDON).date()


# The list


@bp.get("")
@access.role_required(Role.VIEWER)
def index():
    """Every event with its rule in words, time, place, list, status and next date."""
    rows = [(event, services.describe_rule(event), services.next_occurrence(event)) for event in services.all_events()]
    return render_template("reminders/index.html", rows=rows)


# Creating and editing


def render_form(form: EventForm, event: Event | None, error: str | None = None):
    """The event form, with the active lists (and the event's own, even if archived, so saving explains why not)."""
    chosen = form.list_id.data or ""
    lists = [m for m in list_services.all_lists() if not m.archived or str(m.id) == chosen]
    return render_template("reminders/form.html", form=form, event=event, lists=lists, error=error), (
        400 if error else 200
    )


@bp.route("/new", methods=["GET", "POST"], defaults={"event_id": None})
@bp.route(f"/<{ID}:event_id>/edit", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def edit(event_id: int | None):
    """Create an event (it starts on hold) or change one; errors leave nothing stored."""
    event = existing = event_or_404(event_id) if event_id is not None else None
    if request.method == "GET":
        reminders_list = default_list()
        return render_form(EventForm.for_event(event, reminders_list and reminders_list.id, london_today()), event)
    form = EventForm()
    try:
        fields = form.event_fields(timezone=event.timezone if event else "Europe/London")
        if event is None:
            event = services.create_event(fields, g.organiser)
            message = "The event is saved. It is on hold: review it, then resume it to start sending reminders."
        else:
            services.update_event(event, fields, g.organiser)
            message = "The event is saved."
    except InvalidInput as exc:
        db.session.rollback()
        return render_form(form, existing, error=str(exc))
    db.session.commit()
    return back_to(event.id, message)


# The event page


def render_event(
    event: Event,
    error: str | None = None,
    status: int = 400,
    hold_form: HoldForm | None = None,
    resume_form: ResumeForm | None = None,
    failed_override: tuple[date, OverrideForm] | None = None,
):
    """The event page: details, hold or resume, the next dates with their reminders and change forms, the log and the
    next reminder's subject above its preview; with an error if given."""
    # First: the preview builds a campaign and rolls it back, which expires everything loaded before it.
    preview_subject, preview_error = None, None
    try:
        mail = services.preview_next_reminder(event)
        preview_subject = mail.subject if mail else None
    except InvalidInput as exc:
        db.session.rollback()
        preview_error = str(exc)
    overrides = overrides_of(event)
    override_forms = {day: OverrideForm.for_override(row) for day, row in overrides.items()}
    if failed_override is not None:
        override_forms[failed_override[0]] = failed_override[1]
    return render_template(
        "reminders/event.html",
        event=event,
        rule_words=services.describe_rule(event),
        next_occurrence=services.next_occurrence(event),
        upcoming=services.upcoming_with_reminders(event),
        log=services.reminder_log(event, limit=LOG_LENGTH),
        overrides=overrides,
        override_forms=override_forms,
        blank_override=OverrideForm(formdata=None),
        failed_date=failed_override[0] if failed_override else None,
        confirmed=campaign_services.recipient_count([event.list_id]),
        preview_subject=preview_subject,
        preview_error=preview_error,
        hold_form=hold_form or HoldForm(formdata=None),
        resume_form=resume_form or ResumeForm(formdata=None),
        now=utcnow(),
        ReminderStatus=ReminderStatus,
        language_names=LANGUAGE_NAMES,
        error=error,
    ), status if error else 200


@bp.get(f"/<{ID}:event_id>")
@access.role_required(Role.VIEWER)
def event(event_id: int):
    """What the event is, what comes next, what was sent, and what can be done with it."""
    return render_event(event_or_404(event_id))


def queue_notice(campaign_id: int | None) -> str:
    """Start sending a notice's campaign once the commit that follows is done; the words to add to the message."""
    if campaign_id is None:
        return ""
    after_commit(campaign_tasks.start_campaign, campaign_id)
    return " The notice is on its way to the list."


@bp.post(f"/<{ID}:event_id>/hold")
@access.role_required(Role.EDITOR)
def hold(event_id: int):
    """Stop the reminders, with a reason; optionally tell the list."""
    event = event_or_404(event_id)
    form = HoldForm()
    try:
        campaign_id = services.hold(event, form.reason_text(), g.organiser, notice=bool(form.notice.data))
    except InvalidInput as exc:
        db.session.rollback()
        return render_event(event, error=str(exc), status=status_for(exc), hold_form=form)
    message = "The event is on hold: no reminders go out until it is resumed." + queue_notice(campaign_id)
    db.session.commit()
    return back_to(event.id, message)


@bp.post(f"/<{ID}:event_id>/resume")
@access.role_required(Role.EDITOR)
def resume(event_id: int):
    """Take the event off hold; reminders due from now on go out. Optionally announce the next date."""
    event = event_or_404(event_id)
    form = ResumeForm()
    try:
        campaign_id = services.resume(event, g.organiser, notice=bool(form.notice.data))
    except InvalidInput as exc:
        db.session.rollback()
        return render_event(event, error=str(exc), status=status_for(exc), resume_form=form)
    message = "The event is active: reminders go out from now on." + queue_notice(campaign_id)
    db.session.commit()
    return back_to(event.id, message)


@bp.post(f"/<{ID}:event_id>/dates/<string(length=10):day>")
@access.role_required(Role.EDITOR)
def change_date(event_id: int, day: str):
    """Cancel one date, move its time or place, or add a note for it; "Clear" puts it back as the rule gives it."""
    event = event_or_404(event_id)
    form = OverrideForm()
    occurrence_date = None
    try:
        occurrence_date = parse_date(day, "date")
        if occurrence_date is None:
            raise InvalidInput("The date could not be read.")
        override = services.set_override(event, occurrence_date, g.organiser, **form.changes())
    except InvalidInput as exc:
        db.session.rollback()
        failed = (occurrence_date, form) if occurrence_date is not None else None
        return render_event(event, error=str(exc), failed_override=failed)
    db.session.commit()
    when = day_words(occurrence_date)
    if override is None:
        return back_to(event.id, f"{when} is back to what the rule gives.")
    if override.cancelled:
        return back_to(event.id, f"{when} is cancelled. Its reminders will not be sent.")
    return back_to(event.id, f"{when} is changed. Its reminders will say so.")


@bp.get(f"/<{ID}:event_id>/preview")
@access.role_required(Role.VIEWER)
def preview(event_id: int):
    """The next reminder's mail exactly as it will be sent (in the language asked for, `?lang=ug`), for the sandboxed
    preview frames of the event and translation pages."""
    event = event_or_404(event_id)
    try:
        mail = services.preview_next_reminder(event, translations.translation(event, request.args.get("lang", "")))
    except InvalidInput as exc:
        db.session.rollback()
        return mail_document(render_template("campaigns/preview_error.html", message=str(exc)), status=422)
    if mail is None:
        message = (
            "Set the start time of the event: until then there are no dates and nothing is sent."
            if event.start_time is None
            else "The rule gives no more dates, so there is no reminder to show."
        )
        return mail_document(render_template("campaigns/preview_error.html", message=message), status=404)
    return mail_document(mail.html)
