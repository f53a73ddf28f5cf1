"""DKIM: every mail that leaves is signed with the configured key, and dkimpy's verifier, given the DNS record the
key-making command prints, accepts it; a changed or added header breaks the signature; bad settings stop the app with
the reason."""

import os
import re

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config import TestConfig
from tests.campaign_support import start, wait_for_status
from tests.factories import add_confirmed, make_campaign
from uscmail import create_app
from uscmail.campaigns.models import CampaignStatus
from uscmail.mail import smtp
from uscmail.mail.dkim import DkimSettingsError, Signer, mail_cli, signer_from_config, txt_record
from uscmail.mail.messages import build_message

DOMAIN, SELECTOR = "lists.uscuk.test", "uscmail1"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def verifies(raw: bytes, record: str) -> bool:
    """dkimpy's verdict, with the DNS answer for the selector being `record`."""

    def dns(name, timeout=5):
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return record.encode()

    return dkim.verify(raw, dnsfunc=dns)


def signed_headers(raw: bytes) -> list[str]:
    header = re.search(rb"DKIM-Signature:(.*?)\r\n(?=\S)", raw, re.S).group(1)
    tags = dict(part.strip().split(b"=", 1) for part in re.sub(rb"\s+", b"", header).split(b";") if part)
    return tags[b"h"].decode().split(":")


def test_signup_mail_is_signed_over_the_headers_receivers_check(app, smtp_sink, key):
    with app.app_context():
        smtp.drop_connection()
        app.extensions["dkim_signer"] = Signer(DOMAIN.encode(), SELECTOR.encode(), key)
        try:
            smtp.send_message(
                build_message(
                    template="preferences_link",
                    to_email="aysu@example.org",
                    to_name="Aysu",
                    subject="Your USC-UK preferences link",
                    preferences_url="https://lists.example.org/preferences/abc",
                )
            )
        finally:
            app.extensions["dkim_signer"] = None
            smtp.drop_connection()
    [mail] = smtp_sink.wait_for("aysu@example.org")
    assert verifies(mail.raw, txt_record(key))
    assert {"from", "to", "subject", "date", "message-id"} <= set(signed_headers(mail.raw))
    assert signed_headers(mail.raw).count("from") == 2, "From is oversigned: a second From breaks the signature"

    tampered = mail.raw.replace(b"Subject: Your USC-UK", b"Subject: Your USC-UX")
    assert not verifies(tampered, txt_record(key))
    assert not verifies(b"From: Someone <x@evil.test>\r\n" + mail.raw, txt_record(key))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not verifies(mail.raw, txt_record(other)), "another key's record does not vouch for it"


def test_campaign_mail_from_a_worker_is_signed_with_the_unsubscribe_headers(db, spawn_worker, smtp_sink, key, tmp_path):
    key_file = tmp_path / "dkim.pem"
    key_file.write_text(pem(key))
    queue = f"dkim-{os.getpid()}-{id(key_file)}"
    spawn_worker("dkim", queue=queue, DKIM_DOMAIN=DOMAIN, DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=key_file)
    addresses = add_confirmed(3)
    campaign = make_campaign(body="Dear {{ subscriber.name }},\n\nSee you on **Portland Place** on the 5th.")
    start(campaign, queue=queue)
    wait_for_status(campaign.id, CampaignStatus.SENT, timeout=60)
    for address in addresses:
        [mail] = smtp_sink.to(address)
        assert verifies(mail.raw, txt_record(key)), f"the signature of the mail to {address} verifies"
        assert {"list-unsubscribe", "list-unsubscribe-post", "list-id"} <= set(signed_headers(mail.raw))


def test_half_set_or_wrong_settings_stop_the_app_with_the_reason(key, tmp_path):
    with pytest.raises(DkimSettingsError, match="DKIM needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY"):
        signer_from_config({"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR})
    with pytest.raises(DkimSettingsError, match="not a PEM private key"):
        signer_from_config(
            {"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR, "DKIM_PRIVATE_KEY": "-----BEGIN nonsense"}
        )
    with pytest.raises(DkimSettingsError, match="cannot be read"):
        signer_from_config(
            {"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR, "DKIM_PRIVATE_KEY_FILE": str(tmp_path / "missing")}
        )
    for setting in ("DKIM_DOMAIN", "DKIM_SELECTOR"):
        bad = {"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR, "DKIM_PRIVATE_KEY": pem(key), setting: "a\r\nBcc: x"}
        with pytest.raises(DkimSettingsError, match=f"{setting} must be a DNS name"):
            signer_from_config(bad)
    binary = tmp_path / "key.der"
    binary.write_bytes(b"\xff\xfe\x00" * 100)
    with pytest.raises(DkimSettingsError, match="not a PEM private key"):
        signer_from_config({"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR, "DKIM_PRIVATE_KEY_FILE": str(binary)})
    assert signer_from_config({}) is None
    signer = signer_from_config({"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR, "DKIM_PRIVATE_KEY": pem(key)})
    assert signer.domain == DOMAIN.encode()

    class HalfSet(TestConfig):
        DKIM_DOMAIN = DOMAIN

    with pytest.raises(DkimSettingsError, match="DKIM needs"):
        create_app(HalfSet)


def test_the_key_command_writes_a_private_key_and_prints_its_record(tmp_path):
    out = tmp_path / "dkim.pem"
    runner = CliRunner()
    result = runner.invoke(mail_cli, ["dkim-key", "--domain", DOMAIN, "--selector", SELECTOR, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    key = serialization.load_pem_private_key(out.read_bytes(), password=None)
    assert key.key_size == 2048
    [line] = [line for line in result.output.splitlines() if " IN TXT " in line]
    name, strings = line.split(" IN TXT ")
    assert name == f"{SELECTOR}._domainkey.{DOMAIN}."
    parts = re.findall(r'"([^"]*)"', strings)
    assert len(parts) == 2 and max(map(len, parts)) <= 255, "DNS strings of at most 255 characters"
    assert "".join(parts) == txt_record(key)
    hostile = runner.invoke(mail_cli, ["dkim-key", "--domain", "x\nevil", "--out", str(tmp_path / "other.pem")])
    assert hostile.exit_code == 1 and "must be a DNS name" in hostile.output and "Traceback" not in hostile.output
    assert not (tmp_path / "other.pem").exists()
    again = runner.invoke(mail_cli, ["dkim-key", "--domain", DOMAIN, "--out", str(out)])
    assert again.exit_code == 1 and "exists already" in again.output
    assert (
        serialization.load_pem_private_key(out.read_bytes(), password=None).private_numbers() == key.private_numbers()
    )
