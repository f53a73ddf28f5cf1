"""POST /webhooks/bounces/<provider>: bounce and complaint reports from Amazon SES (through SNS), Postmark, Mailgun
and SendGrid. Thin views: each answers 404 while its provider is not configured, reads the body (at most
BOUNCE_WEBHOOK_MAX_BYTES), has webhooks.py authenticate and read it, hands the findings to the bounce service,
commits once and answers with counts. The answer says how many reports were accepted, never whether anyone in them
is ours (no enumeration, even by someone holding a provider's key), and the log holds counts, never addresses.

What the views need from outside lives per app in app.extensions, so tests can replace it: the HTTPS fetcher (SNS
signing certificates and subscription confirmations), the certificates fetched so far, and the reports already seen
(Mailgun tokens, what SendGrid signed, SNS message ids: in Redis when REDIS_URL is set, else in this process).
"""

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

from cryptography import x509
from flask import Blueprint, abort, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

from ..errors import MESSAGES
from ..extensions import csrf, db, limiter
from ..seen import SeenKeys, Unavailable
from . import services, webhooks
from .models import BounceSource

log = logging.getLogger(__name__)

bp = Blueprint("bounce_webhooks", __name__, url_prefix="/webhooks/bounces")
csrf.exempt(bp)  # authenticated by each provider's signature or credentials, never by a session
limiter.limit(lambda: current_app.config["BOUNCE_WEBHOOK_RATE_LIMIT"])(bp)

FETCH = "uscmail_bounce_webhook_fetch"
CERTIFICATES = "uscmail_sns_certificates"
SEEN = "uscmail_bounce_webhooks_seen"
# SNS delivers at least once and retries for up to about an hour: a message id is remembered for a day.
SNS_SEEN_SECONDS = 24 * 3600
FETCH_TIMEOUT_SECONDS = 5
FETCH_MAX_BYTES = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is answered as an HTTPError: only the checked URL itself is ever fetched


_opener = urllib.request.build_opener(_NoRedirects)


