"""Supporter pages: signup, confirmation, unsubscribe (with RFC 8058 one-click) and the preference centre.

Every answer to a signup is the same page whatever the address's state, so nothing here reveals membership.
"""

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from ..campaigns.unsubscribes import leave_through_link
from ..extensions import csrf, db, limiter, statements_stand_alone
from ..i18n import LANGUAGES, chosen_locale, current_locale
from ..links import (
    TokenExpired,
    TokenInvalid,
    UnsubscribeLink,
    make_form_started_token,
    make_preferences_token,
    read_confirm_token,
    read_preferences_token,
    read_unsubscribe_link,
)
from ..models import ConsentMethod, StatusReason, Subscriber, SubscriptionStatus
from ..queueing import after_commit
from ..reminders.outlook import protest_outlook
from ..seen import Unavailable as SeenUnavailable
from ..validation import InvalidInput, clean_name
from . import humancheck, services, tasks
from .consent import current_version, shown_wording
from .forms import ConfirmActionForm, HumanCheckForm, PreferencesForm, SignupForm
from .signups import Pace, accept_signup, check_signup, form_locale, signup_pace, store_signup

bp = Blueprint("subscriptions", __name__)
bp.record_once(lambda state: humancheck.init_app(state.app))

ONE_CLICK_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def signup_rate_limit() -> str:
    """The per-client signup limit, read from config at request time."""
    return current_app.config["SIGNUP_RATE_LIMIT"]


signup_limit = limiter.shared_limit(
    signup_rate_limit,
    scope="signup",
    methods=["POST"],
    deduct_when=lambda response: response.status_code < 400,
)


@bp.get("/")
def index():
    """Landing page: the signup form, the next protest, the protests page and feed, and the archive."""
    return render_template("subscriptions/index.html", protests=protest_outlook())


@bp.get("/healthz")
def health():
    """A trivial endpoint for load balancers and the signup benchmark."""
    return {"status": "ok"}


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico whatever the page links; our own icon answers (pages link favicon.svg)."""
    return current_app.send_static_file("favicon.ico")


@bp.route("/subscribe", methods=["GET", "POST"])
@signup_limit
def subscribe():
    """The signup form; a valid POST ends on the same "check your inbox" page, by way of the "confirm you are a
    person" page if it came back too fast."""
    statements_stand_alone()
    lists = services.public_lists()
    form = SignupForm()
    form.lists.choices = [(mailing_list.slug, mailing_list.name) for mailing_list in lists]
    if request.method == "GET":
        return signup_page(form, lists)
    if not form.validate_on_submit():
        return signup_page(form, lists, _("The form was incomplete; please try again."))
    pace = signup_pace(form)
    if pace is Pace.BOT:
        return redirect(url_for(".check_inbox"), 303)
    try:
        locale = form_locale(form.locale.data) if form.locale.data else current_locale()
        signup = check_signup(
            form.email.data or "", form.name.data, form.lists.data or [], form.consent_version.data or "", lists, locale
        )
    except InvalidInput as exc:
        return signup_page(form, lists, str(exc))
    if pace is Pace.HASTY:
        slugs = [mailing_list.slug for mailing_list in signup.lists]
        token = humancheck.hold(signup.email, signup.name, slugs, signup.wording_version, signup.locale)
        check_form = HumanCheckForm(formdata=None, signup=token)
        return render_template("subscriptions/human_check.html", form=check_form, signup=signup)
    store_signup(signup, ConsentMethod.FORM)
    return redirect(url_for(".check_inbox"), 303)


@bp.post("/subscribe/check")
@signup_limit
def human_check():
    """The button of the "confirm you are a person" page: the signup it holds goes ahead, once per page."""
    lists = services.public_lists()
    form = HumanCheckForm()
    if not form.validate_on_submit():
        return signup_page(_empty_signup_form(lists), lists, _("The form was incomplete; please fill it in again."))
    try:
        held = humancheck.read(form.signup.data or "")
    except TokenExpired:
        expired = _("That page was open too long; please fill in the form again.")
        return signup_page(_empty_signup_form(lists), lists, expired)
    except TokenInvalid:
        return signup_page(_empty_signup_form(lists), lists, _("The form was incomplete; please fill it in again."))
    if not humancheck.claim(held):
        return redirect(url_for(".check_inbox"), 303)  # a repeat: the same answer, and nothing more is stored
    try:
        accept_signup(
            held.email, held.name, list(held.slugs), ConsentMethod.FORM, held.wording_version, lists, held.locale
        )
    except InvalidInput as exc:
        humancheck.release(held)
        again = _empty_signup_form(lists)
        again.email.data, again.name.data, again.lists.data = held.email, held.name, list(held.slugs)
        return signup_page(again, lists, str(exc))
    except BaseException:
        humancheck.release(held)
        raise
    return redirect(url_for(".check_inbox"), 303)


