"""Taking a signup, from the form or the public API: check it, store it as one row, leave it for a worker to apply.

Nothing here looks the address up: whether it is new, pending, confirmed, unsubscribed or suppressed, a signup does
the same single INSERT, so neither the answer nor its timing tells who is on a list.
"""

import enum
import logging
from dataclasses import dataclass

import kombu.exceptions
import redis
from flask import current_app
from flask_babel import gettext as _

from ..extensions import db
from ..i18n import supported
from ..links import seconds_since_form_started
from ..models import ConsentMethod
from ..queueing import after_commit
from ..validation import InvalidInput, clean_name, normalise_email
from . import backlog, services, tasks
from .consent import current_version
from .forms import SignupForm
from .services import PublicList

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedSignup:
    """A signup whose address, name, lists and consent wording have been checked."""

    email: str
    name: str | None
    lists: list[PublicList]
    wording_version: str
    # The language the form was shown in: the subscriber's, and their mails'.
    locale: str = "en"


def check_signup(
    email: str,
    name: str | None,
    slugs: list[str],
    wording_version: str,
    offered: list[PublicList] | None = None,
    locale: str = "en",
) -> CheckedSignup:
    """The signup as it will be stored, or InvalidInput saying what is wrong; the address is not looked up. The
    consent version must be the current one of `locale`, the language the form was shown in."""
    address = normalise_email(email)
    display_name = clean_name(name)
    lists = services.public_lists_by_slug(slugs, offered)
    if wording_version != current_version(locale):
        raise InvalidInput(_("The consent wording has changed since the form was opened; please read it again."))
    return CheckedSignup(address, display_name, lists, wording_version, locale)


def store_signup(signup: CheckedSignup, method: ConsentMethod) -> None:
    """Store a checked signup, commit, then leave it to a worker: in the backlog, whose drain applies the signups
    of the next SIGNUP_BATCH_SECONDS together (queued by the first of them), or without Redis in a task of its own."""
    request_id = services.record_signup_request(
        signup.email, signup.name, signup.lists, method, signup.wording_version, signup.locale
    )
    if not backlog.available():
        after_commit(tasks.apply_signup, request_id)
        db.session.commit()
        return
    db.session.commit()
    try:
        if backlog.push(request_id):
            tasks.apply_signups.apply_async(countdown=current_app.config["SIGNUP_BATCH_SECONDS"])
    except (redis.RedisError, kombu.exceptions.OperationalError) as error:  # stored: the sweeper applies it soon
        log.warning("signup %s left for the sweeper: Redis failed (%s)", request_id, type(error).__name__)


def accept_signup(
    email: str,
    name: str | None,
    slugs: list[str],
    method: ConsentMethod,
    wording_version: str,
    offered: list[PublicList] | None = None,
    locale: str = "en",
) -> None:
    """Validate a signup, store it, commit, then leave it for a worker to apply and send its mail (store_signup).

    The request never looks at the address's state: whether new, pending, confirmed, unsubscribed or suppressed,
    it does the same single INSERT, so neither the answer nor its timing tells who is on a list.
    Raises InvalidInput for bad input.
    """
    store_signup(check_signup(email, name, slugs, wording_version, offered, locale), method)


def form_locale(value: str | None) -> str:
    """The language a form says it was shown in; InvalidInput if it names none of ours."""
    locale = supported(value)
    if locale is None:
        raise InvalidInput(_("Please choose a language from the page."))
    return locale


class Pace(enum.Enum):
    """How a signup form came back: as a person sends it, too fast for a person, or as only a bot sends it."""

    PERSON = "person"
    HASTY = "hasty"  # asked to confirm they are a person
    BOT = "bot"  # the honeypot filled, or the start time missing or forged: dropped without a word


def signup_pace(form: SignupForm) -> Pace:
    """Judge the honeypot and the signed start time of a signup form."""
    if form.website.data:
        return Pace.BOT
    elapsed = seconds_since_form_started(form.started.data or "")
    if elapsed is None:
        return Pace.BOT
    return Pace.HASTY if elapsed < current_app.config["SIGNUP_MIN_FILL_SECONDS"] else Pace.PERSON
