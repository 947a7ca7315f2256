"""Statements, votes, volunteers and opinion groups. Like every repository, it never commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import run_core
from storage.models import (
    Consultation,
    ModerationReport,
    OpinionGroups,
    Participant,
    Participation,
    Statement,
    Visibility,
    Volunteer,
    Vote,
    VoteEvent,
    VoteValue,
)
from storage.repositories import NEXT_NUMBER, insert_for

# How many rows a large read takes per part (see _rows_in_parts).
VOTES_PER_FETCH = 5000


class CastVote(NamedTuple):
    """One vote as cast (a row of the vote log), without the weight of an ORM object: an
    export reads hundreds of thousands of them."""

    statement_id: int
    participation_id: int | None
    value: int
    at: datetime


class CurrentVote(NamedTuple):
    """A participant's vote on a statement as it stands, as an import stores it."""

    statement_id: int
    participation_id: int
    value: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Tally:
    """The current votes on one statement."""

    agree: int = 0
    disagree: int = 0
    passed: int = 0

    @property
    def total(self) -> int:
        """Everyone who voted, passes included."""
        return self.agree + self.disagree + self.passed


@dataclass(frozen=True)
class Candidate:
    """A statement a participant has not voted on yet, with how many have."""

    statement: Statement
    votes: int


# Screening counts on the path of every statement written: built once.
_STATEMENT_COPIES = (
    select(func.count())
    .select_from(Statement)
    .where(
        Statement.consultation_id == bindparam("b_consultation_id"),
        Statement.fingerprint == bindparam("b_fingerprint"),
    )
)
_RECENT_STATEMENTS = (
    select(func.count())
    .select_from(Statement)
    .where(
        Statement.participation_id == bindparam("b_participation_id"),
        Statement.created_at >= bindparam("b_since"),
    )
)


