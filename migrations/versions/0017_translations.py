"""campaigns and reminders in several languages: the language of a campaign's own body, its translations, and the
reminder templates of an event in other languages

Revision ID: 0017_translations
Revises: 0016_fixes
Create Date: 2026-12-06 02:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017_translations'
down_revision = '0016_fixes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=16), nullable=False, server_default='en'))
    op.create_table(
        'campaign_translations',
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('locale', sa.String(length=16), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('preheader', sa.String(length=255), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_translations_campaign_id_campaigns'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('campaign_id', 'locale', name=op.f('pk_campaign_translations')),
    )
    op.create_table(
        'event_translations',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('locale', sa.String(length=16), nullable=False),
        sa.Column('subject_template', sa.String(length=255), nullable=False),
        sa.Column('body_template', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_translations_event_id_events'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id', 'locale', name=op.f('pk_event_translations')),
    )


def downgrade():
    op.drop_table('event_translations')
    op.drop_table('campaign_translations')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('locale')
