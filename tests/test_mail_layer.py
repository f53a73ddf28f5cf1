"""The mail layer's one way onto the wire, as signup mail uses it: what arrives, and which refusals are retried."""

import pytest

from uscmail.mail import smtp
from uscmail.mail.messages import build_message


def welcome_to(address: str, name: str | None = "Aysu"):
    return build_message(
        template="preferences_link",
        to_email=address,
        to_name=name,
        subject="Your USC-UK preferences link",
        preferences_url="https://lists.example.org/preferences/abc",
    )


@pytest.fixture
def mail_layer(app, smtp_sink):
    """The app's context with no cached connection, so each test opens its own to the sink."""
    with app.app_context():
        smtp.drop_connection()
        yield smtp_sink
        smtp.drop_connection()


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_message_arrives_whole_from_its_sender(mail_layer, pipelining):
    mail_layer.pipelining = pipelining
    smtp.send_message(welcome_to("aysu@example.org"))
    [mail] = mail_layer.wait_for("aysu@example.org")
    assert mail.mail_from == "news@uscuk.test"
    assert mail.message["Subject"] == "Your USC-UK preferences link"
    assert "https://lists.example.org/preferences/abc" in mail.text()


def test_an_internationalised_address_goes_with_smtputf8(mail_layer):
    smtp.send_message(welcome_to("gülnar@example.org", name="Gülnar"))
    [mail] = mail_layer.wait_for("gülnar@example.org")
    assert "Gülnar" in str(mail.message["To"])


@pytest.mark.parametrize(
    "name",
    [
        'Aysu, "the" <organiser@evil.example>',  # an address inside the display name
        "Ayşe Gülnar " * 12,  # encoded words over several folded lines
        "ئايگۈل 古丽 " * 8,
    ],
    ids=["address-in-name", "long-latin", "long-uyghur-chinese"],
)
def test_the_envelope_goes_to_the_to_address_whatever_the_name(mail_layer, name):
    """send_message reads the envelope's addresses from the headers as stored; a display name, however long or
    hostile, never changes who the mail goes to or from."""
    smtp.send_message(welcome_to("named@example.org", name=name), "bounces+x@uscuk.test")
    [mail] = mail_layer.wait_for("named@example.org")
    assert mail.rcpt_tos == ["named@example.org"]
    assert mail.mail_from == "bounces+x@uscuk.test"
    assert mail.message["To"].addresses[0].addr_spec == "named@example.org"


def test_a_transient_refusal_is_worth_retrying_and_a_permanent_one_is_not(mail_layer):
    mail_layer.replies["later@example.org"] = "450 4.2.0 Mailbox busy, try later"
    mail_layer.replies["gone@example.org"] = "550 5.1.1 No such user here"
    with pytest.raises(smtp.MessageNotSentYet) as transient:
        smtp.send_message(welcome_to("later@example.org"))
    assert isinstance(transient.value, OSError)  # what the signup tasks' autoretry catches
    assert transient.value.reply.answer is smtp.Answer.RETRY
    with pytest.raises(smtp.MessageRefused) as permanent:
        smtp.send_message(welcome_to("gone@example.org"))
    assert not isinstance(permanent.value, OSError)
    assert permanent.value.reply == smtp.Reply(smtp.Answer.BOUNCED, "550 5.1.1 No such user here")
    # The connection is still good for the next message.
    smtp.send_message(welcome_to("fine@example.org"))
    assert mail_layer.wait_for("fine@example.org")


def test_the_relays_certificate_is_verified_before_anything_is_sent(app, monkeypatch, tmp_path):
    """STARTTLS to a relay whose certificate nobody trusts stops before the login and the message; trusted (here
    through SSL_CERT_FILE, as an operator would point to their CA bundle), the same relay takes the mail."""
    import ssl

    from aiosmtpd.controller import Controller

    from tests.bounce_support import free_port
    from tests.mail_server import _self_signed
    from uscmail.mail import smtp

    _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    received = []

    class Relay:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    relay = Controller(Relay(), hostname="127.0.0.1", port=port, tls_context=server_context, require_starttls=True)
    relay.start()
    try:
        monkeypatch.setitem(app.config, "MAIL_PORT", port)
        monkeypatch.setitem(app.config, "MAIL_USE_TLS", True)
        with app.app_context():
            with pytest.raises(ssl.SSLCertVerificationError):
                smtp.open_connection()
            monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
            connection = smtp.open_connection()
            reply = smtp.send(connection, "bounces@uscuk.test", "someone@example.org", b"Subject: x\r\n\r\nhi\r\n",
                              smtputf8=False)  # fmt: skip
            connection.quit()
        assert reply.answer is smtp.Answer.SENT and len(received) == 1
    finally:
        relay.stop()
