"""Configuration from the environment: production refuses unsafe settings; entry points load."""

import os
import subprocess
import sys
from email.message import EmailMessage

import pytest

from tests.conftest import PROJECT_DIR

PRODUCTION = {
    "USCMAIL_ENV": "production",
    "SECRET_KEY": "p" * 48,
    "DATABASE_URL": "sqlite:////tmp/uscmail-production-check.sqlite",
    "BASE_URL": "https://lists.example.org",
    "TOTP_ENCRYPTION_KEY": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
}
PROBE = "from uscmail import create_app; app = create_app(); print(sorted(r.rule for r in app.url_map.iter_rules()))"


def run_app(env_changes: dict, drop: tuple = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_changes}
    for name in drop:
        env.pop(name, None)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("changes", "drop", "complaint"),
    [
        ({}, ("SECRET_KEY",), "SECRET_KEY must be set"),
        ({"SECRET_KEY": "dev-only-insecure-secret-key-change-me"}, (), "SECRET_KEY must be set"),
        ({"SECRET_KEY": "short"}, (), "SECRET_KEY must be set"),
        ({}, ("DATABASE_URL",), "DATABASE_URL must be set"),
        ({"BASE_URL": "http://lists.example.org"}, (), "BASE_URL must be an https:// URL"),
        ({"MAIL_SENDERS": "news, Ops <ops@example.org>"}, (), "MAIL_SENDERS must list email addresses, not news"),
        ({}, ("TOTP_ENCRYPTION_KEY",), "TOTP_ENCRYPTION_KEY must be set"),
        (
            {"TOTP_ENCRYPTION_KEY": "ZGV2LW9ubHktaW5zZWN1cmUtdG90cC1rZXktMDAwMDA="},
            (),
            "TOTP_ENCRYPTION_KEY must be set",
        ),
        ({"TOTP_ENCRYPTION_KEY": "too-short"}, (), "TOTP_ENCRYPTION_KEY must hold Fernet keys"),
        ({"TOTP_ENCRYPTION_KEY_FALLBACKS": "%%%"}, (), "TOTP_ENCRYPTION_KEY_FALLBACKS must hold Fernet keys"),
    ],
)
def test_production_refuses_to_start_without_real_settings(changes, drop, complaint):
    result = run_app({**PRODUCTION, **changes}, drop)
    assert result.returncode != 0
    assert "uscmail refuses to start" in result.stderr
    assert complaint in result.stderr


def test_production_starts_without_the_development_mail_viewer():
    result = run_app(PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "/subscribe" in result.stdout
    assert "/dev/mail" not in result.stdout


def test_unknown_environment_name_is_a_clear_error():
    result = run_app({"USCMAIL_ENV": "staging"})
    assert result.returncode != 0
    assert "USCMAIL_ENV must be one of" in result.stderr


def test_worker_module_exposes_celery_with_json_only_and_the_tasks():
    probe = (
        "import worker; c = worker.celery_app; "
        "print(c.conf.task_serializer, sorted(c.conf.accept_content), c.conf.task_acks_late); "
        "print(sorted(t for t in c.tasks if t.startswith('uscmail.')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "json ['json'] True" in result.stdout
    assert "uscmail.subscriptions.tasks.send_signup_mail" in result.stdout
    assert "uscmail.subscriptions.tasks.purge_unconfirmed" in result.stdout


def test_development_mail_viewer_shows_caught_mail_with_clickable_links(tmp_path):
    from config import DevelopmentConfig
    from uscmail import create_app

    message = EmailMessage()
    message["Subject"] = "Please confirm"
    message["To"] = "reader@example.org"
    message.set_content("Open https://lists.example.org/confirm/abc to confirm <b>now</b>")
    (tmp_path / "1700000000000000000-0123abcd.eml").write_bytes(bytes(message))
    config = DevelopmentConfig()
    config.DEV_MAIL_DIR = str(tmp_path)
    client = create_app(config).test_client()

    inbox = client.get("/dev/mail/").get_data(as_text=True)
    assert "Please confirm" in inbox
    page = client.get("/dev/mail/1700000000000000000-0123abcd.eml").get_data(as_text=True)
    assert '<a href="https://lists.example.org/confirm/abc">' in page
    assert "&lt;b&gt;now&lt;/b&gt;" in page
    assert client.get("/dev/mail/..%2Fconfig.py").status_code == 404
    # Only this machine may read it, even if the development server is made to listen on another address.
    stranger = create_app(config).test_client()
    stranger.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    for path in ("/dev/mail/", "/dev/mail/1700000000000000000-0123abcd.eml"):
        assert stranger.get(path).status_code == 404


def test_production_session_cookie_is_host_prefixed_secure_and_http_only():
    probe = (
        "from uscmail import create_app; c = create_app().config; "
        "print(c['SESSION_COOKIE_NAME'], c['SESSION_COOKIE_SECURE'], c['SESSION_COOKIE_HTTPONLY'], "
        "c['SESSION_COOKIE_SAMESITE'], c.get('SESSION_COOKIE_DOMAIN'))"
    )
    env = {**os.environ, **PRODUCTION}
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["__Host-session", "True", "True", "Lax", "None"]
