"""A PostgreSQL session-level advisory lock, held on a connection of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

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
