"""organiser secrets at rest: TOTP secrets encrypted (Fernet), recovery codes as salted Argon2id; set-up links

Revision ID: 0008_organiser_secrets
Revises: 0007_reminders
Create Date: 2026-12-05 12:00:00.000000

TOTP secrets (enrolled, and pending in session rows) are encrypted with TOTP_ENCRYPTION_KEY. Recovery codes were
stored as bare SHA-256 digests; each digest is rehashed with Argon2id (its own salt), which is exactly what the
application now stores for a code (Argon2id of the code's SHA-256), so every unused code keeps working and no bare
digest is left. Downgrading decrypts the secrets again but cannot undo Argon2id: recovery codes are then deleted.

organisers.enrolment_nonce_sha256 holds the hash of the nonce in an organiser's one live set-up link.

The organisers table is changed with plain ALTER TABLE (SQLite 3.35+ drops columns natively), never with a batch
copy: on SQLite with foreign keys on, dropping the old table would cascade to sessions, tokens and codes and set the
audit log's organiser ids to NULL.

The cryptography and hashing are written out here rather than imported from the application, so this migration
keeps doing the same thing however the application code changes later.
"""

import sqlalchemy as sa
from alembic import op
from argon2 import PasswordHasher
from cryptography.fernet import Fernet, MultiFernet
from flask import current_app

# revision identifiers, used by Alembic.
revision = "0008_organiser_secrets"
down_revision = "0007_reminders"
branch_labels = None
depends_on = None

# The application's recovery-code profile at the time of this migration.
RECOVERY_CODE_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

organisers = sa.table(
    "organisers",
    sa.column("id", sa.Integer),
    sa.column("totp_secret", sa.String),
    sa.column("totp_secret_encrypted", sa.Text),
)
sessions = sa.table(
    "organiser_sessions",
    sa.column("id", sa.Integer),
    sa.column("pending_totp_secret", sa.String),
    sa.column("pending_totp_secret_encrypted", sa.Text),
)
recovery_codes = sa.table(
    "recovery_codes",
    sa.column("id", sa.Integer),
    sa.column("code_sha256", sa.String),
    sa.column("code_hash", sa.String),
)


def _keys() -> MultiFernet:
    config = current_app.config
    return MultiFernet([Fernet(key) for key in (config["TOTP_ENCRYPTION_KEY"], *config["TOTP_ENCRYPTION_KEY_FALLBACKS"])])


def _convert(table, id_column, source: str, target: str, change) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(id_column, table.c[source]).where(table.c[source].is_not(None))
    ).all()
    for row_id, value in rows:
        connection.execute(sa.update(table).where(id_column == row_id).values({target: change(value)}))


def upgrade():
    op.add_column("organisers", sa.Column("totp_secret_encrypted", sa.Text(), nullable=True))
    op.add_column("organisers", sa.Column("enrolment_nonce_sha256", sa.String(length=64), nullable=True))
    op.add_column("organiser_sessions", sa.Column("pending_totp_secret_encrypted", sa.Text(), nullable=True))
    op.add_column("recovery_codes", sa.Column("code_hash", sa.String(length=255), nullable=True))

    keys = _keys()

    def encrypt(secret: str) -> str:
        return keys.encrypt(secret.encode()).decode("ascii")

    _convert(organisers, organisers.c.id, "totp_secret", "totp_secret_encrypted", encrypt)
    _convert(sessions, sessions.c.id, "pending_totp_secret", "pending_totp_secret_encrypted", encrypt)
    _convert(recovery_codes, recovery_codes.c.id, "code_sha256", "code_hash", RECOVERY_CODE_HASHER.hash)

    op.drop_column("organisers", "totp_secret")
    op.drop_column("organiser_sessions", "pending_totp_secret")
    # Nothing refers to recovery_codes, so SQLite may copy it to make code_hash NOT NULL.
    with op.batch_alter_table("recovery_codes") as batch_op:
        batch_op.drop_column("code_sha256")
        batch_op.alter_column("code_hash", existing_type=sa.String(length=255), nullable=False)


def downgrade():
    op.add_column("organisers", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    op.add_column("organiser_sessions", sa.Column("pending_totp_secret", sa.String(length=64), nullable=True))

    keys = _keys()

    def decrypt(stored: str) -> str:
        return keys.decrypt(stored.encode("ascii")).decode()

    _convert(organisers, organisers.c.id, "totp_secret_encrypted", "totp_secret", decrypt)
    _convert(sessions, sessions.c.id, "pending_totp_secret_encrypted", "pending_totp_secret", decrypt)
    # Argon2id cannot be turned back into the bare SHA-256 the old code expects: the codes are deleted.
    op.execute(sa.delete(recovery_codes))

    # Sessions opened from a set-up link have a stage the older code does not know.
    op.execute(sa.text("DELETE FROM organiser_sessions WHERE stage = 'enrolment'"))
    op.drop_column("organisers", "totp_secret_encrypted")
    op.drop_column("organisers", "enrolment_nonce_sha256")
    op.drop_column("organiser_sessions", "pending_totp_secret_encrypted")
    with op.batch_alter_table("recovery_codes") as batch_op:
        batch_op.add_column(sa.Column("code_sha256", sa.String(length=64), nullable=False, server_default=""))
        batch_op.drop_column("code_hash")
    with op.batch_alter_table("recovery_codes") as batch_op:
        batch_op.alter_column("code_sha256", existing_type=sa.String(length=64), server_default=None)
