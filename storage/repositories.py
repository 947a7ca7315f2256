"""Repositories: every query the application runs. They flush when they must, never commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    String,
    Table,
    bindparam,
    cast,
    delete,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.base import Executable

from storage.database import dialect_name, run_core
from storage.definitions import STORED_VERSION, DefinitionCache, move_version, note_version
from storage.models import (
    CONSENTED_STATUSES,
    Answer,
    Base,
    Consultation,
    ConsultationFile,
    InboxEvent,
    InboxStatus,
    Lane,
    ModerationItem,
    OutboxMessage,
    OutboxStatus,
    Participant,
    Participation,
    ParticipationStatus,
    PlannedPost,
    Question,
    Round,
    WebMessage,
)

# The outbox as a Core table: its hot-path statements skip the ORM's unit of work.
OUTBOX_TABLE: Table = OutboxMessage.__table__  # type: ignore[assignment]
# What a delivered message's content is replaced by.
CLEARED_PAYLOAD = {"cleared": True}

# The statements every update runs, built once: building a statement and its cache key costs
# SQLAlchemy more CPU than SQLite needs to run it. Values come as bound parameters.
_PARTICIPANT_OF_CHAT = select(Participant).where(
    Participant.channel == bindparam("channel"), Participant.chat_id == bindparam("chat_id")
)
# A participant writes: seen now, reachable, no longer stopped, one more event applied. One
# statement that also reads them, instead of a read, changes in Python and a flush of its own
# (which, made before the flow's first query, also cost that query an autoflush). A Core
# statement on the table: the same UPDATE through the ORM cost four times the CPU.
PARTICIPANTS_TABLE: Table = Participant.__table__  # type: ignore[assignment]
_PARTICIPANT_ARRIVES = (
    update(PARTICIPANTS_TABLE)
    .where(
        PARTICIPANTS_TABLE.c.channel == bindparam("b_channel"),
        PARTICIPANTS_TABLE.c.chat_id == bindparam("b_chat_id"),
    )
    .values(
        last_seen_at=bindparam("b_now"),
        unreachable_at=None,
        stopped_at=None,
        events_applied=PARTICIPANTS_TABLE.c.events_applied + 1,
    )
    .returning(*PARTICIPANTS_TABLE.c)
)
# On PostgreSQL a newcomer is stored by the same statement that finds them unknown (a round trip
# less on every first message): the INSERT's row comes only when the UPDATE found none. No
# other process adds the same chat meanwhile: each event is applied in its chat's turn (the
# chat's advisory lock), and a unique key would refuse a second row anyway.
_ARRIVED = _PARTICIPANT_ARRIVES.cte("arrived")
_ADDED = (
    insert(PARTICIPANTS_TABLE)
    .from_select(
        ["channel", "chat_id", "state", "events_applied", "created_at", "last_seen_at"],
        select(
            bindparam("b_channel", type_=PARTICIPANTS_TABLE.c.channel.type),
            bindparam("b_chat_id", type_=PARTICIPANTS_TABLE.c.chat_id.type),
            bindparam("b_state", type_=PARTICIPANTS_TABLE.c.state.type),
            literal(1),
            bindparam("b_now", type_=PARTICIPANTS_TABLE.c.created_at.type),
            bindparam("b_now", type_=PARTICIPANTS_TABLE.c.last_seen_at.type),
        ).where(~select(_ARRIVED.c.id).exists()),
    )
    .returning(*PARTICIPANTS_TABLE.c)
    .cte("added")
)
_PARTICIPANT_ARRIVES_OR_IS_ADDED = union_all(
    select(_ARRIVED, literal(False).label("added")),
    select(_ADDED, literal(True).label("added")),
)
# Every statement written takes the consultation's next number: built once, Core statements
# on the table, which cost a quarter of the same UPDATE through the ORM. (Participants are
# numbered later, many at once: ParticipationRepository.number_newcomers.)
_CONSULTATIONS: Table = Consultation.__table__  # type: ignore[assignment]
NEXT_NUMBER = {
    name: update(_CONSULTATIONS)
    .where(_CONSULTATIONS.c.id == bindparam("b_consultation_id"))
    .values({column: column + 1})
    .returning(column)
    for name, column in (
        ("participant", _CONSULTATIONS.c.participant_counter),
        ("statement", _CONSULTATIONS.c.statement_counter),
    )
}
_INBOX_STATUS = select(InboxEvent.id, InboxEvent.status).where(
    InboxEvent.channel == bindparam("channel"), InboxEvent.external_id == bindparam("external_id")
)
INBOX_TABLE: Table = InboxEvent.__table__  # type: ignore[assignment]
# Storing what a channel received, per dialect: on PostgreSQL the rows of a batch go as one
# INSERT of all of them (SQLAlchemy's "insertmanyvalues"), on SQLite one a row (run_core, on
# the loop's thread, costs microseconds each); a row stored already is left out, not returned.
_INBOX_STORE_NEW = {
    name: dialect_insert(INBOX_TABLE)
    .on_conflict_do_nothing(index_elements=["channel", "external_id"])
    .returning(INBOX_TABLE.c.external_id)
    for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}
# Applying an event: marked done (its raw copy dropped) only if still pending, its id returned.
_INBOX_CLAIM = (
    update(InboxEvent)
    .where(
        InboxEvent.channel == bindparam("b_channel"),
        InboxEvent.external_id == bindparam("b_external_id"),
        InboxEvent.status == InboxStatus.PENDING,
    )
    .values(
        status=InboxStatus.DONE,
        handled_at=bindparam("b_now"),
        applied_sequence=bindparam("b_applied_sequence"),
        payload=None,
        attempts=InboxEvent.attempts + 1,
    )
    # The definition version comes along: the flow reads it next, at a round trip's cost
    # on PostgreSQL (storage/definitions.py).
    .returning(InboxEvent.id, STORED_VERSION)
)
# A chat's turn across processes: a transaction-level advisory lock on (namespace, hash of the
# chat), freed by the commit or rollback that ends the unit of work, and by the server when the
# process holding it dies. Two chats whose hashes collide only wait for each other.
CHAT_TURN_NAMESPACE = 0x62645431  # "bdT1"; the leader's lock is a one-number key, another space
# Built as Core, not text(), so that run_core takes it: through the session's execution it cost
# about three times the CPU of the other statements of an update.
_CHAT_TURN = select(
    func.pg_advisory_xact_lock(bindparam("namespace"), func.hashtext(bindparam("chat")))
)
# Written out, not a parameter, wherever a chat's pending events are looked for: only then can
# PostgreSQL use their partial index (ix_inbox_events_pending_chat) in a prepared statement's
# generic plan, which knows no parameter's value.
_PENDING = literal_column(f"'{InboxStatus.PENDING}'", String)
_INBOX_PENDING_BEFORE = (
    select(InboxEvent.external_id, InboxEvent.payload)
    .where(
        InboxEvent.channel == bindparam("channel"),
        InboxEvent.chat_id == bindparam("chat_id"),
        InboxEvent.status == _PENDING,
        InboxEvent.id < bindparam("event_id"),
    )
    .order_by(InboxEvent.id)
)
_EARLIER = InboxEvent.__table__.alias("earlier")


def _first_pending_of_chat(channel: str, chat_id: str) -> Any:
    """The id of a chat's oldest pending event (NULL: none), given the names of the parameters.

    Asked as "is this event the chat's oldest pending one", not "does an earlier one exist": the
    latter, a correlated NOT EXISTS, was planned on a table not yet analyzed (a burst into a
    fresh inbox) as a scan of every pending event of the channel, for every claim. This form
    leaves the planner only the partial index, whatever the statistics say.
    """
    return (
        select(func.min(_EARLIER.c.id))
        .where(
            _EARLIER.c.channel == bindparam(channel),
            _EARLIER.c.chat_id == bindparam(chat_id),
            _EARLIER.c.status == _PENDING,
        )
        .scalar_subquery()
    )


_INBOX_STATUS_IN_TURN = select(
    InboxEvent.id,
    InboxEvent.status,
    func.coalesce(_first_pending_of_chat("channel", "chat_id"), InboxEvent.id) < InboxEvent.id,
).where(
    InboxEvent.channel == bindparam("channel"), InboxEvent.external_id == bindparam("external_id")
)
# The claim in a chat's turn (several processes): only when no earlier event of the chat waits.
_INBOX_CLAIM_IN_TURN = _INBOX_CLAIM.where(
    InboxEvent.id <= func.coalesce(_first_pending_of_chat("b_channel", "b_chat_id"), InboxEvent.id)
)
# An event's replies, ids returned in the order the rows were given: on PostgreSQL one INSERT
# of all rows (SQLAlchemy adds what it needs for that order), on SQLite one INSERT a row
# (run_core), which returns them in order anyway.
_OUTBOX_QUEUE_IN_ORDER = insert(OUTBOX_TABLE).returning(
    OUTBOX_TABLE.c.id, sort_by_parameter_order=True
)
# Read after every update to send what it queued: plain rows, not ORM objects (a third of the
# read's CPU went to building those).
_OUTBOX_PENDING_FOR_CHAT = (
    select(
        OUTBOX_TABLE.c.id,
        OUTBOX_TABLE.c.channel,
        OUTBOX_TABLE.c.chat_id,
        OUTBOX_TABLE.c.lane,
        OUTBOX_TABLE.c.payload,
    )
    .where(
        OUTBOX_TABLE.c.channel == bindparam("channel"),
        OUTBOX_TABLE.c.chat_id == bindparam("chat_id"),
        OUTBOX_TABLE.c.lane == bindparam("lane"),
        OUTBOX_TABLE.c.status == OutboxStatus.PENDING,
    )
    .order_by(OUTBOX_TABLE.c.id)
)
_OUTBOX_OUTCOME = {
    "status": bindparam("b_status"),
    "sent_at": bindparam("b_sent_at"),
    "external_message_id": bindparam("b_external_message_id"),
    "error": bindparam("b_error"),
    "attempts": OUTBOX_TABLE.c.attempts + 1,
}
# A failed message keeps its content for an operator; a delivered one's is dropped. Only a
# pending message is settled: an outcome written again (after a failure to record it, when part
# of it was committed) must not undo what the platform said of the message since.
_OUTBOX_SETTLE = {
    keep_content: update(OUTBOX_TABLE)
    .where(OUTBOX_TABLE.c.id == bindparam("b_id"), OUTBOX_TABLE.c.status == OutboxStatus.PENDING)
    .values(_OUTBOX_OUTCOME if keep_content else {**_OUTBOX_OUTCOME, "payload": CLEARED_PAYLOAD})
    for keep_content in (False, True)
}
_OUTBOX_EXTERNAL_REF = select(OutboxMessage.external_message_id).where(
    OutboxMessage.id == bindparam("message_id")
)
_PARTICIPATION = select(Participation).where(Participation.id == bindparam("participation_id"))
_ANSWERS_OF = select(Answer).where(Answer.participation_id == bindparam("participation_id"))
# The same two reads, which every answer makes, as Core statements of every column (see
# load_records).
PARTICIPATIONS_TABLE: Table = Participation.__table__  # type: ignore[assignment]
ANSWERS_TABLE: Table = Answer.__table__  # type: ignore[assignment]
_PARTICIPATION_ROW = select(*PARTICIPATIONS_TABLE.c).where(
    PARTICIPATIONS_TABLE.c.id == bindparam("participation_id")
)
_ANSWER_ROWS = select(*ANSWERS_TABLE.c).where(
    ANSWERS_TABLE.c.participation_id == bindparam("participation_id")
)
_PARTICIPATION_OF = select(Participation).where(
    Participation.consultation_id == bindparam("consultation_id"),
    Participation.participant_id == bindparam("participant_id"),
)


@dataclass(frozen=True)
class Settlement:
    """The outcome of one delivery attempt that will not be repeated."""

    message_id: int
    status: str
    at: datetime
    external_message_id: str | None = None
    error: str | None = None


def settlement_rows(settlements: Sequence[Settlement]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The statements that record delivery outcomes, each with its rows (none left empty)."""
    written = []
    for keep_content, statement in _OUTBOX_SETTLE.items():
        rows = [
            {
                "b_id": settled.message_id,
                "b_status": settled.status,
                "b_sent_at": settled.at,
                "b_external_message_id": settled.external_message_id,
                "b_error": settled.error[:200] if settled.error else None,
            }
            for settled in settlements
            if (settled.status == OutboxStatus.FAILED) == keep_content
        ]
        if rows:
            written.append((statement, rows))
    return written


