"""Provider webhooks for bounces and complaints, through real HTTP (the Flask test client) into a real database:
Amazon SES through SNS, Postmark, Mailgun and SendGrid. Each happy path ends with the subscriber suppressed and
unsubscribed, or scored, and the evidence stored without addresses; each forgery, replay and stale report is refused
with nothing recorded; hostile bodies never get a 5xx.

Nothing here reaches the internet. The tests make their own RSA key and self-signed certificate, serve it through the
app's replaceable fetcher, and sign SNS messages themselves following AWS's documented canonical form (written out
again here, not imported from the app, so a mistake in the app's version fails a test). The payloads are the
providers' documented examples (tests/fixtures/webhooks/), with our subscriber's address and Message-ID put in.
"""

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.factories import add_confirmed, make_campaign
from uscmail.bounces import webhook_routes
from uscmail.bounces.models import BounceDecision, BounceEvent, BounceKind, BounceSource
from uscmail.bounces.webhooks import FetchFailed
from uscmail.campaigns.models import Delivery, DeliveryStatus
from uscmail.models import StatusReason, Subscriber, Subscription, SubscriptionStatus, SuppressionReason
from uscmail.suppression import suppression_reason

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
TOPIC = "arn:aws:sns:eu-west-2:123456789012:uscmail-bounces"
CERT_URL = "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
SUBSCRIBE_URL = f"https://sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37"
POSTMARK_USER, POSTMARK_PASSWORD = "uscmail-postmark", "correct-horse-battery-staple-42"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
SECP256R1_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# AWS's documented order of the signed fields (byte order of their names).
NOTIFICATION_FIELDS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_FIELDS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- keys, certificates, a pretend Amazon ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amazon_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def impostor_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_pem(key, valid_from: datetime | None = None, days: int = 365) -> bytes:
    """A self-signed certificate for `key`, named as SNS's are."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    start = valid_from or datetime.now(UTC) - timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


class FakeAmazon:
    """Amazon SNS as the app's fetcher sees it: documents by URL, and a list of every URL fetched."""

    def __init__(self):
        self.documents: dict[str, bytes] = {}
        self.fetched: list[str] = []
        self.unreachable = False

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        if self.unreachable:
            raise FetchFailed(transient=True)
        if url not in self.documents:
            raise FetchFailed(transient=False)
        return self.documents[url]


@pytest.fixture
def configure(app):
    """configure(NAME=value, ...): settings for this test; the previous values come back afterwards."""
    saved = {}

    def set_values(**values):
        for name, value in values.items():
            saved.setdefault(name, app.config[name])
            app.config[name] = value

    yield set_values
    app.config.update(saved)


@pytest.fixture
def amazon(app, amazon_key):
    """The pretend Amazon, serving the signing certificate at CERT_URL, in place of the app's fetcher; the
    certificates the app has cached are forgotten before and after."""
    fake = FakeAmazon()
    fake.documents[CERT_URL] = certificate_pem(amazon_key)
    fake.documents[SUBSCRIBE_URL] = b"<ConfirmSubscriptionResponse/>"
    original = app.extensions[webhook_routes.FETCH]
    app.extensions[webhook_routes.FETCH] = fake
    app.extensions[webhook_routes.CERTIFICATES] = webhook_routes.SigningCertificates()
    yield fake
    app.extensions[webhook_routes.FETCH] = original
    app.extensions[webhook_routes.CERTIFICATES] = webhook_routes.SigningCertificates()


def string_to_sign(envelope: dict) -> bytes:
    names = NOTIFICATION_FIELDS if envelope["Type"] == "Notification" else CONFIRMATION_FIELDS
    return "".join(f"{name}\n{envelope[name]}\n" for name in names if name in envelope).encode("utf-8", "surrogatepass")


def sign_sns(envelope: dict, key) -> dict:
    # SignatureVersion 1 is SHA1withRSA: AWS's default, still in use.
    algorithm = hashes.SHA256() if envelope.get("SignatureVersion") == "2" else hashes.SHA1()  # noqa: S303
    signature = key.sign(string_to_sign(envelope), padding.PKCS1v15(), algorithm)
    return {**envelope, "Signature": base64.b64encode(signature).decode()}


@pytest.fixture
def sns(client, configure, amazon, amazon_key):
    """SES through SNS, configured for TOPIC: .notification(message) makes a signed envelope, .post() sends one."""
    configure(SES_SNS_TOPIC_ARNS=[TOPIC])

    class Sns:
        def notification(self, message: str, key=None, **fields) -> dict:
            envelope = json.loads(fixture("sns_notification.json"))
            envelope.update(Message=message, MessageId=str(uuid.uuid4()), TopicArn=TOPIC, SigningCertURL=CERT_URL)
            envelope.update(fields)
            return sign_sns(envelope, key or amazon_key)

        def confirmation(self, key=None, **fields) -> dict:
            envelope = json.loads(fixture("sns_subscription_confirmation.json"))
            envelope.update(TopicArn=TOPIC, SubscribeURL=SUBSCRIBE_URL, SigningCertURL=CERT_URL)
            envelope.update(fields)
            return sign_sns(envelope, key or amazon_key)

        def post(self, envelope, content_type: str = "text/plain; charset=UTF-8"):
            data = envelope if isinstance(envelope, bytes | str) else json.dumps(envelope)
            return client.post("/webhooks/bounces/ses", data=data, content_type=content_type)

    return Sns()


