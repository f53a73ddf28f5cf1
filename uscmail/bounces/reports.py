"""Reading one piece of mail sent to the bounce address: a delivery status notification (RFC 3464, or an older
MTA's own format, read by flufl.bounce), a complaint (ARF, RFC 5965), or something else.

Pure functions of the message: no database. `uscmail.bounces.intake` decides whose report it is and records it.
"""

import email
import enum
import logging
import re
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from .models import BounceKind

# flufl.bounce logs every detector it runs at info level; the receiver handles thousands of messages a minute.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

ENHANCED_STATUS = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_CODE = re.compile(r"\b([45]\d\d)[ -]")
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|away from|vacation|abwesenheit|absence)",
    re.IGNORECASE,
)
NOT_SPAM = {"not-spam"}
MAX_PARTS = 200  # a report has three or four; a message with more is not one we read part by part


class Verdict(enum.StrEnum):
    """What kind of mail it is."""

    FAILURE = "failure"  # a bounce: the message could not be delivered
    COMPLAINT = "complaint"
    DELAY = "delay"  # a warning that delivery is delayed and still being tried: not a failure
    AUTO_REPLY = "auto_reply"  # an out-of-office or similar answer to the message
    NOT_SPAM = "not_spam"  # an ARF report saying the message was not spam
    UNREADABLE = "unreadable"  # none of the above that we can tell


@dataclass(frozen=True)
class Report:
    """One message's reading: its verdict, and for a failure or complaint, the kind, status and diagnostic."""

    verdict: Verdict
    kind: BounceKind | None = None
    status: str = ""
    diagnostic: str = ""
    # Where an identifying return path or link may be found: the report's headers and its returned original.
    evidence: str = ""


def read(raw: bytes) -> Report:
    """Read raw mail as a report. Never raises for bad input: what can't be read is UNREADABLE."""
    try:
        message = email.message_from_bytes(raw)
        return _read(message)
    except Exception as exc:  # noqa: BLE001 - hostile input can trip any part of the parser; the mail is set aside
        return Report(Verdict.UNREADABLE, diagnostic=f"could not be parsed ({type(exc).__name__})")


def _read(message: Message) -> Report:
    parts = _parts(message)
    report_type = (message.get_param("report-type", header="content-type") or "").lower()
    feedback = next((part for part in parts if part.get_content_type() == "message/feedback-report"), None)
    if report_type == "feedback-report" or feedback is not None:
        return _complaint(message, parts, feedback)
    status_part = next((part for part in parts if part.get_content_type() == "message/delivery-status"), None)
    if status_part is not None:
        report = _delivery_status(message, parts, status_part)
        if report is not None:
            return report
    return _heuristic(message, parts)


def _parts(message: Message) -> list[Message]:
    parts = []
    for part in message.walk():
        parts.append(part)
        if len(parts) >= MAX_PARTS:
            break
    return parts


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(part.get_content_charset() or "utf-8", "replace")


