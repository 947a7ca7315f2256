"""Fixtures: the fake Telegram server, a database per test on SQLite and PostgreSQL, the app."""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from bot.app import BorgerDialog
from bot.config import Settings, load_settings
from bot.consultations.demo import ensure_demo
from storage.database import create_engine
from storage.migrate import upgrade
from tests.browsers import CHROMIUM, CHROMIUM_ARGS, ORGANISATION
from tests.cli import Cli
from tests.fake_graph import FakeGraph
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.flows import FlowBot
from tests.postgres import (
    ThrowawayPostgres,
    create_database,
    drop_database,
    find_bindir,
    free_port,
)

BACKENDS = ["sqlite", "postgresql"]
# The moderators' group chat in tests that have one.
MODERATORS = -100500
_database_names = itertools.count(1)
LOCK_FILE = Path(__file__).resolve().parent.parent / "constraints.txt"


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on every core and one more worker by default; ``-n 0`` or ``-p no:xdist`` runs in
    one process, and so does ``--pdb``.

    Set here rather than in addopts, where ``-n`` would be an unknown option to a run with
    ``-p no:xdist``. Much of the suite waits (child processes starting, sockets, real-time
    limits), so the workers overlap those waits as well as using the cores; one worker more
    than the cores overlaps more (on 2 cores, 3 workers took 385 s where 2 took 472 s and
    4 took 380 s, 2026-12-02).
    """
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    if config.option.numprocesses is None and not config.option.usepdb:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        config.option.numprocesses = (cores or 1) + 1  # (macOS has no sched_getaffinity)
    if config.option.dist == "no":
        # A worker that runs out of tests takes some from another's queue: a few tests take
        # tens of seconds, and one of them near the end would otherwise leave a worker idle.
        config.option.dist = "worksteal"


# A soak test (marked slow) runs for minutes at real rates; pyproject's per-test timeout is for
# the default run's tests.
SOAK_TIMEOUT_SECONDS = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give soak tests the soak timeout, unless a test names its own."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SOAK_TIMEOUT_SECONDS))


def pytest_report_header() -> list[str]:
    """Name every locked package's installed version, so a break from a new release names it."""
    installed, differing = [], []
    for line in LOCK_FILE.read_text().splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        pinned = Requirement(line)
        if pinned.marker is not None and not pinned.marker.evaluate():
            continue
        wanted = next(iter(pinned.specifier)).version
        try:
            found = importlib.metadata.version(pinned.name)
        except importlib.metadata.PackageNotFoundError:
            found = "missing"
        installed.append(f"{pinned.name} {found}")
        if found != wanted:
            differing.append(f"{pinned.name} {found} (locked {wanted})")
    lines = ["installed: " + ", ".join(installed)]
    if differing:
        lines.append(f"NOT AS LOCKED in {LOCK_FILE.name}: " + ", ".join(differing))
    else:
        lines.append(f"every package as locked in {LOCK_FILE.name}")
    return lines


@pytest.fixture(scope="session")
def fake_telegram() -> Iterator[FakeTelegram]:
    server = FakeTelegram()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_graph() -> Iterator[FakeGraph]:
    """A fake WhatsApp Cloud API for one business number (see tests/fake_graph.py)."""
    server = FakeGraph()
    server.start()
    yield server
    server.stop()


# Telegram takes about one message a second to a private chat, after a short burst. A test citizen
# answers a whole questionnaire in a second or two, far faster than anyone types, and would wait
# out a second of flood control per message past the burst; tests lift that limit. The journey
# in test_consultation_flow.py keeps Telegram's (TELEGRAM_PRIVATE_BURST), and
# test_fake_telegram.py checks that the fake enforces it.
LIFTED_PRIVATE_BURST = 1_000_000.0


@pytest.fixture
def fake_bot(fake_telegram: FakeTelegram) -> FakeBot:
    fake_telegram.latency = 0.0
    fake_telegram.private_burst = LIFTED_PRIVATE_BURST
    return fake_telegram.new_bot()


