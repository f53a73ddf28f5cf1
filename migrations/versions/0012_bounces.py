"""bounces and complaints: each decision with its evidence (bounce_events), and mail set aside unread

Revision ID: 0012_bounces
Revises: 0011_campaign_lanes
Create Date: 2026-12-05 22:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_bounces'
down_revision = '0011_campaign_lanes'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'bounce_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.Enum('hard', 'soft', 'complaint', name='bouncekind', native_enum=False, length=32), nullable=False),
        sa.Column('source', sa.Enum('smtp_reply', 'receiver', 'mailbox', 'ses', 'postmark', 'mailgun', 'sendgrid', name='bouncesource', native_enum=False, length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('diagnostic', sa.String(length=250), nullable=False),
        sa.Column('decision', sa.Enum('suppressed', 'scored', 'already_suppressed', name='bouncedecision', native_enum=False, length=32), nullable=False),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_bounce_events_campaign_id_campaigns'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_bounce_events_subscriber_id_subscribers'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bounce_events')),
    )
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.create_index('ix_bounce_events_campaign_kind', ['campaign_id', 'kind'], unique=False)
        batch_op.create_index('ix_bounce_events_subscriber_created', ['subscriber_id', 'created_at'], unique=False)
    op.create_table(
        'set_aside_mail',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sa.Enum('smtp_reply', 'receiver', 'mailbox', 'ses', 'postmark', 'mailgun', 'sendgrid', name='bouncesource', native_enum=False, length=32), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_set_aside_mail')),
    )
    with op.batch_alter_table('set_aside_mail', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_set_aside_mail_created_at'), ['created_at'], unique=False)


def downgrade():
    op.drop_table('set_aside_mail')
    op.drop_table('bounce_events')
