"""Chats run concurrently but each in order, even when the update pool is full; SIGTERM
finishes what was taken in."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from bot.app import BorgerDialog
from bot.config import Settings
from bot.dialogue.tasks import stop_tasks
from storage.database import create_engine
from storage.models import InboxEvent, InboxStatus
from tests.botprocess import SCRIPT, BotProcess, citizen_script, reply_kind
from tests.conftest import eventually
from tests.fake_telegram import FakeBot, FakeTelegram

CITIZENS = 30


async def test_each_chat_stays_in_order_when_few_updates_may_run_at_once(
    fake_telegram: FakeTelegram, fake_bot: FakeBot, make_settings: Callable[..., Settings]
) -> None:
    fake_telegram.latency = 0.01
    settings = make_settings(
        telegram_token=fake_bot.token,
        telegram_api_url=fake_telegram.api_url,
        max_concurrent_updates=3,
    )
    app = BorgerDialog(settings)
    await app.start()
    try:
        fake_bot.send_many(
            [
                (2000 + citizen, citizen_script(citizen)[position][0])
                for position in range(len(SCRIPT))
                for citizen in range(CITIZENS)
            ]
        )
        await eventually(
            lambda: all(len(fake_bot.texts(2000 + c)) == len(SCRIPT) for c in range(CITIZENS)),
            timeout=60,
            what="every message answered",
        )
    finally:
        await app.stop()
    for citizen in range(CITIZENS):
        kinds = [reply_kind(text) for text in fake_bot.texts(2000 + citizen)]
        assert kinds == [phrase for _message, phrase in citizen_script(citizen)]


async def test_sigterm_finishes_updates_in_flight_and_exits_cleanly(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    # A slow Telegram keeps updates in flight when the signal arrives.
    fake_telegram.latency = 0.3
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    bot = BotProcess(settings, tmp_path)
    bot.start()
    try:
        await bot.wait_healthy()
        fake_bot.send_many([(3000 + n, "/help") for n in range(40)])
        await eventually(
            lambda: fake_bot.texts(3000) or fake_bot.texts(3039), timeout=30, what="the first reply"
        )
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        assert bot.process.wait(60) == 0, bot.logs()
    finally:
        if bot.process is not None and bot.process.poll() is None:
            bot.kill()
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            events = (await connection.execute(select(InboxEvent))).all()
    finally:
        await engine.dispose()
    assert events, "the updates were taken in before the signal"
    for event in events:
        assert event.status == InboxStatus.DONE
        assert fake_bot.texts(int(event.chat_id)), f"chat {event.chat_id} got its reply"
    assert "Traceback" not in bot.logs()


async def test_a_background_task_that_loses_a_cancel_still_stops() -> None:
    """Python 3.11's asyncio.wait_for can lose a cancel (when the call it waits on finished in
    the same step); the web chat's sender then went on waiting on its queue, and a shutdown on
    PostgreSQL waited for it for good. stop_tasks cancels again until the task has ended."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    lost: list[bool] = []

    async def loses_the_first_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            lost.append(True)  # as wait_for does: the cancel is not passed on
        await queue.get()

    task = asyncio.create_task(loses_the_first_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_tasks(task, None), 10)
    assert lost == [True]
    assert task.cancelled()
