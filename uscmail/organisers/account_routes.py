"""Account pages: admins list and manage organisers; any organiser changes their own password and recovery codes.

Every route checks the role itself; the organiser services do the work and write the audit log.
"""

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from ..extensions import db
from ..validation import InvalidInput
from . import access, enrolment, services
from . import api_tokens as api_tokens
from . import services as organiser_services
from .forms import ActionForm, ConfirmForm, NewOrganiserForm, PasswordForm, RecoveryCodesForm, RevokeTokenForm
from .models import Organiser, Role

bp = Blueprint("accounts", __name__, url_prefix="/organisers")
bp.before_request(access.load_current_session)

# Ids in URLs fit PostgreSQL's integer column; larger ones are simply not found.
ID = "int(max=2147483647)"
LAST_ADMIN = "{email} is the last active admin; make another organiser an admin first. Nothing was changed."


def organiser_or_404(organiser_id: int) -> Organiser:
    """The organiser, or a 404 page."""
    organiser = services.get_organiser(organiser_id)
    if organiser is None:
        abort(404)
    return organiser


def render_organisers(error: str | None = None, form: NewOrganiserForm | None = None, status: int | None = None):
    """The organisers page, with an error message and a 4xx status if given one."""
    return render_template(
        "organisers/accounts/organisers.html",
        organisers=services.all_organisers(),
        token_names=services.live_token_names(),
        form=form or NewOrganiserForm(formdata=None),
        action_form=ActionForm(),
        error=error,
    ), status or (400 if error else 200)


def refuse(message: str, status: int = 400):
    """Undo anything the request started, and show the organisers page with this message."""
    db.session.rollback()
    return render_organisers(error=message, status=status)


def done(target: Organiser, message: str):
    """Commit a change that ended the target's sessions; an admin who changed their own account signs in again."""
    db.session.commit()
    flash(message)
    if target.id == g.organiser.id:
        session.pop(access.SESSION_KEY, None)
        return redirect(url_for("organisers.login"))
    return redirect(url_for(".organisers"))


# Organisers (admins only)


def render_link(target: Organiser, url: str, signed_out: bool = False):
    """The page that shows an organiser's new set-up link, once."""
    if signed_out:
        g.organiser = None  # the admin changed their own account: their session has just ended
    return render_template(
        "organisers/accounts/enrolment_link.html",
        target=target,
        url=url,
        hours=enrolment.link_hours(),
        signed_out=signed_out,
    )


