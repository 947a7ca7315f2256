"""Storage on SQLite and PostgreSQL: migrations, the unit of work, the inbox and outbox."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import bindparam, event, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from storage import database
from storage.database import create_engine, create_session_factory, is_transient, run_core
from storage.migrate import (
    HEAD_REVISION,
    SchemaOutdated,
    _config,
    head_revision,
    schema_status,
    upgrade,
)
from storage.models import (
    Answer,
    Base,
    HealthProbe,
    InboxEvent,
    InboxStatus,
    ModerationItem,
    OutboxStatus,
    Participant,
    Participation,
)
from storage.repositories import _INBOX_CLAIM_IN_TURN, Settlement
from storage.uow import UnitOfWork, UnitOfWorkFactory
from tests.citizens import example_with_round
from tests.conftest import migrate_database

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
# Only PostgreSQL's connections can be closed under a process (SQLite's are a file's).
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def uow(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_session_factory(engine))


async def test_migrations_go_down_and_up_again(engine: AsyncEngine) -> None:
    assert (await schema_status(engine)).up_to_date
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(_config(sync), "base"))
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert set(tables) <= {"alembic_version"}
    before = await upgrade(engine)
    assert before.current is None
    assert (await schema_status(engine)).up_to_date


async def test_a_repeated_event_is_stored_once(uow: UnitOfWorkFactory) -> None:
    async with uow() as unit:
        first = await unit.inbox.add_new("telegram", [("1", "5", {"a": 1}), ("2", "5", {})], NOW)
        await unit.commit()
    async with uow() as unit:
        again = await unit.inbox.add_new("telegram", [("2", "5", {}), ("3", "6", {})], NOW)
        web = await unit.inbox.add_new("web", [("1", "x", {})], NOW)
        await unit.commit()
    assert (first, again, web) == ({"1", "2"}, {"3"}, {"1"})
    async with uow() as unit:
        pending = await unit.inbox.pending("telegram")
    assert [event.external_id for event in pending] == ["1", "2", "3"]


async def test_leaving_a_unit_without_commit_rolls_back(uow: UnitOfWorkFactory) -> None:
    async with uow() as unit:
        await unit.participants.get_or_create("telegram", "9", NOW)

    async def fail_midway() -> None:
        async with uow() as unit:
            await unit.participants.get_or_create("telegram", "9", NOW)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_midway()
    async with uow() as unit:
        assert await unit.participants.get("telegram", "9") is None


async def test_times_come_back_aware_utc(uow: UnitOfWorkFactory) -> None:
    copenhagen_morning = datetime(2026, 6, 1, 9, 0, tzinfo=UTC) + timedelta(hours=0)
    async with uow() as unit:
        participant = await unit.participants.get_or_create("telegram", "1", copenhagen_morning)
        await unit.commit()
    async with uow() as unit:
        participant = await unit.participants.get("telegram", "1")
        assert participant is not None
        assert participant.created_at == copenhagen_morning
        assert participant.created_at.tzinfo is not None
    with pytest.raises(Exception, match="naive datetime"):
        async with uow() as unit:
            await unit.participants.get_or_create("telegram", "2", datetime(2026, 1, 1))


async def test_retention_deletes_only_old_settled_records(uow: UnitOfWorkFactory) -> None:
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=1)
    async with uow() as unit:
        await unit.inbox.add_new("telegram", [("1", "5", {}), ("2", "5", {}), ("3", "5", {})], old)
        assert await unit.inbox.claim("telegram", "1", old, 1) is not None
        assert await unit.inbox.claim("telegram", "2", recent, 2) is not None
        sent_id = await unit.outbox.add("telegram", "5", {"type": "message"}, old)
        await unit.outbox.settle(sent_id, OutboxStatus.SENT, old)
        await unit.outbox.add("telegram", "5", {"type": "message"}, old)
        await unit.commit()
    async with uow() as unit:
        purged = (
            await unit.inbox.purge_handled_before(NOW - timedelta(days=30)),
            await unit.outbox.purge_settled_before(NOW - timedelta(days=30)),
        )
        await unit.commit()
    assert purged == (1, 1)
    async with uow() as unit:
        assert await unit.inbox.count_by_status() == {InboxStatus.DONE: 1, InboxStatus.PENDING: 1}
        assert await unit.outbox.count_by_status() == {OutboxStatus.PENDING: 1}


async def test_a_card_stays_while_its_item_does_and_a_citizens_message_is_never_one(
    uow: UnitOfWorkFactory,
) -> None:
    """A moderation card is edited later (decision, /forget, deletion), found by the outbox id
    its item keeps: the card's row outlives the retention while the item exists, and an id
    that belongs to a message to a citizen is never taken for a card (SQLite hands a purged
    row's id out again, and a citizen's reply was once rewritten as a card)."""
    old = NOW - timedelta(days=40)
    async with uow() as unit:
        card = await unit.outbox.add("telegram", "-100500", {"type": "message"}, old)
        await unit.outbox.settle(card, OutboxStatus.SENT, old)
        reply = await unit.outbox.add("telegram", "222", {"type": "message", "text": "hej"}, old)
        await unit.commit()
    from zoneinfo import ZoneInfo

    from bot.consultations.definition import parse_definition
    from bot.consultations.importer import import_definition

    source = example_with_round(old, NOW + timedelta(days=30), "kort")
    async with uow() as unit:
        await import_definition(unit, parse_definition(source, ZoneInfo("Europe/Copenhagen")), old)
        consultation = await unit.consultations.by_slug("kort")
        assert consultation is not None
        for card_id in (card, reply):
            await unit.moderation.add(
                ModerationItem(
                    consultation_id=consultation.id,
                    pseudonym="p-1",
                    flags=[],
                    action="hold",
                    card_message_id=card_id,
                    created_at=old,
                )
            )
        await unit.commit()
    async with uow() as unit:
        assert await unit.outbox.purge_settled_before(NOW - timedelta(days=30)) == 0
        assert (await unit.outbox.card(card)) is not None
        assert await unit.outbox.card(reply) is None
        assert not await unit.outbox.rewrite_unsent(
            reply, {"type": "message", "text": "x"}, card=True
        )
        await unit.commit()
    async with uow() as unit:
        kept = await unit.outbox.get(reply)
        assert kept is not None
        assert kept.payload["text"] == "hej"


ZONE = ZoneInfo("Europe/Copenhagen")
# The example consultation, its round open from a day before NOW for 30 days.
_EXAMPLE_OPEN_AT_NOW = example_with_round(NOW - timedelta(days=1), NOW + timedelta(days=30))


async def _two_processes_after_an_import(
    engine: AsyncEngine,
) -> tuple[UnitOfWorkFactory, UnitOfWorkFactory]:
    """The bot's and the command line's units, each process with its own definition cache,
    once the command line imported the example consultation."""
    from bot.consultations.definition import parse_definition
    from bot.consultations.importer import import_definition
    from storage.definitions import DefinitionCache

    bot_process = UnitOfWorkFactory(create_session_factory(engine), definitions=DefinitionCache())
    command_line = UnitOfWorkFactory(create_session_factory(engine), definitions=DefinitionCache())
    async with command_line() as unit:
        await import_definition(unit, parse_definition(_EXAMPLE_OPEN_AT_NOW, ZONE), NOW)
        await unit.commit()
    return bot_process, command_line


async def test_cached_definitions_follow_an_import_made_by_another_process(
    engine: AsyncEngine,
) -> None:
    """Two processes, each with its own cache: an import by one is seen by the other's next unit."""
    from bot.consultations.definition import parse_definition
    from bot.consultations.importer import import_definition

    bot_process, command_line = await _two_processes_after_an_import(engine)
    async with bot_process() as unit:
        consultation = await unit.consultations.by_slug("friluftsliv")
        assert consultation is not None
        (round_,) = await unit.consultations.rounds(consultation.id)
        questions = await unit.consultations.questions(consultation.id)
    async with bot_process() as unit:
        # Served from memory: the very objects read before.
        assert await unit.consultations.by_slug("friluftsliv") is consultation
        assert (await unit.consultations.rounds(consultation.id))[0] is round_
    later = NOW + timedelta(days=60)
    moved = example_with_round(NOW + timedelta(days=3), later).replace(
        "Hvor gammel er du?", "Hvor gammel er du i dag?", 1
    )
    async with command_line() as unit:
        await import_definition(unit, parse_definition(moved, ZONE), NOW, force=True)
        await unit.commit()
    async with bot_process() as unit:
        fresh = await unit.consultations.by_slug("friluftsliv")
        assert fresh is not None
        assert fresh is not consultation
        (new_round,) = await unit.consultations.rounds(consultation.id)
        assert new_round.opens_at > round_.opens_at
        asked = [q.text["da"] for q in await unit.consultations.questions(consultation.id)]
    assert "Hvor gammel er du?" in [question.text["da"] for question in questions]
    assert "Hvor gammel er du i dag?" in asked
    assert "Hvor gammel er du?" not in asked


