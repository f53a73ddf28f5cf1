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


class LogoutForm(FlaskForm):
    """The sign-out button."""

    submit = SubmitField("Sign out")
