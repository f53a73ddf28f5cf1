"""A real Dovecot (IMAP and POP3) for the tests, run unprivileged from a temporary directory with its own config.

It listens on 127.0.0.1 only: IMAP and POP3 with STARTTLS offered, and IMAPS and POP3S, with a self-signed certificate
made for 127.0.0.1 (`ca_file`, to be trusted through SSL_CERT_FILE). Any user name logs in with PASSWORD and gets its
own maildir, so each test takes a fresh user instead of a fresh server. Run as root (as CI does), Dovecot runs as
`nobody`: its login processes refuse to run as root, and nothing here needs privileges.

Debian's `dovecot-imapd` and `dovecot-pop3d` packages provide it (`.ci/run` installs them).
"""

import contextlib
import datetime
import grp
import imaplib
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.waiting import wait_until

# Characters a URL must escape, and some that are not ASCII, so the tests see the password decoded on its way from
# BOUNCE_MAILBOX_URL and sent whole.
PASSWORD = "Uyghur:p@ss/w?rd-ئۇيغۇر"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = uscmail-test-{name}
listen = 127.0.0.1
protocols = imap pop3
log_path = {dir}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
  }}
}}
service anvil {{
  chroot =
}}
"""


def available() -> bool:
    """True if Dovecot is installed here."""
    return Path(DOVECOT).exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _self_signed(directory: Path) -> None:
    """cert.pem and key.pem: a certificate for 127.0.0.1 (and localhost), its own issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "uscmail test mail server")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class Dovecot:
    """One Dovecot server: start() it, give each test a new_user(), deliver() mail, read what is left, stop() it."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="uscmail-dovecot-"))
        self.ports = {scheme: _free_port() for scheme in ("imap", "imaps", "pop3", "pop3s")}
        self.ca_file = self.directory / "cert.pem"
        self.log_path = self.directory / "dovecot.log"
        self.process: subprocess.Popen | None = None
        # Root runs it as nobody; anyone else as themselves.
        account = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        self.uid, self.gid, self.user = account.pw_uid, account.pw_gid, account.pw_name

    def start(self) -> "Dovecot":
        """Write the config and certificate, start `dovecot -F`, and wait until it greets on every port."""
        for part in ("run", "state", "mail", "home"):
            (self.directory / part).mkdir()
        _self_signed(self.directory)
        group = grp.getgrgid(self.gid).gr_name
        config = CONFIG.format(
            dir=self.directory, name=self.directory.name, user=self.user, group=group, uid=self.uid, gid=self.gid,
            password=PASSWORD, **self.ports,
        )  # fmt: skip
        (self.directory / "dovecot.conf").write_text(config)
        for path in [self.directory, *self.directory.rglob("*")]:
            os.chown(path, self.uid, self.gid)
        self._output = (self.directory / "dovecot.out").open("wb")
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.directory / "dovecot.conf")],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            user=self.uid if os.geteuid() == 0 else None,
            group=self.gid if os.geteuid() == 0 else None,
            start_new_session=True,
        )
        try:
            wait_until(self._greets, 30, "Dovecot to greet on 127.0.0.1")
        except AssertionError:
            self.stop()
            raise RuntimeError("Dovecot did not start:\n" + self.log()) from None
        return self

    def _greets(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("Dovecot exited:\n" + self.log())
        for port in (self.ports["imap"], self.ports["pop3"]):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                    if not connection.recv(100).startswith((b"* OK", b"+OK")):
                        return False
            except OSError:
                return False
        return True

    def stop(self) -> None:
        """Stop the server (SIGTERM to its master, which stops its children) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if self.process is not None:
            self._output.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """What Dovecot has logged (its log file, and what it printed before it had one)."""
        parts = [self.directory / "dovecot.out", self.log_path]
        return "\n".join(path.read_text(errors="replace") for path in parts if path.exists())

    @staticmethod
    def new_user() -> str:
        """A user name nobody has used yet: its mailbox is empty."""
        return f"bounces-{uuid.uuid4().hex[:12]}"

    def url(self, scheme: str, user: str, password: str | None = PASSWORD, folder: str = "", query: str = "") -> str:
        """A BOUNCE_MAILBOX_URL for this server: `imap`, `imaps`, `pop3` or `pop3s`; no password part when None."""
        secret = "" if password is None else ":" + quote(password, safe="")
        path = "/" + quote(folder, safe="") if folder else ""
        return f"{scheme}://{quote(user, safe='')}{secret}@127.0.0.1:{self.ports[scheme]}{path}{query}"

    @contextlib.contextmanager
    def imap(self, user: str):
        """A plain IMAP session of the user (loopback: no TLS needed), logged out at the end."""
        connection = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=10)
        try:
            credentials = f"\0{user}\0{PASSWORD}".encode()
            connection.authenticate("PLAIN", lambda _challenge: credentials)  # LOGIN takes ASCII only
            yield connection
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                connection.logout()

    def deliver(self, user: str, *messages: bytes, folder: str = "INBOX") -> None:
        """Put the messages into the user's folder, in this order (IMAP APPEND)."""
        with self.imap(user) as connection:
            for raw in messages:
                status, answer = connection.append(f'"{folder}"', None, None, raw)
                assert status == "OK", answer

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The messages in the user's folder (those flagged \\Deleted but not yet expunged included), oldest first;
        [] when the folder does not exist."""
        with self.imap(user) as connection:
            status, _ = connection.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, found = connection.uid("SEARCH", "ALL")
            contents = []
            for uid in found[0].split():
                _, data = connection.uid("FETCH", uid, "(BODY.PEEK[])")
                contents.extend(part[1] for part in data if isinstance(part, tuple))
            return contents

    def logins(self, user: str) -> list[str]:
        """Dovecot's log lines of the user's logins: they say `TLS` when the session was encrypted (the helper's own
        sessions are plain, `secured` as loopback is)."""
        return [line for line in self.log().splitlines() if "Login:" in line and f"user=<{user}>" in line]
