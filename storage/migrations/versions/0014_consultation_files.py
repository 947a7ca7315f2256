"""consultation files as imported (the text staff wrote, comments and all), each version that
differed from the one before, so a consultation can be changed from its newest file

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consultation_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_consultation_files_consultation_id_consultations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consultation_files'))
    )
    op.create_index(op.f('ix_consultation_files_consultation_id'), 'consultation_files', ['consultation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_consultation_files_consultation_id'), table_name='consultation_files')
    op.drop_table('consultation_files')
