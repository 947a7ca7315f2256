"""Per-key asyncio locks that disappear when nobody holds or waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager


class KeyedLocks:
    """One FIFO lock per key (per chat, say), so work on one key runs strictly in order.

    Waiters are woken in arrival order (asyncio.Lock is fair), and a key's lock is dropped as soon
    as nobody uses it, so thousands of chats do not leave thousands of locks behind.
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the lock of one key for the duration of the block."""
        lock = self._enter(key)
        try:
            async with lock:
                yield
        finally:
            self._leave(key)

    async def take_if_free(self, key: Hashable) -> Callable[[], None] | None:
        """Hold a key's lock at once if nobody holds or waits for it; return how to let it go.

        None when the key is busy. Acquiring a new lock nobody waits for never suspends, so no
        other task comes in between the check and the taking, and no cancellation can land
        before the caller has the way to let it go.
        """
        if key in self._locks:
            return None
        lock = self._enter(key)
        await lock.acquire()
        assert lock.locked()
        held = True

        def let_go() -> None:
            nonlocal held
            if held:
                held = False
                lock.release()
                self._leave(key)

        return let_go

    def _enter(self, key: Hashable) -> asyncio.Lock:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        return lock

    def _leave(self, key: Hashable) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def busy(self, key: Hashable) -> bool:
        """Whether someone holds or waits for a key's lock now."""
        return key in self._locks

    def __len__(self) -> int:
        return len(self._locks)
