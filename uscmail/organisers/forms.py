"""Forms of the organiser pages: sign-in and set-up, and the account pages. Values are checked by the services;
these forms carry the CSRF token."""

from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice

from ..forms import Form
from .models import Role


class LoginForm(Form):
    """Email and password."""

    email = StringField("Email address", render_kw={"autocomplete": "username", "inputmode": "email"})
    password = PasswordField("Password", render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Sign in")


class CodeForm(Form):
    """A six-digit authenticator code, or a recovery code."""

    code = StringField(
        "Authentication code", render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 20}
    )
    submit = SubmitField("Continue")


class StartEnrolmentForm(Form):
    """The button on a set-up link's page that starts setting up the account."""

    submit = SubmitField("Set up my account")


class EnrolmentForm(Form):
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


class LogoutForm(Form):
    """The sign-out button."""

    submit = SubmitField("Sign out")


ROLE_CHOICES = [SelectChoice(role.value, role.value.capitalize()) for role in reversed(Role)]


class ActionForm(Form):
    """A button that needs nothing but the CSRF token."""


class NewOrganiserForm(Form):
    """A new organiser's address and role; they choose their own password through their set-up link."""

    email = StringField("Email address", render_kw={"autocomplete": "off", "inputmode": "email", "maxlength": 320})
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.EDITOR.value, validate_choice=False)


class ConfirmForm(Form):
    """Disabling an account or resetting its 2FA needs an explicit tick."""

    confirm = BooleanField()


class RevokeTokenForm(Form):
    """Revoke an organiser's live API token(s) with this name."""

    name = HiddenField()


class PasswordForm(Form):
    """The current password, and the new one twice."""

    current_password = PasswordField("Current password", render_kw={"autocomplete": "current-password"})
    new_password = PasswordField("New password", render_kw={"autocomplete": "new-password", "maxlength": 1024})
    new_password_again = PasswordField(
        "New password again", render_kw={"autocomplete": "new-password", "maxlength": 1024}
    )


class RecoveryCodesForm(Form):
    """A current code from the authenticator app, to regenerate the recovery codes."""

    code = StringField(
        "Authenticator code",
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 6, "pattern": "[0-9 ]*"},
    )
