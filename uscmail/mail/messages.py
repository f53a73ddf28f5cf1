"""Build multipart text + HTML messages, with the list headers every list mail carries (RFC 2369, RFC 8058)."""

import binascii
import os
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid, parseaddr

from flask import current_app, render_template

from ..i18n import language
from ..models import utcnow
from .headers import PLAIN_ADDRESS, address, ascii_domain, mailbox_header, single_line, unstructured_header
from .mime import one_line_endings

# The MIME headers the generator reads back as it writes a message (the content type, several times a part), stored
# parsed: a header stored as text is parsed again at each reading, three quarters of the time as_bytes took.
_parsed = policy.default.header_factory
TEXT_TYPES = {subtype: _parsed("Content-Type", f'text/{subtype}; charset="utf-8"') for subtype in ("plain", "html")}
QUOTED_PRINTABLE = _parsed("Content-Transfer-Encoding", "quoted-printable")


def sender_address() -> Address:
    """The configured From address, as a structured header value."""
    display_name, address = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])
    username, _, domain = address.rpartition("@")
    return Address(display_name=single_line(display_name), username=username, domain=domain)


def allowed_senders() -> list[str]:
    """The addresses campaigns may be sent from: MAIL_DEFAULT_SENDER's first, then MAIL_SENDERS' (names dropped),
    each once, as configured."""
    entries = [current_app.config["MAIL_DEFAULT_SENDER"], *current_app.config.get("MAIL_SENDERS", [])]
    addresses: dict[str, str] = {}
    for entry in entries:
        address = parseaddr(entry)[1].strip()
        if "@" in address:
            addresses.setdefault(address.lower(), address)
    return list(addresses.values())


def allowed_sender(address: str | None) -> str | None:
    """The configured spelling of `address` if campaigns may be sent from it (compared without case), else None."""
    wanted = (address or "").strip().lower()
    return next((allowed for allowed in allowed_senders() if allowed.lower() == wanted), None)


def recipient_address(email: str, name: str | None) -> Address:
    """A recipient's To address; the display name is reduced to a single line first."""
    return address(single_line(name or ""), email)


def build_message(
    *,
    template: str,
    to_email: str,
    to_name: str | None,
    subject: str,
    unsubscribe_url: str | None = None,
    **context,
) -> EmailMessage:
    """Render templates/email/<template>.txt and .html into a multipart/alternative message (text part first).

    With unsubscribe_url, the message is a list mail: it carries List-Unsubscribe and List-Unsubscribe-Post. It is
    written in the locale in force (see `flask_babel.force_locale`), which its Content-Language names.
    """
    context.update(subject=subject, unsubscribe_url=unsubscribe_url, to_name=to_name)
    text = render_template(f"email/{template}.txt", **context)
    html = render_template(f"email/{template}.html", **context)
    sender = sender_address()
    recipient = recipient_address(to_email, to_name)
    message = EmailMessage()
    if PLAIN_ADDRESS.match(sender.addr_spec) and PLAIN_ADDRESS.match(recipient.addr_spec):
        # Nearly all: the lines written by hand (mail/headers.py), as the campaign builder writes them, and stored
        # as they are; the standard library would parse each value it is given, at several times the cost.
        for line in (
            unstructured_header("Subject", single_line(subject)),
            mailbox_header("From", sender.display_name, sender.addr_spec),
            mailbox_header("To", recipient.display_name, recipient.addr_spec),
        ):
            field, _, value = line.partition(": ")
            message.set_raw(field, value.removesuffix("\r\n"))
    else:  # an address that is not ASCII, whose form depends on SMTPUTF8: the standard library's
        message["Subject"] = single_line(subject)
        message["From"] = sender
        message["To"] = recipient
    # The rest are ASCII by construction.
    domain = ascii_domain(str(sender.addr_spec))
    message.set_raw("Date", format_datetime(utcnow()))
    message.set_raw("Message-ID", make_msgid(domain=domain or None))
    message.set_raw("Auto-Submitted", "auto-generated" if unsubscribe_url is None else "no")
    # Gmail's Feedback-ID (campaign:kind:sender:domain), set before signing, groups complaint rates by kind of mail.
    message.set_raw("Feedback-ID", f"0:{template.replace('_', '-')}:uscmail:{domain}")
    if unsubscribe_url is not None:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # The structure set_content and add_alternative would make, written directly (they parse every header they set).
    message.set_raw("MIME-Version", "1.0")
    message.set_raw(
        "Content-Type", _parsed("Content-Type", f'multipart/alternative; boundary="=_{os.urandom(12).hex()}"')
    )
    message.set_raw("Content-Language", language().tag)
    message.attach(quoted_printable_part("plain", text))
    message.attach(quoted_printable_part("html", html))
    return message


def quoted_printable_part(subtype: str, content: str) -> MIMEPart:
    """A text/<subtype> part in UTF-8, quoted-printable (so "=_", which starts the boundary, never occurs in it)."""
    part = MIMEPart()
    part.set_raw("Content-Type", TEXT_TYPES[subtype])
    part.set_raw("Content-Transfer-Encoding", QUOTED_PRINTABLE)
    text = one_line_endings(content if content.endswith("\n") else content + "\n")  # as set_content ends it
    part.set_payload(binascii.b2a_qp(text.encode(), istext=True).decode("ascii"))
    return part
