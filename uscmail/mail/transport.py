"""SMTP sending with the Flask-Mail settings (MAIL_*), a timeout, and SMTPUTF8 for internationalised addresses."""

import smtplib
from collections.abc import Iterable
from email.message import EmailMessage

from flask import current_app


def open_connection() -> smtplib.SMTP:
    """Open an SMTP connection to the configured relay (TLS and login when configured)."""
    state = current_app.extensions["mail"]
    timeout = current_app.config["MAIL_TIMEOUT"]
    smtp_class = smtplib.SMTP_SSL if state.use_ssl else smtplib.SMTP
    connection = smtp_class(state.server, state.port, timeout=timeout)
    if state.use_tls:
        connection.starttls()
    if state.username and state.password:
        connection.login(state.username, state.password)
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