# --- subscribers and what became of them ----------------------------------------------------------------------------


def subscriber_sent_a_campaign(db) -> tuple[str, int, str]:
    """A confirmed subscriber who was sent a campaign: (address, campaign id, the Message-ID the mail carried)."""
    [address] = add_confirmed(1)
    subscriber_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == address))
    campaign = make_campaign()
    db.session.add(Delivery(campaign_id=campaign.id, subscriber_id=subscriber_id, status=DeliveryStatus.SENT))
    db.session.commit()
    return address, campaign.id, f"<{campaign.public_id}.0f3a9c1b2d4e5f607182@uscuk.test>"


def bounce_events(db) -> list[BounceEvent]:
    db.session.rollback()  # see what the request committed
    return list(db.session.scalars(sa.select(BounceEvent).order_by(BounceEvent.id)))


def subscriptions(db, address: str) -> set[tuple[SubscriptionStatus, StatusReason]]:
    db.session.rollback()
    rows = db.session.execute(
        sa.select(Subscription.status, Subscription.status_reason)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email == address)
    )
    return {(row.status, row.status_reason) for row in rows}


CONFIRMED = {(SubscriptionStatus.CONFIRMED, StatusReason.CONFIRMED_BY_SUBSCRIBER)}


def assert_nothing_recorded(db, address: str) -> None:
    assert bounce_events(db) == []
    assert subscriptions(db, address) == CONFIRMED
    assert suppression_reason(address) is None


def assert_hard_bounced(db, address: str) -> None:
    assert subscriptions(db, address) == {(SubscriptionStatus.UNSUBSCRIBED, StatusReason.BOUNCE)}
    assert suppression_reason(address) is SuppressionReason.HARD_BOUNCE


def assert_complained(db, address: str) -> None:
    assert subscriptions(db, address) == {(SubscriptionStatus.UNSUBSCRIBED, StatusReason.COMPLAINT)}
    assert suppression_reason(address) is SuppressionReason.COMPLAINT


# --- Amazon SES through SNS -----------------------------------------------------------------------------------------


def ses_notification(name: str, address: str, message_id: str = "custom-message-ID", **changes) -> str:
    """An SES example notification about `address` (in place of the example recipient) and `message_id`."""
    text = fixture(name)
    if name == "ses_complaint.json":
        text = text.replace("richard@example.com", address)
    else:  # in the bounce without a DSN, only the first of its two recipients (the other stays a stranger)
        text = text.replace("jane@example.com", address, 1 if name == "ses_bounce_without_dsn.json" else -1)
    document = json.loads(text.replace("custom-message-ID", message_id))
    for path, value in changes.items():
        section, _, field = path.partition("__")
        document[section][field] = value
    return json.dumps(document)


def test_a_permanent_ses_bounce_suppresses_and_unsubscribes_with_the_campaign_named(db, sns, caplog):
    address, campaign_id, message_id = subscriber_sent_a_campaign(db)
    caplog.set_level(logging.INFO)

    response = sns.post(sns.notification(ses_notification("ses_bounce_with_dsn.json", address, message_id)))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"accepted": 1, "ignored": 0}
    [event] = bounce_events(db)
    assert (event.kind, event.source, event.decision) == (BounceKind.HARD, BounceSource.SES, BounceDecision.SUPPRESSED)
    assert (event.status, event.campaign_id) == ("5.1.1", campaign_id)
    assert event.diagnostic == "smtp; 550 5.1.1 <address> User"
    assert_hard_bounced(db, address)
    assert "ses webhook: 1 recorded" in caplog.text and address not in caplog.text


def test_a_transient_ses_bounce_signed_with_sha256_adds_to_the_score(db, sns):
    address, _, _ = subscriber_sent_a_campaign(db)
    notification = ses_notification("ses_bounce_without_dsn.json", address, bounce__bounceType="Transient")

    response = sns.post(sns.notification(notification, SignatureVersion="2"))

    # Two recipients: ours, and richard@example.com, whom we don't know (nothing stored for him; the answer is
    # the same as for someone we know).
    assert response.status_code == 200 and response.get_json() == {"accepted": 2, "ignored": 0}
    [event] = bounce_events(db)
    assert (event.kind, event.decision, event.score) == (BounceKind.SOFT, BounceDecision.SCORED, 1.0)
    assert (event.status, event.diagnostic, event.campaign_id) == ("", "", None)
    assert subscriptions(db, address) == CONFIRMED and suppression_reason(address) is None


def test_an_ses_complaint_unsubscribes_from_everything_and_suppresses(db, sns):
    address, campaign_id, message_id = subscriber_sent_a_campaign(db)

    response = sns.post(sns.notification(ses_notification("ses_complaint.json", address, message_id)))

    assert response.status_code == 200 and response.get_json() == {"accepted": 1, "ignored": 0}
    [event] = bounce_events(db)
    assert (event.kind, event.campaign_id, event.diagnostic) == (BounceKind.COMPLAINT, campaign_id, "complaint: abuse")
    assert_complained(db, address)


