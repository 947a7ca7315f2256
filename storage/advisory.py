"""PostgreSQL connections of their own: advisory locks (the leader's, chat deliveries') and
delivery outcomes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from storage.database import driver_form, refused_for_good
from storage.repositories import Settlement, settlement_rows

T = TypeVar("T")

# A lock connection that does not answer a trivial query within this time is given up for lost.
ANSWER_SECONDS = 5.0


class SessionLock:
    """Take, keep and give up one advisory lock; say at once when its connection drops.

    A session-level lock belongs to the server process behind one connection until that
    connection ends or unlocks it. From the application's pool it would go back to the pool still
    locked and be lent to unrelated work, or be closed by the pool (and the lock with it) at any
    time. So the lock gets a connection of its own (NullPool: opened for the lock, closed with it)
    in autocommit, so it never sits idle in a transaction. If the process dies, even by kill -9,
    the server sees the connection close and frees the lock.
    """

    def __init__(self, url: str, key: int) -> None:
        self._key = key
        self._engine = create_async_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", hide_parameters=True
        )
        self._connection: AsyncConnection | None = None
        self._held = False

    async def try_acquire(self, on_lost: Callable[[], None]) -> bool:
        """Take the lock if no other session holds it; call ``on_lost`` if the connection drops.

        Raises the driver's error when the database cannot be reached.
        """
        try:
            if self._connection is None:
                self._connection = await asyncio.wait_for(self._engine.connect(), ANSWER_SECONDS)
            taken = await asyncio.wait_for(
                self._connection.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                ),
                ANSWER_SECONDS,
            )
        except BaseException:
            await self.release()
            raise
        if taken:
            self._held = True
            raw = await self._connection.get_raw_connection()
            driver = raw.driver_connection
            # asyncpg calls this as soon as the socket closes: the server ended the session
            # (terminated, restarted) and with it the lock. Waiting for the next check would
            # leave this process working as leader while another may already be one.
            add_listener = getattr(driver, "add_termination_listener", None)
            if add_listener is not None:
                add_listener(lambda _connection: on_lost())
        return bool(taken)

    async def still_held(self) -> bool:
        """Tell whether the lock's connection still answers (a lost connection lost the lock)."""
        if self._connection is None or not self._held:
            return False
        try:
            await asyncio.wait_for(self._connection.execute(text("SELECT 1")), ANSWER_SECONDS)
        except Exception:
            return False
        return True

    async def release(self) -> None:
        """Give the lock up by closing its connection (the server frees it with the session)."""
        connection, self._connection = self._connection, None
        self._held = False
        if connection is not None:
            # A connection that broke may fail to close politely; it is gone either way.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.invalidate(), ANSWER_SECONDS)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), ANSWER_SECONDS)

    async def close(self) -> None:
        """Release the lock and the engine behind it."""
        await self.release()
        await self._engine.dispose()


# The namespace of the chat delivery locks (two-number keys, a space apart from the leader's).
DELIVERY_NAMESPACE = 0x62644431  # "bdD1"