class QueuedMessage(NamedTuple):
    """A message waiting in the outbox, as a delivery reads it."""

    id: int
    channel: str
    chat_id: str
    lane: str
    payload: dict[str, Any]


# A stored record of any mapped class.
Record = TypeVar("Record", bound=Base)

# Per mapped class: its columns but the id, as (attribute, column, what an unset one gets), and
# one INSERT of them returning the id (built once: reading the mapper on every call cost more
# than the INSERT).
_NewColumns = tuple[tuple[str, str, Callable[[], Any]], ...]
_ATTACHING_INSERTS: dict[type, tuple[Any, _NewColumns]] = {}


def _unset_value(column: Any) -> Callable[[], Any]:
    """What an unset column of a new record gets: its default, or None."""
    default = column.default
    if default is not None and default.is_callable:
        return lambda: default.arg(None)
    value = default.arg if default is not None and default.is_scalar else None
    return lambda: value


def _attaching_insert(kind: type[Base]) -> tuple[Any, _NewColumns]:
    attaching = _ATTACHING_INSERTS.get(kind)
    if attaching is None:
        table: Table = kind.__table__  # type: ignore[assignment]
        columns = tuple(
            (attribute.key, str(attribute.columns[0].key), _unset_value(attribute.columns[0]))
            for attribute in inspect(kind).column_attrs
            if not attribute.columns[0].primary_key
        )
        attaching = (insert(table).returning(table.c.id), columns)
        _ATTACHING_INSERTS[kind] = attaching
    return attaching


def _values_of_new(
    record: Base, columns: tuple[tuple[str, str, Callable[[], Any]], ...]
) -> dict[str, Any]:
    given = record.__dict__
    values: dict[str, Any] = {}
    for attribute, column, unset in columns:
        if attribute not in given:
            setattr(record, attribute, unset())
        values[column] = given[attribute]
    return values


async def add_without_flush(session: AsyncSession, record: Base) -> None:
    """Store a new record with one plain INSERT and put it in the session as if loaded.

    ``session.add`` and ``flush`` cost the unit-of-work machinery (about 0.3 ms on SQLite, twice
    the statement itself) on the path of every citizen's first message. The record must have
    every column set but the id (columns left unset get their default, or None); later changes
    to it are flushed as UPDATEs, as for any loaded record.
    """
    statement, columns = _attaching_insert(type(record))
    values = _values_of_new(record, columns)
    record.id = (await run_core(session, statement, values)).scalar_one()  # type: ignore[attr-defined]
    make_transient_to_detached(record)
    session.add(record)


