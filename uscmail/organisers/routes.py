"""Organiser sign-in with mandatory TOTP, set-up links, sign-out, and the organisers' home page."""

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from ..extensions import db, limiter
from ..inputguard import database_id
from ..models import utcnow
from ..validation import InvalidInput
from . import access, audit, credentials, enrolment, overview, services
from .forms import CodeForm, EnrolmentForm, LoginForm, LogoutForm, StartEnrolmentForm
from .models import AuditEvent, Role, SessionStage

bp = Blueprint("organisers", __name__, url_prefix="/organisers")
bp.before_request(access.load_current_session)


@bp.app_context_processor
def organiser_page_context() -> dict:
    """Organiser pages (of any blueprint) get the sign-out button and the roles for the navigation.

    Only when an organiser is signed in, so public pages never get a CSRF token (and a session cookie) they don't use.
    """
    if g.get("organiser") is None:
        return {"Role": Role}
    return {"logout_form": LogoutForm(), "Role": Role}


GENERIC_FAILURE = (
    "That email and password don't match an active account, or it is locked for a while after failed attempts."
)


def login_rate_limit() -> str:
    """Per-client limit on sign-in attempts, read at request time."""
    return current_app.config["LOGIN_RATE_LIMIT"]


login_limit = limiter.shared_limit(login_rate_limit, scope="login", methods=["POST"])


def safe_next(target: str | None) -> str:
    """Only same-site relative paths under /organisers are followed after sign-in."""
    if target and target.startswith("/organisers") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for(".home")


def _begin(organiser, stage: SessionStage, pending_totp_secret: str | None = None) -> None:
    """Replace whatever session the browser had with a fresh one (no fixation)."""
    services.end_session(session.get(access.SESSION_KEY))
    session.clear()
    session[access.SESSION_KEY] = services.start_session(organiser, stage, pending_totp_secret)


@bp.route("/login", methods=["GET", "POST"])
@login_limit
def login():
    """Step one: email and password. Failures say nothing about whether the account exists."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        email = form.email.data or ""
        organiser = None if services.account_locked(email) else services.authenticate(email, form.password.data or "")
        if organiser is None:
            services.record_login_failure(email)
            db.session.commit()
            error = GENERIC_FAILURE
        else:
            _begin(organiser, SessionStage.PASSWORD)
            db.session.commit()
            return redirect(url_for(".two_factor", next=request.args.get("next")))
    elif request.method == "POST":
        error = "The form expired; please try again."
    status = 400 if error else 200
    return render_template("organisers/login.html", form=form, error=error), status


def _password_stage():
    row = access.current_session()
    if row is None or row.stage is not SessionStage.PASSWORD:
        abort(redirect(url_for(".login")))
    return row


def _complete(row) -> None:
    organiser = row.organiser
    organiser.last_login_at = utcnow()
    _begin(organiser, SessionStage.COMPLETE)
    audit.record(organiser, "login.succeeded", "organiser", organiser.id)


@bp.route("/two-factor", methods=["GET", "POST"])
@login_limit
def two_factor():
    """Step two: a code from the authenticator app (each accepted once) or a recovery code."""
    row = _password_stage()
    organiser = row.organiser
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        if services.account_locked(organiser.email) or not services.verify_second_factor(
            organiser, form.code.data or ""
        ):
            services.record_login_failure(organiser.email)
            db.session.commit()
            error = "That code is not valid (each code works once). Try the next one, or a recovery code."
        else:
            _complete(row)
            db.session.commit()
            return redirect(safe_next(request.args.get("next")))
    return render_template("organisers/two_factor.html", form=form, error=error), 400 if error else 200


@bp.get("/enrol/<token>")
def enrol_start(token: str):
    """A set-up link: says whose account it sets up, with a button to start. Opening it changes nothing."""
    try:
        organiser = enrolment.organiser_for_link(token)
    except enrolment.LinkUnusable as exc:
        return render_template("organisers/enrol_link.html", error=exc.message), exc.status
    return render_template(
        "organisers/enrol_link.html", form=StartEnrolmentForm(), email=organiser.email, hours=enrolment.link_hours()
    )


@bp.post("/enrol/<token>")
@login_limit
def enrol_begin(token: str):
    """Start setting up the account: a fresh enrolment session with a new TOTP secret, then the set-up page."""
    try:
        organiser = enrolment.organiser_for_link(token)
    except enrolment.LinkUnusable as exc:
        return render_template("organisers/enrol_link.html", error=exc.message), exc.status
    if not StartEnrolmentForm().validate_on_submit():
        abort(400)
    _begin(organiser, SessionStage.ENROLMENT, pending_totp_secret=credentials.new_totp_secret())
    db.session.commit()
    return redirect(url_for(".enrol"))


@bp.route("/enrol", methods=["GET", "POST"])
@login_limit
def enrol():
    """Set a password and enrol an authenticator app from a QR code we render ourselves; then show recovery codes."""
    row = access.current_session()
    if row is None or row.stage is not SessionStage.ENROLMENT:
        message = "Open your set-up link again to set up your account, or sign in if you have done so already."
        return render_template("organisers/enrol_link.html", error=message), 400
    organiser = row.organiser
    secret = row.pending_totp_secret
    form = EnrolmentForm()
    error = None
    if form.validate_on_submit():
        try:
            codes = enrolment.complete(
                organiser, secret, form.password.data or "", form.password_again.data or "", form.code.data or ""
            )
        except InvalidInput as exc:
            db.session.rollback()
            error = str(exc)
        else:
            _complete(row)
            db.session.commit()
            return render_template("organisers/recovery_codes.html", codes=codes)
    elif request.method == "POST":
        error = "The form expired; please try again."
    return render_template(
        "organisers/enrol.html",
        form=form,
        error=error,
        email=organiser.email,
        qr=credentials.qr_svg(credentials.totp_uri(secret, organiser.email)),
        secret=secret,
    ), 400 if error else 200


@bp.post("/logout")
def logout():
    """End this session."""
    if not LogoutForm().validate_on_submit():
        abort(400)
    services.end_session(session.get(access.SESSION_KEY))
    session.clear()
    db.session.commit()
    return redirect(url_for(".login"))


@bp.get("/")
@access.role_required(Role.VIEWER)
def home():
    """The organisers' start page: what is waiting to be done, as counts with links."""
    return render_template("organisers/home.html", overview=overview.home_overview(g.organiser))


AUDIT_PAGE_SIZE = 50


@bp.get("/audit")
@access.role_required(Role.ADMIN)
def audit_log():
    """The audit log, newest first, filtered by action and organiser, paged by id (keyset)."""
    action = (request.args.get("action") or "").strip()[:64]
    actor = (request.args.get("actor") or "").strip()[:320]
    before = database_id(request.args.get("before"))
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(AUDIT_PAGE_SIZE + 1)
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(AuditEvent.actor == actor.lower())
    if before:
        query = query.where(AuditEvent.id < before)
    events = list(db.session.scalars(query))
    more = len(events) > AUDIT_PAGE_SIZE
    events = events[:AUDIT_PAGE_SIZE]
    actions = db.session.scalars(sa.select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
    return render_template(
        "organisers/audit.html",
        events=events,
        actions=actions,
        action=action,
        actor=actor,
        next_before=events[-1].id if more and events else None,
    )
