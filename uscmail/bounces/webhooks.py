"""Bounce and complaint reports from the providers' webhooks, authenticated and read: Amazon SES (through SNS),
Postmark, Mailgun and SendGrid. Pure functions: bodies, headers and settings in; a Report of Findings out, or Refused
(not authenticated: 401; signed but not acceptable: 403) or Unreadable (400). The views (webhook_routes.py) fetch
certificates, keep the cache of reports already seen, record and commit.

How each provider proves a report is its own:
- SNS signs a canonical string of the message's fields (SHA1withRSA or SHA256withRSA) with the key of the X.509
  certificate at SigningCertURL, which must be https on sns.<region>.amazonaws.com(.cn) for the region of a topic
  we accept;
- Postmark sends the HTTP Basic username and password we put in its webhook URL;
- Mailgun puts an HMAC-SHA256 of timestamp + token under its signing key in the JSON body;
- SendGrid signs timestamp + raw body with ECDSA P-256 / SHA-256; its public key is a setting.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..inputguard import MAX_JSON_DEPTH, UNSTORABLE
from .models import BounceKind
from .services import Finding

# How far ahead of our clock a signed report's timestamp may be (clocks drift) before it is refused.
CLOCK_SKEW_SECONDS = 60
# An RFC 3463 enhanced status code ("5.1.1"), not part of a longer dotted number such as an IP address.
ENHANCED_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
# Characters a diagnostic may not keep: controls (line breaks become spaces) and lone surrogates.
CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
DIAGNOSTIC_MAX = 2000  # read this much of a relay's words; safe_detail keeps 250 once addresses are removed

TOPIC_ARN = re.compile(r"arn:aws(?:-cn|-us-gov)?:sns:([a-z0-9-]{1,32}):[0-9]{12}:[A-Za-z0-9_.-]{1,256}")
SNS_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}

SES_BOUNCE_KINDS = {"Permanent": BounceKind.HARD, "Transient": BounceKind.SOFT, "Undetermined": BounceKind.SOFT}
# Postmark's bounce types that say something about the recipient's mailbox; the rest (auto-replies, subscribe
# requests, challenge mails, blocks of our sender, template errors...) are ignored.
POSTMARK_BOUNCE_KINDS = {
    "HardBounce": BounceKind.HARD,
    "BadEmailAddress": BounceKind.HARD,
    "SoftBounce": BounceKind.SOFT,
    "Transient": BounceKind.SOFT,
    "DnsError": BounceKind.SOFT,
    "SpamComplaint": BounceKind.COMPLAINT,
}
MAILGUN_SEVERITIES = {"permanent": BounceKind.HARD, "temporary": BounceKind.SOFT}


class Refused(Exception):
    """The report is not authenticated (401) or, although signed, not acceptable (403); nothing is recorded."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Unreadable(ValueError):
    """The body is not the document the provider sends (400)."""


class FetchFailed(Exception):
    """A URL of Amazon SNS's could not be fetched; `transient` if trying again later may work."""

    def __init__(self, transient: bool):
        super().__init__("transient" if transient else "refused")
        self.transient = transient


@dataclass
class Report:
    """What one request says: findings for the bounce service, and how many events it held that mean nothing here
    (deliveries, delays, auto-replies, "not spam")."""

    findings: list[Finding] = field(default_factory=list)
    ignored: int = 0


# --- reading JSON ---------------------------------------------------------------------------------------------------


def parse_json(raw: bytes | str):
    """The JSON document in `raw`; Unreadable for broken UTF-8, NaN or Infinity, numbers too long to convert, or
    nesting deeper than MAX_JSON_DEPTH."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        document = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise Unreadable("The body is not a JSON document.") from None
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise Unreadable(f"JSON nested more than {MAX_JSON_DEPTH} levels deep is not accepted.")
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return document


def _refuse_constant(name: str):
    raise ValueError(name)


def _object(value, what: str) -> dict:
    """A JSON object field ({} when absent); Unreadable when it is something else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Unreadable(f"{what} is not a JSON object.")
    return value