async def test_delivery_outcomes_of_many_chats_share_a_commit(uow: UnitOfWorkFactory) -> None:
    """The group settler: outcomes arriving while one commit runs go together in the next."""
    import asyncio

    from bot.dialogue.outbox import GroupSettler
    from storage.repositories import Settlement

    async with uow() as unit:
        ids = [
            await unit.outbox.add("telegram", str(chat), {"type": "message", "text": "hej"}, NOW)
            for chat in range(30)
        ]
        await unit.commit()
    commits = 0

    class CountingFactory:
        def __call__(self) -> object:
            nonlocal commits
            commits += 1
            return uow()

    settler = GroupSettler(CountingFactory())  # type: ignore[arg-type]
    await asyncio.gather(
        *(
            settler.settle(Settlement(message_id, OutboxStatus.SENT, NOW, str(message_id)))
            for message_id in ids
        )
    )
    # Every outcome is committed once each settle() returned; far fewer commits than messages.
    assert commits < len(ids) / 2
    async with uow() as unit:
        for message_id in ids:
            message = await unit.outbox.get(message_id)
            assert message is not None
            assert (message.status, message.external_message_id) == (
                OutboxStatus.SENT,
                str(message_id),
            )
            assert message.payload == {"cleared": True}


async def test_opinion_groups_only_move_forward_whoever_saves_them_last(
    uow: UnitOfWorkFactory,
) -> None:
    """The leader's job and a results page may compute groups at once: the groups of more votes
    stay, whichever computation finishes last, and the second save adds no second row."""
    from bot.consultations.definition import parse_definition
    from bot.consultations.importer import import_definition

    async with uow() as unit:
        await import_definition(unit, parse_definition(_EXAMPLE_OPEN_AT_NOW, ZONE), NOW)
        await unit.commit()
        consultation = await unit.consultations.by_slug("friluftsliv")
        assert consultation is not None

    async def save(events: int) -> None:
        async with uow() as unit:
            await unit.ideas.save_groups(consultation.id, {"votes": events}, events, NOW)
            await unit.commit()

    async def stored() -> tuple[int, dict[str, int]] | None:
        async with uow() as unit:
            groups = await unit.ideas.groups(consultation.id)
            return None if groups is None else (groups.vote_events_seen, groups.model)

    await save(5)
    assert await stored() == (5, {"votes": 5})
    await save(3)  # a slower computation of fewer votes
    assert await stored() == (5, {"votes": 5})
    await save(8)
    assert await stored() == (8, {"votes": 8})


