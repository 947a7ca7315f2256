"""moderation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Frozen here on purpose: a migration must not change when the models do.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('moderation_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('consultation', sa.String(length=40), nullable=False),
    sa.Column('event', sa.String(length=24), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=16), nullable=False),
    sa.Column('before', sa.String(length=16), nullable=True),
    sa.Column('after', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('flags', JSON_DOCUMENT, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_log'))
    )
    with op.batch_alter_table('moderation_log', schema=None) as batch_op:
        batch_op.create_index('ix_moderation_log_at', ['at'], unique=False)

    op.create_table('moderation_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=True),
    sa.Column('participation_id', sa.Integer(), nullable=True),
    sa.Column('pseudonym', sa.String(length=16), nullable=False),
    sa.Column('flags', JSON_DOCUMENT, nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reports', sa.Integer(), nullable=False),
    sa.Column('card_message_id', sa.Integer(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('digested_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_moderation_items_answer_id_answers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_moderation_items_consultation_id_consultations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participation_id'], ['participations.id'], name=op.f('fk_moderation_items_participation_id_participations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_items'))
    )
    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.create_index('ix_moderation_items_status_created', ['status', 'created_at'], unique=False)

    op.create_table('moderation_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=False),
    sa.Column('participation_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_moderation_reports_answer_id_answers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participation_id'], ['participations.id'], name=op.f('fk_moderation_reports_participation_id_participations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_reports')),
    sa.UniqueConstraint('answer_id', 'participation_id', name=op.f('uq_moderation_reports_answer_id_participation_id'))
    )
    with op.batch_alter_table('answers', schema=None) as batch_op:
        # Existing answers were all taken as they came.
        batch_op.add_column(sa.Column('visibility', sa.String(length=8), nullable=False, server_default='visible'))
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_answers_fingerprint', ['fingerprint'], unique=False)

    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('moderation', JSON_DOCUMENT, nullable=False, server_default='{}'))

    with op.batch_alter_table('participations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blocked_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('participations', schema=None) as batch_op:
        batch_op.drop_column('blocked_at')

    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.drop_column('moderation')

    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.drop_index('ix_answers_fingerprint')
        batch_op.drop_column('fingerprint')
        batch_op.drop_column('visibility')

    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_moderation_items_status_created')

    op.drop_table('moderation_reports')
    op.drop_table('moderation_items')
    with op.batch_alter_table('moderation_log', schema=None) as batch_op:
        batch_op.drop_index('ix_moderation_log_at')

    op.drop_table('moderation_log')
