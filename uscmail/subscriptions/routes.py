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

from ..extensions import csrf, db, limiter
from ..i18n import LANGUAGES, chosen_locale, current_locale, supported
from ..links import (
    TokenExpired,
    TokenInvalid,
    make_form_started_token,
    make_preferences_token,
    read_confirm_token,
    read_preferences_token,
    read_unsubscribe_token,
    seconds_since_form_started,
)
from ..models import ConsentMethod, MailingList, StatusReason, Subscriber, SubscriptionStatus
from ..queueing import after_commit
from ..validation import InvalidInput, clean_name, normalise_email
from . import services, tasks
from .consent import current_version, current_wording
from .forms import ConfirmActionForm, PreferencesForm, SignupForm

bp = Blueprint("subscriptions", __name__)

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


def accept_signup(
    email: str,
    name: str | None,
    slugs: list[str],
    method: ConsentMethod,
    wording_version: str,
    offered: list[MailingList] | None = None,
    locale: str = "en",
) -> None:
    """Validate a signup, store it, commit, then queue the task that applies it and sends its mail.

    `locale` is the language the form was shown in; the consent version must be that language's current one.

    The request never looks at the address's state: whether new, pending, confirmed, unsubscribed or suppressed,
    it does the same single INSERT, so neither the answer nor its timing tells who is on a list.
    Raises InvalidInput for bad input.
    """
    address = normalise_email(email)
    display_name = clean_name(name)
    lists = services.public_lists_by_slug(slugs, offered)
    if wording_version != current_version(locale):
        raise InvalidInput(_("The consent wording has changed since the form was opened; please read it again."))
    request_id = services.record_signup_request(address, display_name, lists, method, wording_version, locale)
    after_commit(tasks.apply_signup, request_id)
    db.session.commit()


def looks_like_a_bot(form: SignupForm) -> bool:
    """True if the honeypot is filled or the form came back faster than a person could fill it in."""
    if form.website.data:
        return True
    elapsed = seconds_since_form_started(form.started.data or "")
    return elapsed is None or elapsed < current_app.config["SIGNUP_MIN_FILL_SECONDS"]


def form_locale(value: str | None) -> str:
    """The language a form says it was shown in; InvalidInput if it names none of ours."""
    locale = supported(value)
    if locale is None:
        raise InvalidInput(_("Please choose a language from the page."))
    return locale


@bp.get("/")
def index():
    """Landing page with a link to the signup form."""
    return render_template("subscriptions/index.html")


@bp.get("/healthz")
def health():
    """A trivial endpoint for load balancers and the signup benchmark."""
    return {"status": "ok"}


@bp.route("/subscribe", methods=["GET", "POST"])
@signup_limit
def subscribe():
    """The signup form; a valid POST always ends on the same "check your inbox" page."""
    lists = services.public_lists()
    form = SignupForm()
    form.lists.choices = [(mailing_list.slug, mailing_list.name) for mailing_list in lists]
    error = None
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            if looks_like_a_bot(form):
                return redirect(url_for(".check_inbox"), 303)
            try:
                accept_signup(
                    form.email.data or "",
                    form.name.data,
                    form.lists.data or [],
                    ConsentMethod.FORM,
                    form.consent_version.data or "",
                    offered=lists,
                    locale=form_locale(form.locale.data) if form.locale.data else current_locale(),
                )
            except InvalidInput as exc:
                error, status = str(exc), 400
            else:
                return redirect(url_for(".check_inbox"), 303)
        else:
            error, status = _("The form was incomplete; please try again."), 400
    form.locale.data = current_locale()
    form.consent_version.data = current_version()
    form.started.data = make_form_started_token()
    form.website.data = ""
    wording = current_wording()
    db.session.commit()
    page = render_template(
        "subscriptions/subscribe.html",
        form=form,
        lists=lists,
        wording=wording,
        error=error,
    )
    return page, status


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
        )
    pending = services.open_consent_list_ids(subscriber)
    lists = [s.mailing_list for s in subscriber.subscriptions if s.list_id in pending]
    return render_template("subscriptions/confirm.html", form=form, lists=lists)


def _preferences_token(subscriber: Subscriber) -> str:
    return make_preferences_token(subscriber.public_id)


