"""Forms of the organiser pages: sign-in and set-up, and the account pages. Values are checked by the services;
these forms carry the CSRF token."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice

from .models import Role


class LoginForm(FlaskForm):
    """Email and password."""

    email = StringField("Email address", render_kw={"autocomplete": "username", "inputmode": "email"})
    password = PasswordField("Password", render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Sign in")


class CodeForm(FlaskForm):
    """A six-digit authenticator code, or a recovery code."""

    code = StringField(
        "Authentication code", render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 20}
    )
    submit = SubmitField("Continue")


class StartEnrolmentForm(FlaskForm):
    """The button on a set-up link's page that starts setting up the account."""

    submit = SubmitField("Set up my account")


class EnrolmentForm(FlaskForm):
    """A new organiser's password (twice) and a code from the authenticator app they just set up."""

    password = PasswordField("Choose a password", render_kw={"autocomplete": "new-password", "maxlength": 1024})
    password_again = PasswordField(
        "The same password again", render_kw={"autocomplete": "new-password", "maxlength": 1024}
    )
    code = StringField(
        "Code from your authenticator app",
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 6, "pattern": "[0-9 ]*"},
    )
    submit = SubmitField("Finish setting up")


class LogoutForm(FlaskForm):
    """The sign-out button."""

    submit = SubmitField("Sign out")


ROLE_CHOICES = [SelectChoice(role.value, role.value.capitalize()) for role in reversed(Role)]


class ActionForm(FlaskForm):
    """A button that needs nothing but the CSRF token."""


class NewOrganiserForm(FlaskForm):
    """A new organiser's address and role; they choose their own password through their set-up link."""

    email = StringField("Email address", render_kw={"autocomplete": "off", "inputmode": "email", "maxlength": 320})
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.EDITOR.value, validate_choice=False)


class ConfirmForm(FlaskForm):
    """Disabling an account or resetting its 2FA needs an explicit tick."""

    confirm = BooleanField()


class RevokeTokenForm(FlaskForm):
    """Revoke an organiser's live API token(s) with this name."""

    name = HiddenField()


class PasswordForm(FlaskForm):
    """The current password, and the new one twice."""

    current_password = PasswordField("Current password", render_kw={"autocomplete": "current-password"})
    new_password = PasswordField("New password", render_kw={"autocomplete": "new-password", "maxlength": 1024})
    new_password_again = PasswordField(
        "New password again", render_kw={"autocomplete": "new-password", "maxlength": 1024}
    )


class RecoveryCodesForm(FlaskForm):
    """A current code from the authenticator app, to regenerate the recovery codes."""

    code = StringField(
        "Authenticator code",
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 6, "pattern": "[0-9 ]*"},
    )