def _objects(value, what: str) -> list[dict]:
    """A list-of-objects field ([] when absent); Unreadable when it is something else."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Unreadable(f"{what} is not a list of JSON objects.")
    return value


def _named(table: dict, value):
    """table[value] for a string value that is a key, else None (a JSON value may be a list: unhashable)."""
    return table.get(value) if isinstance(value, str) else None


def _text(value, limit: int = DIAGNOSTIC_MAX) -> str:
    """A string field as one line of storable text ("" when absent or not a string)."""
    if not isinstance(value, str):
        return ""
    return " ".join(CONTROL.sub(" ", value[:limit]).split())


def _address(value) -> str | None:
    """A recipient's address as the provider gave it, or None when it cannot be one (the service then finds
    nobody). Never cleaned up: a changed address could name someone else."""
    if not isinstance(value, str) or not 3 <= len(value) <= 320 or "@" not in value or UNSTORABLE.search(value):
        return None
    return value.strip()


def _message_id(value) -> str | None:
    """A Message-ID header value, if it is one line of printable ASCII."""
    if isinstance(value, str) and 0 < len(value) <= 998 and value.isascii() and value.isprintable():
        return value.strip() or None
    return None


def _status(*texts: str) -> str:
    """The first enhanced status code ("5.1.1") in the texts, or ""."""
    for text in texts:
        match = ENHANCED_STATUS.search(text)
        if match:
            return match.group(1)
    return ""


def _timestamp(value) -> int:
    """A Unix timestamp given as digits (or a JSON integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12):
        raise Refused(401, "The report's timestamp is missing or malformed.")
    return int(value)


def check_fresh(timestamp: int, now: float, max_age: int) -> None:
    """Refuse a signed report older than `max_age` seconds, or more than CLOCK_SKEW_SECONDS in the future."""
    if now - timestamp > max_age or timestamp - now > CLOCK_SKEW_SECONDS:
        raise Refused(403, "The report's timestamp is too old or in the future.")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


# --- Amazon SES through SNS -----------------------------------------------------------------------------------------


def topic_region(arn: str) -> str | None:
    """The AWS region of an SNS topic ARN, or None if `arn` is not one."""
    match = TOPIC_ARN.fullmatch(arn)
    return match.group(1) if match else None


def is_sns_url(url: str, region: str) -> bool:
    """True if `url` is https on Amazon SNS's own host for `region` (sns.<region>.amazonaws.com, or .com.cn)."""
    if not (url.isascii() and url.isprintable()) or any(character in url for character in " \\"):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and port in (None, 443)
        and parts.username is None
        and parts.password is None
        and parts.hostname in (f"sns.{region}.amazonaws.com", f"sns.{region}.amazonaws.com.cn")
    )


def sns_envelope(body: bytes) -> dict:
    """The SNS message in a POST body: a JSON object with a known Type and each signed field a string."""
    envelope = parse_json(body)
    if not isinstance(envelope, dict) or _named(SNS_SIGNED_FIELDS, envelope.get("Type")) is None:
        raise Unreadable("The body is not an Amazon SNS message.")
    for name in SNS_SIGNED_FIELDS[envelope["Type"]]:
        if not isinstance(envelope.get(name), str) and not (name == "Subject" and envelope.get(name) is None):
            raise Unreadable(f"The SNS message's {name} is missing or not a string.")
    return envelope


def sns_string_to_sign(envelope: dict) -> bytes:
    """The canonical string SNS signs: each signed field present, as `name\\nvalue\\n`, in byte order of names."""
    signed = SNS_SIGNED_FIELDS[envelope["Type"]]
    text = "".join(f"{name}\n{envelope[name]}\n" for name in signed if envelope.get(name) is not None)
    return text.encode("utf-8", "surrogatepass")


