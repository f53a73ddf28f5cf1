"""Build multipart text + HTML messages, with the list headers every list mail carries (RFC 2369, RFC 8058)."""

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from flask import current_app, render_template

from ..i18n import language
from ..models import utcnow
from .headers import address, ascii_domain, single_line


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
    message = EmailMessage()
    message["Subject"] = single_line(subject)
    message["From"] = sender
    message["To"] = recipient_address(to_email, to_name)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=sender.domain or None)
    message["Auto-Submitted"] = "auto-generated" if unsubscribe_url is None else "no"
    # Gmail's Feedback-ID (campaign:kind:sender:domain), set before signing, groups complaint rates by kind of mail.
    message["Feedback-ID"] = f"0:{template.replace('_', '-')}:uscmail:{ascii_domain(str(sender.addr_spec))}"
    if unsubscribe_url is not None:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    # After the parts are made: making a message multipart moves every Content-* header into its first part.
    message["Content-Language"] = language().tag
    return message
