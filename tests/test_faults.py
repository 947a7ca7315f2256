"""Database faults while citizens write: a held lock, a restarting server, a full disk.

Each fault lasts longer than any single wait inside the bot. During it /healthz must say
"degraded"; after it every citizen must be answered, once, without a restart.
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url

import storage.database
from bot.app import BorgerDialog
from bot.config import Settings
from tests.botprocess import BotProcess
from tests.citizens import Citizen, import_consultation, open_now
from tests.conftest import PostgresProvider, eventually
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.webcitizens import open_tab, web_session

HELP_REPLY = "Det kan du her"
CITIZENS = 12


class HealthWatch:
    """Ask /healthz twice a second in the background; remember every status it gave."""

    def __init__(self, port: int) -> None:
        self._url = f"http://127.0.0.1:{port}/healthz"
        self.statuses: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while True:
                try:
                    async with session.get(self._url) as response:
                        self.statuses.append((await response.json())["status"])
                except (aiohttp.ClientError, TimeoutError):
                    self.statuses.append("no answer")
                await asyncio.sleep(0.5)

    def __enter__(self) -> HealthWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _every_citizen_answered(citizens: list[Citizen], before: dict[int, int]) -> None:
    def answered() -> bool:
        return all(
            any(m.text.startswith(HELP_REPLY) for m in c.messages()[before[c.id] :])
            for c in citizens
        )

    await eventually(answered, timeout=120, what="every citizen answered after the fault")
    for citizen in citizens:
        replies = [
            m for m in citizen.messages()[before[citizen.id] :] if m.text.startswith(HELP_REPLY)
        ]
        assert len(replies) == 1, f"citizen {citizen.id} was answered {len(replies)} times"


def _burst(fake_bot: FakeBot, first_id: int) -> tuple[list[Citizen], dict[int, int]]:
    citizens = [Citizen(fake_bot, first_id + n) for n in range(CITIZENS)]
    before = {c.id: len(c.messages()) for c in citizens}
    fake_bot.send_many([(c.id, "/help") for c in citizens])
    return citizens, before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "busy_timeout_ms",
    # The bot's own busy timeout (30 s) is the soak run; the default run waits 3 s instead.
    [3000, pytest.param(None, marks=pytest.mark.slow, id="real-busy-timeout")],
)
async def test_sqlite_locked_longer_than_the_busy_timeout(
    telegram_app: BorgerDialog,
    fake_bot: FakeBot,
    busy_timeout_ms: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if busy_timeout_ms is not None:
        monkeypatch.setattr(storage.database, "SQLITE_BUSY_TIMEOUT_MS", busy_timeout_ms)
    # The lock is held 5 s longer than a writer waits for it (35 s against the bot's 30 s).
    hold_seconds = storage.database.SQLITE_BUSY_TIMEOUT_MS / 1000 + 5
    await import_consultation(telegram_app, open_now())
    await Citizen(fake_bot, 7000).write("/help")
    database = make_url(telegram_app.settings.database_url).database
    assert database is not None
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        # Another program (a backup tool, a careless sqlite3 shell) holds the write lock longer
        # than the bot's busy timeout.
        connection = sqlite3.connect(database, isolation_level=None, timeout=30)
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(hold_seconds)
        connection.execute("ROLLBACK")
        connection.close()

    holder = threading.Thread(target=hold_the_write_lock)
    base = f"http://127.0.0.1:{telegram_app.settings.http_port}"
    async with web_session() as session:
        tab = await open_tab(base, session)
        holder.start()
        try:
            assert await asyncio.to_thread(locked.wait, 30)
            with HealthWatch(telegram_app.settings.http_port) as health:
                citizens, before = _burst(fake_bot, 7100)
                # The page loads while the lock is held (it only reads).
                async with session.get(f"{base}/chat") as page:
                    assert page.status == 200
                sent = await tab.send({"type": "text", "text": "/help"})
                await asyncio.to_thread(holder.join)
                await _every_citizen_answered(citizens, before)
                # The web message could not be stored in time: not acknowledged, and the socket
                # closed with "try again later", so the page sends it again on reconnecting.
                await eventually(lambda: tab.socket is not None and tab.socket.closed)
                assert tab.socket is not None
                assert tab.socket.close_code == 1013
                assert not any(e.get("id") == sent for e in tab.events)
                again = await open_tab(base, session)
                await again.send({"type": "text", "text": "/help"}, client_id=sent)
                await eventually(
                    lambda: any(t.startswith(HELP_REPLY) for t in again.bot_texts()),
                    what="the web message answered after the lock",
                )
                await again.close()
                await eventually(lambda: health.statuses[-1:] == ["ok"], what="health ok again")
        finally:
            release.set()
            await asyncio.to_thread(holder.join)
    assert "degraded" in health.statuses
    # Reads never waited for the lock: every health check answered.
    assert "no answer" not in health.statuses


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_restarted_mid_burst(
    telegram_app: BorgerDialog, fake_bot: FakeBot, postgres: PostgresProvider
) -> None:
    if postgres.cluster is None:
        pytest.skip("needs the throwaway cluster to restart (BORGERDIALOG_TEST_POSTGRES_URL set)")
    await import_consultation(telegram_app, open_now())
    await Citizen(fake_bot, 8000).write("/help")
    with HealthWatch(telegram_app.settings.http_port) as health:
        citizens, before = _burst(fake_bot, 8100)
        await asyncio.to_thread(postgres.cluster.restart, 4.0)
        late, late_before = _burst(fake_bot, 8200)
        await _every_citizen_answered(citizens, before)
        await _every_citizen_answered(late, late_before)
        await eventually(lambda: health.statuses[-1:] == ["ok"], what="health ok again")
    assert "degraded" in health.statuses


class PipedBot:
    """``python -m bot run`` in a child process whose output goes to a pipe, not a file.

    A limit on file size (RLIMIT_FSIZE) stands in for a full disk; output to a file would hit
    it too and hide what the bot said.
    """

    def __init__(self, settings: Settings, workdir: Path) -> None:
        # The same environment as the crash-safety test's child process.
        self.env = BotProcess(settings, workdir).env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    def limit_file_size(self, size: int | None) -> None:
        """Set the soft limit (None: back to the hard limit; raising that needs privileges)."""
        _soft, hard = resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE)
        soft = hard if size is None else size
        resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE, (soft, hard))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self._reader.join(5)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_disk_full_then_freed(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    if not hasattr(resource, "prlimit"):
        pytest.skip("needs Linux's prlimit to change a running process's file size limit")
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    bot = PipedBot(settings, tmp_path)
    try:
        port = settings.http_port

        async def status() -> str | None:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{port}/healthz") as response,
                ):
                    return str((await response.json())["status"])
            except aiohttp.ClientError:
                return None

        await eventually(lambda: status(), timeout=30, what="the bot to answer /healthz")
        await Citizen(fake_bot, 9000).write("/help")
        # No file of the bot's may grow past 4 KiB: every commit needs more (SQLite's WAL).
        bot.limit_file_size(4096)
        with HealthWatch(port) as health:
            citizens, before = _burst(fake_bot, 9100)
            await eventually(
                lambda: "degraded" in health.statuses, timeout=30, what="health degraded"
            )
            await asyncio.sleep(2)
            assert not any(
                m.text.startswith(HELP_REPLY)
                for c in citizens
                for m in c.messages()[before[c.id] :]
            ), "answered although nothing could be stored"
            bot.limit_file_size(None)
            await _every_citizen_answered(citizens, before)
            await eventually(lambda: health.statuses[-1:] == ["ok"], what="health ok again")
        assert bot.process.poll() is None, "".join(bot.output)
    finally:
        bot.stop()
    assert "Traceback" not in "".join(bot.output)


def _driver_error(inner: Exception) -> Exception:
    """A driver error as SQLAlchemy's asyncpg adapter hands it on: wrapped, with its cause."""
    from sqlalchemy import exc

    try:
        try:
            raise inner
        except Exception as error:
            raise RuntimeError("adapted") from error
    except RuntimeError as adapted:
        return exc.DBAPIError("SELECT 1", {}, adapted)


