"""A kill -9 in the middle of a burst loses no update, applies none twice and keeps chat order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.config import Settings
from storage.database import create_engine
from storage.models import InboxEvent, InboxStatus, Participant
from tests.conftest import eventually
from tests.fake_telegram import FakeBot, FakeTelegram

CITIZENS = 200
MESSAGES_EACH = 5
KILL_AFTER_REPLIES = 300

# What each citizen sends, and a phrase that identifies the Danish reply to it.
SCRIPT = [
    ("/start", "Hej og velkommen"),
    ("/help", "Det kan du her"),
    ("/privacy", "Sådan passer vi"),
    ("Hvornår åbner biblioteket?", "Tak for din besked"),
    ("/language", "Vælg det sprog"),
]


def citizen_script(citizen: int) -> list[tuple[str, str]]:
    """Each citizen sends the five messages in its own rotation, so chats differ in order."""
    shift = citizen % len(SCRIPT)
    return SCRIPT[shift:] + SCRIPT[:shift]


def reply_kind(text: str) -> str:
    for _message, phrase in SCRIPT:
        if text.startswith(phrase):
            return phrase
    raise AssertionError(f"unexpected reply {text[:40]!r}")


class BotProcess:
    """``python -m bot run`` in a child process, as an operator would start it."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        assert settings.telegram_token is not None
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BORGERDIALOG_")},
            "BORGERDIALOG_TELEGRAM_TOKEN": settings.telegram_token.get_secret_value(),
            "BORGERDIALOG_TELEGRAM_API_URL": settings.telegram_api_url,
            "BORGERDIALOG_DATABASE_URL": settings.database_url,
            "BORGERDIALOG_HTTP_PORT": str(settings.http_port),
            "BORGERDIALOG_POLLING_TIMEOUT": "1",
            "BORGERDIALOG_LOG_LEVEL": "WARNING",
        }
        self.workdir = workdir
        self.port = settings.http_port
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.workdir / f"bot-{self.runs}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait_healthy(self) -> None:
        async def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the bot exited early:\n{self.logs()}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{self.port}/healthz") as response,
                ):
                    report = await response.json()
                    return response.status == 200 and report["channels"]["telegram"] == "running"
            except aiohttp.ClientError:
                return False

        await eventually(healthy, timeout=30, what="the bot to report healthy")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:]
            for path in sorted(self.workdir.glob("bot-*.log"))
        )


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

        await eventually(all_answered, timeout=120, what="every message answered after restart")
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
                assert previous.sent_at < killed_at < message.sent_at, (
                    f"chat {chat_id}: a reply repeated that was not in flight at the kill"
                )
                repeats += 1
                continue
            kinds.append(kind)
        assert kinds == [phrase for _m, phrase in citizen_script(citizen)], f"chat {chat_id}"
    # Per chat at most one reply is in flight at a time (delivery is per chat, in order).
    assert repeats <= CITIZENS
    print(f"\nkilled after {answered_before_kill} replies; {repeats} in-flight replies repeated")
    await asyncio.sleep(0)
