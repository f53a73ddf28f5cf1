"""Configuration classes, read from the environment.

Every setting that differs between machines comes from an environment variable; the README documents each one.
"""

import os
from email.utils import parseaddr
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def env_bool(name: str, default: bool = False) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" mean yes)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    """Read a comma-separated environment variable into a list, ignoring blanks."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 - refused by ProductionConfig
# A valid Fernet key (base64 of b"dev-only-insecure-totp-key-00000"), so `make run` and the tests work unconfigured.
DEV_TOTP_ENCRYPTION_KEY = "ZGV2LW9ubHktaW5zZWN1cmUtdG90cC1rZXktMDAwMDA="  # noqa: S105 - refused by ProductionConfig


def is_fernet_key(key: str) -> bool:
    """True if `key` is a Fernet key: url-safe base64 of 32 bytes."""
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


class Config:
    """Settings shared by every environment; development defaults that need no server."""

    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    # Old signing keys, newest first, still accepted for tokens already sent out.
    SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
    # Fernet key that encrypts organisers' TOTP secrets at rest (apart from SECRET_KEY, so it need not reach the
    # workers); old keys, newest first, still decrypt until `flask organisers rotate-totp-key` has re-encrypted all.
    TOTP_ENCRYPTION_KEY = os.environ.get("TOTP_ENCRYPTION_KEY", DEV_TOTP_ENCRYPTION_KEY)
    TOTP_ENCRYPTION_KEY_FALLBACKS = env_list("TOTP_ENCRYPTION_KEY_FALLBACKS")
    # Key for the suppression list's HMACs; it must never change once addresses are suppressed.
    SUPPRESSION_KEY = os.environ.get("SUPPRESSION_KEY") or SECRET_KEY

    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'uscmail.sqlite'}"
    REDIS_URL = os.environ.get("REDIS_URL", "")

    MAIL_SERVER = os.environ.get("MAIL_SERVER", "127.0.0.1")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "1025"))
    MAIL_USE_TLS = env_bool("MAIL_USE_TLS")
    MAIL_USE_SSL = env_bool("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "USC-UK <news@uscmail.test>")
    # Further addresses campaigns may be sent from; MAIL_DEFAULT_SENDER's is always allowed.
    MAIL_SENDERS = env_list("MAIL_SENDERS")
    MAIL_TIMEOUT = float(os.environ.get("MAIL_TIMEOUT", "30"))
    # DKIM signing of every outgoing mail (uscmail/mail/dkim.py; `flask --app uscmail mail dkim-key` makes a key and
    # prints its DNS record). Off unless the domain, the selector and a key (PEM text, or a file) are all set.
    DKIM_DOMAIN = os.environ.get("DKIM_DOMAIN", "")
    DKIM_SELECTOR = os.environ.get("DKIM_SELECTOR", "")
    DKIM_PRIVATE_KEY = os.environ.get("DKIM_PRIVATE_KEY", "")
    DKIM_PRIVATE_KEY_FILE = os.environ.get("DKIM_PRIVATE_KEY_FILE", "")
    # Bounces and complaints (uscmail/bounces). Every message's envelope sender is BOUNCE_ADDRESS with a tag naming
    # its delivery after a "+" (bounces+tag@domain): the domain's MX must hand such mail to `flask bounces serve` or
    # to the mailbox below. By default, bounces@ the default sender's domain.
    BOUNCE_ADDRESS = os.environ.get("BOUNCE_ADDRESS") or "bounces@" + (
        parseaddr(MAIL_DEFAULT_SENDER)[1].rpartition("@")[2] or "uscmail.test"
    )
    # Mailman's soft-bounce policy: a score that suppresses at THRESHOLD, counting at most one bounce a day, and
    # starting again when the last bounce is older than WINDOW_DAYS.
    BOUNCE_SCORE_THRESHOLD = float(os.environ.get("BOUNCE_SCORE_THRESHOLD", "5.0"))
    BOUNCE_SCORE_WINDOW_DAYS = int(os.environ.get("BOUNCE_SCORE_WINDOW_DAYS", "7"))
    # Mail that could not be read as a bounce is kept (its first SET_ASIDE_BYTES) for SET_ASIDE_DAYS.
    BOUNCE_SET_ASIDE_BYTES = int(os.environ.get("BOUNCE_SET_ASIDE_BYTES", str(64 * 1024)))
    BOUNCE_SET_ASIDE_DAYS = int(os.environ.get("BOUNCE_SET_ASIDE_DAYS", "30"))
    # `flask bounces serve`: where the receiver listens, and the largest message it takes.
    BOUNCE_RECEIVER_HOST = os.environ.get("BOUNCE_RECEIVER_HOST", "127.0.0.1")
    BOUNCE_RECEIVER_PORT = int(os.environ.get("BOUNCE_RECEIVER_PORT", "2526"))
    BOUNCE_RECEIVER_MAX_BYTES = int(os.environ.get("BOUNCE_RECEIVER_MAX_BYTES", str(4 * 1024 * 1024)))
    # STARTTLS for MTAs that deliver bounces (PEM files); without them the receiver speaks plain SMTP.
    BOUNCE_RECEIVER_TLS_CERT = os.environ.get("BOUNCE_RECEIVER_TLS_CERT", "")
    BOUNCE_RECEIVER_TLS_KEY = os.environ.get("BOUNCE_RECEIVER_TLS_KEY", "")
    # Provider webhooks for bounces and complaints (POST /webhooks/bounces/<provider>); a provider whose settings are
    # empty answers 404. Amazon SES through SNS: the ARNs of the SNS topics whose notifications are accepted.
    SES_SNS_TOPIC_ARNS = env_list("SES_SNS_TOPIC_ARNS")
    # Postmark: the HTTP Basic username and password put in its webhook URL (https://user:password@host/...).
    POSTMARK_WEBHOOK_USERNAME = os.environ.get("POSTMARK_WEBHOOK_USERNAME", "")
    POSTMARK_WEBHOOK_PASSWORD = os.environ.get("POSTMARK_WEBHOOK_PASSWORD", "")
    # Mailgun: the HTTP webhook signing key.
    MAILGUN_WEBHOOK_SIGNING_KEY = os.environ.get("MAILGUN_WEBHOOK_SIGNING_KEY", "")
    # SendGrid's signed Event Webhook: its verification key as SendGrid shows it (base64 DER public key).
    SENDGRID_WEBHOOK_PUBLIC_KEY = os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY", "")
    # Signed Mailgun and SendGrid reports older than this many seconds are refused (replays within it, too).
    BOUNCE_WEBHOOK_MAX_AGE_SECONDS = int(os.environ.get("BOUNCE_WEBHOOK_MAX_AGE_SECONDS", "300"))
    # The largest webhook body accepted (SendGrid batches events), and the requests each client may make.
    BOUNCE_WEBHOOK_MAX_BYTES = int(os.environ.get("BOUNCE_WEBHOOK_MAX_BYTES", str(1024 * 1024)))
    BOUNCE_WEBHOOK_RATE_LIMIT = os.environ.get("BOUNCE_WEBHOOK_RATE_LIMIT", "600 per minute")
    # The sender health page (/organisers/deliverability). SPF_INCLUDE: the include your relay documents (such as
    # _spf.relay.example), looked for in our SPF records when set. Each DNS lookup gives up after HEALTH_DNS_TIMEOUT
    # seconds. Rates are in percent of a campaign's messages: below AIM is healthy, LIMIT must never be reached.
    # Complaints: Gmail's bulk-sender limits. Bounces: Gmail sets none; 2% and 5% are what relays commonly act on.
    SPF_INCLUDE = os.environ.get("SPF_INCLUDE", "")
    HEALTH_DNS_TIMEOUT = float(os.environ.get("HEALTH_DNS_TIMEOUT", "2"))
    HEALTH_CAMPAIGNS = int(os.environ.get("HEALTH_CAMPAIGNS", "20"))
    HEALTH_COMPLAINT_RATE_AIM = float(os.environ.get("HEALTH_COMPLAINT_RATE_AIM", "0.1"))
    HEALTH_COMPLAINT_RATE_LIMIT = float(os.environ.get("HEALTH_COMPLAINT_RATE_LIMIT", "0.3"))
    HEALTH_BOUNCE_RATE_AIM = float(os.environ.get("HEALTH_BOUNCE_RATE_AIM", "2"))
    HEALTH_BOUNCE_RATE_LIMIT = float(os.environ.get("HEALTH_BOUNCE_RATE_LIMIT", "5"))
    # The page's SpamAssassin check of a campaign: the program, how long a run may take, and how many runs each
    # organiser may start (a run costs a few seconds of the web server's CPU).
    SPAMASSASSIN_COMMAND = os.environ.get("SPAMASSASSIN_COMMAND", "spamassassin")
    SPAMASSASSIN_TIMEOUT = float(os.environ.get("SPAMASSASSIN_TIMEOUT", "20"))
    SPAMASSASSIN_CHECKS_PER_ORGANISER = os.environ.get("SPAMASSASSIN_CHECKS_PER_ORGANISER", "20 per hour")
    # The mailbox bounces are delivered to, polled by beat every POLL_SECONDS (uscmail/bounces/mailbox.py); off when
    # unset. imaps://user@host:993/INBOX or pop3s://user@host:995 talk TLS from the start; imap:// and pop3:// use
    # STARTTLS (a server without it is refused); "?tls=off" talks plain, to a loopback address only. Certificates are
    # verified. The password is BOUNCE_MAILBOX_PASSWORD if set, else the URL's (percent-encoded).
    BOUNCE_MAILBOX_URL = os.environ.get("BOUNCE_MAILBOX_URL", "")
    BOUNCE_MAILBOX_PASSWORD = os.environ.get("BOUNCE_MAILBOX_PASSWORD", "")
    # IMAP only: a folder each message taken is moved to (made if missing), instead of being deleted.
    BOUNCE_MAILBOX_DONE_FOLDER = os.environ.get("BOUNCE_MAILBOX_DONE_FOLDER", "")
    BOUNCE_MAILBOX_POLL_SECONDS = float(os.environ.get("BOUNCE_MAILBOX_POLL_SECONDS", "60"))
    # One poll takes at most MAX_MESSAGES (the rest wait for the next), reads at most MAX_BYTES of each, and gives up
    # on a connection or command after TIMEOUT seconds.
    BOUNCE_MAILBOX_MAX_MESSAGES = int(os.environ.get("BOUNCE_MAILBOX_MAX_MESSAGES", "200"))
    BOUNCE_MAILBOX_MAX_BYTES = int(os.environ.get("BOUNCE_MAILBOX_MAX_BYTES", str(4 * 1024 * 1024)))
    BOUNCE_MAILBOX_TIMEOUT = float(os.environ.get("BOUNCE_MAILBOX_TIMEOUT", "30"))
    BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    # Hosts campaign mail may show images from (https only). None by default: a remote image tells its host who
    # opened the mail, and when.
    MAIL_IMAGE_HOSTS = env_list("MAIL_IMAGE_HOSTS")
    # The media library (uscmail/media): uploads of at most MAX_BYTES and MAX_PIXELS (a decompression bomb is a small
    # file of huge dimensions), re-encoded and kept in MEDIA_DIR, or in an S3-compatible bucket when MEDIA_S3_BUCKET
    # is set (boto3 must then be installed; credentials come from boto3's usual environment variables or profile).
    MEDIA_MAX_BYTES = int(os.environ.get("MEDIA_MAX_BYTES", str(5 * 1024 * 1024)))
    # The largest CSV the import page takes (every other form is held to MAX_CONTENT_LENGTH).
    IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", str(200 * 1024 * 1024)))
    MEDIA_MAX_PIXELS = int(os.environ.get("MEDIA_MAX_PIXELS", "40000000"))
    MEDIA_DIR = os.environ.get("MEDIA_DIR", str(INSTANCE_DIR / "media"))
    MEDIA_S3_BUCKET = os.environ.get("MEDIA_S3_BUCKET", "")
    MEDIA_S3_PREFIX = os.environ.get("MEDIA_S3_PREFIX", "media/")
    MEDIA_S3_ENDPOINT_URL = os.environ.get("MEDIA_S3_ENDPOINT_URL", "")
    MEDIA_S3_REGION = os.environ.get("MEDIA_S3_REGION", "")
    # Where `flask --app uscmail backup create` (`make backup`) writes its backups: a private directory (0700).
    BACKUP_DIR = os.environ.get("BACKUP_DIR", str(INSTANCE_DIR / "backups"))

    CONFIRM_TOKEN_MAX_AGE = int(os.environ.get("CONFIRM_TOKEN_MAX_AGE", str(7 * 24 * 3600)))
    # A new organiser's one-time set-up link (password and authenticator app) works for this long.
    ENROLMENT_LINK_MAX_AGE = int(os.environ.get("ENROLMENT_LINK_MAX_AGE", str(72 * 3600)))
    UNCONFIRMED_RETENTION_DAYS = int(os.environ.get("UNCONFIRMED_RETENTION_DAYS", "14"))
    # Import reports list addresses: deleted after this many days. A job running this long has lost its worker.
    IMPORT_REPORT_RETENTION_DAYS = int(os.environ.get("IMPORT_REPORT_RETENTION_DAYS", "7"))
    IMPORT_STUCK_HOURS = int(os.environ.get("IMPORT_STUCK_HOURS", "6"))
    # A dry run's upload is kept this long, so "Import for real" needs no second upload; then it is deleted.
    IMPORT_DRY_RUN_KEEP_HOURS = int(os.environ.get("IMPORT_DRY_RUN_KEEP_HOURS", "24"))
    # Records of people unsubscribed from everything are erased after this many days (0 keeps them).
    UNSUBSCRIBED_RETENTION_DAYS = int(os.environ.get("UNSUBSCRIBED_RETENTION_DAYS", "730"))
    SIGNUP_MIN_FILL_SECONDS = float(os.environ.get("SIGNUP_MIN_FILL_SECONDS", "2"))
    # A form sent back faster than that gets a "confirm you are a person" page; its button works this long, once.
    SIGNUP_CHECK_MAX_AGE = int(os.environ.get("SIGNUP_CHECK_MAX_AGE", str(30 * 60)))
    SIGNUP_RATE_LIMIT = os.environ.get("SIGNUP_RATE_LIMIT", "5 per hour")
    # Signups are applied, and their confirmation mails sent, by one task for all that arrive within this many
    # seconds of the first (subscriptions/backlog.py): the mail leaves at most this much later, for much less work.
    SIGNUP_BATCH_SECONDS = float(os.environ.get("SIGNUP_BATCH_SECONDS", "1"))
    CONFIRMATION_MAILS_PER_ADDRESS = os.environ.get("CONFIRMATION_MAILS_PER_ADDRESS", "3 per day")
    EMAIL_CHECK_DELIVERABILITY = env_bool("EMAIL_CHECK_DELIVERABILITY")
    CORS_ORIGINS = env_list("CORS_ORIGINS")
    API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "300 per minute")
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "20 per 15 minutes")
    LOGIN_FAILURES_PER_ACCOUNT = os.environ.get("LOGIN_FAILURES_PER_ACCOUNT", "5 per 15 minutes")
    ORGANISER_SESSION_IDLE_SECONDS = int(os.environ.get("ORGANISER_SESSION_IDLE_SECONDS", str(2 * 3600)))
    ORGANISER_SESSION_MAX_SECONDS = int(os.environ.get("ORGANISER_SESSION_MAX_SECONDS", str(12 * 3600)))
    # Number of proxies in front of the app whose X-Forwarded-For may be trusted.
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

    # Development mail catcher: where caught mail is kept, and whether /dev/mail shows it.
    DEV_MAIL_DIR = os.environ.get("DEV_MAIL_DIR", str(INSTANCE_DIR / "devmail"))
    DEV_MAIL_VIEWER = env_bool("DEV_MAIL_VIEWER", True)

    # Campaign sending. Deliveries are claimed in batches; LANES batch tasks per campaign run at once (across all
    # workers); a claim lapses after LEASE seconds if its worker dies. 4xx answers are retried up to MAX_ATTEMPTS
    # times, RETRY_BACKOFF seconds doubling each time; a relay out of reach long enough pauses the campaign.
    CAMPAIGN_BATCH_SIZE = int(os.environ.get("CAMPAIGN_BATCH_SIZE", "500"))
    CAMPAIGN_LANES = int(os.environ.get("CAMPAIGN_LANES", "4"))
    # A claim's lease: renewed every third of it while its batch runs; a dead worker's claim is reaped when it lapses.
    # A batch whose lease lapsed while it waited (a relay that hung) finds out at its next renewal and sends no more.
    CAMPAIGN_LEASE_SECONDS = int(os.environ.get("CAMPAIGN_LEASE_SECONDS", "15"))
    # A lane of a sending campaign that has not shown progress for this long (its worker died, or its queued task was
    # lost) is restarted by the reaper, which runs every CAMPAIGN_REAP_SECONDS; the other lanes carry on meanwhile.
    CAMPAIGN_STALL_SECONDS = float(os.environ.get("CAMPAIGN_STALL_SECONDS", "6"))
    CAMPAIGN_REAP_SECONDS = float(os.environ.get("CAMPAIGN_REAP_SECONDS", "3"))
    CAMPAIGN_MAX_ATTEMPTS = int(os.environ.get("CAMPAIGN_MAX_ATTEMPTS", "4"))
    CAMPAIGN_RETRY_BACKOFF = float(os.environ.get("CAMPAIGN_RETRY_BACKOFF", "60"))
    CAMPAIGN_CONNECTION_FAILURES = int(os.environ.get("CAMPAIGN_CONNECTION_FAILURES", "5"))
    # ... and only once the relay has been out of reach this long: a relay restarting delays the campaign (tries
    # again after a wait that grows with the outage, up to a minute) but needs no organiser to resume it.
    CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS = float(os.environ.get("CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS", "600"))
    # A batch stops by itself after BATCH_SECONDS (the next one carries on); Celery stops a batch task that runs
    # BATCH_TIME_LIMIT seconds anyway (soft: its outcomes are written) and kills it 30 seconds later.
    CAMPAIGN_BATCH_SECONDS = float(os.environ.get("CAMPAIGN_BATCH_SECONDS", "30"))
    CAMPAIGN_BATCH_TIME_LIMIT = float(os.environ.get("CAMPAIGN_BATCH_TIME_LIMIT", "120"))
    CAMPAIGN_TEST_RECIPIENTS_MAX = int(os.environ.get("CAMPAIGN_TEST_RECIPIENTS_MAX", "5"))
    # Test mails each organiser may send, in a moving window shared by every web process (through Redis if set).
    CAMPAIGN_TEST_MAILS_PER_ORGANISER = os.environ.get("CAMPAIGN_TEST_MAILS_PER_ORGANISER", "10 per hour")
    # The relay's limits, shared by every worker through Redis (per worker process without Redis); 0 = no limit.
    SEND_RATE_PER_SECOND = int(os.environ.get("SEND_RATE_PER_SECOND", "0"))
    SEND_RATE_PER_HOUR = int(os.environ.get("SEND_RATE_PER_HOUR", "0"))
    SEND_RATE_PER_DAY = int(os.environ.get("SEND_RATE_PER_DAY", "0"))
    # Wall-clock limit of one render of an organiser template (uscmail/templating.py has the other limits).
    TEMPLATE_RENDER_SECONDS = float(os.environ.get("TEMPLATE_RENDER_SECONDS", "1"))
    # How often beat looks for reminders that are due.
    REMINDER_CHECK_SECONDS = float(os.environ.get("REMINDER_CHECK_SECONDS", "120"))
    # Where workers without Redis keep their send journal (what each batch has sent so far).
    SEND_JOURNAL_DIR = os.environ.get("SEND_JOURNAL_DIR", str(INSTANCE_DIR / "send-journal"))

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    MAX_CONTENT_LENGTH = 64 * 1024

    # Queue name; tests give each run its own so concurrent runs on one Redis never meet.
    CELERY_QUEUE = os.environ.get("CELERY_QUEUE", "uscmail")
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "uscmail")

    @property
    def CELERY(self) -> dict:  # noqa: N802 - Flask config keys are upper case
        """Celery settings: Redis when REDIS_URL is set, else kombu's SQLAlchemy transport on a local SQLite file."""
        broker = self.REDIS_URL or f"sqla+sqlite:///{INSTANCE_DIR / 'celery-broker.sqlite'}"
        return {
            "broker_url": broker,
            "task_ignore_result": True,
            "task_serializer": "json",
            "accept_content": ["json"],
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "broker_connection_retry_on_startup": True,
            "beat_schedule_filename": str(INSTANCE_DIR / "celerybeat-schedule"),
            "beat_schedule": {
                "purge-unconfirmed": {
                    "task": "uscmail.subscriptions.tasks.purge_unconfirmed",
                    "schedule": 3600.0,
                },
                "apply-stale-signups": {
                    "task": "uscmail.subscriptions.tasks.apply_stale_signups",
                    "schedule": 60.0,
                },
                "housekeep-imports": {
                    "task": "uscmail.imports.tasks.housekeep_imports",
                    "schedule": 3600.0,
                },
                "start-due-campaigns": {
                    "task": "uscmail.campaigns.tasks.start_due_campaigns",
                    "schedule": 30.0,
                },
                "send-due-reminders": {
                    "task": "uscmail.reminders.tasks.send_due_reminders",
                    "schedule": self.REMINDER_CHECK_SECONDS,
                },
                "reap-deliveries": {
                    "task": "uscmail.campaigns.tasks.reap_deliveries",
                    "schedule": self.CAMPAIGN_REAP_SECONDS,
                },
                "purge-unsubscribed": {
                    "task": "uscmail.subscriptions.tasks.purge_unsubscribed",
                    "schedule": 6 * 3600.0,
                },
                "purge-set-aside-mail": {
                    "task": "uscmail.bounces.setaside.purge_set_aside_mail",
                    "schedule": 3600.0,
                },
                **self._bounce_mailbox_schedule(),
            },
            "timezone": "Europe/London",
            "task_default_queue": self.CELERY_QUEUE,
            # Every task has time limits on its decorator; the batch task's come from the settings above.
            "task_annotations": {
                "uscmail.campaigns.tasks.send_batch": {
                    "soft_time_limit": self.CAMPAIGN_BATCH_TIME_LIMIT,
                    "time_limit": self.CAMPAIGN_BATCH_TIME_LIMIT + 30,
                }
            },
        }

    def _bounce_mailbox_schedule(self) -> dict:
        """The beat entry of the bounce mailbox's poll, when there is a mailbox."""
        if not self.BOUNCE_MAILBOX_URL:
            return {}
        return {
            "poll-bounce-mailbox": {
                "task": "uscmail.bounces.tasks.poll_bounce_mailbox",
                "schedule": self.BOUNCE_MAILBOX_POLL_SECONDS,
            }
        }

    @property
    def RATELIMIT_STORAGE_URI(self) -> str:  # noqa: N802
        """Rate-limit counters live in Redis when configured, else in process memory."""
        return self.REDIS_URL or "memory://"


