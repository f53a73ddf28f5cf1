"""The bounce mailbox's server: where it is and how to log in (BOUNCE_MAILBOX_URL), and a session over IMAP or POP3
that lists the messages waiting, reads one, and removes one. The poll (mailbox.py) decides what to take and when.

TLS is verified (the stdlib clients verify nothing by default), and nothing here logs or repeats the password.
"""

import contextlib
import enum
import imaplib
import ipaddress
import poplib
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from ..mail.smtp import safe_detail

POP3_CHUNK = 64 * 1024


class Security(enum.StrEnum):
    """How the session is protected."""

    TLS = "tls"  # from the start (imaps, pop3s)
    STARTTLS = "starttls"  # upgraded before the login; a server that does not offer it is refused
    PLAIN = "plain"  # none: to a loopback address only


SCHEMES = {
    "imaps": ("imap", Security.TLS),
    "imap": ("imap", Security.STARTTLS),
    "pop3s": ("pop3", Security.TLS),
    "pop3": ("pop3", Security.STARTTLS),
}


class MailboxMisconfigured(ValueError):
    """BOUNCE_MAILBOX_URL cannot be used; the message never repeats the URL (it may hold the password)."""


class LoginRefused(Exception):
    """The server refused the user name and password."""


class MailboxFailed(Exception):
    """The server answered something a poll cannot go on from."""


@dataclass(frozen=True)
class MailboxAccess:
    """Where the mailbox is and how to log in, read from BOUNCE_MAILBOX_URL (and BOUNCE_MAILBOX_PASSWORD)."""

    protocol: str  # "imap" or "pop3"
    security: Security
    host: str
    port: int | None  # None: the protocol's own
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"  # IMAP only
    done_folder: str = ""  # IMAP only: move taken messages here instead of deleting them

    def where(self) -> str:
        """The server, for logs: no user name (often an address), no password."""
        return f"{self.protocol} {self.host}:{self.port or 'default port'}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _imap_folder(name: str, setting: str) -> str:
    if not name.isascii() or any(character in name for character in "\r\n\0"):
        raise MailboxMisconfigured(f"{setting} must name a folder in ASCII letters, digits and punctuation")
    return name


def mailbox_access(config) -> MailboxAccess | None:
    """The mailbox BOUNCE_MAILBOX_URL names, or None when it is not set; MailboxMisconfigured if it is unusable.

    imaps:// and pop3s:// talk TLS from the start; imap:// and pop3:// use STARTTLS and refuse a server without it;
    `?tls=off` talks plain, to a loopback address only. Certificates are verified against the system's trust store
    (or the file SSL_CERT_FILE names). The password is BOUNCE_MAILBOX_PASSWORD if set, else the URL's, which is
    percent-encoded."""
    url = config.get("BOUNCE_MAILBOX_URL", "")
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise MailboxMisconfigured("BOUNCE_MAILBOX_URL is not a URL with a valid port") from None
    if parts.scheme not in SCHEMES:
        raise MailboxMisconfigured("BOUNCE_MAILBOX_URL must start with imaps://, imap://, pop3s:// or pop3://")
    protocol, security = SCHEMES[parts.scheme]
    host = parts.hostname or ""
    options = parse_qs(parts.query, keep_blank_values=True)
    if set(options) - {"tls"} or options.get("tls", ["off"]) != ["off"]:
        raise MailboxMisconfigured("BOUNCE_MAILBOX_URL takes one option, ?tls=off")
    if options:
        if security is Security.TLS:
            raise MailboxMisconfigured("?tls=off goes with imap:// or pop3://, not with imaps:// or pop3s://")
        if not _is_loopback(host):
            raise MailboxMisconfigured("?tls=off is allowed to a loopback address only (127.0.0.1, ::1, localhost)")
        security = Security.PLAIN
    user = unquote(parts.username or "")
    password = config.get("BOUNCE_MAILBOX_PASSWORD") or unquote(parts.password or "")
    if not host or not user or not password:
        raise MailboxMisconfigured(
            "BOUNCE_MAILBOX_URL needs a host and a user, and a password (in it or in BOUNCE_MAILBOX_PASSWORD)"
        )
    folder = unquote(parts.path.lstrip("/"))
    done_folder = config.get("BOUNCE_MAILBOX_DONE_FOLDER", "")
    if protocol == "pop3":
        if folder or done_folder:
            raise MailboxMisconfigured("POP3 has no folders: a pop3 URL has no path, and no done folder is set")
        return MailboxAccess(protocol, security, host, port, user, password, "", "")
    folder = _imap_folder(folder or "INBOX", "BOUNCE_MAILBOX_URL")
    done_folder = _imap_folder(done_folder, "BOUNCE_MAILBOX_DONE_FOLDER") if done_folder else ""
    return MailboxAccess(protocol, security, host, port, user, password, folder, done_folder)


