"""hardening: a table the health check writes to, so /healthz proves the database takes writes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('health_probes',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_health_probes'))
    )


def downgrade() -> None:
    op.drop_table('health_probes')
