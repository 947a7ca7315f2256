"""A kill -9 in the middle of a burst loses no update, applies none twice and keeps chat order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from bot.config import Settings
from storage.database import create_engine
from storage.models import InboxEvent, InboxStatus, Participant
from tests.botprocess import BotProcess, citizen_script, reply_kind
from tests.conftest import eventually
from tests.fake_telegram import FakeBot, FakeTelegram

# How long after the kill a reply sent before it may still reach the fake.
IN_FLIGHT_SLACK = 0.5
CITIZENS = 200
MESSAGES_EACH = 5
KILL_AFTER_REPLIES = 300


async def test_kill_9_mid_burst_loses_nothing_and_applies_nothing_twice(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    # A simulated 50 ms round trip keeps many requests in flight when the kill lands.
    fake_telegram.latency = 0.05
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    bot = BotProcess(settings, tmp_path)
    bot.start()
    try:
        await bot.wait_healthy()
        burst = [
            (1000 + citizen, citizen_script(citizen)[position][0])
            for position in range(MESSAGES_EACH)
            for citizen in range(CITIZENS)
        ]
        fake_bot.send_many(burst)

        def replies_sent() -> int:
            return sum(1 for entry in fake_bot.requests("sendMessage") if entry[3] == 200)

        await eventually(
            lambda: replies_sent() >= KILL_AFTER_REPLIES,
            timeout=60,
            what=f"{KILL_AFTER_REPLIES} replies before the kill",
        )
        bot.kill()
        killed_at = time.monotonic()
        answered_before_kill = replies_sent()
        assert answered_before_kill < CITIZENS * MESSAGES_EACH, "the kill must land mid-burst"

        bot.start()
        await bot.wait_healthy()

        def all_answered() -> bool:
            return all(
                len({reply_kind(t) for t in fake_bot.texts(1000 + c)}) == MESSAGES_EACH
                for c in range(CITIZENS)
            )

        await eventually(
            all_answered, timeout=120, what="every message answered after restart", interval=0.25
        )
        await eventually(lambda: fake_bot.unconfirmed() == 0, what="every update confirmed")
        assert bot.terminate() == 0, bot.logs()
    finally:
        if bot.process is not None and bot.process.poll() is None:
            bot.kill()

    # Stored and applied exactly once, in order within each chat.
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            events = (await connection.execute(select(InboxEvent))).all()
            participants = (await connection.execute(select(Participant))).all()
    finally:
        await engine.dispose()
    assert len(events) == CITIZENS * MESSAGES_EACH
    assert {event.status for event in events} == {InboxStatus.DONE}
    by_chat: dict[str, list[tuple[int, int]]] = {}
    for event in events:
        assert event.chat_id is not None
        assert event.applied_sequence is not None
        by_chat.setdefault(event.chat_id, []).append(
            (int(event.external_id), event.applied_sequence)
        )
    for chat_id, applied in by_chat.items():
        in_update_order = [sequence for _update_id, sequence in sorted(applied)]
        assert in_update_order == list(range(1, MESSAGES_EACH + 1)), f"chat {chat_id}"
    assert {p.events_applied for p in participants} == {MESSAGES_EACH}
    assert len(participants) == CITIZENS

    # Answered in order; a reply repeats only if it was in flight at the kill.
    repeats = 0
    for citizen in range(CITIZENS):
        chat_id = 1000 + citizen
        sent = fake_bot.sent(chat_id)
        kinds: list[str] = []
        for index, message in enumerate(sent):
            kind = reply_kind(message.text or "")
            if kinds and kinds[-1] == kind:
                previous = sent[index - 1]
                # Bytes already on the wire at the kill may reach the fake a moment after it
                # was recorded: "in flight" has a little slack.
                # A send that timed out is sent again too (the bot cannot know whether it
                # arrived): the logs say whether one did.
                assert previous.sent_at < killed_at + IN_FLIGHT_SLACK < message.sent_at, (
                    f"chat {chat_id}: a reply repeated that was not in flight at the kill "
                    f"({previous.sent_at - killed_at:.1f} s and "
                    f"{message.sent_at - killed_at:.1f} s after it)\n{bot.logs()}"
                )
                repeats += 1
                continue
            kinds.append(kind)
        assert kinds == [phrase for _m, phrase in citizen_script(citizen)], f"chat {chat_id}"
    # Per chat at most one reply is in flight at a time (delivery is per chat, in order).
    assert repeats <= CITIZENS
    print(f"\nkilled after {answered_before_kill} replies; {repeats} in-flight replies repeated")
    await asyncio.sleep(0)
