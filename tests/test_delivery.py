"""Replies survive flood control, blocked citizens and failing flows without losing input."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.app import BorgerDialog
from bot.config import Settings
from bot.dialogue.outbox import OutboxDelivery, ReplyTurn
from storage.advisory import DeliveryOutcomes
from storage.database import create_engine, create_session_factory
from storage.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus, Participant
from storage.repositories import OutboxRepository, QueuedMessage, Settlement
from storage.uow import UnitOfWorkFactory
from tests.conftest import eventually, migrate_database, table_rows
from tests.fake_telegram import FakeBot, FakeTelegram

CITIZEN = 777


async def test_a_429_is_waited_out_and_the_same_reply_sent(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    fake_bot.inject(
        429,
        "Too Many Requests: retry after 1",
        method="sendMessage",
        chat_id=CITIZEN,
        retry_after=1,
    )
    fake_bot.send_message(CITIZEN, "/help")
    fake_bot.send_message(CITIZEN, "/privacy")
    texts = await eventually(
        lambda: len(fake_bot.texts(CITIZEN)) == 2 and fake_bot.texts(CITIZEN),
        what="both replies after the flood wait",
    )
    assert texts[0].startswith("Det kan du her")
    assert texts[1].startswith("Sådan passer vi")
    refused = [r for r in fake_bot.requests("sendMessage") if r[3] == 429]
    sent = [r for r in fake_bot.requests("sendMessage") if r[3] == 200]
    assert len(refused) == 1
    assert sent[0][0] - refused[0][0] >= 0.9, "the retry must wait retry_after"


async def test_a_citizen_who_blocked_the_bot_is_marked_unreachable_and_kept(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    fake_bot.send_message(CITIZEN, "/start")
    await eventually(lambda: fake_bot.texts(CITIZEN), what="the greeting")
    fake_bot.block(CITIZEN)
    fake_bot.send_message(CITIZEN, "/help")
    await eventually(
        lambda: any(r[3] == 403 for r in fake_bot.requests("sendMessage")), what="the 403"
    )
    participants = await eventually(
        lambda: _unreachable(telegram_app), what="the participant marked unreachable"
    )
    assert participants[0].events_applied == 2, "the citizen's data is kept"
    outbox = await table_rows(telegram_app, OutboxMessage)
    assert sorted(m.status for m in outbox) == [OutboxStatus.SENT, OutboxStatus.UNREACHABLE]
    # Other citizens are not affected.
    fake_bot.send_message(CITIZEN + 1, "/start")
    await eventually(lambda: fake_bot.texts(CITIZEN + 1), what="another citizen answered")


async def _unreachable(app: BorgerDialog) -> list:
    return [p for p in await table_rows(app, Participant) if p.unreachable_at is not None]


async def test_a_failing_flow_keeps_the_message_and_apologises(
    telegram_app: BorgerDialog, fake_bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_context: object) -> None:
        raise RuntimeError("a bug in a flow")

    monkeypatch.setattr("bot.dialogue.core.route", broken)
    fake_bot.send_message(CITIZEN, "Mit forslag til stien ved åen")
    texts = await eventually(lambda: fake_bot.texts(CITIZEN), what="the apology")
    assert texts == [
        "Beklager, der gik noget galt hos os. Din besked er gemt, og vi kigger på "
        "det. Prøv gerne igen om lidt."
    ]
    (event,) = await table_rows(telegram_app, InboxEvent)
    assert event.status == InboxStatus.FAILED
    assert event.error == "RuntimeError"
    assert event.payload["message"]["text"] == "Mit forslag til stien ved åen"


# On PostgreSQL another process may deliver the chat: replies are read under the shared lock.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_failure_while_a_chat_is_held_for_its_replies_lets_the_chat_go(
    telegram_app: BorgerDialog, fake_bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit of work that queues an event's replies holds the chat's delivery from the read
    of what is pending there. When that read fails, the chat is let go again: otherwise no
    reply (not even the apology) would ever reach that citizen again."""
    read_pending = OutboxRepository.pending_for_chat
    failed: list[str] = []

    async def failing_once(
        repository: OutboxRepository, channel: str, chat_id: str, lane: str
    ) -> list[QueuedMessage]:
        if chat_id == str(CITIZEN) and not failed:
            failed.append(chat_id)
            raise RuntimeError("the read failed")
        return await read_pending(repository, channel, chat_id, lane)

    monkeypatch.setattr(OutboxRepository, "pending_for_chat", failing_once)
    fake_bot.send_message(CITIZEN, "/hjaelp")
    (apology,) = await eventually(lambda: fake_bot.texts(CITIZEN), what="the apology")
    assert apology.startswith("Beklager, der gik noget galt")
    assert failed
    fake_bot.send_message(CITIZEN, "/privacy")
    texts = await eventually(
        lambda: len(fake_bot.texts(CITIZEN)) == 2 and fake_bot.texts(CITIZEN), what="the reply"
    )
    assert texts[1].startswith("Sådan passer vi")
    assert telegram_app.core is not None
    # The reply is out; its delivery lets the chat go once it has recorded the send (a moment
    # later on a busy machine).
    delivery = telegram_app.core.delivery
    await eventually(lambda: len(delivery._locks) == 0, what="the chat let go")