class IdeasRepository:
    """The ideas phase's statements and votes."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def next_number(self, consultation_id: int, counter: str) -> int:
        """Hand out the next participant or statement number of a consultation.

        One UPDATE takes the row lock, so two processes never hand out the same number.
        """
        result = await run_core(
            self._session, NEXT_NUMBER[counter], {"b_consultation_id": consultation_id}
        )
        return int(result.scalar_one())

    async def raise_counter(self, consultation_id: int, counter: str, at_least: int) -> None:
        """Make sure numbers handed out later are above those taken (an import)."""
        column = {
            "participant": Consultation.participant_counter,
            "statement": Consultation.statement_counter,
        }[counter]
        await self._session.execute(
            update(Consultation)
            .where(Consultation.id == consultation_id, column < at_least)
            .values({column: at_least})
            .execution_options(synchronize_session=False)
        )

    async def add_statement(self, statement: Statement) -> Statement:
        """Store a new statement."""
        self._session.add(statement)
        await self._session.flush()
        return statement

    async def statement(self, statement_id: int) -> Statement | None:
        """Return a statement by id."""
        return await self._session.get(Statement, statement_id)

    async def by_number(self, consultation_id: int, number: int) -> Statement | None:
        """Return a consultation's statement by its number."""
        query = select(Statement).where(
            Statement.consultation_id == consultation_id, Statement.number == number
        )
        return (await self._session.execute(query)).scalar_one_or_none()

    async def statements(
        self, consultation_id: int, *, visible_only: bool = False
    ) -> list[Statement]:
        """A consultation's statements by number."""
        query = select(Statement).where(Statement.consultation_id == consultation_id)
        if visible_only:
            query = query.where(Statement.visibility == Visibility.VISIBLE)
        return list((await self._session.execute(query.order_by(Statement.number))).scalars())

    async def of_participation(self, participation_id: int) -> list[Statement]:
        """The statements a participation wrote, oldest first."""
        query = (
            select(Statement)
            .where(Statement.participation_id == participation_id)
            .order_by(Statement.id)
        )
        return list((await self._session.execute(query)).scalars())

    async def count_copies(self, consultation_id: int, fingerprint: str) -> int:
        """How many statements of a consultation have this fingerprint (stored ones)."""
        parameters = {"b_consultation_id": consultation_id, "b_fingerprint": fingerprint}
        return int((await run_core(self._session, _STATEMENT_COPIES, parameters)).scalar_one())

    async def count_recent(self, participation_id: int, since: datetime) -> int:
        """How many statements a participation wrote since a moment (stored ones)."""
        parameters = {"b_participation_id": participation_id, "b_since": since}
        return int((await run_core(self._session, _RECENT_STATEMENTS, parameters)).scalar_one())

    async def candidates(self, consultation_id: int, participation_id: int) -> list[Candidate]:
        """Visible statements by others that the participation has not voted on or reported."""
        voted = exists().where(
            Vote.statement_id == Statement.id, Vote.participation_id == participation_id
        )
        reported = exists().where(
            ModerationReport.statement_id == Statement.id,
            ModerationReport.participation_id == participation_id,
        )
        counts = (
            select(Vote.statement_id, func.count().label("votes"))
            .group_by(Vote.statement_id)
            .subquery()
        )
        query = (
            select(Statement, func.coalesce(counts.c.votes, 0))
            .outerjoin(counts, counts.c.statement_id == Statement.id)
            .where(
                Statement.consultation_id == consultation_id,
                Statement.visibility == Visibility.VISIBLE,
                Statement.participation_id.is_distinct_from(participation_id),
                ~voted,
                ~reported,
            )
            .order_by(Statement.id)
        )
        rows = (await self._session.execute(query)).all()
        return [Candidate(statement, int(votes)) for statement, votes in rows]

    async def vote(
        self, statement_id: int, participation_id: int, value: int, at: datetime
    ) -> int | None:
        """Cast or change a vote and record the event; return the earlier vote, if any."""
        current = await self.vote_of(statement_id, participation_id)
        earlier = current.value if current is not None else None
        if current is None:
            self._session.add(
                Vote(
                    statement_id=statement_id,
                    participation_id=participation_id,
                    value=value,
                    created_at=at,
                    updated_at=at,
                )
            )
        else:
            current.value = value
            current.updated_at = at
        self._session.add(
            VoteEvent(
                statement_id=statement_id, participation_id=participation_id, value=value, at=at
            )
        )
        await self._session.flush()
        return earlier

    async def vote_of(self, statement_id: int, participation_id: int) -> Vote | None:
        """A participation's current vote on a statement."""
        query = select(Vote).where(
            Vote.statement_id == statement_id, Vote.participation_id == participation_id
        )
        return (await self._session.execute(query)).scalar_one_or_none()

    async def count_votes(self, participation_id: int) -> int:
        """How many statements a participation has voted on."""
        query = (
            select(func.count()).select_from(Vote).where(Vote.participation_id == participation_id)
        )
        return int((await self._session.execute(query)).scalar_one())

    async def votes_of(self, participation_id: int) -> list[tuple[Vote, Statement]]:
        """A participation's current votes with their statements, most recent first."""
        query = (
            select(Vote, Statement)
            .join(Statement, Statement.id == Vote.statement_id)
            .where(Vote.participation_id == participation_id)
            .order_by(Vote.updated_at.desc(), Vote.id.desc())
        )
        return [(vote, statement) for vote, statement in (await self._session.execute(query)).all()]

    async def votes_of_consultation(
        self, consultation_id: int
    ) -> dict[int, list[tuple[int, int, datetime]]]:
        """participation id -> its current votes as (statement number, value, when), oldest
        first: ``votes_of`` for everyone at once, in one statement read in parts."""
        query = (
            select(Vote.participation_id, Statement.number, Vote.value, Vote.updated_at)
            .join(Statement, Statement.id == Vote.statement_id)
            .where(Statement.consultation_id == consultation_id)
            .order_by(Vote.participation_id, Vote.updated_at, Vote.id)
        )
        votes: dict[int, list[tuple[int, int, datetime]]] = {}
        async for participation_id, number, value, at in self._rows_in_parts(query):
            votes.setdefault(participation_id, []).append((number, value, at))
        return votes

    async def tallies(self, consultation_id: int) -> dict[int, Tally]:
        """The current votes on each statement of a consultation."""
        query = (
            select(Vote.statement_id, Vote.value, func.count())
            .join(Statement, Statement.id == Vote.statement_id)
            .where(Statement.consultation_id == consultation_id)
            .group_by(Vote.statement_id, Vote.value)
        )
        counts: dict[int, dict[int, int]] = {}
        for statement_id, value, count in (await self._session.execute(query)).all():
            counts.setdefault(statement_id, {})[value] = int(count)
        return {
            statement_id: Tally(
                agree=by_value.get(VoteValue.AGREE, 0),
                disagree=by_value.get(VoteValue.DISAGREE, 0),
                passed=by_value.get(VoteValue.PASS, 0),
            )
            for statement_id, by_value in counts.items()
        }

    async def current_votes(self, consultation_id: int) -> list[tuple[int, int, int]]:
        """Every current vote of a consultation: (participation id, statement id, value)."""
        query = (
            select(Vote.participation_id, Vote.statement_id, Vote.value)
            .join(Statement, Statement.id == Vote.statement_id)
            .where(Statement.consultation_id == consultation_id)
            .order_by(Vote.participation_id, Vote.statement_id)
        )
        return [(int(p), int(s), int(v)) for p, s, v in (await self._session.execute(query)).all()]

    async def vote_events(self, consultation_id: int) -> list[CastVote]:
        """Every vote as cast in a consultation, in order."""
        query = (
            select(
                VoteEvent.statement_id, VoteEvent.participation_id, VoteEvent.value, VoteEvent.at
            )
            .join(Statement, Statement.id == VoteEvent.statement_id)
            .where(Statement.consultation_id == consultation_id)
            .order_by(VoteEvent.at, VoteEvent.id)
        )
        return [CastVote(*row) async for row in self._rows_in_parts(query)]

    async def _rows_in_parts(
        self, query: Select[*tuple[Any, ...]]
    ) -> AsyncIterator[Row[*tuple[Any, ...]]]:
        """The rows of a query that may return hundreds of thousands, read in parts with a turn
        for the event loop's other tasks between parts: SQLite's driver here hands rows over
        without a wait, so a read in one go would hold every chat up for seconds."""
        result = await self._session.stream(query)
        async for rows in result.partitions(VOTES_PER_FETCH):
            for row in rows:
                yield row
            await asyncio.sleep(0)

    async def count_in(self, consultation_id: int) -> tuple[int, int]:
        """How many statements a consultation has, and how many votes stand on them."""
        statements = (
            select(func.count())
            .select_from(Statement)
            .where(Statement.consultation_id == consultation_id)
        )
        votes = (
            select(func.count())
            .select_from(Vote)
            .join(Statement, Statement.id == Vote.statement_id)
            .where(Statement.consultation_id == consultation_id)
        )
        return (
            int((await self._session.execute(statements)).scalar_one()),
            int((await self._session.execute(votes)).scalar_one()),
        )

    async def count_vote_events(self, consultation_id: int) -> int:
        """How many votes were ever cast in a consultation (a cheap "anything new?")."""
        query = (
            select(func.count())
            .select_from(VoteEvent)
            .join(Statement, Statement.id == VoteEvent.statement_id)
            .where(Statement.consultation_id == consultation_id)
        )
        return int((await self._session.execute(query)).scalar_one())

    async def add_event(self, event: VoteEvent) -> None:
        """Store one vote event as it was (a standing built by hand)."""
        self._session.add(event)

    async def add_vote(self, vote: Vote) -> None:
        """Store one current vote as it was (a standing built by hand)."""
        self._session.add(vote)

    async def add_imported_votes(self, events: list[CastVote], current: list[CurrentVote]) -> None:
        """Store many vote events and current votes as they were, with plain INSERTs.

        An import brings hundreds of thousands: as ORM objects held until the commit they took a
        gigabyte of memory.
        """
        connection = await self._session.connection()
        if events:
            await connection.execute(insert(VoteEvent), [event._asdict() for event in events])
        if current:
            await connection.execute(insert(Vote), [vote._asdict() for vote in current])

    async def voters(self, statement_id: int) -> list[Participation]:
        """The participations that voted on a statement."""
        query = (
            select(Participation)
            .join(Vote, Vote.participation_id == Participation.id)
            .where(Vote.statement_id == statement_id)
            .order_by(Participation.id)
        )
        return list((await self._session.execute(query)).scalars())

    async def add_volunteer(self, statement_id: int, participation_id: int, at: datetime) -> bool:
        """Record a volunteer; False if they had already offered to help."""
        query = select(Volunteer.id).where(
            Volunteer.statement_id == statement_id, Volunteer.participation_id == participation_id
        )
        if (await self._session.execute(query)).first() is not None:
            return False
        self._session.add(
            Volunteer(statement_id=statement_id, participation_id=participation_id, created_at=at)
        )
        await self._session.flush()
        return True

    async def delete_statements(self, statements: list[Statement]) -> None:
        """Delete statements with their votes, vote history, offers and reports (the foreign
        keys cascade); a moderation item about one keeps its pseudonyms and flags."""
        for statement in statements:
            await self._session.delete(statement)
        if statements:
            await self._session.flush()

    async def volunteered(self, participation_id: int) -> list[tuple[Volunteer, Statement]]:
        """The statements a participant offered to help with, oldest offer first."""
        query = (
            select(Volunteer, Statement)
            .join(Statement, Statement.id == Volunteer.statement_id)
            .where(Volunteer.participation_id == participation_id)
            .order_by(Volunteer.id)
        )
        return [(offer, statement) for offer, statement in await self._session.execute(query)]

    async def volunteers(
        self, consultation_id: int
    ) -> list[tuple[Volunteer, Statement, Participation, Participant]]:
        """Everyone who offered to help, with the statement and where to reach them."""
        query = (
            select(Volunteer, Statement, Participation, Participant)
            .join(Statement, Statement.id == Volunteer.statement_id)
            .join(Participation, Participation.id == Volunteer.participation_id)
            .join(Participant, Participant.id == Participation.participant_id)
            .where(Statement.consultation_id == consultation_id)
            .order_by(Statement.number, Volunteer.id)
        )
        return [tuple(row) for row in (await self._session.execute(query)).all()]  # type: ignore[misc]

    async def groups(self, consultation_id: int) -> OpinionGroups | None:
        """The latest opinion groups of a consultation."""
        return await self._session.get(OpinionGroups, consultation_id)

    async def save_groups(
        self, consultation_id: int, model: dict[str, Any], events_seen: int, at: datetime
    ) -> None:
        """Store newly computed opinion groups, unless groups of more votes are stored already.

        Two computations can overlap (the leader's timed job, a results page asking for fresh
        groups, ``borgerdialog ideas groups``): reading the row and then adding or changing it
        let both add one (a duplicate key for the second), or let the slower one put back groups
        of fewer votes. One INSERT … ON CONFLICT does either, and only forward.
        """
        insert = insert_for(self._session)(OpinionGroups).values(
            consultation_id=consultation_id,
            model=model,
            vote_events_seen=events_seen,
            computed_at=at,
        )
        newer = insert.excluded
        await self._session.execute(
            insert.on_conflict_do_update(
                index_elements=[OpinionGroups.consultation_id],
                set_={
                    "model": newer.model,
                    "vote_events_seen": newer.vote_events_seen,
                    "computed_at": newer.computed_at,
                },
                where=OpinionGroups.vote_events_seen <= newer.vote_events_seen,
            ),
            execution_options={"synchronize_session": False},
        )

    async def to_notify(self, now: datetime) -> list[tuple[Participation, Participant, int]]:
        """Who asked to hear of new statements and has some now: with how many are new.

        Only consultations whose ideas phase is open; never the participant's own statements.
        """
        newer = (
            select(func.count())
            .select_from(Statement)
            .where(
                Statement.consultation_id == Participation.consultation_id,
                Statement.visibility == Visibility.VISIBLE,
                Statement.created_at > Participation.notify_statements_at,
                Statement.participation_id.is_distinct_from(Participation.id),
                ~exists().where(
                    Vote.statement_id == Statement.id, Vote.participation_id == Participation.id
                ),
            )
            .scalar_subquery()
        )
        query = (
            select(Participation, Participant, newer)
            .join(Participant, Participant.id == Participation.participant_id)
            .join(Consultation, Consultation.id == Participation.consultation_id)
            .where(
                Participation.notify_statements_at.is_not(None),
                and_(Consultation.ideas_opens_at <= now, Consultation.ideas_closes_at > now),
                newer > 0,
            )
            .order_by(Participation.id)
        )
        return [
            (participation, participant, int(count))
            for participation, participant, count in (await self._session.execute(query)).all()
        ]