def test_passing_database_faults_are_told_from_mistakes() -> None:
    import asyncpg

    from storage.database import is_transient

    shutting_down = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    assert is_transient(_driver_error(shutting_down))
    assert is_transient(_driver_error(asyncpg.exceptions.DiskFullError("disk full")))
    assert is_transient(_driver_error(asyncpg.exceptions.DeadlockDetectedError("deadlock")))
    assert not is_transient(_driver_error(asyncpg.exceptions.UniqueViolationError("duplicate")))
    assert not is_transient(ValueError("a bug"))


def test_sqlite_mistakes_are_not_mistaken_for_faults_that_pass() -> None:
    from sqlalchemy import exc

    from storage.database import is_transient

    def sqlite_error(code: int) -> Exception:
        error = sqlite3.OperationalError("x")
        error.sqlite_errorcode = code
        return exc.OperationalError("SELECT 1", {}, error)

    assert is_transient(sqlite_error(5))  # SQLITE_BUSY: the lock is held
    assert is_transient(sqlite_error(13))  # SQLITE_FULL
    assert is_transient(sqlite_error(10 | 3 << 8))  # SQLITE_IOERR_WRITE (a file size limit)
    assert not is_transient(sqlite_error(1))  # SQLITE_ERROR: no such table, a bad statement


async def test_a_commit_whose_answer_was_lost_is_still_applied(
    telegram_app: BorgerDialog, fake_bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import exc

    assert telegram_app.core is not None
    real_accept = telegram_app.core.accept
    lost = []

    async def commit_then_lose_the_answer(channel: str, events: list) -> set[str]:
        stored = await real_accept(channel, events)
        if not lost:
            # Committed, but the connection dropped before the bot heard so.
            lost.append(stored)
            raise exc.OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))
        return stored

    monkeypatch.setattr(telegram_app.core, "accept", commit_then_lose_the_answer)
    replies = await Citizen(fake_bot, 9500).write("/help")
    assert lost, "the fault was not injected"
    assert replies[-1].text.startswith(HELP_REPLY)
