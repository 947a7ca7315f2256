"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import Float, Numeric, event, exc, text
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# How long an SQLite writer waits for another writer before giving up, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The execution option that marks a read-only unit of work (see _begin).
READ_ONLY = "borgerdialog_read_only"
# Waits between attempts while the database is unavailable: short first, then every 30 s.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
# A PostgreSQL connection back in the pool at least this long is tested before it is handed out
# again (see _ping_when_idle); one in use moments ago is not.
PING_AFTER_IDLE_SECONDS = 1.0
# Where a pooled connection's record keeps when it came back (cleared with the connection).
_RETURNED_AT = "borgerdialog_returned_at"


def retry_delay(attempt: int) -> float:
    """Seconds to wait before attempt number ``attempt`` (1 = the first retry)."""
    return RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]


def is_sqlite(url: str) -> bool:
    """Tell whether a database URL names SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine, with the settings each backend needs for safe concurrent use."""
    if is_sqlite(url):
        return _create_sqlite_engine(url, echo=echo)
    engine = create_async_engine(
        url,
        echo=echo,
        # At most 9 connections, none more at peaks: with the four a process keeps of its own,
        # PostgreSQL's default 100 (3 kept for superusers) then serves seven processes, not two.
        # Twenty more at peaks bought nothing: the PostgreSQL burst and walkers ran as fast
        # without them (README, "Several processes"). The ninth was the tenth until delivery
        # outcomes, written in units of work from the pool until then, got a connection of
        # their own.
        pool_size=9,
        max_overflow=0,
        # Error messages would otherwise quote the statement's values: citizens' texts and ids.
        hide_parameters=True,
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Test a pooled connection before handing it out only if it lay idle a while.

    SQLAlchemy's ``pool_pre_ping`` tests every connection at every checkout, and on asyncpg a
    test is three round trips (BEGIN, an empty statement, ROLLBACK): under load, with a unit of
    work or two per update, more than a quarter of an update's round trips. A connection that
    lay idle is the one a server restart or an idle timeout may have closed unnoticed; one
    returned moments ago was working then. If the server went away since all the same, the
    unit of work using it fails as a dropped connection (``is_transient``: the bot's own work
    retries it; a dashboard page may fail once), and every connection of the pool made before
    then is replaced.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _test_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        # A new connection (its record's info starts empty) was just made: nothing to test.
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # The pool replaces this connection and every other one made before now.
                raise exc.InvalidatePoolError() from error
            raise


class InlineSqliteConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs each call on the event loop's thread.

    aiosqlite hands every call to a thread of its own and back: two thread switches and a wake-up
    of the event loop per statement, which cost far more CPU than the statement itself (a lookup
    by key takes microseconds in SQLite; the hand-over about a quarter of a millisecond). Run on
    the loop, a unit of work also runs from BEGIN to COMMIT without letting another task in, so
    the process's writers never queue on SQLite's file lock: the event loop is the single writer.

    The one call that may have to wait is taking the write lock while another process (a command
    line import, a second tool) holds it. The connection's busy timeout is therefore 0: that call
    fails at once with SQLITE_BUSY, and is then made again on aiosqlite's thread with the full
    busy timeout, so the loop never blocks on another process.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
        # Nothing happened (SQLite refuses the whole statement): wait for the lock off the loop.
        return await self.wait_for_lock(fn, *args, **kwargs)

    async def wait_for_lock(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Make a call SQLite refused as busy again on aiosqlite's thread, for up to the busy
        timeout.

        Cancelled meanwhile (a shutdown, a timeout), it returns only once that thread has left
        sqlite3: the caller's cleanup (a rollback, a close) runs on the loop's thread, and two
        threads in one sqlite3 connection crash the whole process. What tells is a plain future
        the thread itself settles on its way out, which no cancellation of tasks (a shutdown
        cancels every task) can settle before.
        """
        loop = asyncio.get_running_loop()
        stop, left = threading.Event(), loop.create_future()
        waiting = asyncio.ensure_future(
            super()._execute(_waiting_for_lock(self._conn, fn, stop, left), *args, **kwargs)  # type: ignore[no-untyped-call]
        )
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            stop.set()
            while not left.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(left)
            if waiting.done() and not waiting.cancelled():
                waiting.exception()  # seen: the caller was cancelled, that is what it hears
            raise


# How long one try for another process's lock waits in SQLite before a wait that was cancelled
# can stop: SQLite's own busy wait cannot be interrupted.
SQLITE_LOCK_TRY_MS = 50


def _waiting_for_lock(
    connection: sqlite3.Connection,
    fn: Callable[..., Any],
    stop: threading.Event,
    left: asyncio.Future[None],
) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        # Read at the call, so that a test can shorten it.
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        try:
            connection.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_TRY_MS}")
            try:
                while True:
                    try:
                        return fn(*args, **kwargs)
                    except sqlite3.OperationalError as error:
                        # Only a lock another connection holds is worth waiting for (SQLite
                        # waited in its busy handler first); a busy snapshot, say, stays so.
                        if (
                            error.sqlite_errorcode != sqlite3.SQLITE_BUSY
                            or stop.is_set()
                            or time.monotonic() >= deadline
                        ):
                            raise
            finally:
                connection.execute("PRAGMA busy_timeout=0")
        finally:
            # A loop already closed has nobody waiting.
            with contextlib.suppress(RuntimeError):
                left.get_loop().call_soon_threadsafe(_settle, left)

    return call


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _InlineCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's cursor over an InlineSqliteConnection, with one await a statement.

    SQLAlchemy's asyncio adapter awaits every driver call from its greenlet: a switch to the
    event loop and back, through aiosqlite's coroutines, four times a statement (cursor, execute,
    fetch, close). Those calls run on the loop's thread anyway (InlineSqliteConnection), so this
    cursor makes them directly and awaits once, around the statement: SQLAlchemy's async
    connection refuses a statement that awaited nothing (its check for a blocking driver), and a
    statement SQLite refuses as busy waits for the lock off the loop there.
    """

    __slots__ = ()
    # close() closes the sqlite3 cursor itself; nothing to await.
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        try:
            # sqlite3's own cursor, where the base class keeps an awaitable one.
            self._cursor = _sqlite_connection(self._connection).cursor()  # type: ignore[assignment]
        except Exception as error:
            adapt_connection._handle_exception(error)
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._execute_inline(operation, parameters or ()))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _execute_inline(self, operation: Any, parameters: Any) -> Any:
        cursor: sqlite3.Cursor = self._cursor  # type: ignore[assignment]
        result = await _inline_call(self._connection, cursor.execute, operation, parameters)
        if cursor.description:
            self._rows = collections.deque(cursor.fetchall())
        return result

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(
                _inline_call(
                    self._connection, self._cursor.executemany, operation, seq_of_parameters
                )
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)


class _InlineAdaptedConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's connection over an InlineSqliteConnection: see _InlineCursor."""

    __slots__ = ()
    _cursor_cls = _InlineCursor

    def commit(self) -> None:
        self._end(lambda connection: connection.commit)

    def rollback(self) -> None:
        # Nothing to roll back on a closed connection (SQLAlchemy's adapter does nothing too).
        if self._connection._connection:
            self._end(lambda connection: connection.rollback)

    def _end(self, method: Callable[[sqlite3.Connection], Callable[[], None]]) -> None:
        try:
            end = method(_sqlite_connection(self._connection))
            try:
                end()
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise
                await_(self._connection.wait_for_lock(end))
        except Exception as error:
            self._handle_exception(error)


class _InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        return _InlineAdaptedConnection(self, connection._connection)


def _sqlite_connection(connection: Any) -> sqlite3.Connection:
    """The sqlite3 connection under an open aiosqlite one; aiosqlite's error if it is closed."""
    if not connection._running or connection._connection is None:
        # SQLAlchemy's aiosqlite adapter reads this as a lost connection.
        raise ValueError("Connection closed")
    return connection._connection  # type: ignore[no-any-return]


async def _inline_call(connection: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Call sqlite3 on the loop's thread; if SQLite is busy, wait for the lock off the loop."""
    _sqlite_connection(connection)
    try:
        return fn(*args)
    except sqlite3.OperationalError as error:
        if not _busy(error):
            raise
    return await connection.wait_for_lock(fn, *args)


def _busy(error: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused a call because another connection holds the lock."""
    return error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def _create_sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    database = make_url(url).database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    async def connect() -> InlineSqliteConnection:
        def open_file() -> sqlite3.Connection:
            # Used by the loop's thread and, to wait for a lock, by aiosqlite's: never both.
            return sqlite3.connect(database, check_same_thread=False)

        connection = InlineSqliteConnection(open_file, iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        await connection
        return connection

    # Error messages would otherwise quote the statement's values: citizens' texts and ids.
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=5,
        max_overflow=10,
        hide_parameters=True,
        async_creator=connect,
        module=_InlineDBAPI(aiosqlite, sqlite3),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _begin_immediate).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL keeps readers and the single writer out of each other's way; with synchronous=NORMAL
        # a committed transaction survives a killed process (only a power cut may lose the last).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # See InlineSqliteConnection: a lock held elsewhere is waited for off the loop.
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes can fail at once with "database is
        # locked" when another writer got in between; taking the write lock up front makes it
        # wait for busy_timeout instead. A unit that only reads needs no lock at all (WAL lets
        # it read beside a writer), so it must not queue behind one: a health check or a page
        # load would otherwise wait out busy_timeout whenever a writer holds on.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_transient(error: BaseException) -> bool:
    """Tell whether a failure is the database being unavailable, not the work being wrong.

    Locks held too long, a full disk, a restarting server, a dropped connection: the same work
    succeeds later, so it is retried rather than recorded as failed.
    """
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        sqlite_code = getattr(error.orig, "sqlite_errorcode", None)
        if isinstance(sqlite_code, int):
            # SQLite says "OperationalError" for a missing table as much as for a held lock.
            return sqlite_code & 0xFF in SQLITE_TRANSIENT_CODES
        if _caused_by_bad_data(error):
            return False
        return isinstance(error, exc.OperationalError | exc.InterfaceError) or _transient_sqlstate(
            error
        )
    return isinstance(error, exc.DisconnectionError | exc.TimeoutError | OSError | TimeoutError)


# SQLite's primary result codes of faults that pass: BUSY, LOCKED, IOERR (a write refused, as by
# a full disk or a file size limit), FULL, CANTOPEN.
SQLITE_TRANSIENT_CODES = frozenset({5, 6, 10, 13, 14})


def _caused_by_bad_data(error: exc.DBAPIError) -> bool:
    """Whether the driver refused the values themselves (asyncpg checks them before sending).

    asyncpg's DataError derives from its InterfaceError, which SQLAlchemy reports as an
    InterfaceError: by class alone, a value that can never be stored would be retried forever.
    """
    seen: BaseException | None = error.orig
    for _ in range(4):
        if seen is None:
            return False
        if type(seen).__module__.startswith("asyncpg") and type(seen).__name__ == "DataError":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# PostgreSQL's SQLSTATE classes of faults that pass: connection exceptions (08), insufficient
# resources such as a full disk or too many connections (53), operator intervention such as a
# shutdown or a server still starting (57P), a statement or lock timeout (57014, 55P03), and a
# serialization failure or deadlock (40001, 40P01), which the same transaction survives when run
# again.
TRANSIENT_SQLSTATES = ("08", "53", "57P", "57014", "55P03", "40001", "40P01")


def _transient_sqlstate(error: exc.DBAPIError) -> bool:
    """Whether the driver's error beneath SQLAlchemy's carries a passing fault's SQLSTATE.

    asyncpg reports "the database system is shutting down" as a plain DBAPIError whose cause
    has the SQLSTATE 57P03; by its class alone it would count as permanent.
    """
    seen: BaseException | None = error.orig
    for _ in range(4):
        if seen is None:
            return False
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str):
            return state.startswith(TRANSIENT_SQLSTATES)
        seen = seen.__cause__ or seen.__context__
    return False


def refused_for_good(error: BaseException) -> bool:
    """Whether a driver's own error (raised outside SQLAlchemy) refuses the work itself, so the
    same work would be refused again: values asyncpg cannot send, or a server error whose
    SQLSTATE is not among the faults that pass."""
    if type(error).__module__.startswith("asyncpg") and type(error).__name__ == "DataError":
        return True
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and not state.startswith(TRANSIENT_SQLSTATES)


def dialect_name(session: AsyncSession) -> str:
    """The name of the database a session works on: "sqlite" or "postgresql"."""
    return session.sync_session.get_bind().dialect.name


@dataclass(slots=True)
class CoreResult:
    """What a statement run by ``run_core`` returned: its rows (tuples) and how many it changed."""

    keys: Sequence[str]
    rows: Sequence[Sequence[Any]]
    rowcount: int

    def scalars(self) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self.rows]

    def scalar_one(self) -> Any:
        """The first column of the one row (raises unless exactly one came)."""
        (row,) = self.rows
        return row[0]

    def scalar_one_or_none(self) -> Any:
        """The first column of the one row, or None when no row came."""
        return self.scalar_one() if self.rows else None

    def mapping_one_or_none(self) -> dict[str, Any] | None:
        """The one row as a dict of its columns by name, or None when no row came."""
        if not self.rows:
            return None
        (row,) = self.rows
        return dict(zip(self.keys, row, strict=True))


async def run_core(
    session: AsyncSession,
    statement: Executable,
    parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] = EMPTY_DICT,
) -> CoreResult:
    """Run a Core statement that is built once (a module's constant) in the session's unit.

    The statements every update runs go through here. The statement is compiled once per set
    of parameter names and then run on the driver, with SQLAlchemy's own conversions of values
    (times, JSON) both ways: SQLAlchemy's execution of a compiled statement (its context, its
    result and row objects, the session's connection lookup) cost some 60 µs of CPU for a
    statement SQLite runs in 3, on a dozen statements an update (README, "Performance"). On
    SQLite it runs straight on sqlite3; on PostgreSQL on SQLAlchemy's asyncpg adapter, which
    begins the transaction, keeps its prepared statements and names its errors as ever (a list
    of parameter sets there is SQLAlchemy's own execution: one round trip for all of them). Like
    a statement on the session's connection, it does not flush the session first. A list of
    parameter sets runs the statement once for each, in order.
    """
    sets = [parameters] if isinstance(parameters, Mapping) else parameters
    dialect = session.sync_session.get_bind().dialect
    if dialect.driver == "asyncpg" and len(sets) == 1:
        return await _run_on_asyncpg(session, statement, sets[0], dialect)
    if dialect.name != "sqlite":
        connection = await session.connection()
        result = await connection.execute(statement, parameters)
        if not result.returns_rows:
            return CoreResult((), (), result.rowcount)
        return CoreResult(tuple(result.keys()), result.all(), result.rowcount)
    _, pooled = await _connection_of_unit(session)
    driver = pooled.driver_connection
    if not sets:
        return CoreResult((), [], 0)
    form = _compiled_form(statement, tuple(sets[0]), dialect)
    rows: list[Sequence[Any]] = []
    rowcount = 0
    for values in sets:
        arguments = form.arguments(values)
        try:
            fetched, changed = await _inline_call(driver, _run_sqlite, driver, form.sql, arguments)
        except sqlite3.Error as error:
            raise _as_sqlalchemy_error(error, form.sql, dialect) from error
        except ValueError as error:
            # Only aiosqlite's closed connection; a value sqlite3 cannot take (a lone surrogate
            # is a UnicodeEncodeError) stays what it is, a refusal of the data, not an outage.
            if str(error).lower() not in _CLOSED_CONNECTION:
                raise
            raise _as_sqlalchemy_error(error, form.sql, dialect) from error
        rowcount += changed
        rows.extend(form.converted(fetched))
    return CoreResult(form.keys, rows, rowcount)


def driver_form(
    statement: Executable, parameter_sets: Sequence[Mapping[str, Any]], dialect: Any
) -> tuple[str, list[list[Any]]]:
    """A statement built once, compiled for the driver (as ``run_core`` runs it), and its
    arguments for each set of values: for work that runs on a driver connection of its own."""
    form = _compiled_form(statement, tuple(parameter_sets[0]), dialect)
    return form.sql, [form.arguments(values) for values in parameter_sets]


async def _run_on_asyncpg(
    session: AsyncSession, statement: Executable, values: Mapping[str, Any], dialect: Any
) -> CoreResult:
    connection, pooled = await _connection_of_unit(session)
    form = _compiled_form(statement, tuple(values), dialect)
    adapted = pooled.dbapi_connection
    cursor = adapted.cursor()
    # As SQLAlchemy's execution context does: prepared statements older than a change of the
    # schema (a migration while this process runs) are prepared again.
    cursor._invalidate_schema_cache_asof = dialect._invalidate_schema_cache_asof
    dbapi = dialect.loaded_dbapi
    try:
        # What the adapter's execute() runs, awaited here instead of from SQLAlchemy's
        # greenlet: the transaction begun if need be, the prepared statement, its errors.
        await _run_asyncpg(cursor, form.sql, form.arguments(values))
    except dbapi.Error as error:
        if isinstance(error, dbapi.InvalidCachedStatementError | dbapi.InternalServerError):
            dialect._invalidate_schema_cache()
        lost = dialect.is_disconnect(error, adapted, cursor)
        if lost:
            # As SQLAlchemy's execution does: the server went away, so every connection the
            # pool made before now is replaced at its next checkout, not found out by a unit
            # of work failing on each (a connection is tested only after lying idle).
            connection.sync_connection.engine.pool._invalidate(pooled, error)
            await connection.invalidate(error)
        raise exc.DBAPIError.instance(
            form.sql,
            None,
            error,
            dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=dialect,
            ismulti=False,
        ) from error
    except (asyncio.CancelledError, TimeoutError) as stopped:
        # As SQLAlchemy does: a statement stopped half-way (a BEGIN asyncpg counted but the
        # adapter did not) leaves the connection in a state nobody knows; it is not reused.
        await asyncio.shield(connection.invalidate(stopped))
        raise
    rows = form.converted(cursor._rows) if form.keys else []
    return CoreResult(form.keys, rows, cursor.rowcount)


@dataclass(frozen=True, slots=True)
class _CompiledForm:
    """A statement compiled for one database: its text, where each positional parameter takes
    its value, and the conversions of what it returns (None: none needed)."""

    sql: str
    # Per parameter: the parameter's name and its conversion, or (None, the statement's own
    # value, converted already).
    binds: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]
    keys: tuple[str, ...]
    converts: tuple[Callable[[Any], Any] | None, ...] | None

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The driver's positional parameters for one set of values."""
        return [
            (convert(values[name]) if convert else values[name]) if name is not None else constant
            for name, constant, convert in self.binds
        ]

    def converted(self, rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
        """The driver's rows, as tuples of the values SQLAlchemy would give."""
        converts = self.converts
        if converts is None:
            return [tuple(row) for row in rows]
        return [
            tuple(
                convert(value) if convert else value
                for convert, value in zip(converts, row, strict=True)
            )
            for row in rows
        ]


# Per (statement, its parameters' names, database): the statement compiled (see run_core).
_COMPILED_FORMS: dict[tuple[Executable, tuple[str, ...], str], _CompiledForm] = {}
# What aiosqlite says of a connection that is closed (as SQLAlchemy's adapter reads it).
_CLOSED_CONNECTION = ("connection closed", "no active connection")
# Where a session keeps the connection of its transaction (see _connection_of_unit).
_UNIT_CONNECTION = "borgerdialog_unit_connection"


def _compiled_form(statement: Executable, names: tuple[str, ...], dialect: Any) -> _CompiledForm:
    key = (statement, names, dialect.name)
    form = _COMPILED_FORMS.get(key)
    if form is not None:
        return form
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(names))  # type: ignore[attr-defined]
    if compiled.insert_prefetch or compiled.update_prefetch or compiled.post_compile_params:
        # Column defaults computed in Python, or an IN list expanded per execution: the caller
        # gives every value, or uses the session's execute.
        raise ValueError(f"run_core needs every column's value and no expanding IN: {compiled}")
    if not compiled.positional:
        raise ValueError(f"run_core needs a driver with positional parameters: {dialect.name}")
    processors = compiled._bind_processors
    binds = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        if name in names:
            binds.append((name, None, processors.get(name)))
            continue
        if bind.required:
            # SQLAlchemy refuses a missing value; bound as NULL it would quietly match nothing.
            raise ValueError(f"run_core: no value for the parameter {name!r} of: {compiled}")
        value = bind.effective_value
        convert = processors.get(name)
        binds.append((None, convert(value) if convert else value, None))
    columns = compiled._result_columns
    if isinstance(statement, TextClause) or any(
        isinstance(column.type, Numeric | Float) for column in columns
    ):
        # Rows of a text() statement have no known columns, and asyncpg's numbers need their
        # driver type for their conversion: neither is needed on the hot path.
        raise ValueError(f"run_core reads no text() statement and no numeric column: {compiled}")
    converts = tuple(column.type._cached_result_processor(dialect, None) for column in columns)
    form = _CompiledForm(
        compiled.string,
        tuple(binds),
        tuple(column.keyname for column in columns),
        converts if any(converts) else None,
    )
    _COMPILED_FORMS[key] = form
    return form


async def _connection_of_unit(session: AsyncSession) -> tuple[Any, Any]:
    """The session's connection in its transaction (begun if need be) and the pooled driver
    connection beneath it.

    Looked up once a transaction: asking the session for its connection costs more than most
    statements the hot path runs.
    """
    sync = session.sync_session
    transaction = sync.get_transaction()
    held = sync.info.get(_UNIT_CONNECTION)
    if (
        held is not None
        and transaction is not None
        and held[0] is transaction
        and transaction.is_active
        and not held[1].invalidated
    ):
        return held[1], held[2]
    connection = await session.connection()
    pooled = connection.sync_connection.connection  # type: ignore[union-attr]
    sync.info[_UNIT_CONNECTION] = (sync.get_transaction(), connection, pooled)
    return connection, pooled


async def _run_asyncpg(cursor: Any, sql: str, arguments: list[Any]) -> None:
    await cursor._prepare_and_execute(sql, arguments)


def _run_sqlite(driver: Any, sql: str, arguments: list[Any]) -> tuple[list[Any], int]:
    cursor = _sqlite_connection(driver).execute(sql, arguments)
    try:
        return cursor.fetchall(), cursor.rowcount
    finally:
        cursor.close()


def _as_sqlalchemy_error(error: Exception, sql: str, dialect: Any) -> BaseException:
    """sqlite3's error as SQLAlchemy reports it, for the callers' handling (is_transient and
    integrity errors alike). A closed connection reads as SQLAlchemy's adapter reads it."""
    closed = isinstance(error, ValueError)
    if closed:
        error = sqlite3.OperationalError("no active connection")
    return exc.DBAPIError.instance(
        sql,
        None,
        error,
        sqlite3.Error,
        hide_parameters=True,
        connection_invalidated=closed,
        dialect=dialect,
        ismulti=False,
    )


def create_session_factory(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Create the factory that units of work take their sessions from."""
    if read_only:
        engine = engine.execution_options(**{READ_ONLY: True})
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot answer a trivial query (without waiting for writers)."""
    async with engine.execution_options(**{READ_ONLY: True}).connect() as connection:
        await connection.execute(text("SELECT 1"))


async def write_probe(engine: AsyncEngine, name: str, at: datetime) -> None:
    """Raise unless a small write can be committed now (lock free, disk not full)."""
    async with engine.begin() as connection:
        updated = await connection.execute(
            text("UPDATE health_probes SET written_at = :at WHERE name = :name"),
            {"at": at, "name": name},
        )
        if updated.rowcount == 0:
            await connection.execute(
                text("INSERT INTO health_probes (name, written_at) VALUES (:name, :at)"),
                {"at": at, "name": name},
            )


def redacted_database_url(url: str) -> str:
    """Render a database URL for messages, without its password."""
    return make_url(url).render_as_string(hide_password=True)