def verify_sns(
    envelope: dict, topics: list[str], certificate_for: Callable[[str], x509.Certificate], now: datetime
) -> None:
    """Refuse an SNS message from a topic not in `topics`, or whose signature does not verify with the certificate
    at its SigningCertURL (on SNS's host for the topic's region). The certificate is fetched only once all else
    checks out; `certificate_for` may raise FetchFailed."""
    topic = envelope["TopicArn"]
    region = topic_region(topic)
    if topic not in topics or region is None:
        raise Refused(403, "Notifications from that topic are not accepted.")
    algorithm = _named(SNS_HASHES, envelope.get("SignatureVersion"))
    url, signature = envelope.get("SigningCertURL"), envelope.get("Signature")
    if algorithm is None or not isinstance(url, str) or not isinstance(signature, str):
        raise Refused(401, "The message is not signed.")
    if not is_sns_url(url, region):
        raise Refused(401, "The signing certificate is not on Amazon SNS's host for the topic's region.")
    try:
        signature_bytes = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(401, "The signature does not match.") from None
    certificate = certificate_for(url)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Refused(401, "The signing certificate has expired or is not yet valid.")
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise Refused(401, "The signing certificate does not hold an RSA key.")
    try:
        public_key.verify(signature_bytes, sns_string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused(401, "The signature does not match.") from None


def load_certificate(data: bytes) -> x509.Certificate:
    """The PEM certificate fetched from a SigningCertURL."""
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise Refused(401, "The signing certificate could not be read.") from None


def subscribe_url(envelope: dict) -> str:
    """A verified SubscriptionConfirmation's SubscribeURL, if it is on SNS's host for the topic's region."""
    url = envelope["SubscribeURL"]
    if not is_sns_url(url, topic_region(envelope["TopicArn"]) or ""):
        raise Refused(403, "The SubscribeURL is not on Amazon SNS's host for the topic's region.")
    return url


def ses_report(message: str) -> Report:
    """The findings in an SES notification (an SNS Notification's Message): each recipient of a Bounce (Permanent:
    hard; Transient or Undetermined: soft) or of a Complaint. Delivery and other notifications are ignored."""
    notification = parse_json(message)
    if not isinstance(notification, dict):
        raise Unreadable("The notification is not an Amazon SES notification.")
    kind = notification.get("notificationType") or notification.get("eventType")
    message_id = _ses_message_id(_object(notification.get("mail"), "mail"))
    if kind == "Bounce":
        bounce = _object(notification.get("bounce"), "bounce")
        recipients = _objects(bounce.get("bouncedRecipients"), "bounce.bouncedRecipients")
        bounce_kind = _named(SES_BOUNCE_KINDS, bounce.get("bounceType"))
        if bounce_kind is None or not recipients:
            return Report(ignored=1)
        findings = []
        for recipient in recipients:
            diagnostic = _text(recipient.get("diagnosticCode"))
            status = _status(_text(recipient.get("status"), 32), diagnostic)
            email = _address(recipient.get("emailAddress"))
            findings.append(Finding(bounce_kind, status, diagnostic, email=email, message_id=message_id))
        return Report(findings)
    if kind == "Complaint":
        complaint = _object(notification.get("complaint"), "complaint")
        recipients = _objects(complaint.get("complainedRecipients"), "complaint.complainedRecipients")
        feedback = _text(complaint.get("complaintFeedbackType"), 64)
        if feedback == "not-spam" or not recipients:
            return Report(ignored=1)
        diagnostic = f"complaint: {feedback}" if feedback else ""
        return Report(
            [
                Finding(BounceKind.COMPLAINT, "", diagnostic, email=_address(each.get("emailAddress")),
                        message_id=message_id)
                for each in recipients
            ]
        )  # fmt: skip
    return Report(ignored=1)


def _ses_message_id(mail: dict) -> str | None:
    """The original Message-ID: mail.commonHeaders.messageId, else the Message-ID among mail.headers."""
    found = _message_id(_object(mail.get("commonHeaders"), "mail.commonHeaders").get("messageId"))
    if found:
        return found
    for header in _objects(mail.get("headers"), "mail.headers"):
        name = header.get("name")
        if isinstance(name, str) and name.lower() == "message-id":
            return _message_id(header.get("value"))
    return None


# --- Postmark -------------------------------------------------------------------------------------------------------


def check_credentials(given: tuple[str, str] | None, expected: tuple[str, str]) -> None:
    """Refuse a request without the HTTP Basic username and password we configured; both are compared, in
    constant time (as SHA-256 digests, so not even their lengths show)."""
    if given is None:
        raise Refused(401, "Send the webhook's username and password (HTTP Basic authentication).")
    pairs = zip(given, expected, strict=True)
    matches = [hmac.compare_digest(_digest(sent), _digest(wanted)) for sent, wanted in pairs]
    if not all(matches):
        raise Refused(401, "Wrong username or password.")


def postmark_report(document) -> Report:
    """The finding in a Postmark Bounce or SpamComplaint webhook (one record per request)."""
    if not isinstance(document, dict):
        raise Unreadable("The body is not a Postmark webhook record.")
    record_type, bounce_type = document.get("RecordType"), document.get("Type")
    if record_type == "SpamComplaint":
        kind = BounceKind.COMPLAINT
    elif record_type == "Bounce":
        kind = _named(POSTMARK_BOUNCE_KINDS, bounce_type)
    else:
        kind = None
    if kind is None:
        return Report(ignored=1)
    diagnostic = _text(document.get("Details")) or _text(document.get("Description"))
    status = _status(diagnostic) if kind is not BounceKind.COMPLAINT else ""
    return Report([Finding(kind, status, diagnostic, email=_address(document.get("Email")))])


# --- Mailgun --------------------------------------------------------------------------------------------------------


def verify_mailgun(document, signing_key: str, now: float, max_age: int) -> str:
    """Refuse a Mailgun webhook whose `signature` is not the HMAC-SHA256 of timestamp + token under the signing
    key, or is stale. Returns the token, which the caller must accept only once."""
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(signature, dict):
        raise Refused(401, "The report is not signed.")
    timestamp, token, digest = (signature.get(name) for name in ("timestamp", "token", "signature"))
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not (isinstance(timestamp, str) and isinstance(token, str) and isinstance(digest, str)):
        raise Refused(401, "The report is not signed.")
    message = (timestamp + token).encode("utf-8", "surrogatepass")
    expected = hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.lower().encode("utf-8", "surrogatepass")):
        raise Refused(401, "The signature does not match.")
    check_fresh(_timestamp(timestamp), now, max_age)
    return token