def attach_loaded(session: AsyncSession, kind: type[Record], values: dict[str, Any]) -> Record:
    """Put a record a Core statement read (every column, by name) in the session as if loaded.

    Loading through the ORM costs several times the statement on the hot path. A record of that
    id the session holds already is brought up to date and returned instead.
    """
    present = session.sync_session.identity_map.get(identity_key(kind, values["id"]))
    if present is not None:
        for name, value in values.items():
            set_committed_value(present, name, value)
        return present
    record = kind(**values)
    make_transient_to_detached(record)
    session.add(record)
    return record


async def load_records(
    session: AsyncSession,
    kind: type[Record],
    rows: Executable,
    orm_query: Executable,
    parameters: dict[str, Any],
) -> list[Record]:
    """Records that ``orm_query`` would load, read by ``rows`` (the same query as a Core
    statement of every column) and put in the session as if loaded.

    The ORM's loading cost about three times the statement, on two reads of every answer. It
    also flushes the session's changes before it reads, and leaves a record the session holds
    as it is: a session with changes to flush gets ``orm_query`` itself; without any, a record
    the session holds is brought to what was read, which is what it holds already.
    """
    sync = session.sync_session
    if sync.new or sync.dirty or sync.deleted:
        return list((await session.execute(orm_query, parameters)).scalars().all())
    result = await run_core(session, rows, parameters)
    return [
        attach_loaded(session, kind, dict(zip(result.keys, row, strict=True)))
        for row in result.rows
    ]


# Per (mapped class, column): one UPDATE of that column by id (built once).
_COLUMN_WRITES: dict[tuple[type, str], Any] = {}


async def write_column(session: AsyncSession, record: Base, name: str, value: Any) -> None:
    """Set one column of a stored record, without making the unit's commit flush for it.

    While the unit has other changes to flush, the value goes with that flush. Alone, it would
    cost a flush of its own (the unit-of-work machinery, about twice one statement on the hot
    path): it gets one plain UPDATE now instead, and the value is set as if loaded.
    """
    pending = session.sync_session
    if pending.new or pending.dirty or inspect(record).modified:
        setattr(record, name, value)
        return
    kind = type(record)
    statement = _COLUMN_WRITES.get((kind, name))
    if statement is None:
        table: Table = record.__table__  # type: ignore[assignment]
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({name: bindparam("b_value")})
        )
        _COLUMN_WRITES[(kind, name)] = statement
    await run_core(session, statement, {"b_id": record.id, "b_value": value})  # type: ignore[attr-defined]
    set_committed_value(record, name, value)


# Per (mapped class, changed columns): one UPDATE of those columns by id (built once).
_ROW_WRITES: dict[tuple[type, tuple[str, ...]], Any] = {}