def fetch_https(url: str) -> bytes:
    """GET an https URL already checked to be Amazon SNS's: certificate verified, no redirects, a 5-second timeout,
    at most 64 KiB. FetchFailed(transient=...) when it fails."""
    try:
        with _opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - is_sns_url checked it
            body = response.read(FETCH_MAX_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise webhooks.FetchFailed(transient=error.code >= 500 or error.code == 429) from None
    except (OSError, http.client.HTTPException):  # URLError, timeouts, TLS and connection errors
        raise webhooks.FetchFailed(transient=True) from None
    if len(body) > FETCH_MAX_BYTES:
        raise webhooks.FetchFailed(transient=False)
    return body


class SigningCertificates:
    """SNS signing certificates by URL, each fetched once per process (SNS signs with few, long-lived ones)."""

    def __init__(self):
        self.by_url: dict[str, x509.Certificate] = {}

    def get(self, url: str) -> x509.Certificate:
        """The certificate at `url`, fetched with the app's fetcher the first time."""
        certificate = self.by_url.get(url)
        if certificate is None:
            certificate = webhooks.load_certificate(current_app.extensions[FETCH](url))
            if len(self.by_url) >= 64:
                self.by_url.clear()
            self.by_url[url] = certificate
        return certificate


def check_settings(config) -> None:
    """Stop the app at start-up, with the reason, when a webhook setting is unusable."""
    problems = []
    bad_topics = [arn for arn in config["SES_SNS_TOPIC_ARNS"] if webhooks.topic_region(arn) is None]
    if bad_topics:
        problems.append(f"SES_SNS_TOPIC_ARNS must list SNS topic ARNs, not {', '.join(bad_topics)}")
    if bool(config["POSTMARK_WEBHOOK_USERNAME"]) != bool(config["POSTMARK_WEBHOOK_PASSWORD"]):
        problems.append("POSTMARK_WEBHOOK_USERNAME and POSTMARK_WEBHOOK_PASSWORD must be set together")
    elif ":" in config["POSTMARK_WEBHOOK_USERNAME"]:
        problems.append("POSTMARK_WEBHOOK_USERNAME can't hold a colon (HTTP Basic authentication splits there)")
    elif config["POSTMARK_WEBHOOK_PASSWORD"] and len(config["POSTMARK_WEBHOOK_PASSWORD"]) < 16:
        problems.append("POSTMARK_WEBHOOK_PASSWORD must be at least 16 random characters")
    if config["SENDGRID_WEBHOOK_PUBLIC_KEY"]:
        try:
            webhooks.sendgrid_public_key(config["SENDGRID_WEBHOOK_PUBLIC_KEY"])
        except ValueError as error:
            problems.append(f"SENDGRID_WEBHOOK_PUBLIC_KEY must be SendGrid's verification key ({error})")
    if problems:
        raise RuntimeError("uscmail refuses to start: " + "; ".join(problems))


@bp.record_once
def set_up(state) -> None:
    """Check the settings, and give the app its fetcher, certificate cache and memory of reports seen."""
    app = state.app
    check_settings(app.config)
    app.extensions.setdefault(FETCH, fetch_https)
    app.extensions.setdefault(CERTIFICATES, SigningCertificates())
    seen = SeenKeys(app.config["REDIS_URL"], app.config["RATELIMIT_KEY_PREFIX"], "bounce-webhook-seen")
    app.extensions.setdefault(SEEN, seen)


@bp.before_request
def limit_body() -> None:
    """SendGrid posts batches of events: allow more than a form's worth, but no more than the setting."""
    request.max_content_length = current_app.config["BOUNCE_WEBHOOK_MAX_BYTES"]


# --- answers --------------------------------------------------------------------------------------------------------


def _provider() -> str:
    return (request.endpoint or "").rpartition(".")[2]


@bp.errorhandler(webhooks.Refused)
def refused(error: webhooks.Refused):
    """Not authenticated (401) or not acceptable (403): nothing recorded."""
    db.session.rollback()
    log.info("%s webhook refused (%d): %s", _provider(), error.status, error.message)
    challenge = error.status == 401 and _provider() == "postmark"
    headers = {"WWW-Authenticate": 'Basic realm="uscmail bounces"'} if challenge else {}
    return jsonify(error=error.message), error.status, headers


@bp.errorhandler(webhooks.Unreadable)
def unreadable(error: webhooks.Unreadable):
    """Not the document the provider sends: 400."""
    db.session.rollback()
    log.info("%s webhook unreadable: %s", _provider(), error)
    return jsonify(error=str(error)), 400


@bp.errorhandler(webhooks.FetchFailed)
def fetch_failed(error: webhooks.FetchFailed):
    """Amazon SNS's certificate could not be had: try again later (503) if that may help, else 401."""
    db.session.rollback()
    if error.transient:
        log.warning("%s webhook: an Amazon SNS URL could not be fetched; SNS will retry", _provider())
        return jsonify(error="Amazon SNS could not be reached; please try again later."), 503, {"Retry-After": "60"}
    return jsonify(error="The signing certificate could not be fetched."), 401


@bp.errorhandler(Unavailable)
def unavailable(error: Unavailable):
    """Redis failed: nothing recorded; the provider tries again later."""
    db.session.rollback()
    log.warning("%s webhook: Redis is unavailable (%s)", _provider(), error.__cause__)
    return jsonify(error="Please try again later."), 503, {"Retry-After": "60"}


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Not found (not configured), too large, wrong content type, rate-limited...: a short JSON answer."""
    status = error.code or 400
    return jsonify(error=MESSAGES.get(status, error.description or "That request was refused.")), status


def setting(name: str):
    """A provider's setting; 404 while it is empty (that provider is not configured)."""
    value = current_app.config[name]
    if not value:
        abort(404)
    return value


def body(*mimetypes: str) -> bytes:
    """The raw request body, if sent as one of `mimetypes` (415 otherwise; 413 past BOUNCE_WEBHOOK_MAX_BYTES)."""
    if request.mimetype not in mimetypes:
        raise UnsupportedMediaType()
    return request.get_data(cache=True)


def record(report: webhooks.Report, source: BounceSource):
    """Record the findings, commit once, and answer with counts that tell nobody who is on our lists."""
    results = services.record(report.findings, source)
    db.session.commit()
    recorded = results.count(services.Result.RECORDED)
    log.info(
        "%s webhook: %d recorded, %d about nobody we know, %d ignored",
        source.value, recorded, len(results) - recorded, report.ignored,
    )  # fmt: skip
    return jsonify(accepted=len(results), ignored=report.ignored)


def record_once(key: str, seconds: int, report: webhooks.Report, source: BounceSource, repeat_refused: bool = True):
    """record(), unless a report with this key was accepted in the last `seconds`: then 403 (a replay), or, for
    SNS's at-least-once delivery, 200 with nothing recorded twice."""
    seen = current_app.extensions[SEEN]
    key = f"{source.value}:{key}"
    if not seen.claim(key, seconds):
        if repeat_refused:
            raise webhooks.Refused(403, "That report was already received.")
        return jsonify(accepted=0, ignored=0, repeated=True)
    try:
        return record(report, source)
    except BaseException:
        seen.release(key)
        raise


def max_age() -> int:
    return current_app.config["BOUNCE_WEBHOOK_MAX_AGE_SECONDS"]


# --- the providers --------------------------------------------------------------------------------------------------


@bp.post("/ses")
def ses():
    """Amazon SNS: a signed subscription confirmation (confirmed), or an SES bounce or complaint notification."""
    topics = setting("SES_SNS_TOPIC_ARNS")
    envelope = webhooks.sns_envelope(body("text/plain", "application/json"))
    webhooks.verify_sns(envelope, topics, current_app.extensions[CERTIFICATES].get, datetime.now(UTC))
    if envelope["Type"] == "SubscriptionConfirmation":
        return confirm_subscription(envelope)
    if envelope["Type"] != "Notification":
        return jsonify(accepted=0, ignored=1)
    report = webhooks.ses_report(envelope["Message"])
    return record_once(envelope["MessageId"], SNS_SEEN_SECONDS, report, BounceSource.SES, repeat_refused=False)


def confirm_subscription(envelope: dict):
    """Confirm an SNS subscription to an accepted topic by fetching its SubscribeURL."""
    url = webhooks.subscribe_url(envelope)
    try:
        current_app.extensions[FETCH](url)
    except webhooks.FetchFailed as failure:
        if failure.transient:
            raise
        log.warning("SNS refused to confirm the subscription to %s; confirm it in AWS's console", envelope["TopicArn"])
        return jsonify(confirmed=False)
    log.info("SNS subscription to %s confirmed", envelope["TopicArn"])
    return jsonify(confirmed=True)


@bp.post("/postmark")
def postmark():
    """Postmark's Bounce and SpamComplaint webhooks, behind HTTP Basic authentication."""
    expected = (setting("POSTMARK_WEBHOOK_USERNAME"), setting("POSTMARK_WEBHOOK_PASSWORD"))
    raw = body("application/json")
    auth = request.authorization
    given = (auth.username or "", auth.password or "") if auth is not None and auth.type == "basic" else None
    webhooks.check_credentials(given, expected)
    return record(webhooks.postmark_report(webhooks.parse_json(raw)), BounceSource.POSTMARK)


@bp.post("/mailgun")
def mailgun():
    """Mailgun's failed and complained events, signed inside the body; each token is accepted once."""
    signing_key = setting("MAILGUN_WEBHOOK_SIGNING_KEY")
    document = webhooks.parse_json(body("application/json"))
    token = webhooks.verify_mailgun(document, signing_key, time.time(), max_age())
    report = webhooks.mailgun_report(document)
    return record_once(token, max_age() + webhooks.CLOCK_SKEW_SECONDS, report, BounceSource.MAILGUN)


@bp.post("/sendgrid")
def sendgrid():
    """SendGrid's signed Event Webhook: a batch of events; each signed batch is accepted once."""
    key = _sendgrid_key(setting("SENDGRID_WEBHOOK_PUBLIC_KEY"))
    raw = body("application/json")
    signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature")
    timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp")
    webhooks.verify_sendgrid(raw, signature, timestamp, key, time.time(), max_age())
    report = webhooks.sendgrid_report(webhooks.parse_json(raw))
    # Keyed by what was signed, not by the signature: an ECDSA signature can be altered and stay valid.
    signed = f"{timestamp}:{hashlib.sha256(raw).hexdigest()}"
    return record_once(signed, max_age() + webhooks.CLOCK_SKEW_SECONDS, report, BounceSource.SENDGRID)


_sendgrid_keys: dict[str, object] = {}


def _sendgrid_key(text: str):
    """The parsed public key, parsed once per process (start-up refuses an unreadable one; should the setting be
    changed while running, an unreadable key leaves SendGrid unconfigured)."""
    if text not in _sendgrid_keys:
        try:
            key = webhooks.sendgrid_public_key(text)
        except ValueError as error:
            log.error("SENDGRID_WEBHOOK_PUBLIC_KEY is unusable (%s): SendGrid's reports are refused", error)
            abort(404)
        _sendgrid_keys.clear()
        _sendgrid_keys[text] = key
    return _sendgrid_keys[text]