async def test_replies_queued_together_get_ids_in_the_order_given(uow: UnitOfWorkFactory) -> None:
    """An event's replies go in with one statement; each id must still belong to its message."""
    async with uow() as unit:
        await unit.outbox.add("telegram", "9", {"type": "message", "text": "earlier"}, NOW)
        texts = [f"svar {number}" for number in range(7)]
        ids = await unit.outbox.add_many(
            [("telegram", "5", {"type": "message", "text": text}) for text in texts], NOW
        )
        await unit.commit()
    assert ids == sorted(ids)
    async with uow() as unit:
        stored = [await unit.outbox.get(message_id) for message_id in ids]
    assert [message.payload["text"] for message in stored if message is not None] == texts


def test_the_head_revision_the_start_compares_with_is_alembics() -> None:
    """A start compares the database with HEAD_REVISION instead of asking alembic; a new
    migration that forgot to move it would otherwise pass for up to date."""
    assert head_revision() == HEAD_REVISION


def test_a_start_on_a_migrated_database_loads_no_migration_or_number_libraries(
    database_url: str,
) -> None:
    """Memory: a bot starting on a database already up to date loads neither alembic (for the
    schema), numpy (opinion groups, the dashboard's histograms) nor Pillow (results charts)
    until something needs them; together about 24 MB a process would keep."""
    asyncio.run(migrate_database(database_url))
    code = (
        "import asyncio, sys\n"
        "import bot.app\n"
        "from storage.database import create_engine\n"
        "from storage.migrate import prepare_schema\n"
        "async def start(url):\n"
        "    engine = create_engine(url)\n"
        "    await prepare_schema(engine, url)\n"
        "    await engine.dispose()\n"
        f"asyncio.run(start({database_url!r}))\n"
        "print(sorted(m for m in ('alembic', 'numpy', 'PIL') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_a_schema_recorded_at_several_revisions_is_refused(engine: AsyncEngine) -> None:
    """The migrations form one line, so alembic_version holds one row; a second one (the table
    edited by hand) must not pass for up to date, whichever row comes first."""
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0011')"))
    with pytest.raises(SchemaOutdated, match=r"several schema revisions \(0011, 0014\)"):
        await schema_status(engine)


async def test_the_hot_paths_writes_around_the_orm_read_back_as_the_orm_would(
    uow: UnitOfWorkFactory,
) -> None:
    """A participant's arrival (one UPDATE that also reads them), their conversation state and a
    participation's question message (written as single columns) bypass the ORM's flush: what
    is stored, what the unit holds and later ORM changes must all agree."""
    async with uow() as unit:
        await unit.participants.add("telegram", "5", NOW, state={"a": 1})
        await unit.commit()
    later = NOW + timedelta(minutes=1)
    async with uow() as unit:
        loaded = await unit.participants.get("telegram", "5")
        arrived = await unit.participants.arrive("telegram", "5", later)
        assert arrived is loaded  # the unit holds one object per row, brought up to date
        assert arrived is not None
        assert (arrived.events_applied, arrived.last_seen_at, arrived.state) == (1, later, {"a": 1})
        await unit.participants.set_state(arrived, {"participation": 7})
        arrived.language = "en"  # an ORM change after it: flushed at the commit as ever
        await unit.participants.set_state(arrived, {"participation": 8})
        await unit.commit()
    async with uow() as unit:
        stored = await unit.participants.arrive("telegram", "5", later)
        assert stored is not None
        assert (stored.state, stored.language, stored.events_applied) == (
            {"participation": 8},
            "en",
            2,
        )
        await unit.participants.set_state(stored, {})
        await unit.commit()
    async with uow.read() as unit:
        fresh = await unit.participants.get("telegram", "5")
        assert fresh is not None
        assert fresh.state == {}
    assert await _unknown_arrives(uow) is None


async def test_a_newcomer_is_stored_as_they_arrive_and_counted_after(
    uow: UnitOfWorkFactory, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chat's first event stores its participant; later ones count them. On PostgreSQL both
    are one statement (one round trip on every first message): finding them unknown and
    storing them."""
    statements: list[str] = []
    driver_run = getattr(database, "_run_asyncpg", None)
    if driver_run is not None:

        async def counted(cursor: Any, sql: str, arguments: list[Any]) -> Any:
            statements.append(sql)
            return await driver_run(cursor, sql, arguments)

        monkeypatch.setattr(database, "_run_asyncpg", counted)
    async with uow() as unit:
        newcomer, added = await unit.participants.arrive_or_add("telegram", "5", NOW)
        assert added
        assert (newcomer.events_applied, newcomer.state, newcomer.language) == (1, {}, None)
        newcomer.state = {"last_language": "da"}  # changed after, flushed at the commit
        await unit.commit()
    if engine.dialect.name == "postgresql":
        assert len(statements) == 2  # the arrival, and the state written at the commit
    async with uow() as unit:
        stored = await unit.participants.by_id(newcomer.id)
        assert stored is not None
        stored.stopped_at = NOW  # /stop
        await unit.commit()
    later = NOW + timedelta(minutes=1)
    async with uow() as unit:
        again, added = await unit.participants.arrive_or_add("telegram", "5", later)
        assert not added
        assert again.id == newcomer.id
        assert (again.events_applied, again.state, again.last_seen_at, again.stopped_at) == (
            2,
            {"last_language": "da"},
            later,
            None,
        )
        await unit.commit()
    async with uow.read() as unit:
        counted = await unit.participants.get("telegram", "5")
        assert counted is not None
        assert counted.events_applied == 2


@ON_POSTGRESQL
async def test_sent_messages_outcomes_are_recorded_on_a_connection_of_their_own(
    engine: AsyncEngine, uow: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chat's next message goes only once the last one's outcome is recorded, for every
    message sent. On PostgreSQL that is the statement alone, on a connection of its own: a unit
    of work (a session, a pooled connection, BEGIN and COMMIT) cost several times as much. The
    connection is opened again after the server ended it, and an outcome it can never take is
    refused for good."""
    import asyncpg.transaction

    from bot.dialogue.outbox import GroupSettler
    from storage.advisory import DeliveryOutcomes

    async with uow() as unit:
        ids = [
            await unit.outbox.add("telegram", "5", {"type": "text", "text": text}, NOW)
            for text in ("Hej", "Nej", "Igen")
        ]
        await unit.commit()
    begun: list[object] = []
    start = asyncpg.transaction.Transaction.start

    async def counted(transaction: Any) -> None:
        begun.append(transaction)
        await start(transaction)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", counted)
    outcomes = DeliveryOutcomes(str(engine.url.render_as_string(hide_password=False)))
    try:
        settler = GroupSettler(lambda: pytest.fail("no unit of work"), outcomes)  # type: ignore[arg-type]
        await asyncio.gather(
            settler.settle(Settlement(ids[0], OutboxStatus.SENT, NOW, "77")),
            settler.settle(Settlement(ids[1], OutboxStatus.FAILED, NOW, error="refused")),
        )
        assert begun == []
        # An outcome the database can never take is refused as such, not retried for ever as
        # if the database were away (holding its chat).
        with pytest.raises(asyncpg.exceptions.StringDataRightTruncationError) as refused:
            await outcomes.settle_many([Settlement(ids[2], OutboxStatus.SENT, NOW, "x" * 200)])
        assert not is_transient(refused.value)
        monkeypatch.undo()
        async with engine.connect() as connection:
            await connection.execute(
                text("SELECT pg_terminate_backend(:pid)"),
                {"pid": outcomes._driver.get_server_pid()},
            )
        with pytest.raises(ConnectionError):
            await settler.settle(Settlement(ids[2], OutboxStatus.SENT, NOW, "78"))
        await settler.settle(Settlement(ids[2], OutboxStatus.SENT, NOW, "78"))  # as retried
    finally:
        await outcomes.close()
    async with uow.read() as unit:
        stored = [await unit.outbox.get(message_id) for message_id in ids]
        assert [(m.status, m.external_message_id, m.error) for m in stored if m] == [
            (OutboxStatus.SENT, "77", None),
            (OutboxStatus.FAILED, None, "refused"),
            (OutboxStatus.SENT, "78", None),
        ]
        assert stored[0] is not None
        assert stored[0].payload == {"cleared": True}


async def test_an_outcome_recorded_again_does_not_undo_what_the_platform_said_since(
    uow: UnitOfWorkFactory,
) -> None:
    """Outcomes of a group commit are written one statement at a time on PostgreSQL: when a
    later one fails, a delivery writes its outcome again. By then the platform may have said
    the message failed after all; the outcome written again must leave that."""
    async with uow() as unit:
        message_id = await unit.outbox.add("whatsapp", "5", {"type": "text", "text": "Hej"}, NOW)
        await unit.commit()
    sent = Settlement(message_id, OutboxStatus.SENT, NOW, "wamid.1")
    async with uow() as unit:
        await unit.outbox.settle_many([sent])
        await unit.commit()
    async with uow() as unit:
        await unit.outbox.record_platform_status(
            "whatsapp", "wamid.1", "failed", 4, OutboxStatus.FAILED, "131026"
        )
        await unit.commit()
    async with uow() as unit:
        await unit.outbox.settle_many([sent])
        await unit.commit()
    async with uow.read() as unit:
        stored = await unit.outbox.get(message_id)
        assert stored is not None
        assert stored.status == OutboxStatus.FAILED


async def _unknown_arrives(uow: UnitOfWorkFactory) -> object:
    async with uow() as unit:
        return await unit.participants.arrive("telegram", "nobody", NOW)


def test_every_stored_attribute_is_named_as_its_column() -> None:
    """The commit's plain UPDATEs (``write_changed_records``) name columns by attribute."""
    for mapper in Base.registry.mappers:
        for attribute in mapper.column_attrs:
            assert [column.key for column in attribute.columns] == [attribute.key], (
                mapper.class_.__name__
            )


async def test_changed_records_are_written_at_the_commit_without_the_orms_flush(
    uow: UnitOfWorkFactory,
) -> None:
    """Changes to loaded records are stored as they would be by the ORM, also for a table keyed
    by another column than ``id``, and changes after a commit go with the next one; with a new
    record in the unit, the ORM's flush writes everything as before."""
    flushes: list[int] = []

    def flushed(session: Session, _context: object, _instances: object) -> None:
        if session.new or session.dirty or session.deleted:
            flushes.append(1)

    async with uow() as unit:
        await unit.participants.add("telegram", "5", NOW)
        await unit.participants.add("telegram", "6", NOW)
        unit._session.add(HealthProbe(name="p1", written_at=NOW))
        await unit.commit()
    later = NOW + timedelta(minutes=1)
    event.listen(Session, "before_flush", flushed)
    try:
        async with uow() as unit:
            five, six, probe = await _five_six_and_probe(unit)
            five.language, five.state = "en", {"step": 2}
            six.last_seen_at = later
            probe.written_at = later
            await unit.commit()
            assert not inspect(five).modified
            assert flushes == []
            five.language = "da"
            await unit.commit()
        assert flushes == []
        async with uow() as unit:
            seven = await unit.participants.add("telegram", "7", NOW)
            six = await unit.participants.get("telegram", "6")
            assert six is not None
            six.language = "uk"
            unit._session.add(HealthProbe(name="p2", written_at=NOW))
            await unit.commit()
            assert seven.id is not None
        assert flushes == [1]
    finally:
        event.remove(Session, "before_flush", flushed)
    async with uow.read() as unit:
        five, six, probe = await _five_six_and_probe(unit)
        assert (five.language, five.state, five.last_seen_at) == ("da", {"step": 2}, NOW)
        assert (six.language, six.last_seen_at) == ("uk", later)
        assert probe.written_at == later
        assert await unit._session.get(HealthProbe, "p2") is not None


async def _five_six_and_probe(unit: UnitOfWork) -> tuple[Participant, Participant, HealthProbe]:
    five = await unit.participants.get("telegram", "5")
    six = await unit.participants.get("telegram", "6")
    probe = await unit._session.get(HealthProbe, "p1")
    assert five is not None
    assert six is not None
    assert probe is not None
    return five, six, probe


# On SQLite the unit holds the write lock from its first statement: nobody deletes meanwhile.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_changed_record_whose_row_went_meanwhile_is_refused_as_by_the_orm(
    uow: UnitOfWorkFactory, engine: AsyncEngine
) -> None:
    """The commit's plain UPDATE of a row another unit (another process) deleted in between
    writes nothing, and says so, as the ORM's flush would, instead of committing as if saved."""
    async with uow() as unit:
        await unit.participants.add("telegram", "8", NOW)
        await unit.commit()
    async with uow() as unit:
        participant = await unit.participants.get("telegram", "8")
        assert participant is not None
        async with engine.begin() as other:
            await other.execute(text("DELETE FROM participants WHERE chat_id = '8'"))
        participant.language = "en"
        with pytest.raises(StaleDataError):
            await unit.commit()


# A statement with a parameter no caller should leave out (see the test below).
_EVENTS_OF_CHAT = select(InboxEvent.id).where(InboxEvent.chat_id == bindparam("chat_id"))


async def test_the_hot_paths_statements_run_in_the_units_transaction_after_a_commit_too(
    uow: UnitOfWorkFactory,
) -> None:
    """run_core (on SQLite straight on the driver) after a unit's commit begins a new
    transaction: left without a commit, what it wrote is gone."""
    async with uow() as unit:
        await unit.participants.add("telegram", "9", NOW)
        await unit.commit()
        await unit.participants.arrive("telegram", "9", NOW + timedelta(minutes=1))
    async with uow.read() as unit:
        stored = await unit.participants.get("telegram", "9")
        assert stored is not None
        assert (stored.events_applied, stored.last_seen_at) == (0, NOW)


async def test_the_hot_paths_refusals_are_sqlalchemys_and_the_datas_faults_stay_so(
    uow: UnitOfWorkFactory, engine: AsyncEngine
) -> None:
    """A second participant for one chat is an IntegrityError, as through SQLAlchemy; a value
    the database cannot take (a lone surrogate from a platform) is not an outage to retry."""
    async with uow() as unit:
        await unit.participants.add("telegram", "10", NOW)
        with pytest.raises(IntegrityError):
            await unit.participants.add("telegram", "10", NOW)
    async with uow() as unit:
        with pytest.raises((UnicodeError, DBAPIError)) as refused:
            await unit.inbox.add_new("telegram", [("e-1", "chat \ud800", {"update_id": 1})], NOW)
    assert not is_transient(refused.value)
    session = create_session_factory(engine)()
    try:
        # Bound as NULL it would match nothing, quietly: refused, as SQLAlchemy refuses it.
        with pytest.raises((ValueError, StatementError)):
            await run_core(session, _EVENTS_OF_CHAT, {})
    finally:
        await session.close()


async def test_a_schema_changed_by_another_process_is_prepared_anew_on_postgresql(
    uow: UnitOfWorkFactory, database_url: str
) -> None:
    """A migration while this process runs (README: migrate first, old processes run on) may
    change what a prepared statement returns: the statement after the refusal is prepared
    again, as through SQLAlchemy's own execution, instead of refused until a restart."""
    if not database_url.startswith("postgresql"):
        pytest.skip("prepared statements are PostgreSQL's")
    async with uow() as unit:
        await unit.participants.add("telegram", "11", NOW)
        await unit.commit()
    async with uow() as unit:
        assert await unit.participants.arrive("telegram", "11", NOW) is not None
        await unit.commit()
    elsewhere = create_engine(database_url)
    try:
        async with elsewhere.begin() as connection:
            await connection.execute(
                text("ALTER TABLE participants ALTER COLUMN language TYPE TEXT")
            )
    finally:
        await elsewhere.dispose()
    arrivals = 0
    for _ in range(2):
        try:
            async with uow() as unit:
                arrived = await unit.participants.arrive("telegram", "11", NOW)
                await unit.commit()
        except DBAPIError:
            continue
        assert arrived is not None
        arrivals += 1
    assert arrivals >= 1


async def _server_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def _terminate(database_url: str, pid: int) -> None:
    elsewhere = create_engine(database_url)
    try:
        async with elsewhere.connect() as connection:
            assert await connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await elsewhere.dispose()


@pytest.fixture
def pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The tests of pooled connections the engine makes before handing them out."""
    dialect = engine.sync_engine.dialect
    made: list[object] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        made.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return made


@ON_POSTGRESQL
async def test_a_connection_back_moments_ago_is_not_tested_one_idle_a_while_is(
    engine: AsyncEngine, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Testing every checkout cost three round trips each (BEGIN, a statement, ROLLBACK on
    asyncpg): under load a connection is only tested once it lay idle."""
    monkeypatch.setattr("storage.database.PING_AFTER_IDLE_SECONDS", 0.2)
    first = await _server_pid(engine)
    for _ in range(5):
        assert await _server_pid(engine) == first
    assert pings == []
    await asyncio.sleep(0.3)
    assert await _server_pid(engine) == first
    assert len(pings) == 1


@ON_POSTGRESQL
async def test_a_connection_the_server_closed_while_it_lay_idle_is_replaced_unnoticed(
    engine: AsyncEngine, database_url: str, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server restart or an idle timeout closes connections nobody uses: the next unit of
    work gets a working one, not an error."""
    monkeypatch.setattr("storage.database.PING_AFTER_IDLE_SECONDS", 0.2)
    killed = await _server_pid(engine)
    await _terminate(database_url, killed)
    await asyncio.sleep(0.3)
    assert await _server_pid(engine) != killed
    assert len(pings) == 1


@ON_POSTGRESQL
async def test_a_connection_closed_moments_after_its_use_fails_as_passing_then_is_replaced(
    engine: AsyncEngine, database_url: str, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the idle time nothing is tested: the work on a connection closed meanwhile fails
    as a dropped connection (retried by every caller), and the pool is replaced."""
    monkeypatch.setattr("storage.database.PING_AFTER_IDLE_SECONDS", 60.0)
    killed = await _server_pid(engine)
    await _terminate(database_url, killed)
    with pytest.raises(DBAPIError) as failure:
        await _server_pid(engine)
    assert is_transient(failure.value)
    assert await _server_pid(engine) != killed
    assert pings == []


async def test_the_claim_of_an_event_brings_the_definition_version_along(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit applying an event reads the version with the claim (a round trip less an update
    on PostgreSQL), and still sees an import another process committed before it."""
    import storage.definitions
    from bot.consultations.definition import parse_definition
    from bot.consultations.importer import import_definition

    bot_process, command_line = await _two_processes_after_an_import(engine)
    source = _EXAMPLE_OPEN_AT_NOW
    async with bot_process() as unit:
        await unit.inbox.add_new("telegram", [(str(n), "7", {}) for n in range(3)], NOW)
        await unit.commit()
    version_reads = 0
    read_on_its_own = storage.definitions.run_core

    async def counted(*arguments: object) -> object:
        nonlocal version_reads
        version_reads += 1
        return await read_on_its_own(*arguments)  # type: ignore[arg-type]

    monkeypatch.setattr(storage.definitions, "run_core", counted)

    async def apply(external_id: str) -> str:
        async with bot_process() as unit:
            assert await unit.inbox.claim("telegram", external_id, NOW, 1) is not None
            consultation = await unit.consultations.by_slug("friluftsliv")
            assert consultation is not None
            await unit.commit()
            return str(consultation.title["da"])

    title = await apply("0")
    assert await apply("1") == title
    async with command_line() as unit:
        renamed = source.replace(title, "Friluftsliv i hele kommunen", 1)
        assert renamed != source
        await import_definition(unit, parse_definition(renamed, ZONE), NOW, force=True)
        await unit.commit()
    assert await apply("2") == "Friluftsliv i hele kommunen"
    assert version_reads == 0
    # A unit that claims nothing reads the version itself.
    async with bot_process() as unit:
        assert await unit.consultations.by_slug("friluftsliv") is not None
    assert version_reads == 1


@ON_POSTGRESQL
async def test_a_dropped_connection_found_on_the_hot_path_replaces_the_whole_pool(
    engine: AsyncEngine, uow: UnitOfWorkFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart closes every connection: the first unit of work to find that out fails (and is
    retried), and the next ones get new connections instead of failing on each closed one."""
    monkeypatch.setattr("storage.database.PING_AFTER_IDLE_SECONDS", 60.0)
    async with engine.connect() as first, engine.connect() as second:
        pids = [
            int(await connection.scalar(text("SELECT pg_backend_pid()")))
            for connection in (first, second)
        ]
    for pid in pids:
        await _terminate(database_url, pid)
    with pytest.raises(DBAPIError) as failure:
        async with uow() as unit:
            await unit.participants.arrive("telegram", "11", NOW)
    assert is_transient(failure.value)
    for _ in range(2):
        async with uow() as unit:
            assert await unit.participants.arrive("telegram", "11", NOW) is None
            await unit.commit()


async def _taking_part_in_the_example(
    unit: UnitOfWork, chat_id: str, since: datetime, **columns: object
) -> Participation:
    """A Telegram chat's participant taking part in the example consultation (imported here),
    its participation given ``columns`` beyond what every participation has."""
    from bot.consultations.definition import parse_definition
    from bot.consultations.importer import import_definition

    await import_definition(unit, parse_definition(_EXAMPLE_OPEN_AT_NOW, ZONE), NOW)
    consultation = await unit.consultations.by_slug("friluftsliv")
    assert consultation is not None
    participant = await unit.participants.add("telegram", chat_id, since)
    return await unit.participations.add(
        Participation(
            consultation_id=consultation.id,
            participant_id=participant.id,
            pseudonym="p-0123456789",
            number=1,
            status="active",
            started_at=since,
            updated_at=since,
            **{"pending_selection": [], **columns},
        )
    )


async def test_newcomers_do_not_wait_for_each_other_and_are_numbered_in_turn_for_the_export(
    engine: AsyncEngine, uow: UnitOfWorkFactory
) -> None:
    """A newcomer's participation is stored without a number, so newcomers at once (in one
    process or several) do not queue at the consultation's row. The export's numbering gives
    the numbers in the order people joined, above every number given before, and keeps them;
    two numberings at once wait for each other and never give one number twice."""
    async with uow() as unit:
        first = await _taking_part_in_the_example(unit, "20", NOW)  # number 1, as imported
        consultation_id = first.consultation_id
        await unit.ideas.raise_counter(consultation_id, "participant", 1)
        await unit.commit()

    async def newcomer(
        chat_id: str, hold: asyncio.Event | None = None, holds: asyncio.Event | None = None
    ) -> int | None:
        async with uow() as unit:
            participant = await unit.participants.add("telegram", chat_id, NOW)
            participation = await unit.participations.add(
                Participation(
                    consultation_id=consultation_id,
                    participant_id=participant.id,
                    pseudonym=f"p-{chat_id}",
                    status="invited",
                    pending_selection=[],
                    started_at=NOW,
                    updated_at=NOW,
                )
            )
            if hold is not None:
                assert holds is not None
                holds.set()
                await hold.wait()
            await unit.commit()
            return participation.number

    assert await newcomer("21") is None
    if engine.dialect.name == "postgresql":
        release, stored = asyncio.Event(), asyncio.Event()
        holding = asyncio.create_task(newcomer("22", release, stored))
        await asyncio.wait_for(stored.wait(), 10)
        # Stored while the other newcomer's unit is still open: nobody waits for a number.
        assert await asyncio.wait_for(newcomer("23"), 5) is None
        release.set()
        await holding
    else:  # one writer at a time, whose units never wait for anything else (storage/database.py)
        assert [await newcomer("22"), await newcomer("23")] == [None, None]

    async def numbering(
        hold: asyncio.Event | None = None, holds: asyncio.Event | None = None
    ) -> int:
        async with uow() as unit:
            given = await unit.participations.number_newcomers(consultation_id)
            if hold is not None:
                assert holds is not None
                holds.set()
                await hold.wait()
            await unit.commit()
            return given

    async def numbers() -> dict[str, int | None]:
        async with uow.read() as unit:
            return {
                p.pseudonym: p.number
                for p in await unit.participations.of_consultation(consultation_id)
            }

    if engine.dialect.name == "postgresql":
        release, numbered = asyncio.Event(), asyncio.Event()
        exporting = asyncio.create_task(numbering(release, numbered))
        await asyncio.wait_for(numbered.wait(), 10)
        other = asyncio.create_task(numbering())
        await asyncio.sleep(0.3)
        assert not other.done()  # held at the counter's row until the first export commits
        release.set()
        assert sorted(await asyncio.gather(exporting, other)) == [0, 3]
    else:
        assert await numbering() == 3
    assert await numbers() == {"p-0123456789": 1, "p-21": 2, "p-22": 3, "p-23": 4}
    await newcomer("24")
    assert await numbering() == 1
    assert (await numbers())["p-24"] == 5
    async with uow.read() as unit:
        consultation = await unit.consultations.get(consultation_id)
        assert consultation is not None
        assert consultation.participant_counter == 5


async def test_a_participation_and_its_answers_read_around_the_orm_as_the_orm_reads_them(
    engine: AsyncEngine, uow: UnitOfWorkFactory
) -> None:
    """Every answer reads its participation and the answers so far, as rows put in the session
    as if loaded: the same values as the ORM's own query, one object per row, and a change
    still to be flushed is flushed first and kept, as the ORM's query does."""
    async with uow() as unit:
        participation = await _taking_part_in_the_example(unit, "9", NOW, pending_selection=["a"])
        first, second = (await unit.consultations.questions(participation.consultation_id))[:2]
        participation.current_question_id = second.id
        for question, value in ((first, "25-64"), (second, ["Nord", "Syd"])):
            await unit.participations.save_answer(
                Answer(
                    participation_id=participation.id,
                    question_id=question.id,
                    value=value,
                    language="da",
                    answered_at=NOW,
                )
            )
        await unit.commit()

    def columns(record: object) -> dict[str, object]:
        return {c.key: getattr(record, c.key) for c in inspect(type(record)).column_attrs}

    async with uow() as unit:
        by_orm = await unit._session.get(Participation, participation.id)
        orm_answers = (
            (await unit._session.execute(select(Answer).order_by(Answer.id))).scalars().all()
        )
        expected = columns(by_orm), [columns(answer) for answer in orm_answers]
    async with uow() as unit:
        orm_queries: list[object] = []
        event.listen(unit._session.sync_session, "do_orm_execute", orm_queries.append)
        read = await unit.participations.get(participation.id)
        answers = sorted(await unit.participations.answers(participation.id), key=lambda a: a.id)
        assert (columns(read), [columns(answer) for answer in answers]) == expected
        assert await unit.participations.get(participation.id) is read
        assert await unit.participations.get(participation.id + 1000) is None
        assert orm_queries == []
        answers[0].value = "65 eller derover"  # waiting to be flushed
        again = sorted(await unit.participations.answers(participation.id), key=lambda a: a.id)
        assert again == answers
        assert len(orm_queries) == 1
        assert again[0].value == "65 eller derover"
        # Read without a flush of its own: the answers' read flushed the change.
        stored = select(Answer.value).where(Answer.id == bindparam("answer_id"))
        value = await run_core(unit._session, stored, {"answer_id": answers[0].id})
        assert value.scalar_one() == "65 eller derover"


async def test_a_purged_question_message_is_forgotten_so_its_id_names_no_other_message(
    uow: UnitOfWorkFactory,
) -> None:
    """On SQLite a purge that takes the newest messages hands their ids out again: the
    participation that named the purged one as its question's message must not name the next
    message queued (another chat's, here), or the next answer would edit that."""
    old = NOW - timedelta(days=40)
    async with uow() as unit:
        question_message = await unit.outbox.add("telegram", "5", {"type": "message"}, old)
        await unit.outbox.settle(question_message, OutboxStatus.SENT, old, external_message_id="77")
        participation = await _taking_part_in_the_example(
            unit, "5", old, question_message_id=question_message
        )
        await unit.commit()
    async with uow() as unit:
        assert await unit.outbox.purge_settled_before(NOW - timedelta(days=30)) == 1
        await unit.commit()
    async with uow() as unit:
        elsewhere = await unit.outbox.add("telegram", "6", {"type": "message"}, NOW)
        await unit.outbox.settle(elsewhere, OutboxStatus.SENT, NOW, external_message_id="12")
        await unit.commit()
    async with uow() as unit:
        kept = await unit.participations.get(participation.id)
        assert kept is not None
        assert kept.question_message_id is None


async def test_a_chats_event_is_claimed_in_turn_and_found_by_the_pending_index(
    uow: UnitOfWorkFactory, engine: AsyncEngine, database_url: str
) -> None:
    """Across processes an event is applied only when no earlier event of its chat waits. On
    PostgreSQL, a burst into an inbox not yet analyzed: deciding that reads a few pages, where
    the check as a correlated NOT EXISTS read every pending event of the channel, per claim."""
    others = [(f"o-{number}", f"other-{number}", {"update_id": number}) for number in range(2000)]
    own = [(f"e-{number}", "7", {"update_id": number}) for number in (1, 2, 3)]
    async with uow() as unit:
        await unit.inbox.add_new("telegram", [*others, *own], NOW)
        await unit.commit()
    async with uow() as unit:
        second = await unit.inbox.status_in_turn("telegram", "e-2", "7")
        assert second is not None
        assert second[2], "e-1 still waits before e-2"
        assert [
            name for name, _ in await unit.inbox.pending_before("telegram", "7", second[0])
        ] == ["e-1"]
        assert await unit.inbox.claim("telegram", "e-2", NOW, 1, in_turn_of="7") is None
        assert await unit.inbox.claim("telegram", "e-1", NOW, 1, in_turn_of="7") is not None
        assert await unit.inbox.claim("telegram", "e-2", NOW, 2, in_turn_of="7") is not None
        third = await unit.inbox.status_in_turn("telegram", "e-3", "7")
        assert third is not None
        assert not third[2]
        await unit.commit()
    if not database_url.startswith("postgresql"):
        return
    values = {
        "b_channel": "telegram",
        "b_external_id": "e-3",
        "b_now": NOW,
        "b_applied_sequence": 3,
        "b_chat_id": "7",
    }
    sql, (arguments,) = database.driver_form(_INBOX_CLAIM_IN_TURN, [values], engine.dialect)
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        claiming = driver.transaction()
        await claiming.start()
        try:
            # As asyncpg runs it after a few calls: one plan for every value (a generic plan).
            await driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            plan = await driver.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *arguments
            )
        finally:
            await claiming.rollback()
    top = json.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"]
    assert top["Actual Rows"] == 1, "e-3 is claimed"
    read = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    assert read < 60, f"the claim read {read} pages among 2,000 pending events"


@ON_SQLITE
async def test_a_unit_stopped_while_it_waits_for_sqlites_lock_leaves_the_process_in_one_piece(
    uow: UnitOfWorkFactory, engine: AsyncEngine
) -> None:
    """A shutdown (or a timeout) stops a unit that waits for SQLite's write lock, held elsewhere
    (here by another connection of the process; in life a command line import or another
    program). The wait is off the event loop, in aiosqlite's thread; SQLAlchemy then closes the
    stopped unit's connection on the loop's thread, and two threads in one sqlite3 connection
    crashed the whole process. It stops, and the next unit writes once the lock is free."""
    release, locked = asyncio.Event(), asyncio.Event()

    async def write(chat_id: str, hold: asyncio.Event | None = None) -> None:
        async with uow() as unit:
            await unit.participants.add("telegram", chat_id, NOW)
            if hold is not None:
                locked.set()
                await hold.wait()
            await unit.commit()

    holding = asyncio.create_task(write("30", release))
    await asyncio.wait_for(locked.wait(), 10)
    waiting = asyncio.create_task(write("31"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    release.set()
    await holding
    await write("32")
    async with uow.read() as unit:
        assert await unit.participants.get("telegram", "31") is None
        assert await unit.participants.get("telegram", "32") is not None
