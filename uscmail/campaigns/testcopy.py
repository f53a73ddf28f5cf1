"""Test copies of a campaign: a few addresses typed by an organiser, so a test is a way to mail anyone. Each organiser
may send CAMPAIGN_TEST_MAILS_PER_ORGANISER test mails in a moving window (kept in the rate-limit store, Redis when
configured, so every web process counts together), only from an allowed sender, and every test send is audited with
keyed digests of the addresses, never the addresses themselves. The caller asks for `tasks.queue_test` and
commits; the task calls `deliver_test_copies`."""

import hashlib
import hmac
import logging
import math
import time

import limits
from flask import current_app
from limits.strategies import MovingWindowRateLimiter

from ..bounces import returnpath
from ..extensions import limiter
from ..mail import smtp
from ..mail.messages import allowed_sender
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput, normalise_email
from .builder import Recipient, prepare
from .models import Campaign
from .senders import check_sender

log = logging.getLogger(__name__)

# Digests of tested addresses are keyed with this purpose, so they match nothing else kept (e.g. suppressions).
DIGEST_PURPOSE = b"uscmail test-send recipient\x00"


class TestSendLimited(InvalidInput):
    """The organiser has sent as many test mails as the window allows; `retry_after` is in whole seconds."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def parse_test_addresses(raw: str) -> list[str]:
    """Parse up to CAMPAIGN_TEST_RECIPIENTS_MAX comma- or line-separated addresses, or raise InvalidInput."""
    parts = [part.strip() for part in (raw or "").replace("\n", ",").split(",") if part.strip()]
    most = current_app.config["CAMPAIGN_TEST_RECIPIENTS_MAX"]
    if not parts:
        raise InvalidInput("Enter at least one address for the test.")
    if len(parts) > most:
        raise InvalidInput(f"A test goes to at most {most} addresses.")
    return [normalise_email(part) for part in parts]


def recipient_digest(address: str) -> str:
    """A keyed HMAC of a normalised address (SUPPRESSION_KEY, which never changes), as the audit log keeps it: one
    holding the key can tell whether a given address was sent a test; the log alone names no one."""
    key = current_app.config["SUPPRESSION_KEY"].encode()
    return hmac.new(key, DIGEST_PURPOSE + address.encode(), hashlib.sha256).hexdigest()[:32]


def _rate() -> limits.RateLimitItem:
    return limits.parse(current_app.config["CAMPAIGN_TEST_MAILS_PER_ORGANISER"])


def allowance() -> str:
    """'10 test mails per hour', as the campaign page and the refusal word the organiser's limit."""
    rate = _rate()
    unit = rate.GRANULARITY.name
    per = unit if rate.multiples == 1 else f"{rate.multiples} {unit}s"
    return f"{rate.amount} test mail{'' if rate.amount == 1 else 's'} per {per}"


def count_test_mails(organiser: Organiser, mails: int) -> None:
    """Count `mails` test mails against the organiser's window, all or none; TestSendLimited if they do not fit."""
    rate = _rate()
    window = MovingWindowRateLimiter(limiter.storage)
    key = (current_app.config["RATELIMIT_KEY_PREFIX"], "test-mails", str(organiser.id))
    if window.hit(rate, *key, cost=mails):
        return
    stats = window.get_window_stats(rate, *key)
    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
    minutes = math.ceil(retry_after / 60)
    left = f"{stats.remaining} more" if stats.remaining else "none"
    raise TestSendLimited(
        f"You can send at most {allowance()}, and {left} can be sent now. "
        f"Try again in {minutes} minute{'' if minutes == 1 else 's'}.",
        retry_after,
    )


def send_test_copy(campaign: Campaign, raw: str, organiser: Organiser) -> list[str]:
    """Check a test send of `campaign` to the addresses in `raw`, count it and audit it; the addresses to queue."""
    addresses = parse_test_addresses(raw)
    check_sender(campaign)
    # One copy of each language version to each address.
    count_test_mails(organiser, len(addresses) * (1 + len(campaign.translations)))
    recipients = [recipient_digest(address) for address in addresses]
    audit.record(organiser, "campaign.test_send", "campaign", campaign.id, count=len(addresses), recipients=recipients)
    return addresses


def deliver_test_copies(campaign: Campaign, addresses: list[str]) -> int:
    """Send the test copies a test send asked for ("[Test]" in the subject; unsubscribe links in them match
    nobody); return how many the relay accepted. Nothing goes out if the sender stopped being allowed or the body
    can't be filled in."""
    if allowed_sender(campaign.from_email) is None:
        # Checked when the test was asked for; MAIL_SENDERS may have changed while it waited in the queue.
        log.warning("test of campaign %s not sent: its sender address is no longer allowed", campaign.id)
        return 0
    try:
        prepared = prepare(campaign, test=True)
    except InvalidInput as exc:  # a body that can't be filled in: the campaign page's preview says why
        log.warning("test of campaign %s not sent: %s", campaign.id, exc)
        return 0
    sent = 0
    for address in addresses:
        for locale in prepared.versions:
            recipient = Recipient(delivery_id=None, email=address, name=None, public_id="test", locale=locale)
            data, smtputf8 = prepared.build(recipient), prepared.needs_smtputf8(recipient)
            reply = smtp.send(smtp.smtp_connection(), returnpath.plain(), address, data, smtputf8=smtputf8)
            if reply.answer is smtp.Answer.SENT:
                sent += 1
            else:
                log.warning("a test copy of campaign %s was not accepted: %s", campaign.id, reply.detail)
    log.info("test of campaign %s: %s copies sent to %s addresses", campaign.id, sent, len(addresses))
    return sent
