"""A chat's turn across processes on one PostgreSQL: its events are applied in the order they came
and its replies sent once each, whichever process stored them, and what a killed process left
behind is finished by another.

"Another process" is played here by writing to the shared database directly, as a process killed
between its commits would have left it; the three-process runs are in test_several_processes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bot.app import BorgerDialog
from bot.config import Settings
from bot.dialogue.channel import ChannelLimits
from bot.dialogue.outbox import OutboxDelivery, RetryLater
from storage.advisory import ChatDeliveryLocks
from storage.database import create_engine, create_session_factory
from storage.models import InboxStatus, OutboxStatus
from storage.uow import UnitOfWorkFactory
from tests.conftest import eventually, migrate_database
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.test_delivery import queued_in_a_held_turn

POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# An update id far above what the fake hands out, as another process's update would have.
OTHER_PROCESS_UPDATE = 9_000_000


@pytest.fixture
async def running(
    fake_bot: FakeBot,
    fake_telegram: FakeTelegram,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[BorgerDialog]:
    # Left-behind work counts as such after a second here (15 s in production), looked for
    # every fifth of a second (5 s).
    monkeypatch.setattr("scheduler.jobs.STALE_AFTER", timedelta(seconds=1))
    monkeypatch.setattr("scheduler.jobs.STALE_CHECK_SECONDS", 0.2)
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    app = BorgerDialog(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def stored_by_another_process(
    app: BorgerDialog, fake_bot: FakeBot, user_id: int, text: str, update_id: int
) -> None:
    """An update that another process stored (and confirmed to Telegram) but did not apply."""
    assert app.uow is not None
    update = {"update_id": update_id, **fake_bot.message_update(user_id, text)}
    async with app.uow() as uow:
        await uow.inbox.add_new("telegram", [(str(update_id), str(user_id), update)], app.clock())
        await uow.commit()


async def inbox_status(app: BorgerDialog, update_id: int) -> str | None:
    assert app.uow is not None
    async with app.uow.read() as uow:
        stored = await uow.inbox.status_of("telegram", str(update_id))
    return None if stored is None else stored[1]


@POSTGRES
async def test_a_chats_earlier_event_stored_by_another_process_is_applied_before_its_next(
    running: BorgerDialog, fake_bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing is finished as left behind during this test: the next event must catch up itself.
    monkeypatch.setattr("scheduler.jobs.STALE_AFTER", timedelta(hours=1))
    # What /privacy and /help answer, seen in chats of their own.
    fake_bot.send_message(501, "/privacy")
    fake_bot.send_message(502, "/help")
    await eventually(lambda: fake_bot.texts(501) and fake_bot.texts(502), what="the answers")
    privacy, help_text = fake_bot.texts(501), fake_bot.texts(502)
    assert privacy != help_text

    # Another process stored the citizen's /privacy; this one receives the /help that followed.
    await stored_by_another_process(running, fake_bot, 503, "/privacy", OTHER_PROCESS_UPDATE)
    fake_bot.send_message(503, "/help")

    await eventually(
        lambda: len(fake_bot.texts(503)) >= len(privacy) + len(help_text), what="both answers"
    )
    await asyncio.sleep(0.3)  # nothing more may follow
    assert fake_bot.texts(503) == privacy + help_text
    assert await inbox_status(running, OTHER_PROCESS_UPDATE) == InboxStatus.DONE


@POSTGRES
async def test_an_event_a_killed_process_stored_and_never_applied_is_applied_by_another(
    running: BorgerDialog, fake_bot: FakeBot
) -> None:
    await stored_by_another_process(running, fake_bot, 511, "/privacy", OTHER_PROCESS_UPDATE + 1)
    # No later message from this citizen: only the search for left-behind events finds it.
    await eventually(lambda: fake_bot.texts(511), timeout=10, what="the left-behind answer")
    assert await inbox_status(running, OTHER_PROCESS_UPDATE + 1) == InboxStatus.DONE
    await asyncio.sleep(0.5)
    fake_bot.send_message(512, "/privacy")
    await eventually(lambda: fake_bot.texts(512), what="the control answer")
    assert fake_bot.texts(511) == fake_bot.texts(512), "answered once, like any /privacy"


@POSTGRES
async def test_a_reply_a_killed_process_queued_and_never_sent_is_sent_once_by_another(
    running: BorgerDialog, fake_bot: FakeBot
) -> None:
    assert running.uow is not None
    fake_bot.open_chats([521])
    async with running.uow() as uow:
        await uow.outbox.add("telegram", "521", {"type": "text", "text": "Tak!"}, running.clock())
        await uow.commit()
    await eventually(lambda: fake_bot.texts(521), timeout=10, what="the left-behind reply")
    await asyncio.sleep(0.5)
    assert fake_bot.texts(521) == ["Tak!"]


class SlowRecorder:
    """A channel that takes a while per message, so two deliveries of one chat overlap."""

    channel = "telegram"
    limits = ChannelLimits(
        max_text=4096,
        max_caption=1024,
        max_button_label=64,
        max_button_payload_bytes=64,
        max_image_bytes=10_000_000,
        bulk_per_second=30,
        chat_per_second=1,
        group_per_minute=20,
    )

    def __init__(self) -> None:
        self.received: list[str] = []
        self._ids = itertools.count(1)

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        await asyncio.sleep(0.005)
        self.received.append(payload["text"])
        return str(next(self._ids))


class FloodedOnce(SlowRecorder):
    """A channel whose first send is refused by flood control, as Telegram's 429 does."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = False

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        if not self.refused:
            self.refused = True
            raise RetryLater(5)
        return await super().deliver(chat_id, payload)


