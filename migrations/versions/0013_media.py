"""the media library: images organisers upload for campaign mail (their files are on disk or in S3, named by
public_id)

Revision ID: 0013_media
Revises: 0012_bounces
Create Date: 2026-12-06 02:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_media'
down_revision = '0012_bounces'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'media_images',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('format', sa.Enum('png', 'jpeg', 'gif', name='imageformat', native_enum=False, length=32), nullable=False),
        sa.Column('alt_text', sa.String(length=300), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('high_density', sa.Boolean(), nullable=False),
        sa.Column('size_bytes', sa.Integer(), nullable=False),
        sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['uploaded_by_id'], ['organisers.id'], name=op.f('fk_media_images_uploaded_by_id_organisers'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_media_images')),
        sa.UniqueConstraint('public_id', name=op.f('uq_media_images_public_id')),
    )
    with op.batch_alter_table('media_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_images_created_at'), ['created_at'], unique=False)


def downgrade():
    op.drop_table('media_images')
