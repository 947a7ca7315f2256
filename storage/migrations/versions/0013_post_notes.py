"""planned posts keep their note (why skipped, cancelled or partly failed) as phrases too, so
staff read it in their language; the English text stays for the command line and the logs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Frozen here on purpose: a migration must not change when the models do.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('planned_posts', sa.Column('note', JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('planned_posts') as batch:
        batch.drop_column('note')