class DevelopmentConfig(Config):
    """Laptop defaults: SQLite, embedded broker, mail to the local catcher."""

    DEBUG = False


class TestConfig(Config):
    """Tests: databases and brokers come from the test harness; mail never reaches a real server."""

    ENV_NAME = "test"
    TESTING = True
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "127.0.0.1")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "0"))
    DEV_MAIL_VIEWER = False
    SIGNUP_MIN_FILL_SECONDS = float(os.environ.get("SIGNUP_MIN_FILL_SECONDS", "0"))
    SIGNUP_BATCH_SECONDS = float(os.environ.get("SIGNUP_BATCH_SECONDS", "0.2"))


class ProductionConfig(Config):
    """Production: refuses to start without real secrets and a real database."""

    ENV_NAME = "production"
    DEV_MAIL_VIEWER = False
    SESSION_COOKIE_SECURE = True
    # __Host- cookies are only accepted over https, for this exact host, with Path=/.
    SESSION_COOKIE_NAME = "__Host-session"
    PREFERRED_URL_SCHEME = "https"

    def validate(self) -> None:
        """Raise RuntimeError naming each missing or unsafe setting."""
        problems = []
        if not os.environ.get("SECRET_KEY") or self.SECRET_KEY == DEV_SECRET_KEY or len(self.SECRET_KEY) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if not os.environ.get("TOTP_ENCRYPTION_KEY") or self.TOTP_ENCRYPTION_KEY == DEV_TOTP_ENCRYPTION_KEY:
            problems.append(
                "TOTP_ENCRYPTION_KEY must be set to a Fernet key of your own "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            )
        for name, keys in (
            ("TOTP_ENCRYPTION_KEY", [self.TOTP_ENCRYPTION_KEY]),
            ("TOTP_ENCRYPTION_KEY_FALLBACKS", self.TOTP_ENCRYPTION_KEY_FALLBACKS),
        ):
            if not all(is_fernet_key(key) for key in keys):
                problems.append(f"{name} must hold Fernet keys (url-safe base64 of 32 random bytes)")
        if not os.environ.get("DATABASE_URL"):
            problems.append("DATABASE_URL must be set")
        if not self.BASE_URL.startswith("https://"):
            problems.append("BASE_URL must be an https:// URL")
        unreadable = [entry for entry in self.MAIL_SENDERS if "@" not in parseaddr(entry)[1]]
        if unreadable:
            problems.append(f"MAIL_SENDERS must list email addresses, not {', '.join(unreadable)}")
        if problems:
            raise RuntimeError("uscmail refuses to start: " + "; ".join(problems))


CONFIGS = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def config_from_env() -> Config:
    """Pick the configuration class named by USCMAIL_ENV (development by default)."""
    name = os.environ.get("USCMAIL_ENV", "development")
    if name not in CONFIGS:
        raise RuntimeError(f"USCMAIL_ENV must be one of {', '.join(CONFIGS)}, not {name!r}")
    config = CONFIGS[name]()
    if isinstance(config, ProductionConfig):
        config.validate()
    return config
