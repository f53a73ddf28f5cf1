"""Checks every feature shares: the error a person can correct, addresses, names and single-line text.

The messages a supporter can meet (address and name) are translated into the language of the page in force.

Nothing here touches the database; the suppression list, which does, is in `uscmail/suppression.py`.
"""

import unicodedata

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _

NAME_MAX_LENGTH = 200
RAW_EMAIL_MAX_LENGTH = 320

# Cc covers CR and LF (a header value must never be able to start another header); Cs is a lone surrogate (possible
# in JSON "\ud800"), which cannot be stored as UTF-8; Zl and Zp are the Unicode line and paragraph separators.
NOT_SINGLE_LINE = frozenset({"Cc", "Cs", "Zl", "Zp"})


class InvalidInput(ValueError):
    """Input a person can correct; the message says how."""


# What a mail body can't hold: NUL and lone surrogates (PostgreSQL refuses them), and the other control characters
# XML refuses (the HTML part is parsed with lxml); tab, LF and CR are text.
UNSENDABLE = frozenset({chr(code) for code in range(0x20)} - {"\t", "\n", "\r"} | {"\ufffe", "\uffff"})


def unsendable(text: str) -> bool:
    """True if `text` holds a character no mail body can carry: a control character other than tab and line breaks,
    or a lone surrogate."""
    return any(character in UNSENDABLE or "\ud800" <= character <= "\udfff" for character in text)


def breaks_line(text: str) -> bool:
    """True if `text` holds a line break, a control character or a lone surrogate: not one line of text."""
    return any(unicodedata.category(character) in NOT_SINGLE_LINE for character in text)


def lf_newlines(text: str | None) -> str | None:
    """Text with each line ending as one LF: a browser posts a form's textarea with CRLF, its scripts' FormData with
    LF, and the same body must not be stored two ways (a revision would differ in nothing a person can see)."""
    if text is None:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def single_line_text(value: str | None, what: str, max_length: int, *, required: bool = True, missing: str = "") -> str:
    """`value` trimmed, or InvalidInput naming `what` if it is blank (when required), not one line, or too long.
    `missing` replaces the message for a blank value."""
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput(missing or f"Please give the {what}.")
    if breaks_line(value):
        raise InvalidInput(f"The {what} can't contain line breaks or control characters.")
    if len(value) > max_length:
        raise InvalidInput(f"Please keep the {what} under {max_length} characters.")
    return value


def normalise_email(raw: str, check_deliverability: bool | None = None) -> str:
    """Validate an address and return its normalised form (lower-cased), or raise InvalidInput. The domain's DNS
    is looked up when EMAIL_CHECK_DELIVERABILITY says so, unless `check_deliverability` says otherwise."""
    raw = (raw or "").strip()
    if not raw:
        raise InvalidInput(_("Please enter your email address."))
    if len(raw) > RAW_EMAIL_MAX_LENGTH:
        raise InvalidInput(_("That email address is too long."))
    try:
        result = validate_email(
            raw,
            check_deliverability=current_app.config["EMAIL_CHECK_DELIVERABILITY"]
            if check_deliverability is None
            else check_deliverability,
            allow_smtputf8=True,
        )
    except EmailNotValidError as exc:
        raise InvalidInput(_("That doesn't look like an email address: %(reason)s", reason=str(exc))) from None
    return result.normalized.lower()


def clean_name(raw: str | None) -> str | None:
    """Return a trimmed name, None for blank, or raise InvalidInput for line breaks, control characters or length."""
    name = (raw or "").strip()
    if not name:
        return None
    if breaks_line(name):
        raise InvalidInput(_("Your name can't contain line breaks or control characters."))
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(_("Please keep your name under %(limit)d characters.", limit=NAME_MAX_LENGTH))
    return name
