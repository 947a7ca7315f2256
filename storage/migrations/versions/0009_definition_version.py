"""performance: a counter that every change of a consultation definition moves

Processes cache consultation definitions (consultation, rounds, questions) and read them again
once this counter has moved, which every import or edit does in its own transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('definition_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_definition_versions'))
    )
    op.bulk_insert(table, [{'id': 1, 'version': 0}])


def downgrade() -> None:
    op.drop_table('definition_versions')
