"""The organisers' pages: dashboard, subscribers (search, edit, erase, subject access) and lists.

Views parse input, call the subscriber and list services, commit, and render; every route checks the role itself.
"""

import json

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for

from ..bounces import services as bounce_services
from ..extensions import db
from ..inputguard import database_id
from ..models import MailingList, Subscriber, SubscriptionStatus
from ..organisers import access, audit
from ..organisers.models import Role
from ..validation import InvalidInput
from . import charts
from . import lists as list_services
from . import services as subscriber_services
from .forms import ActionForm, EraseForm, ListForm, NameForm, SubscriptionForm

bp = Blueprint("subscribers", __name__, url_prefix="/organisers")
bp.before_request(access.load_current_session)

PAGE_SIZE = 50
# Ids in URLs fit PostgreSQL's integer column; larger ones are simply not found.
ID = "int(max=2147483647)"
STATUSES = [status.value for status in SubscriptionStatus]


def can(role: Role) -> bool:
    """True if the signed-in organiser's role includes `role` (for showing controls; routes check on their own)."""
    return g.organiser.role.includes(role)


# Dashboard


@bp.get("/dashboard")
@access.role_required(Role.VIEWER)
def dashboard():
    """Counts per list and status, signups and unsubscribes per week, and (for admins) the latest audit events."""
    weeks = subscriber_services.weekly_activity(12)
    return render_template(
        "subscribers/dashboard.html",
        lists=list_services.all_lists(),
        counts=subscriber_services.list_counts(),
        statuses=STATUSES,
        weeks=weeks,
        chart=charts.weekly_chart(weeks),
        events=audit.recent_audit_events(10) if can(Role.ADMIN) else None,
    )


# Subscribers


@bp.get("/subscribers")
@access.role_required(Role.VIEWER)
def subscribers():
    """Search by address or name, filter by list and status, newest first, one keyset page at a time."""
    query = (request.args.get("q") or "").strip()[:320]
    slug = (request.args.get("list") or "").strip()
    status = (request.args.get("status") or "").strip()
    after = (request.args.get("after") or "").strip()
    mailing_lists = list_services.all_lists()
    by_slug = {mailing_list.slug: mailing_list for mailing_list in mailing_lists}
    error = None
    if slug and slug not in by_slug:
        error = "There is no such list; choose one from the menu."
    elif status and status not in STATUSES:
        error = "Choose a status from the menu."
    elif after and database_id(after) is None:
        error = "That page link is broken; start again from the first page."
    page, subscriptions = None, {}
    if error is None:
        page = subscriber_services.search_subscribers(
            query,
            list_id=by_slug[slug].id if slug else None,
            status=SubscriptionStatus(status) if status else None,
            after=int(after) if after else None,
            limit=PAGE_SIZE,
        )
        subscriptions = subscriber_services.subscriptions_of([subscriber.id for subscriber in page.subscribers])
    return render_template(
        "subscribers/subscribers.html",
        page=page,
        subscriptions=subscriptions,
        lists=mailing_lists,
        statuses=STATUSES,
        query=query,
        slug=slug,
        status=status,
        paged=bool(after),
        error=error,
    ), 400 if error else 200


def subscriber_or_404(subscriber_id: int) -> Subscriber:
    """The subscriber, or a 404 page."""
    subscriber = subscriber_services.get_subscriber(subscriber_id)
    if subscriber is None:
        abort(404)
    return subscriber


def render_subscriber(subscriber: Subscriber, error: str | None = None, name_form: NameForm | None = None):
    """The subscriber page, with an error message and a 400 status if given one."""
    mailing_lists = list_services.all_lists()
    active = {s.list_id for s in subscriber.subscriptions if s.status is not SubscriptionStatus.UNSUBSCRIBED}
    return render_template(
        "subscribers/subscriber.html",
        subscriber=subscriber,
        subscriptions=sorted(subscriber.subscriptions, key=lambda s: s.list_id),
        consents=subscriber_services.consent_history(subscriber),
        bounces=bounce_services.subscriber_events(subscriber.id),
        campaign_subjects=bounce_services.subjects_of_bounced_campaigns(subscriber.id),
        lists_by_id={mailing_list.id: mailing_list for mailing_list in mailing_lists},
        addable=[m for m in mailing_lists if not m.archived and m.id not in active],
        name_form=name_form or NameForm(name=subscriber.name),
        action_form=ActionForm(),
        error=error,
    ), 400 if error else 200


@bp.get(f"/subscribers/<{ID}:subscriber_id>")
@access.role_required(Role.VIEWER)
def subscriber(subscriber_id: int):
    """Name, address, subscriptions and consent history; the controls each role may use."""
    return render_subscriber(subscriber_or_404(subscriber_id))


def back_to(subscriber: Subscriber, message: str):
    """Commit, tell the organiser what happened, and return to the subscriber page."""
    db.session.commit()
    flash(message)
    return redirect(url_for(".subscriber", subscriber_id=subscriber.id))


