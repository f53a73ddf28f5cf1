"""`flask --app uscmail organisers ...`: create accounts, reset 2FA, disable, issue API tokens, rotate the TOTP key.

Passwords are read from a prompt or from stdin, never from the command line (where ps and shell history would see them).
"""

import sys

import click
from flask import Flask

from ..api import tokens as api_tokens
from ..extensions import db
from ..subscriptions.services import InvalidInput
from . import services
from .models import Role
from .security import SecretUnreadable

ACTOR = "cli"


def _organiser_or_fail(email: str):
    organiser = services.organiser_by_email(email)
    if organiser is None:
        raise click.ClickException(f"no organiser with the address {email!r}")
    return organiser


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


def init_organisers_cli(app: Flask) -> None:
    """Register the `organisers` command group."""
    group = click.Group("organisers", help="Manage organiser accounts.")

    @group.command("create")
    @click.argument("email")
    @click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.EDITOR.value, show_default=True)
    def create(email: str, role: str) -> None:
        """Create an organiser; the password is prompted for (or read from stdin)."""
        try:
            organiser = services.create_organiser(email, _read_password(), Role(role), ACTOR)
        except InvalidInput as exc:
            raise click.ClickException(str(exc)) from None
        db.session.commit()
        click.echo(f"created {organiser.role.value} {organiser.email}; two-factor set-up happens at first sign-in")

    @group.command("reset-2fa")
    @click.argument("email")
    def reset_2fa(email: str) -> None:
        """Remove an organiser's authenticator and recovery codes and revoke their API tokens."""
        organiser = _organiser_or_fail(email)
        services.reset_two_factor(organiser, ACTOR)
        db.session.commit()
        click.echo(
            f"two-factor authentication reset for {organiser.email}; their sessions have ended "
            "and their API tokens are revoked"
        )

    @group.command("disable")
    @click.argument("email")
    def disable(email: str) -> None:
        """Disable an organiser: sign-in, sessions and API tokens stop working."""
        organiser = _organiser_or_fail(email)
        services.disable_organiser(organiser, ACTOR)
        db.session.commit()
        click.echo(f"disabled {organiser.email}")

    @group.command("token")
    @click.argument("email")
    @click.option("--name", required=True, help="What the token is for, e.g. the script or machine using it.")
    def token(email: str, name: str) -> None:
        """Issue an API token with the organiser's role; it is printed once, and only its hash is stored."""
        organiser = _organiser_or_fail(email)
        try:
            raw = api_tokens.create_token(organiser, name, ACTOR)
        except InvalidInput as exc:
            raise click.ClickException(str(exc)) from None
        db.session.commit()
        click.echo(
            f"API token {name!r} for {organiser.email} ({organiser.role.value}); it is shown only now:", err=True
        )
        click.echo(raw)

    @group.command("revoke-token")
    @click.argument("email")
    @click.option("--name", required=True, help="The name the token was issued with.")
    def revoke_token(email: str, name: str) -> None:
        """Revoke an organiser's API token(s) with this name."""
        organiser = _organiser_or_fail(email)
        revoked = api_tokens.revoke_tokens(organiser, name, ACTOR)
        if not revoked:
            raise click.ClickException(f"{organiser.email} has no live token called {name!r}")
        db.session.commit()
        click.echo(f"revoked {revoked} token(s) called {name!r} for {organiser.email}")

    @group.command("rotate-totp-key")
    def rotate_totp_key() -> None:
        """Re-encrypt every TOTP secret with TOTP_ENCRYPTION_KEY (old keys must be in TOTP_ENCRYPTION_KEY_FALLBACKS)."""
        try:
            done, unreadable = services.reencrypt_totp_secrets()
        except SecretUnreadable as exc:
            raise click.ClickException(str(exc)) from None
        db.session.commit()
        click.echo(f"re-encrypted {done} TOTP secret(s) with the current TOTP_ENCRYPTION_KEY")
        if unreadable:
            raise click.ClickException(
                f"no configured key decrypts the TOTP secret of {', '.join(unreadable)}; add the key they were "
                "encrypted with to TOTP_ENCRYPTION_KEY_FALLBACKS and run this again, or reset their two-factor "
                "authentication"
            )

    app.cli.add_command(group)
