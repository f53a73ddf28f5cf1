"""/dev/mail: read the mail the development catcher caught. Registered only outside production, and answered only
to this machine: it shows every mail sent to anyone, links with their tokens included."""

import ipaddress
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, request
from markupsafe import Markup, escape

from ..media import mailimages

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")
NAME = re.compile(r"^[0-9]+-[0-9a-f]{8}\.eml$")
URL = re.compile(r"https?://[^\s<>\"]+")


@bp.before_request
def local_only() -> None:
    """404 (as if the page did not exist) for any client that is not on this machine."""
    try:
        local = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        local = False
    if not local:
        abort(404)


def _directory() -> Path:
    return Path(current_app.config["DEV_MAIL_DIR"])


def _read(name: str):
    if not NAME.match(name):
        abort(404)
    path = _directory() / name
    if not path.is_file():
        abort(404)
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())


def linkify(text: str) -> Markup:
    """Escape text and turn URLs into links."""
    escaped = str(escape(text))
    # Safe: the text is escaped first, and the URL pattern cannot contain quotes or angle brackets.
    return Markup(  # noqa: S704
        URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
    )


@bp.get("/")
def inbox():
    """Newest mail first."""
    directory = _directory()
    names = sorted((p.name for p in directory.glob("*.eml")), reverse=True)[:200] if directory.is_dir() else []
    messages = []
    for name in names:
        message = _read(name)
        messages.append(
            {
                "name": name,
                "to": message["To"],
                "subject": message["Subject"],
                "date": message["Date"],
            }
        )
    return render_template("devmail/inbox.html", messages=messages)


@bp.get("/<name>")
def show(name: str):
    """One message: headers and the text part with clickable links; the HTML part is one click away."""
    message = _read(name)
    text_part = message.get_body(preferencelist=("plain",))
    text = text_part.get_content() if text_part else ""
    headers = [(key, value) for key, value in message.items()]
    return render_template("devmail/message.html", name=name, headers=headers, text=linkify(text))


@bp.get("/<name>/html")
def show_html(name: str):
    """The HTML part as the recipient's mail client would get it, sandboxed; images only from our own site (the
    media library's), as no other site's may be in campaign mail."""
    message = _read(name)
    html_part = message.get_body(preferencelist=("html",))
    if html_part is None:
        abort(404)
    response = Response(html_part.get_content(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "sandbox allow-popups allow-top-navigation-by-user-activation; "
        f"default-src 'none'; style-src 'unsafe-inline'; img-src data: {mailimages.site_origin()}"
    )
    return response