async def write_changed_records(session: AsyncSession) -> None:
    """Write the changed columns of a unit's changed records with plain UPDATEs, before its commit.

    The commit's flush would write the same rows through the unit-of-work machinery, which costs
    about as much again as the statements themselves: on the path of every citizen's answer (a
    participation moves on to its next question). Only when nothing was added or deleted: the
    ORM then orders inserts, updates and deletes by their foreign keys, which this does not.
    Rows are written in a fixed order (by class, then key), so two units lock them alike.
    The records are then clean, as after a flush.
    """
    pending = session.sync_session
    if pending.new or pending.deleted:
        return
    identity_map = pending.identity_map
    changed = [instance_state(record) for record in pending.dirty]
    changed.sort(key=lambda state: (state.class_.__name__, state.identity or ()))
    for state in changed:
        names = tuple(sorted(state.committed_state))
        identity = state.identity
        if not names or identity is None or not all(name in state.dict for name in names):
            # Nothing to write, or a value expired meanwhile: left to the flush.
            continue
        kind = state.class_
        # Every attribute is named as its column (tests/test_storage.py checks).
        keys = [str(column.key) for column in state.mapper.primary_key]
        statement = _ROW_WRITES.get((kind, names))
        if statement is None:
            table: Table = state.mapper.local_table  # type: ignore[assignment]
            statement = (
                update(table)
                .where(*(table.c[key] == bindparam(f"k_{key}") for key in keys))
                .values({name: bindparam(f"b_{name}") for name in names})
            )
            _ROW_WRITES[(kind, names)] = statement
        values = {f"b_{name}": state.dict[name] for name in names}
        # The key the row was loaded with, as the flush would use.
        values.update({f"k_{key}": value for key, value in zip(keys, identity, strict=True)})
        result = await run_core(session, statement, values)
        if result.rowcount != 1:
            # As the flush says it: the row went meanwhile (erased by another process).
            raise StaleDataError(
                f"UPDATE of {kind.__name__} {identity} matched {result.rowcount} rows"
            )
        # What the flush does once it has written a record (SQLAlchemy has no public call for
        # it): its changes become its loaded state, and the session no longer counts it dirty.
        state._commit_all(state.dict, identity_map)


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite both)."""
    return postgresql_insert if dialect_name(session) == "postgresql" else sqlite_insert


class ParticipantRepository:
    """Participants, keyed by channel and chat."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, channel: str, chat_id: str) -> Participant | None:
        """Return the participant of a chat, if known."""
        parameters = {"channel": channel, "chat_id": chat_id}
        return (await self._session.execute(_PARTICIPANT_OF_CHAT, parameters)).scalar_one_or_none()

    async def by_id(self, participant_id: int) -> Participant | None:
        """Return a participant by id."""
        return await self._session.get(Participant, participant_id)

    async def get_or_create(self, channel: str, chat_id: str, now: datetime) -> Participant:
        """Return the participant of a chat, creating it on first contact."""
        participant = await self.get(channel, chat_id)
        if participant is None:
            participant = await self.add(channel, chat_id, now)
        return participant

    async def set_state(self, participant: Participant, state: dict[str, Any]) -> None:
        """Replace what the conversation remembers of a participant."""
        await write_column(self._session, participant, "state", state)

    async def arrive(self, channel: str, chat_id: str, now: datetime) -> Participant | None:
        """Count an event of a known chat's participant and return them; None if unknown.

        They were seen now, are reachable, and a /stop no longer holds (the /stop flow sets
        it anew); ``events_applied`` is one more.
        """
        parameters = {"b_channel": channel, "b_chat_id": chat_id, "b_now": now}
        arrived = await run_core(self._session, _PARTICIPANT_ARRIVES, parameters)
        row = arrived.mapping_one_or_none()
        return None if row is None else attach_loaded(self._session, Participant, row)

    async def arrive_or_add(
        self, channel: str, chat_id: str, now: datetime
    ) -> tuple[Participant, bool]:
        """Count an event of a chat's participant, who is stored now if unknown; return them and
        whether they were (their first event counted: ``events_applied`` is 1)."""
        if dialect_name(self._session) != "postgresql":
            participant = await self.arrive(channel, chat_id, now)
            if participant is not None:
                return participant, False
            return await self.add(channel, chat_id, now, events_applied=1), True
        parameters = {"b_channel": channel, "b_chat_id": chat_id, "b_now": now, "b_state": {}}
        result = await run_core(self._session, _PARTICIPANT_ARRIVES_OR_IS_ADDED, parameters)
        row = result.mapping_one_or_none()
        assert row is not None  # one of the two gives a row
        added = bool(row.pop("added"))
        return attach_loaded(self._session, Participant, row), added

    async def add(
        self,
        channel: str,
        chat_id: str,
        now: datetime,
        *,
        state: dict[str, Any] | None = None,
        events_applied: int = 0,
    ) -> Participant:
        """Store a chat's new participant (one INSERT, with every value it starts with)."""
        participant = Participant(
            channel=channel,
            chat_id=chat_id,
            state=state or {},
            events_applied=events_applied,
            created_at=now,
            last_seen_at=now,
        )
        await add_without_flush(self._session, participant)
        return participant

    async def forget_quiet(self, before: datetime, limit: int) -> int:
        """Forget, as ``delete`` does, up to ``limit`` private chats that have not written since
        ``before`` and never said yes or no to a consultation (opening one and leaving it, the
        participation "invited", goes with them); return how many.

        Left alone: a group (Telegram's ids start with "-": the moderators' and the staff's
        chats, which other work writes to and whose members may work in the dashboard
        instead); a chat the bot still keeps messages of (replies not yet sent); and one with a
        message received since ``before`` or still pending, such as one that failed and is
        kept whole for an operator (its arrival was rolled back with it, so the chat looks
        quiet). The rows are locked: one who writes meanwhile is skipped (their arrival holds
        their row) or, after it, no longer quiet (PostgreSQL reads the row again for the lock);
        with their row held nothing else queues messages to them, as every other sender (posts,
        notices, decisions) needs a consented participation.

        Set-based, unlike ``delete``: the inbox has no index by chat beyond its pending rows,
        so each of ``delete``'s statements would read it whole once per chat. The conditions
        are subqueries run once (participations have no index by participant either).
        """
        answered = select(Participation.participant_id).where(
            Participation.status != ParticipationStatus.INVITED
        )
        kept_messages = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.channel == Participant.channel,
                OutboxMessage.chat_id == Participant.chat_id,
            )
            .exists()
        )
        wrote_since = select(InboxEvent.channel, InboxEvent.chat_id).where(
            InboxEvent.chat_id.is_not(None),
            (InboxEvent.received_at >= before) | (InboxEvent.status == InboxStatus.PENDING),
        )
        statement = (
            select(Participant.id, Participant.channel, Participant.chat_id)
            .where(
                Participant.last_seen_at < before,
                ~Participant.chat_id.startswith("-"),
                Participant.id.not_in(answered),
                ~kept_messages,
                tuple_(Participant.channel, Participant.chat_id).not_in(wrote_since),
            )
            .order_by(Participant.id)
            .limit(limit)
            .with_for_update(of=Participant, skip_locked=True)
        )
        quiet = (await self._session.execute(statement)).all()
        if not quiet:
            return 0
        chats: dict[str, list[str]] = {}
        for _, channel, chat_id in quiet:
            chats.setdefault(channel, []).append(chat_id)
        for channel, chat_ids in chats.items():
            # What delete does for one chat, for all of a channel's at once.
            handled = (
                (InboxEvent.channel == channel)
                & InboxEvent.chat_id.in_(chat_ids)
                & (InboxEvent.status != InboxStatus.PENDING)
            )
            cleared: dict[str, Any] = {"chat_id": None, "payload": None}
            if channel == "web":
                # A web event's external id holds the participant's id.
                cleared["external_id"] = literal("forgotten:") + cast(InboxEvent.id, String)
            await self._session.execute(update(InboxEvent).where(handled).values(**cleared))
            await self._session.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.channel == channel, OutboxMessage.chat_id.in_(chat_ids)
                )
            )
            if channel == "web":
                await self._session.execute(
                    delete(WebMessage).where(WebMessage.chat_id.in_(chat_ids))
                )
        ids = [participant_id for participant_id, _, _ in quiet]
        # Their participations (opened, never answered) go by the foreign key's cascade.
        await self._session.execute(
            delete(Participant)
            .where(Participant.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        return len(quiet)

    async def delete(self, participant: Participant) -> None:
        """Delete a participant and every record that still links to their chat.

        Inbox records stay (so a redelivered event is still recognised) but lose the chat,
        the raw copy and, in the web chat, the external id (it holds the participant's id);
        messages sent to the chat go. The reply to /forget itself is queued after this and is
        purged once sent (see OutboxRepository.purge_settled_before).
        """
        chat = (InboxEvent.channel == participant.channel) & (
            InboxEvent.chat_id == participant.chat_id
        )
        handled = chat & (InboxEvent.status != InboxStatus.PENDING)
        await self._session.execute(
            update(InboxEvent).where(handled).values(chat_id=None, payload=None)
        )
        if participant.channel == "web":
            await self._session.execute(
                update(InboxEvent)
                .where(
                    InboxEvent.channel == "web",
                    # Escaped: the id may hold "_", a LIKE wildcard.
                    InboxEvent.external_id.startswith(participant.chat_id + ":", autoescape=True),
                )
                .where(InboxEvent.status != InboxStatus.PENDING)
                .values(external_id=literal("forgotten:") + cast(InboxEvent.id, String))
            )
        await self._session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.channel == participant.channel,
                OutboxMessage.chat_id == participant.chat_id,
            )
        )
        if participant.channel == "web":
            # The web-chat transcript is the conversation itself; it goes with the participant.
            await self._session.execute(
                delete(WebMessage).where(WebMessage.chat_id == participant.chat_id)
            )
        await self._session.delete(participant)
        await self._session.flush()

    async def mark_unreachable(self, channel: str, chat_id: str, now: datetime) -> None:
        """Remember that a chat refuses messages (the citizen blocked the bot)."""
        await self._session.execute(
            update(Participant)
            .where(Participant.channel == channel, Participant.chat_id == chat_id)
            .values(unreachable_at=now)
        )


