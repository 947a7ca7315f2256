"""GET /healthz reports database reachability and channel states."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import aiohttp
import pytest

from bot.app import BorgerDialog
from bot.config import Settings


async def fetch_health(app: BorgerDialog) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{app.settings.http_port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_healthy_without_telegram(make_settings: Callable[..., Settings]) -> None:
    app = BorgerDialog(make_settings())
    await app.start()
    try:
        status, report = await fetch_health(app)
    finally:
        await app.stop()
    assert status == 200
    assert report == {
        "status": "ok",
        "role": "leader",
        "database": "ok",
        "writes": "ok",
        "channels": {"telegram": "disabled", "web": "running"},
        "inbox": {"pending": 0, "lag_seconds": 0.0},
        "outbox": {"reply": 0, "bulk": 0},
    }


async def test_health_tells_what_waits_and_for_how_long(
    make_settings: Callable[..., Settings],
) -> None:
    app = BorgerDialog(make_settings())
    await app.start()
    try:
        assert app.uow is not None
        now = app.clock()
        # A Telegram update stored 90 s ago and a reply queued, with Telegram not running here
        # (another process's work, say): both wait.
        async with app.uow() as uow:
            update = {"update_id": 1, "message": {"text": "hej"}}
            await uow.inbox.add_new("telegram", [("1", "5", update)], now - timedelta(seconds=90))
            await uow.outbox.add("telegram", "5", {"type": "text", "text": "Hej"}, now)
            await uow.commit()
        status, report = await fetch_health(app)
    finally:
        await app.stop()
    # Waiting work is reported, not a fault of this process.
    assert status == 200
    assert report["inbox"]["pending"] == 1
    assert 90 <= report["inbox"]["lag_seconds"] < 120
    assert report["outbox"] == {"reply": 1, "bulk": 0}


async def test_healthy_with_telegram(telegram_app: BorgerDialog) -> None:
    status, report = await fetch_health(telegram_app)
    assert status == 200
    assert report["channels"] == {"telegram": "running", "web": "running"}


async def test_unreachable_database_is_503(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = BorgerDialog(make_settings())
    await app.start()
    try:

        async def refuse(_engine: object) -> None:
            raise ConnectionRefusedError("database went away")

        monkeypatch.setattr("bot.app.ping", refuse)
        status, report = await fetch_health(app)
    finally:
        await app.stop()
    assert status == 503
    assert report["status"] == "degraded"
    assert report["database"] == "unreachable: ConnectionRefusedError"


def test_a_fault_is_logged_once_and_a_passing_one_expires(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.dialogue.health import HealthBoard

    board = HealthBoard()
    for _ in range(5):
        board.fault("telegram intake", "cannot store updates (OperationalError)")
    assert board.faults() == {"telegram intake": "cannot store updates (OperationalError)"}
    board.clear("telegram intake")
    assert board.faults() == {}
    board.fault("job purge_expired", "database unavailable", lasting=0.0)
    assert board.faults() == {}
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.dialogue.health"]
    assert messages == [
        "telegram intake degraded: cannot store updates (OperationalError); retrying",
        "telegram intake recovered",
        "job purge_expired degraded: database unavailable; retrying",
    ]
