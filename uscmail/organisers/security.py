"""Password hashing (Argon2id), TOTP with replay protection, recovery codes, and random tokens."""

import base64
import hashlib
import hmac
import secrets
import time

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's default profile (RFC 9106 low-memory: Argon2id, t=3, m=64 MiB, p=4) exceeds OWASP's minimum.
password_hasher = PasswordHasher()
# Verified when the account does not exist, so a login takes as long whether or not it does.
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))

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