class InboxRepository:
    """The durable inbox of inbound events."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_new(
        self, channel: str, events: Sequence[tuple[str, str | None, dict[str, Any]]], now: datetime
    ) -> set[str]:
        """Store events given as (external id, chat id, payload); return external ids of new ones.

        An event already stored (Telegram delivers again what it had no confirmation for) is
        ignored, so every event is applied at most once.
        """
        if not events:
            return set()
        rows = [
            {
                "channel": channel,
                "external_id": external_id,
                "chat_id": chat_id,
                "payload": payload,
                "status": InboxStatus.PENDING,
                "attempts": 0,
                "received_at": now,
            }
            for external_id, chat_id, payload in events
        ]
        statement = _INBOX_STORE_NEW[dialect_name(self._session)]
        return set((await run_core(self._session, statement, rows)).scalars())

    async def get(self, event_id: int) -> InboxEvent | None:
        """Return one event by id."""
        return await self._session.get(InboxEvent, event_id)

    async def status_of(self, channel: str, external_id: str) -> tuple[int, str] | None:
        """The id and status of the event a channel knows by its own id, if stored.

        Applying an event needs no more, and reading the whole row would decode its raw copy.
        """
        parameters = {"channel": channel, "external_id": external_id}
        row = (await self._session.execute(_INBOX_STATUS, parameters)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def take_chat_turn(self, channel: str, chat_id: str) -> None:
        """Wait until no other process applies an event of this chat; hold that until commit.

        Only PostgreSQL is shared by several processes. On SQLite there is one process, whose
        own per-chat order already holds, and one writer at a time.
        """
        if dialect_name(self._session) != "postgresql":
            return
        chat = f"{channel}:{chat_id}"
        await run_core(self._session, _CHAT_TURN, {"namespace": CHAT_TURN_NAMESPACE, "chat": chat})

    async def status_in_turn(
        self, channel: str, external_id: str, chat_id: str
    ) -> tuple[int, str, bool] | None:
        """Like ``status_of``, and whether the chat has earlier events still pending (one query:
        it runs for every event while several processes share the database)."""
        parameters = {"channel": channel, "external_id": external_id, "chat_id": chat_id}
        row = (await self._session.execute(_INBOX_STATUS_IN_TURN, parameters)).one_or_none()
        return None if row is None else (row[0], row[1], bool(row[2]))

    async def pending_before(
        self, channel: str, chat_id: str, event_id: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """A chat's events stored before this one and not yet handled, oldest first."""
        parameters = {"channel": channel, "chat_id": chat_id, "event_id": event_id}
        rows = (await self._session.execute(_INBOX_PENDING_BEFORE, parameters)).all()
        return [(external_id, payload or {}) for external_id, payload in rows]

    async def stale_pending(self, received_before: datetime, limit: int) -> list[InboxEvent]:
        """Events of any channel stored before a time and still pending, oldest first."""
        statement = (
            select(InboxEvent)
            .where(
                InboxEvent.status == InboxStatus.PENDING, InboxEvent.received_at < received_before
            )
            .order_by(InboxEvent.id)
            .limit(limit)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def pending_among(self, channel: str, external_ids: list[str]) -> set[str]:
        """Of these external ids, the ones stored and still pending."""
        if not external_ids:
            return set()
        statement = select(InboxEvent.external_id).where(
            InboxEvent.channel == channel,
            InboxEvent.external_id.in_(external_ids),
            InboxEvent.status == InboxStatus.PENDING,
        )
        return set((await self._session.execute(statement)).scalars().all())

    async def pending(self, channel: str) -> list[InboxEvent]:
        """Return the events of a channel not yet handled, oldest first."""
        statement = (
            select(InboxEvent)
            .where(InboxEvent.channel == channel, InboxEvent.status == InboxStatus.PENDING)
            .order_by(InboxEvent.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def unlink(self, event_id: int, channel: str) -> None:
        """Make an event name nobody: no chat, no raw copy, and no web participant's id."""
        forgotten = {"external_id": f"forgotten:{event_id}"} if channel == "web" else {}
        await self._session.execute(
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(chat_id=None, payload=None, **forgotten)
        )

    async def claim(
        self,
        channel: str,
        external_id: str,
        now: datetime,
        applied_sequence: int,
        *,
        in_turn_of: str | None = None,
    ) -> int | None:
        """Mark a pending event applied and drop its raw copy; return its id, or None if it is
        not pending (applied already, failed, not stored) or, given ``in_turn_of`` (its chat),
        an earlier event of that chat still is. It stays so only if the unit commits."""
        parameters = {
            "b_channel": channel,
            "b_external_id": external_id,
            "b_now": now,
            "b_applied_sequence": applied_sequence,
        }
        statement = _INBOX_CLAIM
        if in_turn_of is not None:
            parameters["b_chat_id"] = in_turn_of
            statement = _INBOX_CLAIM_IN_TURN
        claimed = (await run_core(self._session, statement, parameters)).rows
        if not claimed:
            return None
        event_id, definition_version = claimed[0]
        note_version(self._session, definition_version)
        return int(event_id)

    async def mark_failed(self, event_id: int, now: datetime, error: str) -> None:
        """Record a handling failure; the raw event stays for a retry or an inspection."""
        await self._session.execute(
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(
                status=InboxStatus.FAILED,
                handled_at=now,
                error=error[:200],
                attempts=InboxEvent.attempts + 1,
            )
        )

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many events wait to be applied, and when the oldest of them was stored."""
        statement = select(func.count(), func.min(InboxEvent.received_at)).where(
            InboxEvent.status == InboxStatus.PENDING
        )
        count, oldest = (await self._session.execute(statement)).one()
        return int(count), oldest

    async def count_by_status(self) -> dict[str, int]:
        """Count events per status."""
        statement = select(InboxEvent.status, func.count()).group_by(InboxEvent.status)
        rows = (await self._session.execute(statement)).all()
        return {status: count for status, count in rows}

    async def purge_handled_before(self, cutoff: datetime) -> int:
        """Delete handled and failed events older than the cutoff; return how many.

        Failed events keep their raw copy for an operator to look at, but only this long.
        """
        result = await self._session.execute(
            delete(InboxEvent).where(
                InboxEvent.status != InboxStatus.PENDING, InboxEvent.handled_at < cutoff
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def add_failed(
        self,
        channel: str,
        external_id: str,
        chat_id: str | None,
        payload: dict[str, Any],
        reason: str,
        now: datetime,
    ) -> None:
        """Store an event as failed at once: set aside, never applied."""
        dialect_insert = insert_for(self._session)
        await self._session.execute(
            dialect_insert(InboxEvent)
            .values(
                channel=channel,
                external_id=external_id[:64],
                chat_id=chat_id[:64] if chat_id else None,
                payload=payload,
                status=InboxStatus.FAILED,
                attempts=1,
                error=reason[:200],
                received_at=now,
                handled_at=now,
            )
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        )


_PLATFORM_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


# Where moderation cards go: the moderators' Telegram group (a group's id is negative; a
# citizen's private chat, the web chat's and Meta's ids never are).
_IN_A_GROUP = OutboxMessage.chat_id.startswith("-")


class OutboxRepository:
    """Messages waiting to be delivered, and what became of them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        channel: str,
        chat_id: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        lane: str = Lane.REPLY,
        inbox_event_id: int | None = None,
    ) -> int:
        """Queue one message; return its id."""
        return (
            await self.add_many(
                [(channel, chat_id, payload)], now, inbox_event_id=inbox_event_id, lane=lane
            )
        )[0]

    async def add_many(
        self,
        messages: Sequence[tuple[str, str, dict[str, Any]]],
        now: datetime,
        *,
        lane: str = Lane.REPLY,
        inbox_event_id: int | None = None,
    ) -> list[int]:
        """Queue messages given as (channel, chat id, payload), in this order; return their ids.

        One statement for all: an event's replies are queued on the hot path of every update.
        """
        if not messages:
            return []
        rows = [
            {
                "channel": channel,
                "chat_id": chat_id,
                "lane": lane,
                "inbox_event_id": inbox_event_id,
                "payload": payload,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "created_at": now,
            }
            for channel, chat_id, payload in messages
        ]
        return (await run_core(self._session, _OUTBOX_QUEUE_IN_ORDER, rows)).scalars()

    async def pending_for_chat(self, channel: str, chat_id: str, lane: str) -> list[QueuedMessage]:
        """Return a chat's undelivered messages in one lane, in the order they were queued."""
        parameters = {"channel": channel, "chat_id": chat_id, "lane": lane}
        rows = (await run_core(self._session, _OUTBOX_PENDING_FOR_CHAT, parameters)).rows
        return [QueuedMessage(*row) for row in rows]

    async def chats_with_pending(
        self, channel: str, lane: str, queued_before: datetime | None = None
    ) -> list[str]:
        """Return the chats that have undelivered messages in one lane (queued before a time)."""
        statement = (
            select(OutboxMessage.chat_id)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.lane == lane,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .group_by(OutboxMessage.chat_id)
            .order_by(func.min(OutboxMessage.id))
        )
        if queued_before is not None:
            statement = statement.where(OutboxMessage.created_at < queued_before)
        return list((await self._session.execute(statement)).scalars().all())

    async def card(self, message_id: int) -> OutboxMessage | None:
        """The message of a moderation card, by the id its item keeps; None when that id now
        belongs to a message to a citizen (SQLite hands a purged row's id out again)."""
        statement = select(OutboxMessage).where(OutboxMessage.id == message_id, _IN_A_GROUP)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def drop_pending_of_posts(self, post_ids: list[int]) -> int:
        """Delete what planned posts still have to send (their consultation is being deleted)."""
        if not post_ids:
            return 0
        result = await self._session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.post_id.in_(post_ids),
                OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.FAILED)),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def rewrite_unsent(
        self, message_id: int, payload: dict[str, Any], *, card: bool = False
    ) -> bool:
        """Replace what a message not yet delivered will say; False if it went out already.
        A moderation card (``card``) is rewritten only in a group chat, never a citizen's."""
        statement = update(OutboxMessage).where(
            OutboxMessage.id == message_id,
            OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.FAILED)),
        )
        if card:
            statement = statement.where(_IN_A_GROUP)
        result = await self._session.execute(statement.values(payload=payload))
        return bool(getattr(result, "rowcount", 0))

    async def settle(
        self,
        message_id: int,
        status: str,
        now: datetime,
        *,
        external_message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of one delivery attempt that will not be repeated."""
        await self.settle_many([Settlement(message_id, status, now, external_message_id, error)])

    async def settle_many(self, settlements: Sequence[Settlement]) -> None:
        """Record the outcomes of delivery attempts that will not be repeated.

        A delivered message's content is dropped: it may repeat a citizen's answers, and the
        outbox is a delivery queue, not an archive of conversations. A failed one keeps it, for
        an operator. One statement of each kind for all of them (an executemany).
        """
        for statement, rows in settlement_rows(settlements):
            await run_core(self._session, statement, rows)

    async def get(self, message_id: int) -> OutboxMessage | None:
        """Return one message by id."""
        return await self._session.get(OutboxMessage, message_id)

    async def record_platform_status(
        self,
        channel: str,
        external_id: str,
        status: str,
        rank: int,
        outcome: str | None,
        error: str | None,
    ) -> int | None:
        """Note what the platform said of a sent message; return its id (None: not ours).

        ``rank`` orders the statuses (sent < delivered < read < failed), so a notification that
        arrives late never undoes a later one. ``outcome`` replaces a sent message's status (a
        message that failed after all: failed, or unreachable).
        """
        if not external_id:
            return None
        message = (
            await self._session.execute(
                select(OutboxMessage)
                .where(
                    OutboxMessage.channel == channel,
                    OutboxMessage.external_message_id == external_id,
                )
                .limit(1)
            )
        ).scalar_one_or_none()
        if message is None:
            return None
        if _PLATFORM_RANK.get(message.platform_status or "", 0) < rank:
            message.platform_status = status
        if outcome is not None and message.status == OutboxStatus.SENT:
            message.status = outcome
            message.error = (error or outcome)[:200]
        return message.id

    async def record_read_until(self, channel: str, chat_id: str, until: datetime) -> None:
        """Note that a chat's messages sent up to a time were read (Messenger's read watermark).

        A message failed since, or already read, keeps what it has.
        """
        await self._session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.status == OutboxStatus.SENT,
                OutboxMessage.sent_at <= until,
                or_(
                    OutboxMessage.platform_status.is_(None),
                    OutboxMessage.platform_status.in_(("sent", "delivered")),
                ),
            )
            .values(platform_status="read")
        )

    async def external_ref(self, message_id: int) -> str | None:
        """The channel's id of a message once it was sent (not the whole row and its content)."""
        return (
            await self._session.execute(_OUTBOX_EXTERNAL_REF, {"message_id": message_id})
        ).scalar_one_or_none()

    async def count_by_status(self) -> dict[str, int]:
        """Count messages per status."""
        statement = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        rows = (await self._session.execute(statement)).all()
        return {status: count for status, count in rows}

    async def pending_by_lane(self) -> dict[str, int]:
        """Count undelivered messages per lane."""
        statement = (
            select(OutboxMessage.lane, func.count())
            .where(OutboxMessage.status == OutboxStatus.PENDING)
            .group_by(OutboxMessage.lane)
        )
        rows = (await self._session.execute(statement)).all()
        return {lane: count for lane, count in rows}

    async def purge_settled_before(self, cutoff: datetime) -> int:
        """Delete delivered or given-up messages older than the cutoff; return how many.

        Messages to a private chat whose participant is gone (/forget) go as soon as they are
        settled. Group and channel chats (negative Telegram ids: the moderators', the staff's,
        the public channel) have no participant and keep their messages the full period, since
        cards and progress messages there are edited later.
        """
        gone = ~(
            select(Participant.id)
            .where(
                Participant.channel == OutboxMessage.channel,
                Participant.chat_id == OutboxMessage.chat_id,
            )
            .exists()
        )
        # A card stays while its item does: deciding, /forget or deleting the consultation
        # edit it later, and its id must not pass to another message meanwhile.
        a_card = select(ModerationItem.id).where(ModerationItem.card_message_id == OutboxMessage.id)
        purged = (
            (OutboxMessage.status != OutboxStatus.PENDING)
            & ((OutboxMessage.sent_at < cutoff) | (gone & ~_IN_A_GROUP))
            & ~a_card.exists()
        )
        # What still names a purged message forgets it first: SQLite numbers a new row one
        # above the highest id there is, so a purge that takes the newest messages hands
        # their ids out again, and editing "the question's message" or "the post's progress"
        # would then change another message, even another chat's. Forgotten, the question is
        # asked in a new message next time (a post's progress, edited only while it goes out,
        # is left as it was).
        purged_ids = select(OutboxMessage.id).where(purged)
        await self._session.execute(
            update(Participation)
            .where(Participation.question_message_id.in_(purged_ids))
            .values(question_message_id=None)
        )
        await self._session.execute(
            update(PlannedPost)
            .where(PlannedPost.progress_message_id.in_(purged_ids))
            .values(progress_message_id=None)
        )
        result = await self._session.execute(delete(OutboxMessage).where(purged))
        return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class KeptFile:
    """A kept consultation file as a list shows it: which, and when it was imported."""

    id: int
    imported_at: datetime


