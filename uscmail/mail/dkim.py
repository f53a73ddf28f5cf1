"""DKIM signatures (RFC 6376) on every mail that leaves, added in mail.smtp.send: rsa-sha256, relaxed/relaxed, over
the headers receivers look at; RFC 8058 asks for List-Unsubscribe and List-Unsubscribe-Post to be signed, and From is
signed twice, so that a From added later breaks the signature.

dkimpy parses, canonicalises and hashes; the RSA signature itself comes from cryptography (OpenSSL): dkimpy's own RSA
is pure Python and takes about 6.4 ms a message, OpenSSL's about 0.3 ms. Tests check every signature with dkimpy's
verifier. Off unless DKIM_DOMAIN, DKIM_SELECTOR and a key (DKIM_PRIVATE_KEY, or DKIM_PRIVATE_KEY_FILE) are set.
"""

import base64
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import click
import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy
from flask import Flask, current_app, has_app_context

# Signed when present, in this order; From once more at the end (oversigned).
SIGNED_HEADERS = (
    b"from", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id", b"in-reply-to", b"references",
)  # fmt: skip
RELAXED = b"relaxed/relaxed"
HEADER_NAME = b"DKIM-Signature"
KEY_BITS = 2048
NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class DkimSettingsError(RuntimeError):
    """The DKIM settings are incomplete, or the key is not an RSA private key in PEM form."""


@dataclass(frozen=True)
class Signer:
    """Signs mail for one domain and selector with one RSA key."""

    domain: bytes
    selector: bytes
    key: rsa.RSAPrivateKey

    def header(self, message: bytes, now: int | None = None) -> bytes:
        """The DKIM-Signature header line (folded, ending in CRLF) for a whole message with CRLF line endings."""
        headers, body = dkim.rfc822_parse(message)
        policy = CanonicalizationPolicy.from_c_value(RELAXED)
        present = {name.lower() for name, _ in headers}
        include = [name for name in SIGNED_HEADERS if name in present] + [b"from"]
        body_hash = base64.b64encode(hashlib.sha256(policy.canonicalize_body(body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", RELAXED),
            (b"d", self.domain),
            (b"s", self.selector),
            (b"t", str(int(time.time()) if now is None else now).encode()),
            (b"h", b" : ".join(include)),
            (b"bh", body_hash),
            (b"b", b"0" * 60),  # a placeholder: b= is hashed empty
        ]
        folded = dkim.fold(b"; ".join(b"=".join(field) for field in fields), len(HEADER_NAME))
        unsigned = dkim.RE_BTAG.sub(b"\\1", folded)
        hasher = hashlib.sha256()
        dkim.hash_headers(
            hasher, policy, policy.canonicalize_headers(headers), include, (HEADER_NAME, b" " + unsigned), dict(fields)
        )
        signature = self.key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        fields[-1] = (b"b", base64.b64encode(signature))
        value = dkim.fold(b"; ".join(b"=".join(field) for field in fields) + b"\r\n", len(HEADER_NAME))
        return HEADER_NAME + b": " + value

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header in front."""
        return self.header(message) + message


def load_key(pem: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM text; DkimSettingsError for anything else."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimSettingsError(f"the DKIM key is not a PEM private key without a password ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
        raise DkimSettingsError("the DKIM key must be an RSA private key of at least 1024 bits (2048 advised)")
    return key


def signer_from_config(config) -> Signer | None:
    """The signer the settings describe, None when DKIM is off; DkimSettingsError if they are half set or wrong."""
    domain, selector = config.get("DKIM_DOMAIN", ""), config.get("DKIM_SELECTOR", "")
    pem, path = config.get("DKIM_PRIVATE_KEY", ""), config.get("DKIM_PRIVATE_KEY_FILE", "")
    if not (domain or selector or pem or path):
        return None
    if not (domain and selector and (pem or path)):
        raise DkimSettingsError(
            "DKIM needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY (or DKIM_PRIVATE_KEY_FILE) together"
        )
    key_pem = pem.encode()
    if not pem:
        try:
            key_pem = Path(path).read_bytes()
        except OSError as exc:
            raise DkimSettingsError(f"DKIM_PRIVATE_KEY_FILE cannot be read ({exc.strerror})") from None
    return Signer(checked_name("DKIM_DOMAIN", domain), checked_name("DKIM_SELECTOR", selector), load_key(key_pem))


def checked_name(setting: str, value: str) -> bytes:
    """A domain or selector as it goes into the signature header and DNS: ASCII letters, digits, dots and hyphens
    (an international domain in its xn-- form); DkimSettingsError for anything else, a line break above all."""
    if not NAME.fullmatch(value):
        raise DkimSettingsError(f"{setting} must be a DNS name of letters, digits, dots and hyphens (xn-- form)")
    return value.encode("ascii")


def sign_outgoing(data: bytes) -> bytes:
    """The message signed with the app's DKIM key, or unchanged when DKIM is off."""
    signer = current_app.extensions.get("dkim_signer") if has_app_context() else None
    return data if signer is None else signer.sign(data)


def txt_record(key: rsa.RSAPrivateKey) -> str:
    """The DNS TXT record's value that publishes the key's public half."""
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def init_app(app: Flask) -> None:
    """Load the signer once at start-up, so a wrong key stops the app with the reason rather than failing every send;
    and add `flask mail dkim-key`."""
    app.extensions["dkim_signer"] = signer_from_config(app.config)
    app.cli.add_command(mail_cli)


@click.group("mail", help="Mail authentication.")
def mail_cli() -> None:
    pass


@mail_cli.command("dkim-key")
@click.option("--domain", required=True, help="the signing domain, e.g. lists.example.org")
@click.option("--selector", default="uscmail1", show_default=True, help="the selector (a new one for each new key)")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="where to write the private key (0600)")
def dkim_key(domain: str, selector: str, out: str) -> None:
    """Make a 2048-bit RSA key for DKIM, write it to --out, and print the DNS record to publish."""
    try:
        checked_name("--domain", domain)
        checked_name("--selector", selector)
    except DkimSettingsError as exc:
        raise click.ClickException(str(exc)) from None
    path = Path(out)
    if path.exists():
        raise click.ClickException(f"{out} exists already; choose another path (a key is never overwritten)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        with open(path, "xb", opener=lambda name, flags: os.open(name, flags, 0o600)) as file:
            file.write(pem)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"Private key written to {out}. Set DKIM_DOMAIN={domain} DKIM_SELECTOR={selector} "
               f"DKIM_PRIVATE_KEY_FILE={out}, and publish this TXT record:")  # fmt: skip
    record = txt_record(key)
    # A DNS TXT string holds at most 255 characters: a 2048-bit key's record is published as several.
    strings = " ".join(f'"{record[start : start + 255]}"' for start in range(0, len(record), 255))
    click.echo(f"{selector}._domainkey.{domain}. IN TXT {strings}")
