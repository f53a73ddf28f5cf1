"""when a campaign's connections to the relay began failing in a row: it pauses only after the relay has been out
of reach for a while (CAMPAIGN_RELAY_DOWN_PAUSE_SECONDS), so a relay restarting does not need an organiser

Revision ID: 0018_relay_outage
Revises: 0017_translations
Create Date: 2026-12-06 06:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018_relay_outage'
down_revision = '0017_translations'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('connection_failing_since', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('connection_failing_since')