@pytest.mark.usefixtures("quick_retries")
async def test_network_errors_leave_replies_pending_for_the_next_round(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    # Four failures in a row exhaust the immediate retries; the reply waits, it is not lost.
    fake_bot.inject(500, "Internal Server Error", method="sendMessage", chat_id=CITIZEN, times=4)
    fake_bot.send_message(CITIZEN, "/help")
    await eventually(
        lambda: len([r for r in fake_bot.requests("sendMessage") if r[3] == 500]) == 4,
        what="four failed attempts",
    )
    outbox = await eventually(lambda: _pending(telegram_app), what="the reply left pending")
    assert len(outbox) == 1
    # The next event of that chat delivers what was pending first, in order.
    fake_bot.send_message(CITIZEN, "/privacy")
    texts = await eventually(
        lambda: len(fake_bot.texts(CITIZEN)) == 2 and fake_bot.texts(CITIZEN), what="both replies"
    )
    assert texts[0].startswith("Det kan du her")
    assert texts[1].startswith("Sådan passer vi")


@pytest.mark.usefixtures("quick_retries")
async def test_a_reply_sent_while_the_database_fails_is_not_sent_again(
    telegram_app: BorgerDialog, fake_bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply went out, but recording that failed (the database locked for a moment). Left
    pending, the redelivery job would send it a second time; the outcome is recorded once the
    database takes it, and the citizen reads the reply once."""
    refused = refuse_outcomes(monkeypatch, times=2)
    fake_bot.send_message(CITIZEN, "/help")
    await eventually(lambda: len(refused) == 2, what="two refused records")

    async def recorded() -> bool:
        return not await _pending(telegram_app)

    await eventually(recorded, what="the reply recorded as sent")
    assert telegram_app.core is not None
    await telegram_app.core.delivery.deliver_backlog("telegram")
    texts = fake_bot.texts(CITIZEN)
    assert len(texts) == 1
    assert texts[0].startswith("Det kan du her")


async def test_a_stop_does_not_wait_for_a_database_that_stays_away(
    fake_bot: FakeBot,
    fake_telegram: FakeTelegram,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recording a sent reply is tried again while the database fails, but a shutdown ends the
    waiting: the reply stays pending for the next start, as if it had been in flight."""
    refuse_outcomes(monkeypatch, times=None)
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    app = BorgerDialog(settings)
    await app.start()
    try:
        fake_bot.send_message(CITIZEN, "/help")
        await eventually(lambda: fake_bot.texts(CITIZEN), what="the reply")
        # Without the shutdown ending it, the next waits are 2, 4, 8, 15 and then 30 s each,
        # for as long as the database refuses.
        await asyncio.sleep(2)
    finally:
        await asyncio.wait_for(app.stop(), 30)
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            statuses = (await connection.execute(select(OutboxMessage.status))).scalars().all()
    finally:
        await engine.dispose()
    assert statuses == [OutboxStatus.PENDING]


def refuse_outcomes(monkeypatch: pytest.MonkeyPatch, times: int | None) -> list[int]:
    """Make recording delivery outcomes fail as a locked database does, ``times`` times (None:
    always), whichever way they are written (a unit of work; on PostgreSQL a connection of their
    own); return the number of outcomes of each refused attempt."""
    refused: list[int] = []
    for writer in (OutboxRepository, DeliveryOutcomes):
        original = writer.settle_many

        async def refusing(self: Any, outcomes: list[Settlement], original: Any = original) -> None:
            if times is None or len(refused) < times:
                refused.append(len(outcomes))
                raise OperationalError("UPDATE outbox_messages", {}, _busy())
            await original(self, outcomes)

        monkeypatch.setattr(writer, "settle_many", refusing)
    return refused


def _busy() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY
    return error


async def _pending(app: BorgerDialog) -> list:
    return [m for m in await table_rows(app, OutboxMessage) if m.status == OutboxStatus.PENDING]


class _Recorder:
    """A channel that takes a moment per message, so deliveries of one chat overlap."""

    channel = "telegram"

    def __init__(self) -> None:
        self.received: list[str] = []

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        await asyncio.sleep(0.05)
        self.received.append(payload["text"])
        return str(len(self.received))


async def test_replies_read_with_the_unit_that_queued_them_go_out_once_in_order(
    database_url: str,
) -> None:
    """An event's unit of work reads its chat's pending replies itself when nobody delivers to
    that chat (a unit of work less per update). While a delivery of the chat runs, it does not:
    what that delivery is sending would otherwise go out twice. A delivery started while the
    chat is held that way waits, and sends nothing twice."""
    await migrate_database(database_url)
    engine = create_engine(database_url)
    try:
        uow = UnitOfWorkFactory(create_session_factory(engine))
        recorder = _Recorder()
        delivery = OutboxDelivery(uow, lambda: datetime.now(UTC))
        delivery.register(recorder)  # type: ignore[arg-type]
        async with uow() as unit:
            await unit.outbox.add("telegram", "42", {"type": "text", "text": "A"}, _now())
            await unit.commit()
        running = asyncio.create_task(delivery.deliver_chat("telegram", "42"))
        await eventually(lambda: delivery._locks.busy(("telegram", "42", "reply")), what="busy")
        busy = delivery.reply_turn("telegram", "42")
        assert busy is not None
        assert not await busy.take_if_free()
        await running
        assert recorder.received == ["A"]

        turn = await queued_in_a_held_turn(uow, delivery, "B")
        waiting = asyncio.create_task(delivery.deliver_chat("telegram", "42"))
        await delivery.deliver_chat("telegram", "42", turn=turn)
        await waiting
        await turn.release()  # a second time does nothing
        assert recorder.received == ["A", "B"]
        assert len(delivery._locks) == 0  # nothing left held
    finally:
        await engine.dispose()


async def queued_in_a_held_turn(
    uow: UnitOfWorkFactory, delivery: OutboxDelivery, text: str
) -> ReplyTurn:
    """Queue a message for chat 42 as an event's unit does: the chat's delivery taken (it must
    be free) and what is pending there read before the commit."""
    async with uow() as unit:
        await unit.outbox.add("telegram", "42", {"type": "text", "text": text}, _now())
        turn = delivery.reply_turn("telegram", "42")
        assert turn is not None
        assert await turn.take_if_free()
        turn.pending = await unit.outbox.pending_for_chat("telegram", "42", "reply")
        await unit.commit()
    return turn


def _now() -> datetime:
    return datetime.now(UTC)
