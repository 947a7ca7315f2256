"""PostgreSQL LISTEN/NOTIFY: notifications sent with a unit of work, and a connection that listens.

Several processes on one PostgreSQL tell each other about what they committed through
notifications on a named channel. A notification sent inside a transaction is delivered only when
(and if) that transaction commits, and to every session listening at that moment, in commit
order. A session that is not listening (a dropped connection) misses it for good, so whatever a
notification reports must also be readable from the tables. SQLite has no notifications and no
other process to tell; nothing here runs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

# PostgreSQL refuses a payload of 8000 bytes or more (in the server's encoding, UTF-8 here).
MAX_PAYLOAD_BYTES = 7999
# A connection that does not answer a trivial query within this time is given up for lost.
ANSWER_SECONDS = 5.0
# How often the listening connection is checked: a connection that died without the socket
# closing (a network that drops packets) tells nobody, and would listen to nothing.
CHECK_SECONDS = 10.0
# The waits between attempts to listen again after the connection dropped.
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


def fits(payload: str) -> bool:
    """Whether PostgreSQL takes this payload in one notification."""
    return len(payload.encode("utf-8")) <= MAX_PAYLOAD_BYTES


class NotificationRepository:
    """Send notifications with the unit of work: they go out when it commits, or never."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def send(self, channel: str, payload: str) -> None:
        """Queue a notification on ``channel``, delivered at commit (nothing on SQLite)."""
        bind = self._session.get_bind()
        if bind.dialect.name != "postgresql":
            return
        # Parameters, not a NOTIFY statement: NOTIFY takes no bind parameters. The engine hides
        # parameters from logs and error messages, so the payload is never written anywhere.
        await self._session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


class Listener:
    """Listen to one channel on a connection of this process's own, and listen again after drops.

    The connection is not the pool's: a listening session must stay open, and a pooled one goes
    back to the pool (or is closed by it) between uses. It runs in autocommit, so it never holds
    a transaction open. ``on_payload`` is called on the event loop for each notification, with
    its payload; it must be quick and must not raise. ``on_resumed`` is called once listening
    again after the connection dropped: what was sent meanwhile never arrives, so the owner
    reads what it needs from the tables.

    Small notifications can be sent on the same connection with ``send`` (one round trip, no
    transaction); they are dropped while the connection is down.
    """

    def __init__(self, url: str, channel: str, purpose: str) -> None:
        self._channel = channel
        self._purpose = purpose
        self._engine = create_async_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", hide_parameters=True
        )
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        self._on_payload: Callable[[str], None] = lambda _payload: None
        self._on_resumed: Callable[[], None] = lambda: None
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One statement at a time on a connection: the check and sends take turns.
        self._turn = asyncio.Lock()

    @property
    def listening(self) -> bool:
        """Whether notifications reach this process now."""
        return self._connection is not None and not self._lost.is_set()

    @property
    def server_pid(self) -> int | None:
        """The listening session's server process id (for an operator, and for tests)."""
        if not self.listening or self._driver is None:
            return None
        pid = self._driver.get_server_pid()
        return int(pid) if pid is not None else None

    async def start(
        self, on_payload: Callable[[str], None], on_resumed: Callable[[], None]
    ) -> None:
        """Listen now if the database answers, and keep listening until ``stop``."""
        self._on_payload = on_payload
        self._on_resumed = on_resumed
        self._stopping.clear()
        try:
            await self._listen()
        except Exception as error:
            self._said_lost(error)
            await self._drop()
        self._task = asyncio.create_task(self._watch(), name=f"listen {self._channel}")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._drop()
        await self._engine.dispose()

    async def send(self, payload: str) -> bool:
        """Notify the channel now, outside any transaction; False if not connected."""
        if not self.listening:
            return False
        async with self._turn:
            connection = self._connection
            if connection is None:
                return False
            try:
                await asyncio.wait_for(
                    connection.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": self._channel, "payload": payload},
                    ),
                    ANSWER_SECONDS,
                )
            except Exception:
                # The watch listens again; this one is lost. (A connection already replaced
                # says nothing about the current one.)
                if connection is self._connection:
                    self._lost.set()
                return False
        return True

    async def _listen(self) -> None:
        connection = await asyncio.wait_for(self._engine.connect(), ANSWER_SECONDS)
        try:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            # asyncpg calls this as soon as the socket closes (the session was terminated, the
            # server restarted), rather than at the next check. A connection given up earlier
            # may report its end late: only the current one counts.
            driver.add_termination_listener(
                lambda closed: self._lost.set() if closed is self._driver else None
            )
            await asyncio.wait_for(
                driver.add_listener(self._channel, self._received), ANSWER_SECONDS
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        self._connection, self._driver = connection, driver
        self._lost.clear()

    def _received(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._on_payload(payload)
        except Exception as error:
            # Never the payload (it may name a chat): only what went wrong.
            logger.warning("could not take a notification (%s)", type(error).__name__)

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            if self._connection is not None:
                await self._pause(CHECK_SECONDS, or_lost=True)
                if self._stopping.is_set():
                    return
                if not self._lost.is_set() and await self._answers():
                    continue
                self._said_lost(None)
                await self._drop()
            await self._listen_again()

    async def _listen_again(self) -> None:
        """Try to listen, waiting longer between tries, until it works or stop is asked for."""
        tries = 0
        while not self._stopping.is_set():
            await self._pause(RECONNECT_SECONDS[min(tries, len(RECONNECT_SECONDS) - 1)])
            if self._stopping.is_set():
                return
            tries += 1
            try:
                await self._listen()
            except Exception as error:
                # Said once, when the connection was lost; every try fails alike meanwhile.
                logger.debug("still cannot listen (%s)", type(error).__name__)
                continue
            logger.info("listening to %s again", self._purpose)
            self._on_resumed()
            return

    async def _answers(self) -> bool:
        async with self._turn:
            if self._connection is None:
                return False
            try:
                await asyncio.wait_for(self._connection.execute(text("SELECT 1")), ANSWER_SECONDS)
            except Exception:
                return False
        return True

    async def _pause(self, seconds: float, *, or_lost: bool = False) -> None:
        """Wait, or less if stop is asked for (or, with ``or_lost``, the connection drops)."""
        waiters = {asyncio.ensure_future(self._stopping.wait())}
        if or_lost:
            waiters.add(asyncio.ensure_future(self._lost.wait()))
        await asyncio.wait(waiters, timeout=seconds, return_when="FIRST_COMPLETED")
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter

    def _said_lost(self, error: Exception | None) -> None:
        reason = f" ({type(error).__name__})" if error is not None else ""
        logger.warning("lost the connection for %s%s; retrying", self._purpose, reason)

    async def _drop(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is None:
            return
        # A connection that broke may fail to close politely; it is gone either way.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.invalidate(), ANSWER_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), ANSWER_SECONDS)