def _tls_context() -> ssl.SSLContext:
    """Certificates verified, host names checked (the stdlib clients' own default verifies nothing)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapMailbox:
    """An IMAP session on the folder: messages not flagged \\Deleted, oldest first; a taken one is flagged \\Deleted
    (or moved) at once and expunged when the session ends. A message flagged by a poll that died before its expunge
    was committed already: it is skipped, and expunged by this one."""

    def __init__(self, access: MailboxAccess, timeout: float):
        self.access = access
        port = access.port or (imaplib.IMAP4_SSL_PORT if access.security is Security.TLS else imaplib.IMAP4_PORT)
        if access.security is Security.TLS:
            self.connection = imaplib.IMAP4_SSL(access.host, port, ssl_context=_tls_context(), timeout=timeout)
        else:
            self.connection = imaplib.IMAP4(access.host, port, timeout=timeout)
        try:
            if access.security is Security.STARTTLS:
                self.connection.starttls(ssl_context=_tls_context())
            self._log_in()
            self._answer(self.connection.select(_quoted(access.folder)), "SELECT the folder")
            self.capabilities = set(self._answer(self.connection.capability(), "CAPABILITY")[0].upper().split())
            if access.done_folder:
                self.connection.create(_quoted(access.done_folder))  # NO when it exists already
        except BaseException:
            self._shut()
            raise

    def _log_in(self) -> None:
        # AUTHENTICATE PLAIN (RFC 4616) carries UTF-8; imaplib sends LOGIN's words as ASCII only.
        user, password = self.access.user, self.access.password
        try:
            if "AUTH=PLAIN" in self.connection.capabilities:
                credentials = b"\0" + user.encode() + b"\0" + password.encode()
                self.connection.authenticate("PLAIN", lambda _challenge: credentials)
            else:
                self.connection.login(user, password)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as refusal:
            raise LoginRefused(fault_words(refusal)) from None

    @staticmethod
    def _answer(answer: tuple, what: str) -> list:
        status, data = answer
        if status != "OK":
            words = b" ".join(part for part in data if isinstance(part, bytes)).decode("utf-8", "replace")
            raise MailboxFailed(f"{what}: {status} {safe_detail(words)}")
        return data

    def waiting(self) -> list[bytes]:
        """The UIDs of the messages waiting, oldest first."""
        return self._answer(self.connection.uid("SEARCH", "UNDELETED"), "SEARCH")[0].split()

    def read(self, uid: bytes, max_bytes: int) -> bytes | None:
        """The message (its first max_bytes + 1 bytes, to tell a longer one), or None if it has gone meanwhile."""
        data = self._answer(self.connection.uid("FETCH", uid, f"(BODY.PEEK[]<0.{max_bytes + 1}>)"), "FETCH")
        own = re.compile(rb"\bUID " + uid + rb"\b")
        for part in data:
            if isinstance(part, tuple) and own.search(part[0]):
                return part[1]
        return None

    def remove(self, uid: bytes) -> None:
        """Move the message to the done folder, or flag it \\Deleted (expunged when the session ends)."""
        done = self.access.done_folder
        if done and "MOVE" in self.capabilities:
            self._answer(self.connection.uid("MOVE", uid, _quoted(done)), "MOVE")
            return
        if done:
            self._answer(self.connection.uid("COPY", uid, _quoted(done)), "COPY")
        self._answer(self.connection.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")

    def close(self) -> None:
        """Expunge what is flagged \\Deleted and log out."""
        try:
            self._answer(self.connection.expunge(), "EXPUNGE")
            self.connection.logout()
        finally:
            self._shut()

    def _shut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown()


class Pop3Mailbox:
    """A POP3 session: every message, in the server's order; a taken one is marked deleted at once (DELE) and gone
    when the session ends (QUIT). A session that breaks off deletes nothing: the next poll reads those again."""

    def __init__(self, access: MailboxAccess, timeout: float):
        self.access = access
        port = access.port or (poplib.POP3_SSL_PORT if access.security is Security.TLS else poplib.POP3_PORT)
        if access.security is Security.TLS:
            self.connection = poplib.POP3_SSL(access.host, port, timeout=timeout, context=_tls_context())
        else:
            self.connection = poplib.POP3(access.host, port, timeout=timeout)
        try:
            if access.security is Security.STARTTLS:
                self.connection.stls(context=_tls_context())
            self._log_in()
        except BaseException:
            self._shut()
            raise

    def _log_in(self) -> None:
        try:
            self.connection.user(self.access.user)
            self.connection.pass_(self.access.password)
        except poplib.error_proto as refusal:
            if refusal.args == ("-ERR EOF",):  # the connection ended: not a refusal
                raise
            raise LoginRefused(fault_words(refusal)) from None

    def waiting(self) -> list[int]:
        """The numbers of the messages waiting."""
        _, listing, _ = self.connection.list()
        return [int(line.split()[0]) for line in listing]

    def read(self, number: int, max_bytes: int) -> bytes:
        """The message (its first max_bytes + 1 bytes, to tell a longer one). Read here rather than by poplib's
        retr(), which gives up on a line longer than 2,048 bytes and leaves the session unusable: a message with one
        would stop every poll. The rest of a long message is read and dropped, so the session stays in step."""
        connection = self.connection
        connection._shortcmd(f"RETR {number}")  # poplib's own command step, unchanged for years
        kept, line_start = bytearray(), True
        while True:
            piece = connection.file.readline(POP3_CHUNK)
            if not piece:
                raise poplib.error_proto("-ERR EOF")
            if line_start and piece in (b".\r\n", b".\n"):
                return bytes(kept)
            if line_start and piece.startswith(b".."):
                piece = piece[1:]  # RFC 1939 dot-stuffing
            line_start = piece.endswith(b"\n")
            if len(kept) <= max_bytes:
                kept += piece[: max_bytes + 1 - len(kept)]

    def remove(self, number: int) -> None:
        """Mark the message deleted; it goes when the session ends."""
        self.connection.dele(number)

    def close(self) -> None:
        """QUIT, which deletes the messages marked."""
        try:
            self.connection.quit()
        finally:
            self._shut()

    def _shut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.close()


MAILBOXES = {"imap": ImapMailbox, "pop3": Pop3Mailbox}
# What a session may raise when the server cannot be reached, TLS fails, or the server answers wrongly.
FAULTS = (OSError, imaplib.IMAP4.error, poplib.error_proto, MailboxFailed)


def open_mailbox(access: MailboxAccess, timeout: float) -> ImapMailbox | Pop3Mailbox:
    """A session on the mailbox, logged in: LoginRefused if the server refuses the login, one of FAULTS otherwise."""
    return MAILBOXES[access.protocol](access, timeout)


def fault_words(fault: BaseException) -> str:
    """The fault's class and words (imaplib and poplib give the server's as bytes), addresses removed: fit to log."""
    text = " ".join(part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part) for part in fault.args)
    return safe_detail(f"{type(fault).__name__}: {text}")