@pytest.mark.parametrize("kept", ["commonHeaders", "headers"])
def test_the_campaign_is_found_from_either_kind_of_original_headers(db, sns, kept):
    address, campaign_id, message_id = subscriber_sent_a_campaign(db)
    notification = json.loads(ses_notification("ses_complaint.json", address, message_id))
    del notification["mail"]["headers" if kept == "commonHeaders" else "commonHeaders"]

    assert sns.post(sns.notification(json.dumps(notification))).status_code == 200

    [event] = bounce_events(db)
    assert event.campaign_id == campaign_id


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("ses_delivery.json", {}),
        ("ses_complaint.json", {"complaint__complaintFeedbackType": "not-spam"}),
        ("ses_bounce_with_dsn.json", {"bounce__bounceType": "Mystery"}),
    ],
)
def test_deliveries_not_spam_reports_and_unknown_bounce_types_are_ignored(db, sns, name, changes):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = sns.post(sns.notification(ses_notification(name, address, **changes)))
    assert response.status_code == 200 and response.get_json() == {"accepted": 0, "ignored": 1}
    assert_nothing_recorded(db, address)


def test_a_report_about_someone_we_do_not_know_stores_nothing(db, sns):
    address, _, _ = subscriber_sent_a_campaign(db)
    stranger = "nobody.here@example.net"
    response = sns.post(sns.notification(ses_notification("ses_bounce_with_dsn.json", stranger)))
    assert response.status_code == 200 and response.get_json() == {"accepted": 1, "ignored": 0}
    assert_nothing_recorded(db, address)
    assert suppression_reason(stranger) is None


def test_a_notification_delivered_twice_is_recorded_once_and_the_certificate_fetched_once(db, sns, amazon):
    address, _, _ = subscriber_sent_a_campaign(db)
    envelope = sns.notification(
        ses_notification("ses_bounce_without_dsn.json", address, bounce__bounceType="Transient")
    )

    assert sns.post(envelope).get_json() == {"accepted": 2, "ignored": 0}
    assert sns.post(envelope).get_json() == {"accepted": 0, "ignored": 0, "repeated": True}
    assert sns.post(sns.notification(ses_notification("ses_delivery.json", address))).status_code == 200

    assert len(bounce_events(db)) == 1
    assert amazon.fetched == [CERT_URL]


def test_a_subscription_confirmation_is_verified_then_confirmed(db, sns, amazon):
    response = sns.post(sns.confirmation(), content_type="application/json")
    assert response.status_code == 200 and response.get_json() == {"confirmed": True}
    assert amazon.fetched == [CERT_URL, SUBSCRIBE_URL]


def test_an_unsubscribe_confirmation_is_verified_and_changes_nothing(db, sns, amazon, impostor_key):
    fields = {"Type": "UnsubscribeConfirmation", "Message": "You have chosen to deactivate subscription."}
    assert sns.post(sns.confirmation(key=impostor_key, **fields)).status_code == 401
    response = sns.post(sns.confirmation(**fields))
    assert response.status_code == 200 and response.get_json() == {"accepted": 0, "ignored": 1}
    assert amazon.fetched == [CERT_URL]


def test_a_subscription_confirmation_is_not_followed_off_amazon_or_unsigned(db, sns, amazon, impostor_key):
    elsewhere = sns.confirmation(SubscribeURL="https://evil.example/?Action=ConfirmSubscription")
    assert sns.post(elsewhere).status_code == 403
    assert sns.post(sns.confirmation(key=impostor_key)).status_code == 401
    assert (
        SUBSCRIBE_URL not in amazon.fetched and "https://evil.example/?Action=ConfirmSubscription" not in amazon.fetched
    )


def test_a_subscription_confirmation_is_retried_when_amazon_cannot_be_reached(db, sns, amazon):
    address, _, _ = subscriber_sent_a_campaign(db)
    assert sns.post(sns.notification(ses_notification("ses_delivery.json", address))).status_code == 200
    amazon.unreachable = True  # the certificate is cached; the SubscribeURL can't be fetched
    response = sns.post(sns.confirmation())
    assert response.status_code == 503 and amazon.fetched == [CERT_URL, SUBSCRIBE_URL]


def test_a_subscription_amazon_refuses_to_confirm_is_answered_without_error(db, sns, amazon):
    del amazon.documents[SUBSCRIBE_URL]
    response = sns.post(sns.confirmation())
    assert response.status_code == 200 and response.get_json() == {"confirmed": False}


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://sns.eu-west-2.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-2.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
        "https://evil.example/sns.eu-west-2.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-2.amazonaws.com@evil.example/SimpleNotificationService-abc.pem",
        "https://user@sns.eu-west-2.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-2.amazonaws.com:8443/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",  # not the topic's region
        "https://sqs.eu-west-2.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-2.amazonaws.com\\@evil.example/x.pem",
    ],
)
def test_a_signing_certificate_off_amazon_sns_is_never_fetched(db, sns, amazon, amazon_key, cert_url):
    # Were the URL fetched, the right certificate would be there and the signature would verify.
    amazon.documents[cert_url] = certificate_pem(amazon_key)
    address, _, _ = subscriber_sent_a_campaign(db)
    envelope = sns.notification(ses_notification("ses_bounce_with_dsn.json", address), SigningCertURL=cert_url)

    response = sns.post(envelope)

    assert response.status_code == 401 and "error" in response.get_json()
    assert amazon.fetched == []
    assert_nothing_recorded(db, address)