@pytest.fixture(autouse=True)
def quick_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff passwords are still argon2id, hashed and checked by the same code, at the
    library's cheapest cost: the installation's cost (a good part of a second of CPU each) is
    for attackers, and the suite logs in a few hundred times. What depends on the cost (the check
    kept off the event loop) is tested by holding the check, not by timing it."""
    from argon2 import PasswordHasher, profiles

    from bot.admin import accounts

    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("no account has this password"))


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox waits 1, 2 and 4 s between attempts after network errors; here a twentieth of
    that (OutboxDelivery takes its sleep as an argument; the app is built with this one). Use it
    with ``@pytest.mark.usefixtures("quick_retries")``, so it is in place before the app starts."""
    import functools

    from bot.dialogue.outbox import OutboxDelivery

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / 20)

    monkeypatch.setattr("bot.app.OutboxDelivery", functools.partial(OutboxDelivery, sleep=sleep))


class PostgresProvider:
    """Hands out fresh databases on a server started lazily, once per test session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cluster: ThrowawayPostgres | None = None
        self._admin_url = os.environ.get("BORGERDIALOG_TEST_POSTGRES_URL")
        self._unavailable: str | None = None
        # A database migrated once, copied for each test that wants the schema.
        self._migrated_template: str | None = None

    def new_database(self, *, migrated: bool = False) -> str:
        """A fresh database: empty, or with the current schema as 'borgerdialog migrate' makes."""
        with self._lock:
            if self._admin_url is None and self._unavailable is None:
                bindir = find_bindir()
                if bindir is None:
                    self._unavailable = "no PostgreSQL server binaries found (initdb)"
                else:
                    self._cluster = ThrowawayPostgres(bindir, in_memory=True)
                    self._cluster.start()
                    self._admin_url = self._cluster.admin_url()
            if self._admin_url is None:
                if os.environ.get("BORGERDIALOG_TEST_REQUIRE_POSTGRES") == "1":
                    pytest.fail(f"PostgreSQL is required but {self._unavailable}")
                pytest.skip(f"PostgreSQL tests skipped: {self._unavailable}")
            name = f"test_{os.getpid()}_{next(_database_names)}"
            if not migrated:
                return create_database(self._admin_url, name)
            if self._migrated_template is None:
                # Migrating takes longer than copying (PostgreSQL copies a template's files).
                template = f"template_{os.getpid()}"
                asyncio.run(migrate_database(create_database(self._admin_url, template)))
                self._migrated_template = template
            return create_database(self._admin_url, name, template=self._migrated_template)

    @property
    def cluster(self) -> ThrowawayPostgres | None:
        """The cluster this session started (None when tests use an existing server)."""
        return self._cluster

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresProvider]:
    provider = PostgresProvider()
    yield provider
    provider.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'borgerdialog.sqlite3'}"
        return
    provider: PostgresProvider = request.getfixturevalue("postgres")
    # Migrated, as an operator would with 'borgerdialog migrate': run refuses an outdated
    # PostgreSQL schema.
    url = provider.new_database(migrated=True)
    yield url
    # Torn down after everything that used it (the app, the CLI): a session's copies would
    # otherwise fill the cluster's folder, in memory when there is room (tests/postgres.py).
    drop_database(url)


async def migrate_database(url: str) -> None:
    """Bring a database's schema up to date, as 'borgerdialog migrate' does."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Build validated settings for a test, with a free HTTP port and the test's database."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": tmp_path,
            "http_port": free_port(),
            "polling_timeout": 1,
        }
        values.update(overrides)
        return load_settings(_env_file=None, **values)

    return make


