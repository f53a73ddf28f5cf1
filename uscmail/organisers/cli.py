"""`flask --app uscmail organisers ...`: create accounts, reset 2FA, disable, issue API tokens, rotate the TOTP key.

No password is ever typed here: `create` and `reset-2fa` print a one-time set-up link, through which the organiser
chooses their own password and enrols an authenticator app. Give it to them over a channel you trust.
"""

import click
from flask import Flask

from ..extensions import db
from ..validation import InvalidInput
from . import api_tokens as api_tokens
from . import enrolment, services
from .credentials import SecretUnreadable
from .models import Role

ACTOR = "cli"


def _organiser_or_fail(email: str):
    organiser = services.organiser_by_email(email)
    if organiser is None:
        raise click.ClickException(f"no organiser with the address {email!r}")
    return organiser


def _echo_link(organiser, url: str) -> None:
    click.echo(
        f"Send {organiser.email} this set-up link over a channel you trust; it works once, for "
        f"{enrolment.link_hours()} hours, to choose a password and set up an authenticator app:",
        err=True,
    )
    click.echo(url)


def init_organisers_cli(app: Flask) -> None:
    """Register the `organisers` command group."""
    group = click.Group("organisers", help="Manage organiser accounts.")

    @group.command("create")
    @click.argument("email")
    @click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.EDITOR.value, show_default=True)
    def create(email: str, role: str) -> None:
        """Create an organiser and print their one-time set-up link."""
        try:
            organiser = services.create_organiser(email, Role(role), ACTOR)
        except InvalidInput as exc:
            raise click.ClickException(str(exc)) from None
        url = enrolment.issue_link(organiser, ACTOR)
        db.session.commit()
        click.echo(f"created {organiser.role.value} {organiser.email}", err=True)
        _echo_link(organiser, url)

    @group.command("reset-2fa")
    @click.argument("email")
    def reset_2fa(email: str) -> None:
        """Remove an organiser's authenticator and recovery codes, revoke their API tokens, print a new set-up link.

        Also gives an organiser who has not set up their account yet a new link (the old one stops working).
        """
        organiser = _organiser_or_fail(email)
        url = enrolment.reset_two_factor_with_link(organiser, ACTOR)
        db.session.commit()
        click.echo(
            f"two-factor authentication reset for {organiser.email}; their sessions have ended "
            "and their API tokens are revoked",
            err=True,
        )
        _echo_link(organiser, url)

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
