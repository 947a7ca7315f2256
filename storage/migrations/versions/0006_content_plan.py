"""the content plan: planned posts, and bulk outbox messages tied to them

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Frozen here on purpose: a migration must not change when the models do.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('planned_posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=True),
    sa.Column('consultation_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('texts', JSON_DOCUMENT, nullable=False),
    sa.Column('image', sa.LargeBinary(), nullable=True),
    sa.Column('image_file_id', sa.String(length=200), nullable=True),
    sa.Column('button', JSON_DOCUMENT, nullable=True),
    sa.Column('audience', JSON_DOCUMENT, nullable=False),
    sa.Column('anchor', JSON_DOCUMENT, nullable=True),
    sa.Column('repeat', JSON_DOCUMENT, nullable=True),
    sa.Column('occurrence', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('late_seconds', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('progress_message_id', sa.Integer(), nullable=True),
    sa.Column('progress_shown_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_planned_posts_consultation_id_consultations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_planned_posts')),
    sa.UniqueConstraint('key', name=op.f('uq_planned_posts_key'))
    )
    with op.batch_alter_table('planned_posts', schema=None) as batch_op:
        batch_op.create_index('ix_planned_posts_state_due', ['state', 'due_at'], unique=False)

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('post_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outbox_messages_post', ['post_id', 'status'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_outbox_messages_post_id_planned_posts'), 'planned_posts', ['post_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outbox_messages_post_id_planned_posts'), type_='foreignkey')
        batch_op.drop_index('ix_outbox_messages_post')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('post_id')

    with op.batch_alter_table('planned_posts', schema=None) as batch_op:
        batch_op.drop_index('ix_planned_posts_state_due')

    op.drop_table('planned_posts')