@pytest.fixture
async def telegram_app(
    fake_bot: FakeBot, fake_telegram: FakeTelegram, make_settings: Callable[..., Settings]
) -> AsyncIterator[BorgerDialog]:
    """The real application, built by the composition root, talking to the fake Telegram."""
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    app = BorgerDialog(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def table_rows(app: BorgerDialog | FlowBot, model: type) -> list[Any]:
    """Every row of a model's table in the running app's (or a flow test's) database."""
    from sqlalchemy import select

    assert app.engine is not None
    async with app.engine.connect() as connection:
        return list((await connection.execute(select(model))).all())


async def model_rows(app: BorgerDialog, model: type) -> list:
    """Every row of a model's table (row[0] is the model object), oldest first."""
    from sqlalchemy import select

    from storage.database import create_session_factory

    assert app.engine is not None
    async with create_session_factory(app.engine)() as session:
        return list((await session.execute(select(model).order_by(model.id))).all())


class NestedUnitsOfWork:
    """Record every task that held two of an engine's pooled connections at once.

    That is a unit of work opened inside another (rendering a page in a unit of its own before
    the first has ended, say). With a pool of fixed size, enough such requests at once each hold
    one connection while waiting for a second, until the pool's timeout. Use it around a test:
    ``watch = NestedUnitsOfWork(app.engine)`` ... ``assert not watch.nested, watch.nested``.
    """

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self._owner: dict[int, asyncio.Task[Any] | None] = {}
        self._held: dict[asyncio.Task[Any] | None, int] = {}
        self.nested: list[str] = []
        event.listen(engine.sync_engine.pool, "checkout", self._checked_out)
        event.listen(engine.sync_engine.pool, "checkin", self._checked_in)

    def _checked_out(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        self._owner[id(record)] = task
        self._held[task] = self._held.get(task, 0) + 1
        if task is not None and self._held[task] > 1:
            # SQLAlchemy checks out in a greenlet of its own; the task's frames are its parent's.
            import greenlet

            parent = greenlet.getcurrent().parent
            frame = parent.gr_frame if parent is not None else None
            ours = []
            while frame is not None:
                if "/bot/" in frame.f_code.co_filename:
                    ours.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}")
                frame = frame.f_back
            self.nested.append(" < ".join(ours) or task.get_name())

    def _checked_in(self, _dbapi: Any, record: Any) -> None:
        task = self._owner.pop(id(record), None)
        if task in self._held:
            self._held[task] -= 1


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 15.0,
    what: str = "condition",
    interval: float = 0.02,
) -> Any:
    """Wait until check() returns something truthy; fail the test with ``what`` on timeout.

    A check that reads much of the fake (every chat of a burst) takes a longer ``interval``: run
    every 20 ms it takes the fake's thread from serving the bot under test.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
async def app(
    fake_bot: FakeBot, fake_telegram: FakeTelegram, make_settings: Callable[..., Settings]
) -> AsyncIterator[BorgerDialog]:
    settings = make_settings(
        telegram_token=fake_bot.token,
        telegram_api_url=fake_telegram.api_url,
        moderator_chat_id=MODERATORS,
    )
    application = BorgerDialog(settings)
    await application.start()
    for member in (901, 902):
        # The fake knows users once they wrote; moderators said hello in their group.
        fake_bot.send_message(member, "hej", chat_id=MODERATORS, chat_type="supergroup")
        fake_bot.set_member(MODERATORS, member, "member")
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        async_playwright = None
    if async_playwright is None or not shutil.which(CHROMIUM):
        if os.environ.get("BORGERDIALOG_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests need Playwright and Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture
async def demo_app(make_settings: Callable[..., Settings]) -> AsyncIterator[BorgerDialog]:
    # A named organisation, as an installation has: the chat's header shows it.
    app = BorgerDialog(make_settings(organisation_name=ORGANISATION))
    await app.start()
    assert app.uow is not None
    async with app.uow() as uow:
        await ensure_demo(uow, datetime.now(UTC), app.settings.zone)
        await uow.commit()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
def clean_cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Commands run from the test's folder, see only the settings a test gives, and leave the
    root logger as they found it (they point it at their captured, then closed, stderr)."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("BORGERDIALOG_"):
            monkeypatch.delenv(key)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cli(database_url: str, tmp_path: Path, clean_cli_environment: None) -> Cli:
    """The command line in-process against the test's database, from the test's folder."""
    return Cli(database_url, tmp_path)
