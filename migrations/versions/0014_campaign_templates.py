"""campaign templates (a name, a starting subject, preheader and body) that editors start campaigns from; each
campaign's revision, so edits from two tabs cannot silently overwrite each other; and how many people left through
a campaign's unsubscribe links (a count only: never who)

Revision ID: 0014_campaign_templates
Revises: 0013_media
Create Date: 2026-12-06 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_campaign_templates'
down_revision = '0013_media'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'campaign_templates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('preheader', sa.String(length=255), nullable=False),
        sa.Column('body_format', sa.Enum('markdown', 'html', name='bodyformat', native_enum=False, length=32), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['organisers.id'], name=op.f('fk_campaign_templates_created_by_id_organisers'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_templates')),
        sa.UniqueConstraint('name', name=op.f('uq_campaign_templates_name')),
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('unsubscribe_count', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('unsubscribe_count')
        batch_op.drop_column('revision')
    op.drop_table('campaign_templates')
