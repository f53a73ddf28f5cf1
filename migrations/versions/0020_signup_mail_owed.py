"""a stored signup keeps its row, marked with its subscriber, from being applied until its mail is handed to the
relay: one task applies it and sends the mail, and a worker lost in between leaves the mail owed, not lost

Revision ID: 0020_signup_mail_owed
Revises: 0019_import_files
Create Date: 2026-12-06 20:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020_signup_mail_owed'
down_revision = '0019_import_files'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('signup_requests') as batch_op:
        batch_op.add_column(sa.Column('subscriber_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_signup_requests_subscriber_id_subscribers'), 'subscribers', ['subscriber_id'], ['id'],
            ondelete='CASCADE',
        )


def downgrade():
    with op.batch_alter_table('signup_requests') as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_signup_requests_subscriber_id_subscribers'), type_='foreignkey')
        batch_op.drop_column('subscriber_id')
