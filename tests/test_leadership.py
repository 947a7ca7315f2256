"""Timed work runs once: of several processes on one PostgreSQL one leads, and another takes over
when it goes; on SQLite a second ``borgerdialog run`` is refused."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app import BorgerDialog
from bot.config import Settings
from storage.models import OutboxMessage, PlannedPost, PostState
from tests.botprocess import BotProcess
from tests.cli import borgerdialog
from tests.conftest import eventually, table_rows
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.postgres import free_port

POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CHANNEL = -100321
# Followers try for the lead every RETRY_SECONDS (5 s in production); here every fifth of a second.
QUICK_RETRY = 0.2
TAKEOVER_SECONDS = 5.0


@pytest.fixture
def quick_elections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("scheduler.leader.RETRY_SECONDS", QUICK_RETRY)


@pytest.fixture
async def two_apps(
    quick_elections: None,
    fake_telegram: FakeTelegram,
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[tuple[BorgerDialog, FakeBot], tuple[BorgerDialog, FakeBot]]]:
    """Two applications on one database, as two processes would run, each with its own bot (so
    what each one sends can be told apart), started one after the other."""
    started: list[tuple[BorgerDialog, FakeBot]] = []
    try:
        for _ in range(2):
            bot = fake_telegram.new_bot()
            bot.open_channel(CHANNEL)
            settings = make_settings(
                telegram_token=bot.token,
                telegram_api_url=fake_telegram.api_url,
                public_channel_id=CHANNEL,
                plan_check_seconds=1,
            )
            app = BorgerDialog(settings)
            await app.start()
            started.append((app, bot))
        yield started[0], started[1]
    finally:
        for app, _bot in started:
            await app.stop()


def roles(*apps: BorgerDialog) -> list[str]:
    return [app.leadership.role if app.leadership else "stopped" for app in apps]


async def role_in_health(app: BorgerDialog) -> str:
    _ok, report = await app.health()
    return str(report["role"])


@POSTGRES
async def test_one_of_two_processes_leads_and_the_other_takes_over_when_it_stops(
    two_apps: tuple[tuple[BorgerDialog, FakeBot], tuple[BorgerDialog, FakeBot]],
) -> None:
    (first, _), (second, _) = two_apps
    assert roles(first, second) == ["leader", "follower"]
    assert [await role_in_health(first), await role_in_health(second)] == ["leader", "follower"]
    # Only the leader runs the timed work and the bulk lane.
    assert first.bulk is not None
    assert second.bulk is None

    await first.stop()
    await eventually(
        lambda: roles(second) == ["leader"], TAKEOVER_SECONDS, "the follower to take the lead"
    )
    assert second.bulk is not None
    assert await role_in_health(second) == "leader"


@POSTGRES
async def test_a_leader_whose_lock_connection_breaks_stops_and_the_other_takes_over(
    two_apps: tuple[tuple[BorgerDialog, FakeBot], tuple[BorgerDialog, FakeBot]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (first, _), (second, _) = two_apps
    assert roles(first, second) == ["leader", "follower"]
    assert first.engine is not None
    # Checks a second apart, so a step-down well within one shows it did not wait for a check.
    monkeypatch.setattr("scheduler.leader.RETRY_SECONDS", 1.0)
    await asyncio.sleep(2 * QUICK_RETRY)  # until both wait the longer interval
    # The server ends the leader's lock session, as when its connection drops (its key is one
    # number, objsubid 1; chat delivery locks are two-number keys).
    async with first.engine.connect() as connection:
        terminated = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = "
                "'advisory' AND granted AND objsubid = 1 AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    assert terminated == 1

    # It stops its timed work at once, without waiting for its next check.
    await eventually(lambda: roles(first) == ["follower"], 0.5, "the old leader to step down")
    await eventually(
        lambda: roles(first, second) == ["follower", "leader"],
        TAKEOVER_SECONDS,
        "the other process to take the lead",
    )
    assert first.bulk is None
    assert second.bulk is not None


@POSTGRES
async def test_a_due_post_is_sent_once_by_the_leader_only(
    two_apps: tuple[tuple[BorgerDialog, FakeBot], tuple[BorgerDialog, FakeBot]],
) -> None:
    (leader, leader_bot), (follower, follower_bot) = two_apps
    assert roles(leader, follower) == ["leader", "follower"]
    assert follower.uow is not None
    now = datetime.now(UTC)
    # Planned through the follower: any process may plan; only the leader publishes.
    async with follower.uow() as uow:
        await uow.plan.add(
            PlannedPost(
                kind="message",
                texts={"da": "Borgermøde i aften"},
                audience={"channel": True, "chats": [], "subscribers": None},
                occurrence=1,
                due_at=now,
                state=PostState.PLANNED,
                recipients=0,
                created_by="test",
                created_at=now,
                updated_at=now,
            )
        )
        await uow.commit()

    await eventually(
        lambda: leader_bot.texts(CHANNEL) == ["Borgermøde i aften"],
        10,
        "the leader's bot to post it",
    )
    rows = [r for r in await table_rows(leader, OutboxMessage) if r.post_id is not None]
    assert len(rows) == 1
    assert follower_bot.texts(CHANNEL) == []


@SQLITE
async def test_a_second_run_on_the_same_sqlite_file_is_refused(
    fake_bot: FakeBot,
    fake_telegram: FakeTelegram,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    first = BotProcess(settings, tmp_path)
    first.start()
    try:
        await first.wait_healthy()
        second: subprocess.CompletedProcess[str] = borgerdialog(
            "run",
            cwd=tmp_path,
            env={
                "BORGERDIALOG_DATABASE_URL": settings.database_url,
                "BORGERDIALOG_HTTP_PORT": str(free_port()),
            },
            timeout=30,
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("borgerdialog: another borgerdialog process is running")
        assert "SQLite" in lines[0]
        # The first runs on, untouched.
        await first.wait_healthy()
    finally:
        assert first.terminate() == 0