async def test_a_message_rewritten_during_a_flood_wait_goes_out_as_rewritten(
    database_url: str,
) -> None:
    """A moderators' card waits out flood control while another process applies its author's
    /forget, which rewrites the waiting card without the words. The wait ends: what goes out is
    the card as stored now, never the one read before the wait (nothing would edit it later)."""
    await migrate_database(database_url)
    engine = create_engine(database_url)
    try:
        uow = UnitOfWorkFactory(create_session_factory(engine))
        async with uow() as unit:
            now = datetime.now(UTC)
            card = await unit.outbox.add("telegram", "-100", {"type": "text", "text": "ord"}, now)
            await unit.commit()

        async def rewritten_meanwhile(seconds: float) -> None:
            assert seconds == 5
            async with uow() as unit:
                erased = {"type": "text", "text": "slettet"}
                assert await unit.outbox.rewrite_unsent(card, erased)
                await unit.commit()

        recorder = FloodedOnce()
        delivery = OutboxDelivery(uow, lambda: datetime.now(UTC), sleep=rewritten_meanwhile)
        delivery.register(recorder)
        await delivery.deliver_chat("telegram", "-100")
        assert recorder.received == ["slettet"]
    finally:
        await engine.dispose()


async def test_a_channel_stopped_during_a_flood_wait_sends_nothing_more(
    database_url: str,
) -> None:
    """A shutdown stops a channel (and closes its connections) while a delivery waits out flood
    control. The wait ends: nothing is sent through the stopped channel, and the message stays
    queued for the next start."""
    await migrate_database(database_url)
    engine = create_engine(database_url)
    try:
        uow = UnitOfWorkFactory(create_session_factory(engine))
        async with uow() as unit:
            card = await unit.outbox.add(
                "telegram", "-100", {"type": "text", "text": "kort"}, datetime.now(UTC)
            )
            await unit.commit()
        recorder = FloodedOnce()

        async def stopped_meanwhile(seconds: float) -> None:
            delivery.unregister("telegram")

        delivery = OutboxDelivery(uow, lambda: datetime.now(UTC), sleep=stopped_meanwhile)
        delivery.register(recorder)
        await delivery.deliver_chat("telegram", "-100")
        assert recorder.received == []
        async with uow.read() as unit:
            stored = await unit.outbox.get(card)
            assert stored is not None
            assert stored.status == OutboxStatus.PENDING
    finally:
        await engine.dispose()


async def two_processes_deliver_one_chat(database_url: str, *, locked: bool) -> list[str]:
    """Queue 40 messages for one chat, deliver them from two 'processes' at once."""
    engine = create_engine(database_url)
    locks = [ChatDeliveryLocks(database_url) if locked else None for _ in range(2)]
    try:
        uow = UnitOfWorkFactory(create_session_factory(engine))
        now = datetime.now(UTC)
        async with uow() as unit:
            for number in range(40):
                await unit.outbox.add("telegram", "42", {"type": "text", "text": f"{number}"}, now)
            await unit.commit()
        recorder = SlowRecorder()
        deliveries = [
            OutboxDelivery(uow, lambda: datetime.now(UTC), shared_locks=lock) for lock in locks
        ]
        for delivery in deliveries:
            delivery.register(recorder)
        await asyncio.gather(*(delivery.deliver_chat("telegram", "42") for delivery in deliveries))
        async with uow.read() as unit:
            assert not await unit.outbox.pending_for_chat("telegram", "42", "reply")
        return recorder.received
    finally:
        for lock in locks:
            if lock is not None:
                await lock.close()
        await engine.dispose()


