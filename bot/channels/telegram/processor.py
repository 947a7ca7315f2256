"""Process updates of different chats concurrently, and each chat's updates strictly in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


def chat_key(update: object) -> int | None:
    """Return the chat an update belongs to, or None for updates that belong to no chat."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None


class ChatOrderedUpdateProcessor(BaseUpdateProcessor):
    """Run up to ``max_concurrent_updates`` updates at once, but one at a time per chat.

    PTB starts a task per update in arrival order and admits them through a FIFO semaphore; the
    chat's turn (``in_order``, the dialogue core's per-chat order) is FIFO too, so a chat's
    updates reach their handler in the order they came. Updates without a chat run unordered.
    The turn is taken here rather than in the handler because PTB awaits between admitting an
    update and calling the handler, where a later update of the same chat could overtake.
    """

    def __init__(
        self,
        max_concurrent_updates: int,
        in_order: Callable[[str], AbstractAsyncContextManager[None]],
    ) -> None:
        super().__init__(max_concurrent_updates)
        self._in_order = in_order

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Await the update's handling while holding its chat's lock."""
        key = chat_key(update)
        if key is None:
            await coroutine
            return
        async with self._in_order(str(key)):
            await coroutine

    async def initialize(self) -> None:
        """Nothing to allocate: locks are made on demand."""

    async def shutdown(self) -> None:
        """Nothing to free."""
