"""`flask --app uscmail bounces serve`: the bounce domain's SMTP receiver, run as its own process."""

import logging
import os

import click
from flask import Flask, current_app

from . import receiver


def init_bounces_cli(app: Flask) -> None:
    """Register the `bounces` command group."""
    group = click.Group("bounces", help="Receive bounces and complaints.")

    @group.command("serve")
    @click.option("--host", help="Address to listen on (BOUNCE_RECEIVER_HOST).")
    @click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (BOUNCE_RECEIVER_PORT).")
    @click.option(
        "--processes",
        type=click.IntRange(1, 64),
        default=lambda: min(os.cpu_count() or 1, 4),
        show_default="the number of CPUs, at most 4",
        help="Receiver processes sharing the socket.",
    )
    def serve_command(host: str | None, port: int | None, processes: int) -> None:
        """Take mail for BOUNCE_ADDRESS's domain over SMTP and record each bounce or complaint (answering 451,
        so the sender retries, if the database cannot take it)."""
        # aiosmtpd logs every command, addresses included, at info level.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        config = current_app.config
        receiver.serve(
            current_app._get_current_object(),
            host or config["BOUNCE_RECEIVER_HOST"],
            config["BOUNCE_RECEIVER_PORT"] if port is None else port,
            processes,
        )

    app.cli.add_command(group)