class ConsultationRepository:
    """Consultations with their rounds and questions.

    With a definition cache, the reads of a unit that changes nothing come from memory while
    the stored definition version stays put (see storage/definitions.py); the objects they
    return are then shared by every unit and must not be changed.
    """

    def __init__(self, session: AsyncSession, definitions: DefinitionCache | None = None) -> None:
        self._session = session
        self._definitions = definitions
        # The cache's generation when this unit first used it (None: not yet).
        self._generation: int | None = None
        # Set once this unit changes a definition: from then on it reads the database only.
        self.changing = False

    async def _cached(self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        cache = self._definitions
        if cache is None or self.changing:
            return await load()
        if self._generation is None:
            self._generation = await cache.current_generation(self._session)
        found = cache.get(key)
        if found is None:
            found = await load()
            if found is not None:
                cache.put(key, found, self._generation)
        return found

    async def begin_change(self) -> None:
        """This unit is about to change definitions: read them from the database from now on,
        and let every process know once the unit commits."""
        if not self.changing:
            self.changing = True
            await move_version(self._session)

    async def by_slug(self, slug: str) -> Consultation | None:
        """Return a consultation by its slug."""

        async def load() -> Consultation | None:
            statement = select(Consultation).where(Consultation.slug == slug)
            return (await self._session.execute(statement)).scalar_one_or_none()

        found: Consultation | None = await self._cached(("slug", slug), load)
        return found

    async def get(self, consultation_id: int) -> Consultation | None:
        """Return a consultation by id."""

        async def load() -> Consultation | None:
            return await self._session.get(Consultation, consultation_id)

        found: Consultation | None = await self._cached(("id", consultation_id), load)
        return found

    async def all(self) -> list[Consultation]:
        """Return every consultation, by slug."""

        async def load() -> list[Consultation]:
            statement = select(Consultation).order_by(Consultation.slug)
            return list((await self._session.execute(statement)).scalars().all())

        return list(await self._cached(("all",), load))

    async def add(self, consultation: Consultation) -> Consultation:
        """Add a new consultation."""
        await self.begin_change()
        self._session.add(consultation)
        await self._session.flush()
        return consultation

    async def keep_file(self, consultation_id: int, source: str, now: datetime) -> bool:
        """Keep a consultation's file as imported, unless it is the same as the newest kept;
        whether it was kept."""
        newest = await self.file(consultation_id)
        # Line ends aside: the same file pasted in a browser comes back with CR LF.
        if newest is not None and newest.source.splitlines() == source.splitlines():
            return False
        self._session.add(
            ConsultationFile(consultation_id=consultation_id, imported_at=now, source=source)
        )
        await self._session.flush()
        return True

    async def files(self, consultation_id: int) -> list[KeptFile]:
        """The files kept of a consultation, newest first, without their texts."""
        statement = (
            select(ConsultationFile.id, ConsultationFile.imported_at)
            .where(ConsultationFile.consultation_id == consultation_id)
            .order_by(ConsultationFile.id.desc())
        )
        rows = (await self._session.execute(statement)).all()
        return [KeptFile(file_id, imported_at) for file_id, imported_at in rows]

    async def file(
        self, consultation_id: int, file_id: int | None = None
    ) -> ConsultationFile | None:
        """One kept file of a consultation (the newest without an id), with its text."""
        statement = select(ConsultationFile).where(
            ConsultationFile.consultation_id == consultation_id
        )
        if file_id is not None:
            statement = statement.where(ConsultationFile.id == file_id)
        statement = statement.order_by(ConsultationFile.id.desc()).limit(1)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def lock(self, consultation_id: int) -> None:
        """Hold a consultation's row until the unit ends: a participation cannot be added to it
        meanwhile, nor another edit pass its check (PostgreSQL; SQLite's unit holds the whole
        database already)."""
        statement = select(Consultation.id).where(Consultation.id == consultation_id)
        await self._session.execute(statement.with_for_update())

    async def delete(self, consultation: Consultation) -> None:
        """Delete a consultation and, by the database's cascades, everything that belongs to
        it: rounds, questions and their answers, participations, statements and votes,
        moderation items, planned posts and kept files."""
        await self.begin_change()
        await self._session.delete(consultation)
        await self._session.flush()

    async def rounds(self, consultation_id: int) -> list[Round]:
        """Return a consultation's rounds in order."""

        async def load() -> list[Round]:
            statement = (
                select(Round)
                .where(Round.consultation_id == consultation_id)
                .order_by(Round.position)
            )
            return list((await self._session.execute(statement)).scalars().all())

        return list(await self._cached(("rounds", consultation_id), load))

    async def all_rounds(self) -> list[Round]:
        """Return the rounds of every consultation."""
        statement = select(Round).order_by(Round.opens_at)
        return list((await self._session.execute(statement)).scalars().all())

    async def replace_rounds(self, consultation_id: int, rounds: list[Round]) -> None:
        """Replace a consultation's rounds."""
        await self.begin_change()
        await self._session.execute(delete(Round).where(Round.consultation_id == consultation_id))
        self._session.add_all(rounds)
        await self._session.flush()

    async def questions(
        self, consultation_id: int, *, include_archived: bool = False
    ) -> list[Question]:
        """Return a consultation's questions in order."""

        async def load() -> list[Question]:
            statement = select(Question).where(Question.consultation_id == consultation_id)
            if not include_archived:
                statement = statement.where(Question.archived_at.is_(None))
            statement = statement.order_by(Question.archived_at.is_not(None), Question.position)
            return list((await self._session.execute(statement)).scalars().all())

        return list(await self._cached(("questions", consultation_id, include_archived), load))

    async def add_question(self, question: Question) -> None:
        """Add a question."""
        await self.begin_change()
        self._session.add(question)
        await self._session.flush()

    async def answer_counts(self, consultation_id: int) -> dict[int, int]:
        """Count the answers each question of a consultation has."""
        statement = (
            select(Answer.question_id, func.count())
            .join(Question, Question.id == Answer.question_id)
            .where(Question.consultation_id == consultation_id)
            .group_by(Answer.question_id)
        )
        return {
            question_id: count
            for question_id, count in (await self._session.execute(statement)).all()
        }


def _only_in(consultation_id: int) -> Any:
    """Whether a participant takes part in this consultation and in no other."""
    elsewhere = (
        select(Participation.id)
        .where(
            Participation.participant_id == Participant.id,
            Participation.consultation_id != consultation_id,
        )
        .exists()
    )
    here = select(Participation.participant_id).where(
        Participation.consultation_id == consultation_id
    )
    return Participant.id.in_(here) & ~elsewhere


class ParticipationRepository:
    """Participations and their answers."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def has_consented(self, participant_id: int) -> bool:
        """Whether a participant has given consent in any consultation (and not withdrawn it)."""
        statement = select(Participation.id).where(
            Participation.participant_id == participant_id,
            Participation.status.in_(CONSENTED_STATUSES),
        )
        return (await self._session.execute(statement.limit(1))).first() is not None

    async def get(self, participation_id: int) -> Participation | None:
        """Return a participation by id."""
        parameters = {"participation_id": participation_id}
        found = await load_records(
            self._session, Participation, _PARTICIPATION_ROW, _PARTICIPATION, parameters
        )
        return found[0] if found else None

    async def set_question_message(self, participation: Participation, message_id: int) -> None:
        """Remember the outbox message that asks a participation's current question."""
        await write_column(self._session, participation, "question_message_id", message_id)

    async def find(self, consultation_id: int, participant_id: int) -> Participation | None:
        """Return a participant's participation in a consultation."""
        parameters = {"consultation_id": consultation_id, "participant_id": participant_id}
        return (await self._session.execute(_PARTICIPATION_OF, parameters)).scalar_one_or_none()

    async def add(self, participation: Participation) -> Participation:
        """Add a participation."""
        await add_without_flush(self._session, participation)
        return participation

    async def number_newcomers(self, consultation_id: int) -> int:
        """Give every participation of a consultation without a number the next numbers, in
        the order they joined; return how many.

        A newcomer is stored without a number: taken as they came, every newcomer's unit would
        hold the consultation's row from its number to its commit, and a burst of newcomers,
        in any number of processes, would go through one at a time. The numbers are only for
        the open data (Pol.is's participant ids), so its export gives them out first. The
        counter's row lock keeps two exports at once from giving out one number twice, and the
        counter stays above every number given, imported ones too.
        """
        counter = _CONSULTATIONS.c.participant_counter
        locked = (
            update(_CONSULTATIONS)
            .where(_CONSULTATIONS.c.id == consultation_id)
            .values({counter: counter})
            .returning(counter)
        )
        given = (await self._session.execute(locked)).scalar_one()
        waiting = (
            select(
                Participation.id,
                func.row_number().over(order_by=Participation.id).label("place"),
            )
            .where(Participation.consultation_id == consultation_id, Participation.number.is_(None))
            .subquery()
        )
        given_now = (
            (
                await self._session.execute(
                    update(Participation)
                    .where(Participation.id == waiting.c.id)
                    .values(number=given + waiting.c.place)
                    .returning(Participation.number)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )
        numbers = [number for number in given_now if number is not None]
        if numbers:
            # The highest number given, not the count: a participation deleted meanwhile is
            # skipped by the UPDATE, and its place with it.
            await self._session.execute(
                update(_CONSULTATIONS)
                .where(_CONSULTATIONS.c.id == consultation_id)
                .values({counter: max(numbers)})
            )
        return len(numbers)

    async def of_participant(self, participant_id: int) -> list[Participation]:
        """Return every participation of a participant."""
        statement = (
            select(Participation)
            .where(Participation.participant_id == participant_id)
            .order_by(Participation.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def only_in(self, consultation_id: int) -> list[Participant]:
        """The participants who take part in this consultation and in no other."""
        statement = select(Participant).where(_only_in(consultation_id)).order_by(Participant.id)
        return list((await self._session.execute(statement)).scalars().all())

    async def count_only_in(self, consultation_id: int) -> int:
        """How many participants take part in this consultation and in no other."""
        statement = select(func.count()).select_from(Participant).where(_only_in(consultation_id))
        return int((await self._session.execute(statement)).scalar_one())

    async def count_in(self, consultation_id: int) -> tuple[int, int]:
        """How many participations a consultation has, and how many answers they gave."""
        participations = (
            select(func.count())
            .select_from(Participation)
            .where(Participation.consultation_id == consultation_id)
        )
        answers = (
            select(func.count())
            .select_from(Answer)
            .join(Question, Question.id == Answer.question_id)
            .where(Question.consultation_id == consultation_id, Answer.skipped.is_(False))
        )
        return (
            int((await self._session.execute(participations)).scalar_one()),
            int((await self._session.execute(answers)).scalar_one()),
        )

    async def of_consultation(self, consultation_id: int) -> list[Participation]:
        """Return every participation in a consultation, oldest first."""
        statement = (
            select(Participation)
            .where(Participation.consultation_id == consultation_id)
            .order_by(Participation.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def channels_of_consultation(self, consultation_id: int) -> dict[int, str]:
        """participant id -> the channel they write on, for everyone in a consultation (one
        statement, where an export once asked for each participant in turn)."""
        statement = (
            select(Participant.id, Participant.channel)
            .join(Participation, Participation.participant_id == Participant.id)
            .where(Participation.consultation_id == consultation_id)
        )
        return {int(id_): channel for id_, channel in (await self._session.execute(statement))}

    async def consent_times(self, consultation_ids: Sequence[int]) -> list[tuple[int, datetime]]:
        """When each participant said yes to taking part: (consultation id, consent time) for
        every participation with consent in these consultations, oldest first. (The results
        post counts its participants the same way: everyone who gave consent.)"""
        statement = (
            select(Participation.consultation_id, Participation.consent_at)
            .where(
                Participation.consultation_id.in_(consultation_ids),
                Participation.consent_at.is_not(None),
            )
            .order_by(Participation.consent_at)
        )
        return [
            (consultation_id, consent_at)
            for consultation_id, consent_at in (await self._session.execute(statement)).all()
            if consent_at is not None
        ]

    async def answer(self, answer_id: int) -> Answer | None:
        """Return one answer by id."""
        return await self._session.get(Answer, answer_id)

    async def answers(self, participation_id: int) -> list[Answer]:
        """Return a participation's answers."""
        parameters = {"participation_id": participation_id}
        return await load_records(self._session, Answer, _ANSWER_ROWS, _ANSWERS_OF, parameters)

    async def answers_of_consultation(self, consultation_id: int) -> list[Answer]:
        """Return every answer given in a consultation (anonymised ones included)."""
        statement = (
            select(Answer)
            .join(Question, Question.id == Answer.question_id)
            .where(Question.consultation_id == consultation_id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def save_answer(self, answer: Answer) -> None:
        """Store a new answer (it has its id on return)."""
        await add_without_flush(self._session, answer)

    async def delete_answer(self, answer: Answer) -> None:
        """Delete an answer."""
        await self._session.delete(answer)
        await self._session.flush()

    async def erase_participant(self, participant_id: int, keep_question_kinds: set[str]) -> int:
        """Erase a participant's participations and answers; keep some answers anonymised.

        Answers to questions of the kinds kept (published ideas) lose their link to the
        participant instead of being deleted. Return how many answers were anonymised.
        """
        participation_ids = select(Participation.id).where(
            Participation.participant_id == participant_id
        )
        kept_questions = select(Question.id).where(Question.kind.in_(keep_question_kinds))
        anonymised = await self._session.execute(
            update(Answer)
            .where(Answer.participation_id.in_(participation_ids))
            .where(Answer.question_id.in_(kept_questions), Answer.skipped.is_(False))
            .values(participation_id=None)
        )
        await self._session.execute(
            delete(Answer).where(Answer.participation_id.in_(participation_ids))
        )
        await self._session.execute(
            delete(Participation).where(Participation.participant_id == participant_id)
        )
        return int(getattr(anonymised, "rowcount", 0) or 0)


class WebMessageRepository:
    """The web chat's transcript: what each web participant and the bot said."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        chat_id: str,
        author: str,
        text: str,
        now: datetime,
        *,
        buttons: list[list[dict[str, str]]] | None = None,
        attachment: dict[str, str] | None = None,
        expects_text: bool = False,
    ) -> WebMessage:
        """Add a message to a chat's transcript."""
        message = WebMessage(
            chat_id=chat_id,
            author=author,
            text=text,
            buttons=buttons or [],
            attachment=attachment,
            expects_text=expects_text,
            created_at=now,
            updated_at=now,
        )
        self._session.add(message)
        await self._session.flush()
        return message

    async def get(self, chat_id: str, message_id: int) -> WebMessage | None:
        """Return one message of a chat."""
        message = await self._session.get(WebMessage, message_id)
        return message if message is not None and message.chat_id == chat_id else None

    async def history(self, chat_id: str, limit: int) -> list[WebMessage]:
        """Return the newest messages of a chat, oldest first."""
        statement = (
            select(WebMessage)
            .where(WebMessage.chat_id == chat_id)
            .order_by(WebMessage.id.desc())
            .limit(limit)
        )
        return list(reversed((await self._session.execute(statement)).scalars().all()))

    async def erase_transcript(self, channel: str, chat_id: str) -> int:
        """Delete a web participant's whole transcript; return how many messages went."""
        if channel != "web":
            return 0
        result = await self._session.execute(
            delete(WebMessage).where(WebMessage.chat_id == chat_id)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def erase_citizen_text(self, channel: str, chat_id: str) -> int:
        """Delete what a participant wrote from their transcript; return how many messages.

        Only the web chat keeps a transcript; for other channels there is nothing to erase.
        """
        if channel != "web":
            return 0
        result = await self._session.execute(
            delete(WebMessage).where(WebMessage.chat_id == chat_id, WebMessage.author == "citizen")
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def purge_unconsented(self, idle_before: datetime) -> int:
        """Delete the transcripts of web visitors idle since the cutoff who never consented.

        Without consent nothing they wrote may be kept; the transcript only served the
        conversation they left. Messages of a participant who is gone (the answer to /forget,
        shown to them after their data went) go too once that old. Return how many went.
        """
        consented = (
            select(Participation.id)
            .where(
                Participation.participant_id == Participant.id,
                Participation.status.in_(CONSENTED_STATUSES),
            )
            .exists()
        )
        idle_visitors = select(Participant.chat_id).where(
            Participant.channel == "web", Participant.last_seen_at < idle_before, ~consented
        )
        known = select(Participant.chat_id).where(Participant.channel == "web")
        result = await self._session.execute(
            delete(WebMessage).where(
                WebMessage.chat_id.in_(idle_visitors)
                | (WebMessage.chat_id.not_in(known) & (WebMessage.updated_at < idle_before))
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
