"""ideas, statements and votes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Frozen here on purpose: a migration must not change when the models do.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ideas_opens_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ideas_closes_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ideas', JSON_DOCUMENT, nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('participant_counter', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('statement_counter', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('participations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('notify_statements_at', sa.DateTime(timezone=True), nullable=True))

    # Existing participations get numbers in the order they joined, per consultation.
    connection = op.get_bind()
    rows = connection.execute(
        sa.text('SELECT id, consultation_id FROM participations ORDER BY consultation_id, id')
    ).all()
    counters: dict[int, int] = {}
    for participation_id, consultation_id in rows:
        counters[consultation_id] = counters.get(consultation_id, 0) + 1
        connection.execute(
            sa.text('UPDATE participations SET number = :number WHERE id = :id'),
            {'number': counters[consultation_id], 'id': participation_id},
        )
    for consultation_id, counter in counters.items():
        connection.execute(
            sa.text('UPDATE consultations SET participant_counter = :counter WHERE id = :id'),
            {'counter': counter, 'id': consultation_id},
        )
    with op.batch_alter_table('participations', schema=None) as batch_op:
        batch_op.create_unique_constraint(op.f('uq_participations_consultation_id_number'), ['consultation_id', 'number'])

    op.create_table('statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('participation_id', sa.Integer(), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('text', JSON_DOCUMENT, nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=True),
    sa.Column('visibility', sa.String(length=8), nullable=False),
    sa.Column('wants_volunteers', sa.Boolean(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('decision_reason', sa.String(length=500), nullable=True),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_statements_consultation_id_consultations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merged_into_id'], ['statements.id'], name=op.f('fk_statements_merged_into_id_statements'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['participation_id'], ['participations.id'], name=op.f('fk_statements_participation_id_participations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statements')),
    sa.UniqueConstraint('consultation_id', 'number', name=op.f('uq_statements_consultation_id_number'))
    )
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.create_index('ix_statements_consultation_visibility', ['consultation_id', 'visibility'], unique=False)
        batch_op.create_index('ix_statements_fingerprint', ['fingerprint'], unique=False)

    op.create_table('votes',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('participation_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participation_id'], ['participations.id'], name=op.f('fk_votes_participation_id_participations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_votes_statement_id_statements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_votes')),
    sa.UniqueConstraint('statement_id', 'participation_id', name=op.f('uq_votes_statement_id_participation_id'))
    )
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.create_index('ix_votes_participation', ['participation_id'], unique=False)

    op.create_table('vote_events',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('participation_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participation_id'], ['participations.id'], name=op.f('fk_vote_events_participation_id_participations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_vote_events_statement_id_statements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vote_events'))
    )
    with op.batch_alter_table('vote_events', schema=None) as batch_op:
        batch_op.create_index('ix_vote_events_statement', ['statement_id', 'id'], unique=False)

    op.create_table('volunteers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('participation_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participation_id'], ['participations.id'], name=op.f('fk_volunteers_participation_id_participations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_volunteers_statement_id_statements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volunteers')),
    sa.UniqueConstraint('statement_id', 'participation_id', name=op.f('uq_volunteers_statement_id_participation_id'))
    )

    op.create_table('opinion_groups',
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('vote_events_seen', sa.Integer(), nullable=False),
    sa.Column('model', JSON_DOCUMENT, nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_opinion_groups_consultation_id_consultations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consultation_id', name=op.f('pk_opinion_groups'))
    )

    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('statement_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_moderation_items_statement_id_statements'), 'statements', ['statement_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('moderation_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('statement_id', sa.Integer(), nullable=True))
        batch_op.alter_column('answer_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_moderation_reports_statement_id_statements'), 'statements', ['statement_id'], ['id'], ondelete='CASCADE')
        batch_op.create_unique_constraint(batch_op.f('uq_moderation_reports_statement_id_participation_id'), ['statement_id', 'participation_id'])


def downgrade() -> None:
    with op.batch_alter_table('moderation_reports', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_moderation_reports_statement_id_participation_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_moderation_reports_statement_id_statements'), type_='foreignkey')
        batch_op.drop_column('statement_id')
    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_moderation_items_statement_id_statements'), type_='foreignkey')
        batch_op.drop_column('statement_id')
    op.drop_table('opinion_groups')
    op.drop_table('volunteers')
    op.drop_table('vote_events')
    op.drop_table('votes')
    op.drop_table('statements')
    with op.batch_alter_table('participations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_participations_consultation_id_number'), type_='unique')
        batch_op.drop_column('notify_statements_at')
        batch_op.drop_column('number')
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.drop_column('statement_counter')
        batch_op.drop_column('participant_counter')
        batch_op.drop_column('ideas')
        batch_op.drop_column('ideas_closes_at')
        batch_op.drop_column('ideas_opens_at')
