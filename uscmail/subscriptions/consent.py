"""The consent wording shown on the signup form.

Each version is kept verbatim: never edit a published one, add a new one.
"""

import hashlib

from ..extensions import db
from ..models import ConsentWording

WORDINGS = {
    "2026-11-27": (
        "I want to receive emails from the Uyghur Solidarity Campaign UK (USC-UK) on the lists I have ticked: "
        "campaign news and actions, and reminders of our monthly protests. USC-UK keeps my email address and name "
        "only to send me these emails, never shares them, and does not track whether I open them. I can withdraw "
        "my consent at any time with the unsubscribe link in every email, or erase my data from the preference page."
    ),
}
CURRENT_VERSION = "2026-11-27"


def wording_sha256(text: str) -> str:
    """SHA-256 of a wording's exact text, as stored beside each consent."""
    return hashlib.sha256(text.encode()).hexdigest()


def current_wording() -> ConsentWording:
    """The wording shown now, stored in the database the first time it is needed."""
    return wording(CURRENT_VERSION)


def wording(version: str) -> ConsentWording:
    """A published wording by version, stored if not yet stored; KeyError for an unknown version."""
    text = WORDINGS[version]
    row = db.session.get(ConsentWording, version)
    if row is None:
        row = ConsentWording(version=version, text=text, sha256=wording_sha256(text))
        db.session.add(row)
        db.session.flush()
    return row
