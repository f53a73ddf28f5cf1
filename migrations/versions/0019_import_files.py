"""import jobs' uploads and reports kept in the database, in chunks, so the worker that runs an import need not be
on the machine that received the upload (files already in instance/imports are not moved: a job whose upload is
missing fails, saying so, and is uploaded again)

Revision ID: 0019_import_files
Revises: 0018_relay_outage
Create Date: 2026-12-06 06:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019_import_files'
down_revision = '0018_relay_outage'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'import_files',
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Enum('upload', 'report', name='importfilekind', native_enum=False, length=32), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_files_job_id_import_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'kind', 'sequence', name=op.f('pk_import_files')),
    )


def downgrade():
    op.drop_table('import_files')
