"""several processes: find a chat's pending events without scanning every pending event

A process applying a chat's event first applies what the chat sent before and is still pending
(stored by another process, or left by one that died). The index holds pending events only, so
it stays small however long the inbox grows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        'ix_inbox_events_pending_chat',
        'inbox_events',
        ['channel', 'chat_id', 'id'],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index('ix_inbox_events_pending_chat', table_name='inbox_events')
