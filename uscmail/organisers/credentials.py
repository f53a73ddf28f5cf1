"""Password hashing (Argon2id), TOTP with replay protection and secrets encrypted at rest, recovery codes (Argon2id,
salted per code), and random tokens."""

import base64
import hashlib
import hmac
import secrets
import time

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

# argon2-cffi's default profile (RFC 9106 low-memory: Argon2id, t=3, m=64 MiB, p=4) exceeds OWASP's minimum.
password_hasher = PasswordHasher()
# Verified when the account does not exist, so a login takes as long whether or not it does.
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))
# Recovery codes carry 60 random bits, so OWASP's minimum Argon2id profile (19 MiB, t=2) is plenty against a stolen
# table, while checking all ten of an organiser's codes at sign-in stays near a third of a second.
recovery_code_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

# Stored until an organiser sets a password through their set-up link; no password ever matches it.
UNSET_PASSWORD_HASH = "!unset"  # noqa: S105 - a marker, not a secret
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024
TOTP_ISSUER = "USC-UK mail"
TOTP_STEP_SECONDS = 30
RECOVERY_CODE_COUNT = 10


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    return password_hasher.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    """Constant-effort check; a missing hash still costs one Argon2 verification."""
    try:
        return password_hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"Use at least {PASSWORD_MIN_LENGTH} characters; a few random words make a good password."
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"Use at most {PASSWORD_MAX_LENGTH} characters."
    return None


def sha256_hex(value: str) -> str:
    """Hex SHA-256 of a high-entropy secret (tokens, recovery codes), for storage and lookup."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_token(prefix: str = "") -> str:
    """A random, URL-safe secret of 256 bits."""
    return prefix + secrets.token_urlsafe(32)


class SecretUnreadable(Exception):
    """A stored TOTP secret that no configured key decrypts: TOTP_ENCRYPTION_KEY is wrong, malformed, or the key it
    was encrypted with is missing from TOTP_ENCRYPTION_KEY_FALLBACKS."""


def _totp_keys() -> MultiFernet:
    # MultiFernet encrypts with the first key and decrypts with any of them.
    config = current_app.config
    try:
        keys = [Fernet(key) for key in (config["TOTP_ENCRYPTION_KEY"], *config["TOTP_ENCRYPTION_KEY_FALLBACKS"])]
    except (ValueError, TypeError) as exc:
        raise SecretUnreadable(f"TOTP_ENCRYPTION_KEY or a fallback is not a Fernet key: {exc}") from None
    return MultiFernet(keys)


def encrypt_secret(secret: str) -> str:
    """A TOTP secret encrypted (and authenticated) with the current TOTP_ENCRYPTION_KEY, for storage."""
    return _totp_keys().encrypt(secret.encode()).decode("ascii")


def decrypt_secret(stored: str) -> str:
    """The TOTP secret in a stored value; SecretUnreadable if no configured key opens it."""
    try:
        return _totp_keys().decrypt(stored.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable("no TOTP_ENCRYPTION_KEY (or fallback) decrypts a stored TOTP secret") from exc


def reencrypt_secret(stored: str) -> str:
    """The same secret encrypted with the current key (key rotation); SecretUnreadable if no key opens it."""
    try:
        return _totp_keys().rotate(stored.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable("no TOTP_ENCRYPTION_KEY (or fallback) decrypts a stored TOTP secret") from exc


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(32)


def totp_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def qr_svg(data: str) -> str:
    """An inline SVG QR code, rendered here so the secret never reaches another service."""
    return segno.make(data, error="m").svg_inline(scale=5, dark="#000", light="#fff", border=2)


def accepted_totp_step(secret: str, code: str, last_step: int | None, now: float | None = None) -> int | None:
    """The time step the code belongs to (current ±1), or None; a step at or before last_step is refused (replay)."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // TOTP_STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP_SECONDS), code) and (last_step is None or step > last_step):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten one-time recovery codes like 'k3fq-9xzm-2t7b' (60 bits each)."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(8)).decode().lower().rstrip("=")[:12]
        codes.append("-".join(raw[i : i + 4] for i in range(0, 12, 4)))
    return codes


def normalise_recovery_code(code: str) -> str:
    """Recovery codes compare without spaces, dashes or case."""
    raw = "".join(ch for ch in code.lower() if ch.isalnum())[:12]
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def looks_like_recovery_code(code: str) -> bool:
    """True if the text has the shape of a recovery code (worth the cost of checking against the stored hashes)."""
    return len(normalise_recovery_code(code)) == 14


def hash_recovery_code(code: str) -> str:
    """Argon2id, with its own salt, of the code's SHA-256 (the form older versions stored, rehashed by migration)."""
    return recovery_code_hasher.hash(sha256_hex(normalise_recovery_code(code)))


def recovery_code_matches(stored_hash: str, code: str) -> bool:
    """True if `code` is the recovery code behind `stored_hash`."""
    try:
        return recovery_code_hasher.verify(stored_hash, sha256_hex(normalise_recovery_code(code)))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
