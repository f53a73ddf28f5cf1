"""SpamAssassin's view of a campaign before anyone receives it: the real message the campaign builder makes (a test
copy for a made-up reader, DKIM-signed as it would leave) run through `spamassassin -t -L`: local tests only, so no
network and no blocklists, and a time limit. The answer is the score with every rule that fired, or why there is
none: a missing, slow or failing SpamAssassin is a SpamCheckFailed with a sentence for the organiser, never a crash.
"""

import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import limits
from flask import current_app
from limits.strategies import MovingWindowRateLimiter

from ..campaigns.builder import Recipient, prepare
from ..campaigns.models import Campaign
from ..extensions import limiter
from ..mail.dkim import sign_outgoing
from ..validation import InvalidInput

log = logging.getLogger(__name__)

# The reader the checked copy is addressed to: nobody real, so no subscriber's data goes into SpamAssassin.
SAMPLE_READER = Recipient(delivery_id=None, email="reader@example.org", name="Sam Reader", public_id="spam-check")
# A line of the report's rule table: points (" 0.0", "-1.2", "1000"), the rule's name, its description. A long
# description goes on over lines indented far past the points column.
RULE_LINE = re.compile(r" {0,3}(?P<points>-?\d+(?:\.\d+)?) +(?P<name>[A-Za-z0-9_]+) +(?P<description>.*)")
CONTINUED = " " * 10


class SpamCheckFailed(Exception):
    """No score: SpamAssassin is missing, took too long or failed, or the campaign can't be built. The message says
    which, in words for the organiser."""


class SpamChecksLimited(SpamCheckFailed):
    """The organiser has run as many checks as SPAMASSASSIN_CHECKS_PER_ORGANISER allows for now."""


@dataclass(frozen=True)
class RuleHit:
    """One SpamAssassin rule that fired: its name, its points (negative ones count in our favour), what it means."""

    name: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamReport:
    """SpamAssassin's verdict: the score, the score from which it calls mail spam, and the rules that fired, those
    that add most first."""

    score: float
    required: float
    rules: list[RuleHit]

    @property
    def is_spam(self) -> bool:
        """True if SpamAssassin would mark the message as spam."""
        return self.score >= self.required


def program() -> str | None:
    """The path of the SpamAssassin program (SPAMASSASSIN_COMMAND), or None if it isn't installed."""
    return shutil.which(current_app.config["SPAMASSASSIN_COMMAND"])


def count_check(organiser_id: int) -> None:
    """Count one check against the organiser's moving window; SpamChecksLimited if it does not fit."""
    rate = limits.parse(current_app.config["SPAMASSASSIN_CHECKS_PER_ORGANISER"])
    window = MovingWindowRateLimiter(limiter.storage)
    key = (current_app.config["RATELIMIT_KEY_PREFIX"], "spam-checks", str(organiser_id))
    if window.hit(rate, *key):
        return
    minutes = max(1, math.ceil((window.get_window_stats(rate, *key).reset_time - time.time()) / 60))
    raise SpamChecksLimited(
        f"You have run the spam check {rate.amount} times recently, as many as allowed. "
        f"Try again in {minutes} minute{'' if minutes == 1 else 's'}."
    )


def campaign_message(campaign: Campaign) -> bytes:
    """The campaign's message as a test copy for SAMPLE_READER, signed as it would be sent."""
    try:
        data = prepare(campaign, test=True).build(SAMPLE_READER)
    except InvalidInput as exc:
        raise SpamCheckFailed(f"The campaign's message can't be made: {exc}") from None
    return sign_outgoing(data)


def check_message(data: bytes) -> SpamReport:
    """Run SpamAssassin's local tests on one message, within SPAMASSASSIN_TIMEOUT seconds."""
    path = program()
    if path is None:
        raise SpamCheckFailed("SpamAssassin is not installed on this server, so this check can't run.")
    # The report is ours (a template between two markers nobody can guess), so nothing in the message can pass for it.
    marker = "USCMAIL-SPAM-CHECK-" + secrets.token_hex(8)
    arguments = [
        path, "-t", "-L", "-x", "--cf=bayes_auto_learn 0", "--cf=clear_report_template",
        f"--cf=report {marker} score=_SCORE_ required=_REQD_", "--cf=report _SUMMARY_", f"--cf=report {marker}-END",
    ]  # fmt: skip
    timeout = current_app.config["SPAMASSASSIN_TIMEOUT"]
    # Its own empty home for each run, and none of our environment (secrets included) but what Perl needs.
    with tempfile.TemporaryDirectory(prefix="uscmail-spam-check-") as home:
        environment = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        if os.environ.get("PERL5LIB"):
            environment["PERL5LIB"] = os.environ["PERL5LIB"]
        try:
            result = subprocess.run(  # noqa: S603 - a fixed program and arguments; the message goes to its stdin
                arguments, input=data, capture_output=True, timeout=timeout, env=environment, check=False
            )
        except subprocess.TimeoutExpired:
            raise SpamCheckFailed(f"SpamAssassin gave no answer within {timeout:g} s and was stopped.") from None
        except OSError as exc:
            raise SpamCheckFailed(f"SpamAssassin could not be started ({exc.strerror}).") from None
    if result.returncode != 0:
        log.warning("spamassassin exited with %s: %s", result.returncode, result.stderr[-500:].decode(errors="replace"))
        raise SpamCheckFailed(f"SpamAssassin failed (exit status {result.returncode}); the server's log says more.")
    return parse_report(result.stdout.decode("utf-8", "replace"), marker)


def parse_report(output: str, marker: str) -> SpamReport:
    """The score and rules from the last report between `marker` lines in SpamAssassin's output."""
    start = output.rfind(f"{marker} score=")
    end = output.find(f"{marker}-END", start)
    head, _, table = output[start:end].partition("\n")
    numbers = re.fullmatch(rf"{marker} score=(-?\d+(?:\.\d+)?) required=(-?\d+(?:\.\d+)?)\s*", head)
    if start < 0 or end < 0 or numbers is None:
        raise SpamCheckFailed("SpamAssassin's answer could not be read.")
    rules: list[RuleHit] = []
    for line in table.splitlines():
        hit = RULE_LINE.fullmatch(line)
        if hit:
            rules.append(RuleHit(hit["name"], float(hit["points"]) + 0.0, hit["description"].strip()))  # no -0.0
        elif rules and line.startswith(CONTINUED) and line.strip():
            last = rules[-1]
            rules[-1] = RuleHit(last.name, last.points, f"{last.description} {line.strip()}")
    rules.sort(key=lambda rule: (-rule.points, rule.name))
    return SpamReport(float(numbers[1]), float(numbers[2]), rules)