class OwnConnection:
    """One connection of a process's own, in autocommit, for work that must not take a pooled
    connection (and a session) each time: opened when first needed, its calls serialised (a
    connection runs one statement at a time). A failed call gives it up, and the next one opens
    another; ``generation`` moves on whenever that happens or the server closes it.
    """

    def __init__(self, url: str, purpose: str) -> None:
        self._engine = create_async_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", hide_parameters=True
        )
        self._purpose = purpose
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # asyncpg's connection under it
        self._turn = asyncio.Lock()
        self._generation = 0
        self._closed = False

    @property
    def generation(self) -> int:
        """Moves on whenever the connection is given up or found closed (with what the
        server kept for it, such as session-level locks)."""
        return self._generation

    async def _on_driver(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work`` on asyncpg's connection, straight, without SQLAlchemy's statement
        handling (which costs more CPU than the round trip on these calls)."""
        async with self._turn:
            if self._closed:
                raise ConnectionError(f"{self._purpose}: closed")
            try:
                if self._connection is None:
                    self._connection = await asyncio.wait_for(
                        self._engine.connect(), ANSWER_SECONDS
                    )
                    raw = await self._connection.get_raw_connection()
                    self._driver = raw.driver_connection
                    # asyncpg calls this as soon as the socket closes (the server ended the
                    # session, and its locks): known then, not at this connection's next call.
                    self._driver.add_termination_listener(self._lost)
                assert self._driver is not None
                return await work(self._driver)
            except BaseException as error:
                if refused_for_good(error):
                    # The work itself was refused (a value too long, say), not the connection:
                    # said as it is, so that it is not retried as if the database were away.
                    raise
                # Whatever this connection held is gone with it; the next call opens another.
                self._generation += 1
                connection, self._connection, self._driver = self._connection, None, None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.invalidate()
                if isinstance(error, Exception) and not isinstance(error, OSError):
                    # The driver's own errors, said as the database being away (it passes).
                    raise ConnectionError(f"{self._purpose}: {type(error).__name__}") from error
                raise

    def _lost(self, driver: Any) -> None:
        if driver is self._driver:
            self._generation += 1

    async def close(self) -> None:
        """Close the connection (freeing what the server kept for it) and the engine; later
        calls are refused."""
        async with self._turn:
            self._closed = True
            connection, self._connection, self._driver = self._connection, None, None
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
        await self._engine.dispose()


class ChatDeliveryLocks(OwnConnection):
    """Session-level advisory locks, one per chat being delivered, on one connection of their own.

    Sending a chat's messages spans network round trips, so a transaction-level lock would hold a
    pooled connection idle in a transaction for each chat being sent to. Session-level locks on a
    single connection cost one connection per process, whatever the number of chats; its calls
    are serialised, as a connection runs one statement at a time. They are only tried, never
    waited for on the server, so one busy chat cannot hold up the others. If the process dies the
    server frees them with the connection; if the connection drops, every lock goes with it:
    ``generation`` moves on, and a delivery stops before its next message (another process may
    send that chat's message in flight once more, as after a crash).
    """

    def __init__(self, url: str) -> None:
        super().__init__(url, "chat delivery lock")

    async def try_lock(self, key: str) -> int | None:
        """Take a chat's lock unless another process holds it, and return the ``generation`` it
        is held under (None: not taken); raise if the database is away."""
        under = self._generation
        taken = await self._call("SELECT pg_try_advisory_lock($1, hashtext($2))", key)
        # The connection may have been found closed between the answer and now.
        return under if taken and self._generation == under else None

    async def unlock(self, key: str) -> None:
        """Give a chat's lock up (a lost connection gave it up already)."""
        with contextlib.suppress(Exception):
            await self._call("SELECT pg_advisory_unlock($1, hashtext($2))", key)

    async def _call(self, statement: str, key: str) -> object:
        return await self._on_driver(
            lambda driver: driver.fetchval(
                statement, DELIVERY_NAMESPACE, key, timeout=ANSWER_SECONDS
            )
        )


class DeliveryOutcomes(OwnConnection):
    """Delivery outcomes written on a connection of their own, each committed as it is written.

    Every message sent has its outcome recorded before the chat's next message goes. As a unit
    of work, that took a session and a pooled connection (about 0.4 ms of CPU) and BEGIN and
    COMMIT round trips around a statement that costs about 0.05 ms: for every message. Here it
    is the statement alone. Outcomes are independent of each other (``GroupSettler`` writes
    those of many chats together), so nothing needs them in one transaction.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url, "delivery outcomes")
        self._dialect = self._engine.dialect

    async def settle_many(self, settlements: Sequence[Settlement]) -> None:
        """Record the outcomes, as ``OutboxRepository.settle_many`` does in a unit of work."""
        for statement, rows in settlement_rows(settlements):
            sql, arguments = driver_form(statement, rows, self._dialect)

            async def write(driver: Any, sql: str = sql, arguments: Any = arguments) -> None:
                await driver.executemany(sql, arguments, timeout=ANSWER_SECONDS)

            await self._on_driver(write)
