"""when a sending campaign should next show progress: the reaper restarts one that does not

Revision ID: 0010_campaign_progress
Revises: 0009_event_errors
Create Date: 2026-12-05 18:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_campaign_progress'
down_revision = '0009_event_errors'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expect_progress_by', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('expect_progress_by')