def forged(sns, envelope: dict, how: str, impostor_key) -> dict:
    if how == "tampered message":
        return {**envelope, "Message": envelope["Message"].replace("Permanent", "Transient")}
    if how == "tampered subject":
        return {**envelope, "Subject": "Something else"}
    if how == "signed by someone else":
        return sns.notification(envelope["Message"], key=impostor_key)
    if how == "unsigned":
        return {name: value for name, value in envelope.items() if name != "Signature"}
    if how == "signature not base64":
        return {**envelope, "Signature": "not base64!"}
    if how == "unknown signature version":
        return {**envelope, "SignatureVersion": "3"}
    if how == "version swapped":
        return {**envelope, "SignatureVersion": "2"}
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["tampered message", "tampered subject", "signed by someone else", "unsigned", "signature not base64",
     "unknown signature version", "version swapped"],
)  # fmt: skip
def test_a_forged_sns_notification_is_refused(db, sns, impostor_key, how):
    address, _, _ = subscriber_sent_a_campaign(db)
    envelope = sns.notification(ses_notification("ses_bounce_with_dsn.json", address))
    response = sns.post(forged(sns, envelope, how, impostor_key))
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"]
    assert_nothing_recorded(db, address)


def test_a_notification_from_another_topic_is_refused_without_fetching_anything(db, sns, amazon):
    address, _, _ = subscriber_sent_a_campaign(db)
    other = "arn:aws:sns:eu-west-2:210987654321:someone-elses-topic"
    response = sns.post(sns.notification(ses_notification("ses_bounce_with_dsn.json", address), TopicArn=other))
    assert response.status_code == 403
    assert amazon.fetched == []
    assert_nothing_recorded(db, address)


@pytest.mark.parametrize("valid_from", [timedelta(days=-400), timedelta(days=30)])
def test_an_expired_or_future_certificate_is_refused(db, sns, amazon, amazon_key, valid_from):
    amazon.documents[CERT_URL] = certificate_pem(amazon_key, valid_from=datetime.now(UTC) + valid_from, days=365)
    address, _, _ = subscriber_sent_a_campaign(db)
    response = sns.post(sns.notification(ses_notification("ses_bounce_with_dsn.json", address)))
    assert response.status_code == 401
    assert_nothing_recorded(db, address)


def test_when_amazon_cannot_be_reached_sns_is_asked_to_retry_and_the_retry_is_recorded(db, sns, amazon):
    address, _, _ = subscriber_sent_a_campaign(db)
    envelope = sns.notification(ses_notification("ses_bounce_with_dsn.json", address))
    amazon.unreachable = True
    response = sns.post(envelope)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert_nothing_recorded(db, address)

    amazon.unreachable = False
    assert sns.post(envelope).get_json() == {"accepted": 1, "ignored": 0}
    assert_hard_bounced(db, address)


# --- Postmark -------------------------------------------------------------------------------------------------------