@bp.route("/accounts", methods=["GET", "POST"])
@access.role_required(Role.ADMIN)
def organisers():
    """Every organiser and what they may do; a form to create an account, which answers with its set-up link."""
    if request.method == "GET":
        return render_organisers()
    form = NewOrganiserForm()
    try:
        role = Role(form.role.data or "")
    except ValueError:
        return render_organisers(error="Choose a role from the menu; nothing was changed.", form=form)
    try:
        organiser = organiser_services.create_organiser(form.email.data or "", role, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return render_organisers(error=str(exc), form=form)
    url = enrolment.issue_link(organiser, g.organiser)
    db.session.commit()
    return render_link(organiser, url)


@bp.post(f"/accounts/<{ID}:organiser_id>/role")
@access.role_required(Role.ADMIN)
def change_role(organiser_id: int):
    """Give an organiser another role; their sessions end. The last active admin keeps the role."""
    target = organiser_or_404(organiser_id)
    try:
        role = Role(request.form.get("role", ""))
    except ValueError:
        return refuse("Choose a role from the menu; nothing was changed.")
    if role is target.role:
        flash(f"{target.email} is already {role.value}; nothing was changed.")
        return redirect(url_for(".organisers"))
    if organiser_services.leaves_no_admin(target, role, target.active):
        return refuse(LAST_ADMIN.format(email=target.email), 409)
    organiser_services.change_role(target, role, g.organiser)
    return done(target, f"{target.email} is now {role.value}; they need to sign in again.")


@dataclass(frozen=True)
class ConfirmedAction:
    """An account change that needs a confirmation tick: its wording and the service that makes it."""

    title: str
    explanation: str
    tick: str
    button: str
    done: str
    change: Any
    disables: bool = False
    # The change returns a set-up link for the organiser, shown to the admin on the next page.
    gives_link: bool = False


CONFIRMED_ACTIONS = {
    "disable": ConfirmedAction(
        title="Disable {email}?",
        explanation="They can no longer sign in, their sessions end now and their API tokens are revoked.",
        tick="Yes, disable this account",
        button="Disable the account",
        done="{email} is disabled.",
        change=organiser_services.disable_organiser,
        disables=True,
    ),
    "reset-2fa": ConfirmedAction(
        title="Reset two-factor authentication of {email}?",
        explanation="Their authenticator app and recovery codes stop working, their sessions end now and their API "
        "tokens are revoked. You get a one-time set-up link for them, through which they choose a new password and "
        "set up an authenticator app again; until then the account cannot be signed into.",
        tick="Yes, reset their two-factor authentication",
        button="Reset two-factor authentication",
        done="Two-factor authentication of {email} is reset.",
        change=enrolment.reset_two_factor_with_link,
        gives_link=True,
    ),
    "set-up-link": ConfirmedAction(
        title="New set-up link for {email}?",
        explanation="They have not set up their account yet. A new one-time set-up link replaces the one they were "
        "given, which stops working.",
        tick="Yes, make a new set-up link",
        button="Make a new set-up link",
        done="A new set-up link for {email} is ready.",
        change=enrolment.issue_link,
        gives_link=True,
    ),
}


@bp.route(f"/accounts/<{ID}:organiser_id>/<any(disable, 'reset-2fa', 'set-up-link'):action>", methods=["GET", "POST"])
@access.role_required(Role.ADMIN)
def confirm_change(organiser_id: int, action: str):
    """Disable an account, reset its 2FA or renew its set-up link, after an explicit confirmation; the last active
    admin stays enabled."""
    target = organiser_or_404(organiser_id)
    change = CONFIRMED_ACTIONS[action]
    if change.disables and not target.active:
        flash(f"{target.email} is already disabled; nothing was changed.")
        return redirect(url_for(".organisers"))
    form = ConfirmForm()
    error, status = None, 200
    if request.method == "POST":
        if not form.confirm.data:
            error, status = "Tick the box to confirm; nothing was changed.", 400
        elif change.disables and organiser_services.leaves_no_admin(target, target.role, active=False):
            db.session.rollback()
            error, status = LAST_ADMIN.format(email=target.email), 409
        else:
            url = change.change(target, g.organiser)
            if change.gives_link:
                db.session.commit()
                flash(change.done.format(email=target.email))
                signed_out = target.id == g.organiser.id
                if signed_out:
                    session.pop(access.SESSION_KEY, None)
                return render_link(target, url, signed_out)
            return done(target, change.done.format(email=target.email))
    return render_template(
        "organisers/accounts/confirm.html", target=target, change=change, action=action, form=form, error=error
    ), status


@bp.post(f"/accounts/<{ID}:organiser_id>/tokens/revoke")
@access.role_required(Role.ADMIN)
def revoke_token(organiser_id: int):
    """Revoke an organiser's live API token by name."""
    target = organiser_or_404(organiser_id)
    name = (RevokeTokenForm().name.data or "").strip()
    if not name or not api_tokens.revoke_tokens(target, name, g.organiser):
        return refuse(f"{target.email} has no live API token called “{name}”; nothing was changed.")
    db.session.commit()
    flash(f"The API token “{name}” of {target.email} is revoked.")
    return redirect(url_for(".organisers"))


# Your own account (any organiser)


def render_account(password_form=None, codes_form=None, error: str | None = None, status: int | None = None):
    """The organiser's own account page."""
    return render_template(
        "organisers/accounts/account.html",
        password_form=password_form or PasswordForm(formdata=None),
        codes_form=codes_form or RecoveryCodesForm(formdata=None),
        codes_left=organiser_services.unused_recovery_code_count(g.organiser),
        error=error,
    ), status or (400 if error else 200)


@bp.get("/account")
@access.role_required(Role.VIEWER)
def account():
    """Change your password; see how many recovery codes are left and make new ones."""
    return render_account()


@bp.post("/account/password")
@access.role_required(Role.VIEWER)
def change_password():
    """Change your own password: every one of your sessions ends, this one too, and you sign in again."""
    form = PasswordForm()
    organiser = g.organiser
    if not organiser_services.verify_current_password(organiser, form.current_password.data or ""):
        db.session.commit()  # the failed attempt counts towards the lockout and is audited
        return render_account(
            password_form=form,
            error="That is not your current password (or the account is locked for a while after failed attempts). "
            "Nothing was changed.",
        )
    new = form.new_password.data or ""
    if new != (form.new_password_again.data or ""):
        return render_account(password_form=form, error="The two new passwords differ; nothing was changed.")
    if new == form.current_password.data:
        return render_account(password_form=form, error="The new password is your current one; choose another.")
    try:
        organiser_services.change_password(organiser, new, organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return render_account(password_form=form, error=f"{exc} Nothing was changed.")
    db.session.commit()
    session.pop(access.SESSION_KEY, None)
    flash(
        "Your password is changed, all your sessions have ended and your API tokens are revoked. "
        "Sign in with your new password."
    )
    return redirect(url_for("organisers.login"))


@bp.post("/account/recovery-codes")
@access.role_required(Role.VIEWER)
def regenerate_recovery_codes():
    """New recovery codes for a current authenticator code; shown once, and the old ones stop working."""
    form = RecoveryCodesForm()
    codes = organiser_services.regenerate_recovery_codes(g.organiser, form.code.data or "")
    db.session.commit()  # new codes, or the failed attempt counted towards the lockout
    if codes is None:
        return render_account(
            codes_form=RecoveryCodesForm(formdata=None),
            error="That code is not valid (each code works once); enter the current one from your authenticator app. "
            "Your recovery codes are unchanged.",
        )
    return render_template("organisers/accounts/recovery_codes.html", codes=codes)