@bp.errorhandler(SeenUnavailable)
def check_store_unavailable(error: SeenUnavailable):
    """Redis failed while a check token was claimed: nothing was stored; the person can press the button again."""
    db.session.rollback()
    current_app.logger.warning("signup check: Redis is unavailable (%s)", error.__cause__)
    message = _(
        "We could not take your signup just now. Nothing was stored; please press the button again in a minute."
    )
    return render_template("errors/error.html", status=503, message=message), 503


def _empty_signup_form(lists: list[services.PublicList]) -> SignupForm:
    form = SignupForm(formdata=None)
    form.lists.choices = [(mailing_list.slug, mailing_list.name) for mailing_list in lists]
    return form


def signup_page(form: SignupForm, lists: list[services.PublicList], error: str | None = None):
    """The signup form with fresh hidden fields (consent version, start time, empty honeypot); 400 with an error."""
    form.locale.data = current_locale()
    form.consent_version.data = current_version()
    form.started.data = make_form_started_token()
    form.website.data = ""
    page = render_template("subscriptions/subscribe.html", form=form, lists=lists, wording=shown_wording(), error=error)
    return page, 400 if error else 200


@bp.get("/subscribe/thanks")
def check_inbox():
    """The one answer to every accepted signup."""
    return render_template("subscriptions/check_inbox.html")


def _token_problem(kind: str, status: int):
    return render_template("subscriptions/bad_link.html", kind=kind), status


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    """GET shows a button; only the POST confirms, so link scanners change nothing."""
    try:
        public_id, nonce = read_confirm_token(token)
    except TokenExpired:
        return _token_problem("expired", 410)
    except TokenInvalid:
        return _token_problem("invalid", 400)
    subscriber = services.subscriber_by_public_id(public_id)
    if not services.confirmation_is_open(subscriber, nonce):
        return _token_problem("used", 410)
    form = ConfirmActionForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        list_ids = services.confirm_subscription(subscriber, chosen_locale())
        if list_ids:
            after_commit(tasks.send_welcome_mail, subscriber.id, list_ids)
        db.session.commit()
        return render_template(
            "subscriptions/confirmed.html",
            preferences_token=_preferences_token(subscriber),
            protests=protest_outlook(),
        )
    pending = services.open_consent_list_ids(subscriber)
    lists = [s.mailing_list for s in subscriber.subscriptions if s.list_id in pending]
    return render_template("subscriptions/confirm.html", form=form, lists=lists)


def _preferences_token(subscriber: Subscriber) -> str:
    return make_preferences_token(subscriber.public_id)


def _unsubscribe_link(token: str) -> UnsubscribeLink:
    try:
        return read_unsubscribe_link(token)
    except TokenInvalid:
        abort(400)


def _subscriber_from_unsubscribe_token(token: str) -> tuple[Subscriber | None, UnsubscribeLink]:
    link = _unsubscribe_link(token)
    return services.subscriber_by_public_id(link.public_id), link


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str):
    """A page with the unsubscribe button, "leave everything", and an offer to email the preference link.

    Providers and link scanners open this page (it is the List-Unsubscribe target), so it never links into the
    preference centre itself."""
    subscriber, link = _subscriber_from_unsubscribe_token(token)
    chosen = link.list_ids
    lists = [] if subscriber is None else [s.mailing_list for s in subscriber.subscriptions if s.list_id in chosen]
    return render_template(
        "subscriptions/unsubscribe.html", token=token, subscriber=subscriber, lists=lists, form=ConfirmActionForm()
    )


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe(token: str):
    """RFC 8058 one-click: unsubscribes at once, no cookie or CSRF token needed, 200 and no redirect; idempotent."""
    if request.mimetype not in ONE_CLICK_TYPES:
        return render_template("subscriptions/bad_request.html", reason="content_type"), 415
    link = _unsubscribe_link(token)
    from_page = request.form.get("from_page") == "1"
    reason = StatusReason.UNSUBSCRIBE_LINK if from_page else StatusReason.ONE_CLICK
    leave_through_link(link, link.list_ids, reason)
    # A mail client's one-click POST gets no form (a CSRF token would set a cookie); a person who pressed the
    # button on the page is offered their preference link.
    # The wording follows the link's own lists (one, or several), never what the database holds, so the answer is
    # the same for every holder of a link.
    shown = {"everything": False, "list_count": len(set(link.list_ids))}
    if request.form.get("from_page") != "1":
        return render_template("subscriptions/unsubscribed.html", **shown)
    return render_template("subscriptions/unsubscribed.html", **shown, token=token, form=ConfirmActionForm())


