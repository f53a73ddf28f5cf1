"""The language a signup was made in, carried from the signup page to the subscriber and their mail.

Revision ID: 0015_locales
Revises: 0014_campaign_templates
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_locales"
down_revision = "0014_campaign_templates"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("signup_requests") as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=16), nullable=False, server_default="en"))


def downgrade():
    with op.batch_alter_table("signup_requests") as batch_op:
        batch_op.drop_column("locale")