@bp.post(f"/subscribers/<{ID}:subscriber_id>/name")
@access.role_required(Role.EDITOR)
def rename_subscriber(subscriber_id: int):
    """Change the subscriber's name."""
    subscriber = subscriber_or_404(subscriber_id)
    form = NameForm()
    try:
        subscriber_services.update_subscriber(subscriber, form.name.data, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return render_subscriber(subscriber, error=str(exc).replace("Your name", "The name"), name_form=form)
    return back_to(subscriber, "The name is saved.")


@bp.post(f"/subscribers/<{ID}:subscriber_id>/subscriptions")
@access.role_required(Role.EDITOR)
def change_subscription(subscriber_id: int):
    """Subscribe to or unsubscribe from one list, recorded as done by this organiser."""
    subscriber = subscriber_or_404(subscriber_id)
    form = SubscriptionForm()
    list_id = (form.list_id.data or "").strip()
    mailing_list = list_services.get_list(database_id(list_id)) if database_id(list_id) else None
    if mailing_list is None or form.subscribed.data not in ("0", "1"):
        return render_subscriber(subscriber, error="Choose a list and whether to subscribe or unsubscribe.")
    subscribed = form.subscribed.data == "1"
    if subscribed and mailing_list.archived:
        return render_subscriber(subscriber, error=f"{mailing_list.name} is archived and takes no new subscribers.")
    subscriber_services.set_subscription(subscriber, mailing_list, subscribed, g.organiser)
    verb = "Subscribed to" if subscribed else "Unsubscribed from"
    return back_to(subscriber, f"{verb} {mailing_list.name}.")


@bp.post(f"/subscribers/<{ID}:subscriber_id>/unsubscribe-all")
@access.role_required(Role.EDITOR)
def unsubscribe_all(subscriber_id: int):
    """Unsubscribe from every list at once."""
    subscriber = subscriber_or_404(subscriber_id)
    left = subscriber_services.unsubscribe_from(subscriber, None, g.organiser)
    return back_to(subscriber, f"Unsubscribed from {len(left)} list{'' if len(left) == 1 else 's'}.")


@bp.route(f"/subscribers/<{ID}:subscriber_id>/erase", methods=["GET", "POST"])
@access.role_required(Role.ADMIN)
def erase_subscriber(subscriber_id: int):
    """Erase a subscriber for good after an explicit confirmation; the address stays suppressed."""
    subscriber = subscriber_or_404(subscriber_id)
    form = EraseForm()
    error = None
    if request.method == "POST":
        if form.confirm.data:
            subscriber_services.erase(subscriber, g.organiser)
            db.session.commit()
            flash("The subscriber is erased. Their address is suppressed and will never be mailed again.")
            return redirect(url_for(".subscribers"))
        error = "Tick the box to confirm the erasure; nothing was changed."
    return render_template(
        "subscribers/erase.html", subscriber=subscriber, form=form, error=error
    ), 400 if error else 200


@bp.get(f"/subscribers/<{ID}:subscriber_id>/export.json")
@access.role_required(Role.ADMIN)
def export_subscriber(subscriber_id: int):
    """Everything held about the subscriber (GDPR subject access), as a JSON download; audited."""
    subscriber = subscriber_or_404(subscriber_id)
    export = subscriber_services.subject_access_export(subscriber, g.organiser)
    db.session.commit()
    return Response(
        json.dumps(export, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}.json"'},
    )


# Lists


@bp.get("/lists")
@access.role_required(Role.VIEWER)
def lists():
    """Every list with its counts; editors get the controls to change them."""
    return render_template(
        "subscribers/lists.html",
        lists=list_services.all_lists(),
        counts=subscriber_services.list_counts(),
        statuses=STATUSES,
        action_form=ActionForm(),
    )


def list_or_404(list_id: int) -> MailingList:
    """The list, or a 404 page."""
    mailing_list = list_services.get_list(list_id)
    if mailing_list is None:
        abort(404)
    return mailing_list


@bp.route("/lists/new", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def new_list():
    """Create a list."""
    form = ListForm()
    error = None
    if request.method == "POST":
        try:
            mailing_list = list_services.create_list(
                form.slug.data, form.name.data, form.description.data, form.public.data, g.organiser
            )
        except InvalidInput as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            flash(f"The list {mailing_list.name} is created.")
            return redirect(url_for(".lists"))
    return render_template(
        "subscribers/list_form.html", form=form, mailing_list=None, error=error
    ), 400 if error else 200


@bp.route(f"/lists/<{ID}:list_id>/edit", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def edit_list(list_id: int):
    """Change a list's name, description and visibility; archiving has its own button."""
    mailing_list = list_or_404(list_id)
    form = ListForm(obj=mailing_list) if request.method == "GET" else ListForm()
    error = None
    if request.method == "POST":
        try:
            list_services.update_list(
                mailing_list,
                form.name.data,
                form.description.data,
                form.public.data,
                mailing_list.archived,
                g.organiser,
            )
        except InvalidInput as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            flash(f"The list {mailing_list.name} is saved.")
            return redirect(url_for(".lists"))
    return render_template(
        "subscribers/list_form.html", form=form, mailing_list=mailing_list, action_form=ActionForm(), error=error
    ), 400 if error else 200


@bp.post(f"/lists/<{ID}:list_id>/archive", defaults={"archived": True})
@bp.post(f"/lists/<{ID}:list_id>/unarchive", defaults={"archived": False})
@access.role_required(Role.EDITOR)
def archive_list(list_id: int, archived: bool):
    """Archive a list (it leaves the signup form; every subscription is kept) or bring it back."""
    mailing_list = list_or_404(list_id)
    list_services.update_list(
        mailing_list, mailing_list.name, mailing_list.description, mailing_list.public, archived, g.organiser
    )
    db.session.commit()
    if archived:
        flash(f"The list {mailing_list.name} is archived. Its subscriptions are kept; it is off the signup form.")
    else:
        flash(f"The list {mailing_list.name} is back in use.")
    return redirect(url_for(".lists"))
