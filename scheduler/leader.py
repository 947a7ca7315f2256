"""Leadership: of several processes on one database, one runs the timed work.

The timed work (the content plan, round openings and closings, digests, opinion groups,
retention, the bulk lane) must run once, not once per process. On PostgreSQL the processes elect
a leader with a session-level advisory lock: whoever holds it leads; the others try again every
few seconds, so when the leader dies (its connection drops and the server frees the lock) another
takes over within seconds. On SQLite there is one process (``borgerdialog run`` refuses a second),
and it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from storage.advisory import SessionLock
from storage.database import is_sqlite

logger = logging.getLogger(__name__)

# Advisory lock keys are one 64-bit space shared by every program using the database. Small
# numbers (1, 42, a table's oid) are what other programs pick; a key spelled from the project's
# name ("bdleader" as ASCII bytes) will not meet theirs by accident. Never change it: a process of
# the old version and one of the new would then both lead during a rolling deploy.
LEADER_LOCK_KEY = int.from_bytes(b"bdleader", "big")
# How often a follower tries to take the lock, and the leader checks that its connection answers.
# Takeover after the leader dies comes within one interval (the issue asks for 30 s at most).
RETRY_SECONDS = 5.0
# After losing the lock, this process sits out this many tries: a healthy follower then takes
# over rather than the process whose connection just failed.
STEP_BACK_TRIES = 2

Role = Literal["leader", "follower"]


class Lock(Protocol):
    """A lock that at most one process holds at a time."""

    async def try_acquire(self, on_lost: Callable[[], None]) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...

    async def close(self) -> None: ...


class Leadership:
    """Run ``lead`` when this process becomes leader and ``follow`` when it stops being one.

    With no lock (SQLite) the process leads from ``start`` to ``stop``.
    """

    def __init__(
        self,
        lock: Lock | None,
        *,
        lead: Callable[[], Awaitable[None]],
        follow: Callable[[], Awaitable[None]],
    ) -> None:
        self._lock = lock
        self._lead = lead
        self._follow = follow
        self._leading = False
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sit_out = 0
        self._unreachable_said = False

    @classmethod
    def for_database(
        cls,
        database_url: str,
        *,
        lead: Callable[[], Awaitable[None]],
        follow: Callable[[], Awaitable[None]],
    ) -> Leadership:
        """Leadership as the database allows: elected on PostgreSQL, always this one on SQLite."""
        lock = None if is_sqlite(database_url) else SessionLock(database_url, LEADER_LOCK_KEY)
        return cls(lock, lead=lead, follow=follow)

    @property
    def role(self) -> Role:
        """Whether this process runs the timed work now."""
        return "leader" if self._leading else "follower"

    async def start(self) -> None:
        """Try to lead at once (a lone process leads when it has started), then keep trying."""
        if self._lock is None:
            await self._become_leader()
            return
        await self._try_to_lead()
        self._task = asyncio.create_task(self._watch(), name="leadership")

    async def stop(self) -> None:
        """Stop the timed work if this process leads, and give the lock up for another."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._leading:
            await self._step_down()
        if self._lock is not None:
            await self._lock.close()

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            await self._pause()
            if self._stopping.is_set():
                return
            if self._leading:
                if self._lost.is_set() or not await self._lock_held():
                    logger.warning("lost the leader lock's connection; stopping the timed work")
                    await self._step_down()
                    logger.info("this process follows: another may run the timed work")
                    self._sit_out = STEP_BACK_TRIES
            elif self._sit_out:
                self._sit_out -= 1
            else:
                await self._try_to_lead()

    async def _pause(self) -> None:
        """Wait one interval, or less if the lock's connection drops or stop is asked for."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        # Read at each pause, so tests can shorten it for a running application.
        await asyncio.wait({stopping, lost}, timeout=RETRY_SECONDS, return_when="FIRST_COMPLETED")
        for waiter in (stopping, lost):
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        if self._lost.is_set() and not self._leading:
            self._lost.clear()  # a stale signal, from a connection already given up

    async def _lock_held(self) -> bool:
        assert self._lock is not None
        return await self._lock.still_held()

    async def _try_to_lead(self) -> None:
        assert self._lock is not None
        self._lost.clear()
        try:
            taken = await self._lock.try_acquire(self._lost.set)
        except Exception as error:
            # Said once per outage: every try fails alike while the database is away.
            if not self._unreachable_said:
                logger.warning(
                    "cannot reach the database to elect a leader (%s); retrying",
                    type(error).__name__,
                )
                self._unreachable_said = True
            return
        self._unreachable_said = False
        if taken:
            await self._become_leader()

    async def _become_leader(self) -> None:
        self._leading = True
        if self._lock is not None:
            logger.info("this process leads: it runs the timed work")
        try:
            await self._lead()
        except Exception:
            logger.exception("could not start the timed work; giving the lead up")
            await self._step_down()

    async def _step_down(self) -> None:
        # Said first, so /healthz no longer claims a lead this process may have lost.
        self._leading = False
        try:
            await self._follow()
        finally:
            if self._lock is not None:
                await self._lock.release()
            self._lost.clear()
