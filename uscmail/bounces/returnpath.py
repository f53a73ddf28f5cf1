"""Per-recipient return paths (VERP): `bounces+<tag>@bounce-domain`, the tag an opaque, authenticated name of the
delivery (or, for signup mail, the subscriber) the message went to. A bounce comes back to that address, so it
identifies its delivery without any address in it, and a forged one names nobody.

The tag is one AES block (kind, id and seven zero bytes) encrypted with a key derived from SECRET_KEY: 26 base32
characters. It does not count deliveries, a stranger cannot make one, and decoding it needs no table. Tags made with
a key in SECRET_KEY_FALLBACKS still decode, so bounces of mail sent before a key rotation still count.
"""

import base64
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app

DELIVERY, SUBSCRIBER = 1, 2
CHECK = b"\0" * 7
TAG = re.compile(r"\+([a-z2-7]{26})@", re.IGNORECASE)


@dataclass(frozen=True)
class Tagged:
    """Who a return path names: a campaign delivery or, for signup mail, a subscriber."""

    kind: int
    id: int


def _key(secret: str) -> bytes:
    return hmac.digest(secret.encode(), b"uscmail return path", hashlib.sha256)[:16]


class ReturnPaths:
    """Makes and reads return paths for one app's settings; cheap to call per message (one AES block)."""

    def __init__(self, bounce_address: str, secret: str, fallbacks: list[str] = ()):
        self.local, _, self.domain = bounce_address.rpartition("@")
        self.bounce_address = bounce_address
        self.ciphers = [Cipher(algorithms.AES(_key(key)), modes.ECB()) for key in [secret, *fallbacks]]  # noqa: S305 - one block, a keyed permutation

    def address(self, kind: int, ident: int) -> str:
        encryptor = self.ciphers[0].encryptor()
        block = encryptor.update(struct.pack(">BQ", kind, ident) + CHECK) + encryptor.finalize()
        tag = base64.b32encode(block).decode("ascii").rstrip("=").lower()
        return f"{self.local}+{tag}@{self.domain}"

    def read(self, text: str) -> Tagged | None:
        """The delivery or subscriber named by the first return path in `text` that decodes, else None (not ours,
        mangled, or forged)."""
        for match in TAG.finditer(text):
            block = base64.b32decode(match.group(1).upper() + "======")
            for cipher in self.ciphers:
                decryptor = cipher.decryptor()
                plain = decryptor.update(block) + decryptor.finalize()
                if hmac.compare_digest(plain[9:], CHECK) and plain[0] in (DELIVERY, SUBSCRIBER):
                    kind, ident = struct.unpack(">BQ", plain[:9])
                    return Tagged(kind, ident)
        return None


def return_paths() -> ReturnPaths:
    """The current app's ReturnPaths (made once per app)."""
    app = current_app._get_current_object()
    paths = app.extensions.get("uscmail_return_paths")
    if paths is None:
        config = app.config
        paths = ReturnPaths(config["BOUNCE_ADDRESS"], config["SECRET_KEY"], config["SECRET_KEY_FALLBACKS"])
        app.extensions["uscmail_return_paths"] = paths
    return paths


def for_delivery(delivery_id: int) -> str:
    """The envelope sender for one campaign delivery."""
    return return_paths().address(DELIVERY, delivery_id)


def for_subscriber(subscriber_id: int) -> str:
    """The envelope sender for signup mail (confirmation, welcome, preference link) to one subscriber."""
    return return_paths().address(SUBSCRIBER, subscriber_id)


def plain() -> str:
    """The envelope sender for mail that names nobody on the list (test copies, organisers' mail)."""
    return return_paths().bounce_address