def _subscriber_from_unsubscribe_token(
    token: str,
) -> tuple[Subscriber | None, list[int]]:
    try:
        public_id, list_ids = read_unsubscribe_token(token)
    except TokenInvalid:
        abort(400)
    return services.subscriber_by_public_id(public_id), list_ids


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str):
    """A page with the unsubscribe button, "leave everything", and an offer to email the preference link.

    Providers and link scanners open this page (it is the List-Unsubscribe target), so it never links into the
    preference centre itself."""
    subscriber, list_ids = _subscriber_from_unsubscribe_token(token)
    lists = [] if subscriber is None else [s.mailing_list for s in subscriber.subscriptions if s.list_id in list_ids]
    return render_template(
        "subscriptions/unsubscribe.html", token=token, subscriber=subscriber, lists=lists, form=ConfirmActionForm()
    )


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe(token: str):
    """RFC 8058 one-click: unsubscribes at once, no cookie or CSRF token needed, 200 and no redirect; idempotent."""
    if request.mimetype not in ONE_CLICK_TYPES:
        return render_template("subscriptions/bad_request.html", reason="content_type"), 415
    subscriber, list_ids = _subscriber_from_unsubscribe_token(token)
    if subscriber is not None:
        from_page = request.form.get("from_page") == "1"
        reason = StatusReason.UNSUBSCRIBE_LINK if from_page else StatusReason.ONE_CLICK
        services.unsubscribe(subscriber, list_ids, reason)
        db.session.commit()
    # A mail client's one-click POST gets no form (a CSRF token would set a cookie); a person who pressed the
    # button on the page is offered their preference link.
    if request.form.get("from_page") != "1":
        return render_template("subscriptions/unsubscribed.html", everything=False)
    return render_template("subscriptions/unsubscribed.html", everything=False, token=token, form=ConfirmActionForm())


@bp.post("/unsubscribe/<token>/everything")
def unsubscribe_everything(token: str):
    """Leave every list (CSRF-protected form on the unsubscribe page)."""
    subscriber, _ = _subscriber_from_unsubscribe_token(token)
    form = ConfirmActionForm()
    if not form.validate_on_submit():
        abort(400)
    if subscriber is not None:
        services.unsubscribe(subscriber, None, StatusReason.UNSUBSCRIBE_LINK)
        db.session.commit()
    return render_template("subscriptions/unsubscribed.html", everything=True, token=token, form=form)


@bp.post("/unsubscribe/<token>/preferences-link")
def email_preferences_link(token: str):
    """Mail the preference link to the person the unsubscribe link belongs to (within the per-address limit); the
    same answer whatever happens, and nothing else is revealed."""
    subscriber, _ = _subscriber_from_unsubscribe_token(token)
    if not ConfirmActionForm().validate_on_submit():
        abort(400)
    if subscriber is not None:
        after_commit(tasks.send_preferences_link, subscriber.id)
        db.session.commit()
    return render_template("subscriptions/preferences_link_sent.html")


def _subscriber_from_preferences_token(token: str) -> Subscriber:
    try:
        public_id = read_preferences_token(token)
    except TokenInvalid:
        abort(400)
    subscriber = services.subscriber_by_public_id(public_id)
    if subscriber is None:
        abort(410)
    return subscriber


@bp.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str):
    """The preference centre: name and lists."""
    subscriber = _subscriber_from_preferences_token(token)
    form = PreferencesForm()
    form.lists.choices = [(mailing_list.id, mailing_list.name) for mailing_list in services.offered_lists(subscriber)]
    error, saved, status = None, False, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            # A list value that isn't a list id fails here, in the field's int coercion.
            incomplete = _("The form was incomplete; please try again.")
            error, status = _("Please choose lists from the form.") if form.lists.errors else incomplete, 400
        else:
            try:
                name = clean_name(form.name.data)
                wanted = {int(list_id) for list_id in form.lists.data or []}
                locale = form_locale(form.locale.data) if form.locale.data else None
            except (InvalidInput, ValueError) as exc:
                error, status = str(exc) or _("Please choose lists from the form."), 400
            else:
                services.update_preferences(subscriber, name, wanted, locale)
                db.session.commit()
                saved = True
    if request.method == "GET" or saved:
        form.name.data = subscriber.name or ""
        form.locale.data = subscriber.locale
        form.lists.data = [s.list_id for s in subscriber.subscriptions if s.status is SubscriptionStatus.CONFIRMED]
    return (
        render_template(
            "subscriptions/preferences.html",
            form=form,
            token=token,
            subscriber=subscriber,
            saved=saved,
            error=error,
            action_form=ConfirmActionForm(),
            wording=current_wording(),
            languages=LANGUAGES.values(),
        ),
        status,
    )


@bp.post("/preferences/<token>/leave")
def leave_everything(token: str):
    """Unsubscribe from every list from the preference centre."""
    subscriber = _subscriber_from_preferences_token(token)
    if not ConfirmActionForm().validate_on_submit():
        abort(400)
    services.unsubscribe(subscriber, None, StatusReason.PREFERENCE_CENTRE)
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
