"""Organiser login forms."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField


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