def mailgun_report(document: dict) -> Report:
    """The finding in a Mailgun event: `failed` (permanent: hard; temporary: soft) or `complained`. A failure
    because the address is on Mailgun's own complaint list counts as a complaint; on its unsubscribe list, as
    nothing (that is not a bounce)."""
    event = _object(document.get("event-data"), "event-data")
    name, reason = event.get("event"), event.get("reason")
    if name == "failed" and reason == "suppress-complaint":
        kind = BounceKind.COMPLAINT
    elif name == "failed" and reason != "suppress-unsubscribe":
        kind = _named(MAILGUN_SEVERITIES, event.get("severity"))
    elif name == "complained":
        kind = BounceKind.COMPLAINT
    else:
        kind = None
    if kind is None:
        return Report(ignored=1)
    delivery = _object(event.get("delivery-status"), "event-data.delivery-status")
    code = delivery.get("code")
    words = [
        str(code) if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 999 else "",
        _text(delivery.get("message")),
        _text(delivery.get("description")),
    ]
    diagnostic = " ".join(word for word in words if word)
    status = _status(_text(delivery.get("enhanced-code"), 32), diagnostic) if kind is not BounceKind.COMPLAINT else ""
    headers = _object(_object(event.get("message"), "event-data.message").get("headers"), "message.headers")
    return Report(
        [Finding(kind, status, diagnostic, email=_address(event.get("recipient")),
                 message_id=_message_id(headers.get("message-id")))]
    )  # fmt: skip


# --- SendGrid -------------------------------------------------------------------------------------------------------


def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 of a DER SubjectPublicKeyInfo; PEM armour is tolerated);
    ValueError if it is not a P-256 public key."""
    lines = [line.strip() for line in text.strip().splitlines() if not line.startswith("-----")]
    try:
        key = serialization.load_der_public_key(base64.b64decode("".join(lines), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise ValueError("not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


def verify_sendgrid(
    body: bytes, signature: str | None, timestamp: str | None, key: ec.EllipticCurvePublicKey, now: float, max_age: int
) -> None:
    """Refuse a SendGrid Event Webhook post unless its signature header (base64 DER ECDSA) verifies over the
    timestamp header + raw body, and the timestamp is fresh."""
    if not signature or not timestamp:
        raise Refused(401, "The report is not signed.")
    try:
        signature_bytes = base64.b64decode(signature, validate=True)
        key.verify(signature_bytes, timestamp.encode("utf-8", "surrogatepass") + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise Refused(401, "The signature does not match.") from None
    check_fresh(_timestamp(timestamp), now, max_age)


def sendgrid_report(document) -> Report:
    """The findings in a batch of SendGrid events: `bounce` (type bounce: hard; blocked: soft) and `spamreport`
    (complaint); dropped, deferred, delivered and engagement events are ignored."""
    if not isinstance(document, list) or not all(isinstance(event, dict) for event in document):
        raise Unreadable("The body is not a list of SendGrid events.")
    report = Report()
    for event in document:
        name = event.get("event")
        if name == "bounce":
            kind = BounceKind.SOFT if event.get("type") == "blocked" else BounceKind.HARD
        elif name == "spamreport":
            kind = BounceKind.COMPLAINT
        else:
            report.ignored += 1
            continue
        diagnostic = _text(event.get("reason"))
        status = _status(_text(event.get("status"), 32), diagnostic) if kind is not BounceKind.COMPLAINT else ""
        email, message_id = _address(event.get("email")), _message_id(event.get("smtp-id"))
        report.findings.append(Finding(kind, status, diagnostic, email=email, message_id=message_id))
    return report