def _original(parts: list[Message]) -> str:
    """The returned original's headers (message/rfc822 or text/rfc822-headers), as text, for finding who it was."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type == "text/rfc822-headers":
            return _text(part)[:65536]
        if content_type == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                return "".join(f"{name}: {value}\n" for name, value in inner.items())[:65536]
    return ""


def _evidence(message: Message, parts: list[Message]) -> str:
    headers = "".join(
        f"{name}: {message.get(name)}\n" for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
    )
    return headers + _original(parts)


def status_code(text: str) -> str:
    """The first enhanced status code (RFC 3463, "5.1.1") in a text, or ""."""
    match = ENHANCED_STATUS.search(text or "")
    return match.group(0) if match else ""


def _kind_for(status: str) -> BounceKind:
    """5.x.x is permanent, except 5.7.x: a refusal by policy (the sender's reputation, the content) says nothing
    about the address, and suppressing for it would empty the list during a blocklisting. 4.x.x is soft."""
    if status.startswith("5.") and not status.startswith("5.7."):
        return BounceKind.HARD
    return BounceKind.SOFT


def _delivery_status(message: Message, parts: list[Message], status_part: Message) -> Report | None:
    """RFC 3464: per-recipient blocks with Action, Status and Diagnostic-Code."""
    blocks = status_part.get_payload()
    if not isinstance(blocks, list):
        return None
    worst: Report | None = None
    delayed = False
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        if not isinstance(block, Message):
            continue
        action = (block.get("Action") or "").strip().lower()
        if action == "delayed":
            delayed = True
            continue
        if action != "failed":
            continue
        diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic[:12] else diagnostic
        status_field = " ".join(str(block.get("Status") or "").split())
        status = status_code(status_field)
        if not diagnostic:
            # No Diagnostic-Code: the Status field's own comment, else the reason in the human-readable part.
            diagnostic = status_field if status_field != status else _failure_line(_texts(parts))
        if not status or status.endswith(".0.0"):
            # "5.0.0" says only "permanent"; the remote server's own code, when it gave one, says why.
            status = status_code(diagnostic) or status
        kind = _kind_for(status) if status else BounceKind.HARD
        candidate = Report(Verdict.FAILURE, kind, status, diagnostic, _evidence(message, parts))
        if worst is None or (worst.kind is BounceKind.SOFT and kind is BounceKind.HARD):
            worst = candidate
    if worst is not None:
        return worst
    if delayed:
        return Report(Verdict.DELAY)
    return None


def _complaint(message: Message, parts: list[Message], feedback: Message | None) -> Report:
    """RFC 5965: the second part is message/feedback-report, whose Feedback-Type says what the report is."""
    feedback_type = _feedback_field(feedback, "Feedback-Type").lower()
    if feedback_type in NOT_SPAM:
        return Report(Verdict.NOT_SPAM)
    diagnostic = f"Feedback-Type: {feedback_type or 'abuse'}"
    if agent := _feedback_field(feedback, "User-Agent"):
        diagnostic += f"; User-Agent: {agent}"
    return Report(Verdict.COMPLAINT, BounceKind.COMPLAINT, "", diagnostic, _evidence(message, parts))


def _feedback_field(feedback: Message | None, name: str) -> str:
    """A field of the message/feedback-report part: parsed as a block of fields, or (when the parser left it as
    text) found in the text; one line, at most 100 characters."""
    if feedback is None:
        return ""
    fields = feedback.get_payload()
    if isinstance(fields, list) and fields and isinstance(fields[0], Message):
        value = str(fields[0].get(name) or "")
    else:
        found = re.search(rf"^{name}:[ \t]*(.*)$", _text(feedback), re.IGNORECASE | re.MULTILINE)
        value = found.group(1) if found else ""
    return " ".join(value.split())[:100]


def _heuristic(message: Message, parts: list[Message]) -> Report:
    """Mail that is not an RFC report: flufl.bounce's detectors for the formats of older and odder MTAs."""
    try:
        delayed, failed = all_failures(message)
    except Exception:  # noqa: BLE001 - a detector choking on hostile input; the mail is set aside
        delayed, failed = set(), set()
    if failed:
        text = _texts(parts)
        line = _failure_line(text)
        status = status_code(line) or status_code(text)
        return Report(
            Verdict.FAILURE, _kind_for(status) if status else BounceKind.HARD, status, line, _evidence(message, parts)
        )
    if delayed:
        return Report(Verdict.DELAY)
    if _is_auto_reply(message):
        return Report(Verdict.AUTO_REPLY)
    return Report(Verdict.UNREADABLE, diagnostic="neither a delivery report nor a complaint")


def _texts(parts: list[Message]) -> str:
    return "\n".join(_text(part) for part in parts if part.get_content_maintype() == "text")[:65536]


def _failure_line(text: str) -> str:
    """The line of a bounce that gives the reason: the first with an SMTP or enhanced status code."""
    for line in text.splitlines():
        if ENHANCED_STATUS.search(line) or SMTP_CODE.search(line):
            return " ".join(line.split())
    return ""


def _is_auto_reply(message: Message) -> bool:
    auto = (message.get("Auto-Submitted") or "").strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    return bool(AUTO_REPLY_SUBJECT.match(str(message.get("Subject") or "")))
