"""SMTP connections to the relay named by the MAIL_* settings, with a timeout, TLS and login when configured, and
SMTPUTF8 for internationalised addresses."""

import smtplib
from collections.abc import Iterable
from email.message import EmailMessage

from flask import current_app


def open_connection() -> smtplib.SMTP:
    """Open an SMTP connection to the configured relay (TLS and login when configured)."""
    config = current_app.config
    smtp_class = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
    connection = smtp_class(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=config["MAIL_TIMEOUT"])
    if config["MAIL_USE_TLS"]:
        connection.starttls()
    if config["MAIL_USERNAME"] and config["MAIL_PASSWORD"]:
        connection.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
    return connection


def send_messages(messages: Iterable[EmailMessage]) -> int:
    """Send messages over one connection; return how many were sent. SMTP errors propagate to the caller."""
    sent = 0
    connection = open_connection()
    try:
        for message in messages:
            # send_message switches to SMTPUTF8 by itself when an address is not ASCII.
            connection.send_message(message)
            sent += 1
    finally:
        try:
            connection.quit()
        except smtplib.SMTPException:
            connection.close()
    return sent
