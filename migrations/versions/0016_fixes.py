"""import jobs: a real import started from a dry run's page names that dry run (once: unique)

Revision ID: 0016_fixes
Revises: 0015_locales
Create Date: 2026-12-06 02:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016_fixes'
down_revision = '0015_locales'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('import_jobs') as batch:
        batch.add_column(sa.Column('from_dry_run_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(
            'fk_import_jobs_from_dry_run_id_import_jobs', 'import_jobs', ['from_dry_run_id'], ['id'], ondelete='SET NULL'
        )
        batch.create_unique_constraint('uq_import_jobs_from_dry_run_id', ['from_dry_run_id'])


def downgrade():
    with op.batch_alter_table('import_jobs') as batch:
        batch.drop_constraint('uq_import_jobs_from_dry_run_id', type_='unique')
        batch.drop_constraint('fk_import_jobs_from_dry_run_id_import_jobs', type_='foreignkey')
        batch.drop_column('from_dry_run_id')
