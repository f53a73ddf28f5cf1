"""a sending campaign's lanes, each with its own deadline for progress: the reaper restarts the lanes of a worker
that died while the other lanes carry on; deliveries indexed by claim (and lease) while claimed, in place of
status and lease

Revision ID: 0011_campaign_lanes
Revises: 0010_campaign_progress
Create Date: 2026-12-05 20:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_campaign_lanes'
down_revision = '0010_campaign_progress'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'campaign_lanes',
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('lane', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('generation', sa.String(length=32), nullable=False),
        sa.Column('expect_progress_by', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_lanes_campaign_id_campaigns'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('campaign_id', 'lane', name=op.f('pk_campaign_lanes')),
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('expect_progress_by')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_status_lease')
        batch_op.create_index(
            'ix_deliveries_claim', ['claim', 'lease_until'], unique=False,
            postgresql_where=sa.text('claim IS NOT NULL'), sqlite_where=sa.text('claim IS NOT NULL'),
        )


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_claim')
        batch_op.create_index('ix_deliveries_status_lease', ['status', 'lease_until'], unique=False)
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expect_progress_by', sa.DateTime(timezone=True), nullable=True))
    op.drop_table('campaign_lanes')
