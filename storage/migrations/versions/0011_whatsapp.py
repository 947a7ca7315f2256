"""WhatsApp: a planned post's template for citizens outside the 24-hour window; what the
platform said of a sent message (sent, delivered, read, failed), found by its platform id; room
for WhatsApp's message ids (wamid), which can be longer than 64 characters

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('planned_posts') as batch:
        batch.add_column(sa.Column('whatsapp_template', sa.String(length=512), nullable=True))
    with op.batch_alter_table('outbox_messages') as batch:
        batch.add_column(sa.Column('platform_status', sa.String(length=16), nullable=True))
        batch.alter_column(
            'external_message_id',
            existing_type=sa.String(length=64),
            type_=sa.String(length=128),
            existing_nullable=True,
        )
    with op.batch_alter_table('inbox_events') as batch:
        batch.alter_column(
            'external_id',
            existing_type=sa.String(length=64),
            type_=sa.String(length=128),
            existing_nullable=False,
        )
    # A status notification names the message by the platform's id only.
    op.create_index(
        'ix_outbox_messages_external', 'outbox_messages', ['channel', 'external_message_id']
    )


def downgrade() -> None:
    op.drop_index('ix_outbox_messages_external', table_name='outbox_messages')
    with op.batch_alter_table('inbox_events') as batch:
        batch.alter_column(
            'external_id',
            existing_type=sa.String(length=128),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
    with op.batch_alter_table('outbox_messages') as batch:
        batch.alter_column(
            'external_message_id',
            existing_type=sa.String(length=128),
            type_=sa.String(length=64),
            existing_nullable=True,
        )
        batch.drop_column('platform_status')
    with op.batch_alter_table('planned_posts') as batch:
        batch.drop_column('whatsapp_template')