@POSTGRES
async def test_two_processes_delivering_one_chat_send_each_message_once_in_order(
    database_url: str,
) -> None:
    assert await two_processes_deliver_one_chat(database_url, locked=True) == [
        f"{number}" for number in range(40)
    ]


@POSTGRES
async def test_without_the_chat_lock_two_processes_would_send_messages_twice(
    database_url: str,
) -> None:
    # The check above can fail: without the lock both read the same pending messages.
    received = await two_processes_deliver_one_chat(database_url, locked=False)
    assert len(received) > 40


@POSTGRES
async def test_a_unit_reads_its_replies_for_delivery_only_while_no_process_sends_to_the_chat(
    database_url: str,
) -> None:
    """With several processes, the unit of work that queues an event's replies also reads them
    for their delivery (no unit of its own for that) once it holds the chat across processes.
    While another process sends to the chat it leaves them to a delivery of their own, which
    waits for that process: nothing goes out twice or out of order."""
    engine = create_engine(database_url)
    locks = [ChatDeliveryLocks(database_url) for _ in range(2)]
    try:
        uow = UnitOfWorkFactory(create_session_factory(engine))
        recorder = SlowRecorder()
        other, ours = (
            OutboxDelivery(uow, lambda: datetime.now(UTC), shared_locks=lock) for lock in locks
        )
        other.register(recorder)
        ours.register(recorder)

        async def queue(unit: Any, text: str) -> None:
            await unit.outbox.add(
                "telegram", "42", {"type": "text", "text": text}, datetime.now(UTC)
            )

        async with uow() as unit:
            for number in range(20):
                await queue(unit, f"other {number}")
            await unit.commit()
        running = asyncio.create_task(other.deliver_chat("telegram", "42"))
        await eventually(lambda: len(recorder.received) > 0, what="the other process sending")
        async with uow() as unit:
            await queue(unit, "ours 1")
            held_elsewhere = ours.reply_turn("telegram", "42")
            assert held_elsewhere is not None
            assert not await held_elsewhere.take_if_free()
            await unit.commit()
        await running

        turn = await queued_in_a_held_turn(uow, ours, "ours 2")
        # The other process's next delivery finds the chat taken and waits until it is let go.
        waiting = asyncio.create_task(other.deliver_chat("telegram", "42"))
        await ours.deliver_chat("telegram", "42", turn=turn)
        await waiting
        assert recorder.received == [f"other {n}" for n in range(20)] + ["ours 1", "ours 2"]
        async with uow.read() as unit:
            assert not await unit.outbox.pending_for_chat("telegram", "42", "reply")
        # Let go across processes too: the other process takes the chat at once.
        assert await locks[0].try_lock("telegram:42:reply") is not None
    finally:
        for lock in locks:
            await lock.close()
        await engine.dispose()


@POSTGRES
async def test_a_delivery_that_lost_its_chat_lock_stops_before_its_next_message(
    database_url: str,
) -> None:
    """A process's chat locks live on one connection of their own. When the server ends it,
    every chat lock goes with it and another process may take a chat this one is still sending
    to. This one stops before its next message: at most the message in flight goes out twice,
    as after a crash, and the rest once each, in order."""
    engine = create_engine(database_url)
    locks = [ChatDeliveryLocks(database_url) for _ in range(2)]
    try:
        uow = UnitOfWorkFactory(create_session_factory(engine))
        async with uow() as unit:
            for number in range(30):
                await unit.outbox.add(
                    "telegram", "42", {"type": "text", "text": f"{number}"}, datetime.now(UTC)
                )
            await unit.commit()
        recorder = SlowRecorder()
        first, second = (
            OutboxDelivery(uow, lambda: datetime.now(UTC), shared_locks=lock) for lock in locks
        )
        first.register(recorder)
        second.register(recorder)
        running = asyncio.create_task(first.deliver_chat("telegram", "42"))
        await eventually(lambda: len(recorder.received) >= 3, what="the first process sending")
        server_pid = locks[0]._driver.get_server_pid()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": server_pid})
        await second.deliver_chat("telegram", "42")
        await running
        received = recorder.received
        assert sorted(set(received), key=int) == [f"{number}" for number in range(30)]
        assert len(received) - 30 <= 1  # at most the message in flight, twice
        first_seen = list(dict.fromkeys(received))
        assert first_seen == [f"{number}" for number in range(30)]
    finally:
        for lock in locks:
            await lock.close()
        await engine.dispose()