@pytest.fixture
def postmark(client, configure):
    configure(POSTMARK_WEBHOOK_USERNAME=POSTMARK_USER, POSTMARK_WEBHOOK_PASSWORD=POSTMARK_PASSWORD)

    def post(document, credentials=(POSTMARK_USER, POSTMARK_PASSWORD), content_type="application/json"):
        headers = {}
        if credentials is not None:
            token = base64.b64encode(":".join(credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = document if isinstance(document, bytes | str) else json.dumps(document)
        return client.post("/webhooks/bounces/postmark", data=data, content_type=content_type, headers=headers)

    return post


def postmark_record(name: str, address: str, **fields) -> dict:
    return {**json.loads(fixture(name).replace("john@example.com", address)), **fields}


def test_a_postmark_hard_bounce_suppresses_and_unsubscribes(db, postmark):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = postmark(postmark_record("postmark_bounce.json", address))
    assert response.status_code == 200 and response.get_json() == {"accepted": 1, "ignored": 0}
    [event] = bounce_events(db)
    assert (event.kind, event.source, event.status) == (BounceKind.HARD, BounceSource.POSTMARK, "5.1.1")
    assert event.diagnostic == "smtp;550 5.1.1 The email account that you tried to reach does not exist: <address>"
    assert_hard_bounced(db, address)


@pytest.mark.parametrize("bounce_type", ["SoftBounce", "Transient", "DnsError"])
def test_a_postmark_soft_bounce_adds_to_the_score(db, postmark, bounce_type):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = postmark(postmark_record("postmark_bounce.json", address, Type=bounce_type, Details="mailbox full"))
    assert response.status_code == 200
    [event] = bounce_events(db)
    assert (event.kind, event.decision, event.diagnostic) == (BounceKind.SOFT, BounceDecision.SCORED, "mailbox full")
    assert subscriptions(db, address) == CONFIRMED


def test_a_postmark_spam_complaint_unsubscribes_and_suppresses(db, postmark):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = postmark(postmark_record("postmark_spam_complaint.json", address))
    assert response.status_code == 200 and response.get_json() == {"accepted": 1, "ignored": 0}
    [event] = bounce_events(db)
    assert (event.kind, event.source) == (BounceKind.COMPLAINT, BounceSource.POSTMARK)
    assert_complained(db, address)


@pytest.mark.parametrize(
    ("record_type", "bounce_type"),
    [("Bounce", "AutoResponder"), ("Bounce", "Subscribe"), ("Bounce", "ChallengeVerification"), ("Delivery", None),
     ("SubscriptionChange", None), ("Bounce", None)],
)  # fmt: skip
def test_postmark_records_that_are_not_failures_are_ignored(db, postmark, record_type, bounce_type):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = postmark(postmark_record("postmark_bounce.json", address, RecordType=record_type, Type=bounce_type))
    assert response.status_code == 200 and response.get_json() == {"accepted": 0, "ignored": 1}
    assert_nothing_recorded(db, address)


@pytest.mark.parametrize(
    "credentials",
    [None, (POSTMARK_USER, "wrong-password-wrong-password"), ("someone-else", POSTMARK_PASSWORD),
     (POSTMARK_USER, POSTMARK_PASSWORD + "x"), (POSTMARK_USER, ""), ("", "")],
)  # fmt: skip
def test_postmark_without_the_right_credentials_is_refused(db, postmark, credentials):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = postmark(postmark_record("postmark_bounce.json", address), credentials=credentials)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert_nothing_recorded(db, address)


def test_postmark_records_nested_too_deeply_are_refused(db, postmark):
    address, _, _ = subscriber_sent_a_campaign(db)
    nested = {}
    for _ in range(40):
        nested = {"a": nested}
    response = postmark(postmark_record("postmark_bounce.json", address, Metadata=nested))
    assert response.status_code == 400 and "nested" in response.get_json()["error"]
    assert_nothing_recorded(db, address)


def test_postmark_with_a_bearer_token_instead_is_refused(db, postmark, client):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = client.post("/webhooks/bounces/postmark", json=postmark_record("postmark_bounce.json", address),
                           headers={"Authorization": f"Bearer {POSTMARK_PASSWORD}"})  # fmt: skip
    assert response.status_code == 401
    assert_nothing_recorded(db, address)


# --- Mailgun --------------------------------------------------------------------------------------------------------


def mailgun_signed(document: dict, key: str = MAILGUN_KEY, timestamp: int | None = None, token: str | None = None):
    """The document with a fresh Mailgun signature: HMAC-SHA256(key, timestamp + token), hex."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {**document, "signature": {"timestamp": timestamp, "token": token, "signature": digest}}


def mailgun_event(name: str, address: str, message_id: str | None = None, **fields) -> dict:
    document = json.loads(fixture(name).replace("alice@example.com", address))
    if message_id:
        document["event-data"]["message"]["headers"]["message-id"] = message_id.strip("<>")
    document["event-data"].update(fields)
    return document


@pytest.fixture
def mailgun(client, configure):
    configure(MAILGUN_WEBHOOK_SIGNING_KEY=MAILGUN_KEY)

    def post(document, content_type="application/json"):
        data = document if isinstance(document, bytes | str) else json.dumps(document)
        return client.post("/webhooks/bounces/mailgun", data=data, content_type=content_type)

    return post


def test_a_mailgun_permanent_failure_suppresses_with_the_campaign_named(db, mailgun):
    address, campaign_id, message_id = subscriber_sent_a_campaign(db)
    response = mailgun(mailgun_signed(mailgun_event("mailgun_failed_permanent.json", address, message_id)))
    assert response.status_code == 200 and response.get_json() == {"accepted": 1, "ignored": 0}
    [event] = bounce_events(db)
    assert (event.kind, event.source, event.status) == (BounceKind.HARD, BounceSource.MAILGUN, "5.1.1")
    assert event.campaign_id == campaign_id
    assert event.diagnostic == "550 5.1.1 The email account that you tried to reach does not exist: <address>"
    assert_hard_bounced(db, address)


def test_a_mailgun_temporary_failure_adds_to_the_score(db, mailgun):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = mailgun(mailgun_signed(mailgun_event("mailgun_failed_temporary.json", address)))
    assert response.status_code == 200
    [event] = bounce_events(db)
    assert (event.kind, event.decision, event.status) == (BounceKind.SOFT, BounceDecision.SCORED, "4.2.2")
    assert event.diagnostic == "452 4.2.2 The email account that you tried to reach is over quota."
    assert event.campaign_id is None  # the example's Message-ID is not one of ours
    assert subscriptions(db, address) == CONFIRMED


def test_a_mailgun_complaint_unsubscribes_and_suppresses(db, mailgun):
    address, campaign_id, message_id = subscriber_sent_a_campaign(db)
    response = mailgun(mailgun_signed(mailgun_event("mailgun_complained.json", address, message_id)))
    assert response.status_code == 200
    [event] = bounce_events(db)
    assert (event.kind, event.campaign_id) == (BounceKind.COMPLAINT, campaign_id)
    assert_complained(db, address)


@pytest.mark.parametrize("event", ["delivered", "opened", "accepted", "unsubscribed"])
def test_other_mailgun_events_are_ignored(db, mailgun, event):
    address, _, _ = subscriber_sent_a_campaign(db)
    response = mailgun(mailgun_signed(mailgun_event("mailgun_failed_permanent.json", address, event=event)))
    assert response.status_code == 200 and response.get_json() == {"accepted": 0, "ignored": 1}
    assert_nothing_recorded(db, address)


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("tampered timestamp", 401),
        ("tampered token", 401),
        ("wrong key", 401),
        ("signature removed", 401),
        ("digest not hex", 401),
        ("stale timestamp", 403),
        ("timestamp from the future", 403),
    ],
)
def test_a_forged_or_stale_mailgun_report_is_refused(db, mailgun, how, status):
    address, _, _ = subscriber_sent_a_campaign(db)
    event = mailgun_event("mailgun_failed_permanent.json", address)
    now = int(time.time())
    # Mailgun signs only timestamp + token, not the event: a changed event can't be told from the original, which is
    # why each token is accepted only once (test_a_replayed_mailgun_token_is_refused).
    if how == "tampered timestamp":
        document = mailgun_signed(event, timestamp=now)
        document["signature"]["timestamp"] = str(now - 1)
    elif how == "tampered token":
        document = mailgun_signed(event)
        document["signature"]["token"] += "0"
    elif how == "wrong key":
        document = mailgun_signed(event, key="key-someone-else")
    elif how == "signature removed":
        document = {name: value for name, value in mailgun_signed(event).items() if name != "signature"}
    elif how == "digest not hex":
        document = mailgun_signed(event)
        document["signature"]["signature"] = "zz" * 32
    elif how == "stale timestamp":
        document = mailgun_signed(event, timestamp=now - 301)
    else:
        document = mailgun_signed(event, timestamp=now + 300)
    response = mailgun(document)
    assert response.status_code == status, response.get_data(as_text=True)
    assert_nothing_recorded(db, address)


def test_a_replayed_mailgun_token_is_refused(db, mailgun):
    address, _, _ = subscriber_sent_a_campaign(db)
    document = mailgun_signed(mailgun_event("mailgun_failed_temporary.json", address))
    assert mailgun(document).status_code == 200
    replay = mailgun(document)
    assert replay.status_code == 403 and "already" in replay.get_json()["error"]
    assert len(bounce_events(db)) == 1


def test_a_report_that_could_not_be_recorded_is_accepted_when_mailgun_retries(db, mailgun, monkeypatch):
    address, _, _ = subscriber_sent_a_campaign(db)
    document = mailgun_signed(mailgun_event("mailgun_failed_permanent.json", address))
    record = webhook_routes.services.record

    def database_gone(findings, source):
        raise RuntimeError("the database went away")  # a fault of ours, not of the input: Mailgun retries on 5xx

    monkeypatch.setattr(webhook_routes.services, "record", database_gone)
    assert mailgun(document).status_code == 500
    monkeypatch.setattr(webhook_routes.services, "record", record)
    assert mailgun(document).status_code == 200
    assert_hard_bounced(db, address)


# --- SendGrid -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_key_text(private_key) -> str:
    """The public key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


class SendGrid:
    """SendGrid's signed Event Webhook as the tests send it: .sign(body, timestamp) and .post(body, ...)."""

    def __init__(self, client, key):
        self.client, self.key = client, key

    def sign(self, body: bytes, timestamp: int, key=None) -> str:
        der = (key or self.key).sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(der).decode()

    def post(self, body: bytes, timestamp: int | None = None, signature: str | None = None, key=None,
             headers: dict | None = None, content_type: str = "application/json"):  # fmt: skip
        """Post `body`, signed now (or at `timestamp`) unless a signature or the headers are given."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        if headers is None:
            headers = {
                "X-Twilio-Email-Event-Webhook-Signature": signature or self.sign(body, timestamp, key),
                "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            }
        return self.client.post("/webhooks/bounces/sendgrid", data=body, content_type=content_type, headers=headers)


@pytest.fixture
def sendgrid(client, configure, sendgrid_key):
    configure(SENDGRID_WEBHOOK_PUBLIC_KEY=public_key_text(sendgrid_key))
    return SendGrid(client, sendgrid_key)


def sendgrid_batch(hard: str, blocked: str, complained: str, message_id: str | None = None) -> bytes:
    """The documented batch, with each failure about one of our addresses (the rest about the example one)."""
    events = json.loads(fixture("sendgrid_events.json"))
    by_kind = {("bounce", "bounce"): hard, ("bounce", "blocked"): blocked, ("spamreport", None): complained}
    for event in events:
        address = by_kind.get((event["event"], event.get("type")))
        if address:
            event["email"] = address
            if "reason" in event:
                event["reason"] = event["reason"].replace("example@test.com", address)
        if message_id:
            event["smtp-id"] = message_id
    return json.dumps(events, indent=2).encode()


def test_a_sendgrid_batch_records_bounces_blocks_and_spam_reports(db, sendgrid):
    hard, campaign_id, message_id = subscriber_sent_a_campaign(db)
    blocked, _, _ = subscriber_sent_a_campaign(db)
    complained, _, _ = subscriber_sent_a_campaign(db)

    response = sendgrid.post(sendgrid_batch(hard, blocked, complained, message_id))

    assert response.status_code == 200 and response.get_json() == {"accepted": 3, "ignored": 4}
    events = {event.kind: event for event in bounce_events(db)}
    hard_event = events[BounceKind.HARD]
    assert (hard_event.status, hard_event.diagnostic) == ("5.0.0", "500 unknown recipient <address>")
    assert (hard_event.source, hard_event.campaign_id) == (BounceSource.SENDGRID, campaign_id)
    assert (events[BounceKind.SOFT].status, events[BounceKind.SOFT].decision) == ("4.7.1", BounceDecision.SCORED)
    assert events[BounceKind.COMPLAINT].status == ""
    assert_hard_bounced(db, hard)
    assert subscriptions(db, blocked) == CONFIRMED
    assert_complained(db, complained)


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("tampered body", 401),
        ("signed by someone else", 401),
        ("signature of another timestamp", 401),
        ("no headers", 401),
        ("signature not base64", 401),
        ("stale timestamp", 403),
        ("timestamp from the future", 403),
    ],
)
def test_a_forged_or_stale_sendgrid_batch_is_refused(db, sendgrid, how, status):
    address, _, _ = subscriber_sent_a_campaign(db)
    body = sendgrid_batch(address, address, address)
    now = int(time.time())
    if how == "tampered body":
        response = sendgrid.post(body.replace(b'"spamreport"', b'"delivered"'), signature=sendgrid.sign(body, now))
    elif how == "signed by someone else":
        response = sendgrid.post(body, key=ec.generate_private_key(ec.SECP256R1()))
    elif how == "signature of another timestamp":
        response = sendgrid.post(body, timestamp=now, signature=sendgrid.sign(body, now - 1))
    elif how == "no headers":
        response = sendgrid.post(body, headers={})
    elif how == "signature not base64":
        response = sendgrid.post(body, signature="%%%not-base64%%%")
    elif how == "stale timestamp":
        response = sendgrid.post(body, timestamp=now - 301)
    else:
        response = sendgrid.post(body, timestamp=now + 300)
    assert response.status_code == status, response.get_data(as_text=True)
    assert_nothing_recorded(db, address)


def test_a_sendgrid_batch_larger_than_a_form_is_accepted(db, sendgrid, app):
    address, _, _ = subscriber_sent_a_campaign(db)
    events = json.loads(sendgrid_batch(address, address, address))
    events += [{**events[0], "sg_event_id": f"padding-{index}"} for index in range(1000)]  # "processed" events
    body = json.dumps(events).encode()
    assert app.config["MAX_CONTENT_LENGTH"] < len(body) < app.config["BOUNCE_WEBHOOK_MAX_BYTES"]
    response = sendgrid.post(body)
    assert response.status_code == 200 and response.get_json() == {"accepted": 3, "ignored": 1004}


def test_a_replayed_sendgrid_batch_is_refused(db, sendgrid):
    address, _, _ = subscriber_sent_a_campaign(db)
    [other] = add_confirmed(1)
    body = sendgrid_batch(address, other, other)
    now = int(time.time())
    signature = sendgrid.sign(body, now)
    assert sendgrid.post(body, timestamp=now, signature=signature).status_code == 200
    replay = sendgrid.post(body, timestamp=now, signature=signature)
    assert replay.status_code == 403 and "already" in replay.get_json()["error"]
    # ECDSA signatures are malleable: (r, n - s) verifies too. The replay is still the same signed batch.
    r, s = decode_dss_signature(base64.b64decode(signature))
    twin = base64.b64encode(encode_dss_signature(r, SECP256R1_ORDER - s)).decode()
    assert twin != signature
    assert sendgrid.post(body, timestamp=now, signature=twin).status_code == 403
    assert len(bounce_events(db)) == 3


# --- every provider -------------------------------------------------------------------------------------------------

PROVIDERS = ["ses", "postmark", "mailgun", "sendgrid"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_provider_that_is_not_configured_is_not_found(db, client, provider):
    response = client.post(f"/webhooks/bounces/{provider}", json={"anything": 1})
    assert response.status_code == 404 and response.get_json()["error"]
    assert client.get(f"/webhooks/bounces/{provider}").status_code == 405


@pytest.fixture
def send(db, sns, postmark, mailgun, sendgrid):
    """send(provider, body bytes, content_type): a request authenticated as well as the body allows (SNS and Mailgun
    sign inside the body, so a body that isn't their JSON goes unsigned)."""

    def post(provider: str, body: bytes, content_type: str = "application/json"):
        if provider == "ses":
            return sns.post(body, content_type=content_type)
        if provider == "postmark":
            return postmark(body, content_type=content_type)
        if provider == "mailgun":
            return mailgun(body, content_type=content_type)
        return sendgrid.post(body, content_type=content_type)

    return post


HOSTILE_BODIES = [
    b"", b"{", b"null", b"[]", b"{}", b"[{}]", b'"text"', b"\x00", b'{"a": "\\u0000"}', b'{"a": "\\ud800"}',
    b'{"Type": "Notification", "TopicArn": 1}', b"\xff\xfe{}", b"\xef\xbb\xbf{}", b"NaN", b'{"a": Infinity}',
    b"1e999999", b"9" * 5000, b"[" * 5000 + b"]" * 5000, b'{"a":' * 40 + b"1" + b"}" * 40,
    b'{"event-data": [], "signature": "x"}', b'{"RecordType": "Bounce", "Type": "HardBounce", "Email": 5}',
]  # fmt: skip


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hostile_bodies_are_refused_without_a_server_error(db, send, provider):
    address, _, _ = subscriber_sent_a_campaign(db)
    for body in HOSTILE_BODIES:
        response = send(provider, body)
        assert response.status_code in (200, 400, 401, 403), (provider, body[:60], response.get_data(as_text=True))
        assert response.is_json
    assert send(provider, b"{}", content_type="application/x-www-form-urlencoded").status_code in (400, 415)
    assert send(provider, b"<xml/>", content_type="application/xml").status_code == 415
    assert send(provider, b"[" + b" " * (1024 * 1024) + b"]").status_code == 413
    assert_nothing_recorded(db, address)


HOSTILE_VALUES = [
    "\x00", "a\x00b@example.org", "\ud800", "x\udfffy@example.org", "", " ", "x" * 5000, "99999999999999999999",
    10**20, 2**64, -(2**63), 1.5e308, -1, 0, True, None, [], {}, [{}], [[]], {"a": {}}, "5.1.1 <a@b.example>",
    "<script>alert(1)</script>", "Permanent", "Transient", "HardBounce", "SpamComplaint", "Bounce", "Complaint",
    "failed", "complained", "permanent", "bounce", "blocked", "spamreport", "suppress-complaint",
]  # fmt: skip
HOSTILE_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def paths(value, prefix: tuple = ()):
    """Every place in a JSON document (as tuples of keys and indexes), the document itself first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(document, path: tuple, value):
    """A copy of the document with the value at `path` replaced."""
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


class HostileTarget:
    """One provider's documented report about our subscriber, authenticated however it is changed:
    .places lists every place in it, .send(path, value) posts it with that place's value replaced."""

    def __init__(self, provider: str, document, post):
        self.provider, self.document, self.post = provider, document, post
        self.places = [path for path in paths(document) if path and path not in (("Signature",), ("signature",))]

    def send(self, path: tuple, value):
        changed = replaced(self.document, path, value)
        if self.provider == "mailgun" and path[0] != "signature":
            changed = mailgun_signed(changed)  # a new token each time, not a replay
        response = self.post(changed)
        assert response.status_code < 500, (path, value, response.get_data(as_text=True)[:300])
        assert response.is_json
        return response


@pytest.fixture(params=PROVIDERS)
def hostile_target(request, db, configure, sns, postmark, mailgun, sendgrid, amazon_key):
    configure(BOUNCE_WEBHOOK_RATE_LIMIT="100000 per minute")
    provider = request.param
    address, _, message_id = subscriber_sent_a_campaign(db)
    if provider == "ses":
        document = sns.notification("")
        document["Message"] = json.loads(ses_notification("ses_bounce_with_dsn.json", address, message_id))

        def post(changed):
            message = changed["Message"]
            changed = {**changed, "Message": json.dumps(message) if isinstance(message, dict) else message}
            if changed["MessageId"] == document["MessageId"]:  # a new message each time, not a repeat of one
                changed["MessageId"] = str(uuid.uuid4())
            return sns.post(sign_sns(changed, amazon_key))

    elif provider == "postmark":
        document, post = postmark_record("postmark_bounce.json", address), postmark
    elif provider == "mailgun":
        document, post = mailgun_signed(mailgun_event("mailgun_failed_permanent.json", address, message_id)), mailgun
    else:
        document = json.loads(sendgrid_batch(address, address, address, message_id))

        def post(changed):
            return sendgrid.post(json.dumps(changed).encode())

    yield HostileTarget(provider, document, post)
    assert all("@" not in event.diagnostic for event in bounce_events(db))


# Values of another JSON type than the one expected, and values nothing may store.
SHAPE_CHANGERS = [None, [], {}, 10**20, True, 1.5, "\x00", "\ud800"]


def test_every_field_of_the_wrong_type_or_unstorable_never_gets_a_server_error(hostile_target):
    for path in hostile_target.places:
        for value in SHAPE_CHANGERS:
            hostile_target.send(path, value)


def test_authenticated_reports_with_hostile_values_anywhere_never_get_a_server_error(hostile_target):
    @HOSTILE_SETTINGS
    @given(data=st.data())
    def attack(data):
        path = data.draw(st.sampled_from(hostile_target.places))
        hostile_target.send(path, data.draw(st.sampled_from(HOSTILE_VALUES)))

    attack()


def test_webhooks_are_rate_limited_per_client_with_a_json_answer(db, postmark, configure):
    configure(BOUNCE_WEBHOOK_RATE_LIMIT="2 per minute")
    answers = [postmark(b"{}").status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    assert postmark(b"{}").get_json()["error"]


@pytest.mark.parametrize(
    ("settings_changed", "problem"),
    [
        ({"SES_SNS_TOPIC_ARNS": ["uscmail-bounces"]}, "SES_SNS_TOPIC_ARNS must list SNS topic ARNs"),
        ({"POSTMARK_WEBHOOK_USERNAME": "postmark"}, "must be set together"),
        ({"POSTMARK_WEBHOOK_USERNAME": "a:b", "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD}, "colon"),
        ({"POSTMARK_WEBHOOK_USERNAME": "postmark", "POSTMARK_WEBHOOK_PASSWORD": "short"}, "at least 16"),
        ({"SENDGRID_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5"}, "SENDGRID_WEBHOOK_PUBLIC_KEY"),
        ({"SENDGRID_WEBHOOK_PUBLIC_KEY": "RSA"}, "SENDGRID_WEBHOOK_PUBLIC_KEY"),
    ],
)
def test_unusable_webhook_settings_stop_the_app_with_the_reason(app, amazon_key, settings_changed, problem):
    if settings_changed.get("SENDGRID_WEBHOOK_PUBLIC_KEY") == "RSA":  # a real key, but not SendGrid's kind
        settings_changed = {"SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_text(amazon_key)}
    with pytest.raises(RuntimeError, match=problem):
        webhook_routes.check_settings({**app.config, **settings_changed})


def test_usable_webhook_settings_start(app, sendgrid_key):
    public_key = sendgrid_key.public_key()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for key in (public_key_text(sendgrid_key), pem.decode()):  # as SendGrid shows it, or PEM armoured
        webhook_routes.check_settings(
            {**app.config, "SES_SNS_TOPIC_ARNS": [TOPIC, "arn:aws-cn:sns:cn-north-1:123456789012:b.fifo"],
             "POSTMARK_WEBHOOK_USERNAME": POSTMARK_USER, "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD,
             "SENDGRID_WEBHOOK_PUBLIC_KEY": key}
        )  # fmt: skip
