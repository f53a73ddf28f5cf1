"""Organisers, their sessions, recovery codes and API tokens; the append-only audit log."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..models import UTCDateTime, enum_column, utcnow
from . import credentials


class Role(enum.StrEnum):
    """What an organiser may do; each role includes the ones below it."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in viewer < editor < admin."""
        return list(Role).index(self)

    def includes(self, other: "Role") -> bool:
        """True if this role may do what `other` may do."""
        return self.rank >= other.rank


class Organiser(db.Model):
    """A volunteer who runs the lists. TOTP is mandatory: the password and totp_secret are set through a one-time
    set-up link; until then the account cannot be signed into.

    The TOTP secret is stored encrypted (Fernet, TOTP_ENCRYPTION_KEY); `totp_secret` reads and writes it in clear.
    """

    __tablename__ = "organisers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role))
    active: Mapped[bool] = mapped_column(default=True)
    totp_secret_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    # The last TOTP time step accepted, so each code works once only.
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # SHA-256 of the nonce in the one live set-up link, if any; cleared when the link is used or replaced.
    enrolment_nonce_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    # Bumped whenever the password, 2FA or role changes: every session made before then ends.
    security_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    recovery_codes: Mapped[list["RecoveryCode"]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    @property
    def totp_secret(self) -> str | None:
        """The TOTP secret in clear, or None before enrolment; SecretUnreadable if no configured key decrypts it."""
        return None if self.totp_secret_encrypted is None else credentials.decrypt_secret(self.totp_secret_encrypted)

    @totp_secret.setter
    def totp_secret(self, secret: str | None) -> None:
        self.totp_secret_encrypted = None if secret is None else credentials.encrypt_secret(secret)

    @property
    def enrolled(self) -> bool:
        """True once the organiser has an authenticator app (checked without decrypting anything)."""
        return self.totp_secret_encrypted is not None


class RecoveryCode(db.Model):
    """A one-time code for when the authenticator is lost; stored as Argon2id (salted) of its SHA-256."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    organiser_id: Mapped[int] = mapped_column(sa.ForeignKey("organisers.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionStage(enum.StrEnum):
    """How far a login has got: a set-up link opened, password checked, or password and second factor."""

    ENROLMENT = "enrolment"
    PASSWORD = "password"  # noqa: S105 - a stage name, not a secret
    COMPLETE = "complete"


class OrganiserSession(db.Model):
    """A server-side login session; the cookie holds only a random id whose SHA-256 is stored here."""

    __tablename__ = "organiser_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    organiser_id: Mapped[int] = mapped_column(sa.ForeignKey("organisers.id", ondelete="CASCADE"), index=True)
    stage: Mapped[SessionStage] = mapped_column(enum_column(SessionStage))
    security_version: Mapped[int]
    # During enrolment: the TOTP secret shown in the QR code (encrypted), until a code proves it was saved.
    pending_totp_secret_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organiser: Mapped[Organiser] = relationship(lazy="joined")

    @property
    def pending_totp_secret(self) -> str | None:
        """The TOTP secret being enrolled, in clear; SecretUnreadable if no configured key decrypts it."""
        stored = self.pending_totp_secret_encrypted
        return None if stored is None else credentials.decrypt_secret(stored)

    @pending_totp_secret.setter
    def pending_totp_secret(self, secret: str | None) -> None:
        self.pending_totp_secret_encrypted = None if secret is None else credentials.encrypt_secret(secret)


class ApiToken(db.Model):
    """A revocable API token carrying its organiser's role; shown once, stored as a SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    organiser_id: Mapped[int] = mapped_column(sa.ForeignKey("organisers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organiser: Mapped[Organiser] = relationship(lazy="joined")


class AuditEvent(db.Model):
    """One entry of the append-only audit log: who did what to which object. Never secrets or subscriber addresses."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_action_created", "action", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    organiser_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisers.id", ondelete="SET NULL"), index=True)
    # The organiser's address at the time, so the entry still reads after the account is gone.
    actor: Mapped[str] = mapped_column(sa.String(320))
    action: Mapped[str] = mapped_column(sa.String(64))
    object_type: Mapped[str | None] = mapped_column(sa.String(64))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)


@sa.event.listens_for(AuditEvent, "before_update")
@sa.event.listens_for(AuditEvent, "before_delete")
def refuse_audit_changes(mapper, connection, target) -> None:
    """The audit log is append-only."""
    raise PermissionError("audit events cannot be changed or deleted")