@bp.post("/unsubscribe/<token>/everything")
def unsubscribe_everything(token: str):
    """Leave every list (CSRF-protected form on the unsubscribe page)."""
    link = _unsubscribe_link(token)
    form = ConfirmActionForm()
    if not form.validate_on_submit():
        abort(400)
    leave_through_link(link, None, StatusReason.UNSUBSCRIBE_LINK)
    return render_template("subscriptions/unsubscribed.html", everything=True, token=token, form=form)


@bp.post("/unsubscribe/<token>/preferences-link")
def email_preferences_link(token: str):
    """Mail the preference link to the person the unsubscribe link belongs to (within the per-address limit); the
    same answer whatever happens, and nothing else is revealed.

    The task is queued whether or not the subscriber still exists, and the worker looks them up, so the answer takes
    as long for an erased subscriber's link as for a current one's."""
    try:
        link = read_unsubscribe_link(token)
    except TokenInvalid:
        abort(400)
    if not ConfirmActionForm().validate_on_submit():
        abort(400)
    after_commit(tasks.send_preferences_link, link.public_id)
    db.session.commit()
    return render_template("subscriptions/preferences_link_sent.html")


def _preferences_public_id(token: str) -> str:
    try:
        return read_preferences_token(token)
    except TokenInvalid:
        abort(400)


def _subscriber_from_preferences_token(token: str) -> Subscriber:
    subscriber = services.subscriber_by_public_id(_preferences_public_id(token), with_subscriptions=True)
    if subscriber is None:
        abort(410)
    return subscriber


@bp.get("/preferences/<token>")
def preferences(token: str):
    """The preference centre as opened from a link: read as plain values (services.preference_view)."""
    statements_stand_alone()
    view = services.preference_view(_preferences_public_id(token))
    if view is None:
        abort(410)
    form = PreferencesForm()
    form.lists.choices = view.offered
    form.name.data, form.locale.data, form.lists.data = view.name or "", view.locale, view.confirmed_list_ids
    return _preferences_page(form, token, view.email)


@bp.post("/preferences/<token>")
def save_preferences(token: str):
    """The preference centre saved: name, language of mail and lists."""
    subscriber = _subscriber_from_preferences_token(token)
    form = PreferencesForm()
    form.lists.choices = [(mailing_list.id, mailing_list.name) for mailing_list in services.offered_lists(subscriber)]
    if not form.validate_on_submit():
        # A list value that isn't a list id fails here, in the field's int coercion.
        incomplete = _("The form was incomplete; please try again.")
        return _preferences_page(
            form, token, subscriber.email, _("Please choose lists from the form.") if form.lists.errors else incomplete
        )
    try:
        name = clean_name(form.name.data)
        wanted = {int(list_id) for list_id in form.lists.data or []}
        locale = form_locale(form.locale.data) if form.locale.data else None
    except (InvalidInput, ValueError) as exc:
        return _preferences_page(form, token, subscriber.email, str(exc) or _("Please choose lists from the form."))
    services.update_preferences(subscriber, name, wanted, locale)
    db.session.commit()
    form.name.data, form.locale.data = subscriber.name or "", subscriber.locale
    form.lists.data = [s.list_id for s in subscriber.subscriptions if s.status is SubscriptionStatus.CONFIRMED]
    return _preferences_page(form, token, subscriber.email, saved=True)


def _preferences_page(form: PreferencesForm, token: str, email: str, error: str | None = None, saved: bool = False):
    """The preference centre's page, 400 with an error."""
    page = render_template(
        "subscriptions/preferences.html",
        form=form,
        token=token,
        email=email,
        saved=saved,
        error=error,
        action_form=ConfirmActionForm(),
        wording=shown_wording(),
        languages=LANGUAGES.values(),
    )
    return page, 400 if error else 200


@bp.post("/preferences/<token>/leave")
def leave_everything(token: str):
    """Unsubscribe from every list from the preference centre."""
    subscriber = _subscriber_from_preferences_token(token)
    if not ConfirmActionForm().validate_on_submit():
        abort(400)
    services.unsubscribe(subscriber.id, None, StatusReason.PREFERENCE_CENTRE)
    db.session.commit()
    return render_template("subscriptions/unsubscribed.html", everything=True, preferences_token=token)


@bp.route("/preferences/<token>/erase", methods=["GET", "POST"])
def erase(token: str):
    """Erase my data: GET asks for confirmation, POST erases and keeps only the suppression HMAC."""
    subscriber = _subscriber_from_preferences_token(token)
    form = ConfirmActionForm()
    if request.method == "POST":
        if not form.validate_on_submit() or not form.confirm.data:
            return render_template("subscriptions/erase.html", form=form, token=token, error=True), 400
        services.erase_subscriber(subscriber)
        db.session.commit()
        return render_template("subscriptions/erased.html")
    return render_template("subscriptions/erase.html", form=form, token=token, error=False)
