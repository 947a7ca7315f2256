"""Web chat across processes: a citizen's tab on one process gets what another one delivers.

Two applications on one PostgreSQL, as two ``borgerdialog run`` processes behind a load balancer
would run. Every push to a web chat reaches the chat's tabs on the other process through
PostgreSQL's LISTEN/NOTIFY, once; on SQLite (one process) none of that is built.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text

from bot.app import BorgerDialog
from bot.channels.telegram.webhook import PATH
from bot.config import Settings
from storage.notifications import Listener
from tests.citizens import import_consultation
from tests.conftest import MODERATORS, eventually
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.moderators import Moderator, consultation_source, new_card
from tests.postgres import free_port
from tests.webcitizens import WebTab, open_tab, web_session

POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECRET = "webhook_Secret-17"
HELP = "Det kan du her"
# Generous: a push crosses in milliseconds.
ARRIVES_SECONDS = 5.0

Apps = tuple[BorgerDialog, BorgerDialog]


@pytest.fixture
async def two_apps(
    make_settings: Callable[..., Settings],
    fake_bot: FakeBot,
    fake_telegram: FakeTelegram,
) -> AsyncIterator[Apps]:
    """Two applications on one database, one bot, in webhook mode, started one after the other.

    Telegram delivers to the address set last: every Telegram update goes to the second.
    """
    started: list[BorgerDialog] = []
    try:
        for _ in range(2):
            port = free_port()
            app = BorgerDialog(
                make_settings(
                    http_port=port,
                    telegram_token=fake_bot.token,
                    telegram_api_url=fake_telegram.api_url,
                    telegram_webhook_url=f"http://127.0.0.1:{port}{PATH}",
                    telegram_webhook_secret=SECRET,
                    moderator_chat_id=MODERATORS,
                )
            )
            await app.start()
            started.append(app)
        yield started[0], started[1]
    finally:
        for app in started:
            await app.stop()


@pytest.fixture
async def two_web_apps(make_settings: Callable[..., Settings]) -> AsyncIterator[Apps]:
    """Two applications on one database with the web chat alone."""
    started: list[BorgerDialog] = []
    try:
        for _ in range(2):
            app = BorgerDialog(make_settings())
            await app.start()
            started.append(app)
        yield started[0], started[1]
    finally:
        for app in started:
            await app.stop()


def base(app: BorgerDialog) -> str:
    return app.settings.public_base_url


def listener(app: BorgerDialog) -> Listener:
    assert app.webchat is not None
    assert app.webchat.sharing is not None
    return app.webchat.sharing.listener


def pushes(tab: WebTab, starts: str) -> list[dict[str, Any]]:
    """The messages pushed one by one to a tab whose text starts so (a history not counted)."""
    return [
        e["message"]
        for e in tab.events
        if e["type"] == "message" and e["message"]["text"].startswith(starts)
    ]


async def arrives(tab: WebTab, starts: str, count: int = 1) -> None:
    await eventually(
        lambda: len(pushes(tab, starts)) >= count, ARRIVES_SECONDS, f"{starts!r} in the tab"
    )


@POSTGRES
async def test_a_moderators_decision_taken_on_one_process_reaches_the_tab_on_the_other_once(
    two_apps: Apps, fake_bot: FakeBot
) -> None:
    a, b = two_apps
    assert fake_bot.webhook["url"] == b.settings.telegram_webhook_url
    for member in (901, 902):
        fake_bot.send_message(member, "hej", chat_id=MODERATORS, chat_type="supergroup")
        fake_bot.set_member(MODERATORS, member, "member")
    await import_consultation(a, consultation_source())
    moderator = Moderator(fake_bot, 901)
    async with web_session() as session:
        # The same citizen in two tabs, the load balancer sending each to another process.
        on_a = await open_tab(base(a), session)
        on_b = await open_tab(base(b), session)
        await on_a.write("/start trafik", new=2)
        await on_a.tap("Ja, jeg giver samtykke")
        # Screened and held on A, which handled it; the card goes to the moderator chat.
        await on_a.write("I er nogle idioter på rådhuset", new=2)
        card = await new_card(moderator, 0)

        # The press reaches B (Telegram's webhook); B decides and tells the author.
        await moderator.press(card, "✅ Godkend")
        await arrives(on_a, "✅ Dit svar")
        await arrives(on_b, "✅ Dit svar")
        # The whole conversation reached the tab on B as well, the citizen's own bubbles too.
        assert on_b.bot_texts() == on_a.bot_texts()
        assert [m["text"] for m in on_b.messages.values() if m["author"] == "citizen"] == [
            "/start trafik",
            "I er nogle idioter på rådhuset",
        ]

        # Each process hands on the other's notifications in the order they were committed:
        # once a later message from each side has crossed, any repeat would have too.
        await on_b.write("/hjaelp")
        await arrives(on_a, HELP)
        await on_a.write("/hjaelp")
        await arrives(on_b, HELP, 2)
        await asyncio.sleep(0.2)
        for tab in (on_a, on_b):
            assert len(pushes(tab, "✅ Dit svar")) == 1
            assert len(pushes(tab, HELP)) == 2
        await on_a.close()
        await on_b.close()


@POSTGRES
async def test_after_the_listening_connection_is_killed_pushes_arrive_again(
    two_web_apps: Apps, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two_web_apps
    async with web_session() as session:
        on_a = await open_tab(base(a), session)
        on_b = await open_tab(base(b), session)
        await on_b.write("/hjaelp")
        await arrives(on_a, HELP)

        # Slow to listen again, so that a message is certainly delivered while A is away.
        monkeypatch.setattr("storage.notifications.RECONNECT_SECONDS", (1.5,))
        caplog.set_level(logging.INFO, logger="storage.notifications")
        killed = listener(a).server_pid
        assert a.engine is not None
        async with a.engine.connect() as connection:
            assert await connection.scalar(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": killed}
            )
        await eventually(lambda: not listener(a).listening, ARRIVES_SECONDS, "A to notice")
        # While away, A's health says so (a balancer may send new tabs elsewhere).
        healthy, report = await a.health()
        assert not healthy
        assert report["faults"] == {"web chat across processes": "not listening; retrying"}
        histories = sum(e["type"] == "history" for e in on_a.events)
        await on_b.write("/hjaelp")
        # Missed while away; A gives its tabs the transcript again once it listens again.
        await eventually(
            lambda: sum(e["type"] == "history" for e in on_a.events) > histories,
            ARRIVES_SECONDS,
            "the transcript again",
        )
        assert listener(a).listening
        assert listener(a).server_pid not in (None, killed)
        assert (await a.health())[0]
        assert len([t for t in on_a.bot_texts() if t.startswith(HELP)]) == 2

        # Listening again: a later message crosses at once, as before.
        await on_b.write("/hjaelp")
        await arrives(on_a, HELP, 2)
        await on_a.close()
        await on_b.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "lost the connection for the web chat's notifications; retrying"
    ]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "w-" not in logged
    assert HELP not in logged


@SQLITE
async def test_on_sqlite_nothing_listens(make_settings: Callable[..., Settings]) -> None:
    app = BorgerDialog(make_settings())
    await app.start()
    try:
        assert app.webchat is not None
        assert app.webchat.sharing is None
        async with web_session() as session:
            tab = await open_tab(base(app), session)
            await tab.write("/hjaelp")
            await tab.close()
    finally:
        await app.stop()
