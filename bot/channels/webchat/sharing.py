"""What one process pushes to a web chat's tabs reaches the chat's tabs on the other processes.

A citizen's tab may be connected to process A while process B delivers a reply, a moderator's
decision or a planned post to that chat. On PostgreSQL every push is therefore also sent as a
notification on one channel, which every process listens to (on a connection of its own):

- a message of the transcript travels as a reference (chat and message id), sent in the same
  transaction that writes it, so it is announced exactly when it is committed; the listening
  process reads the message from the database (a notification holds at most 8000 bytes);
- a small push (a refused press's reason, "handled") travels as it is.

Each notification names the process that sent it, which ignores its own: it has pushed to its
own tabs already. A process drops notifications for chats it has no tab of. On SQLite there is
one process, and none of this is built.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.dialogue.tasks import stop_tasks
from storage.notifications import Listener, fits
from storage.uow import UnitOfWork

# The notification channel; every process of an installation listens to it.
NOTIFY_CHANNEL = "borgerdialog_web_chat"
# The pushes that travel as they are; anything else in a notification is not passed to a tab.
SMALL_PUSHES = ("notice", "handled")
# At most this many notifications are shown with one read of the transcript.
BATCH = 200
# Small pushes waiting to be sent; beyond this (the database stalls) new ones are dropped.
OUTGOING_LIMIT = 10_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shared:
    """A push another process made: a transcript message to read, or a body to pass on."""

    chat_id: str
    message_id: int | None = None
    language: str | None = None
    body: dict[str, Any] | None = None


# Put in the queue when the listening connection is back: notifications were missed meanwhile.
_RESUMED = Shared(chat_id="")


def read_notification(payload: str, own_origin: str) -> Shared | None:
    """A notification as sent by ``Sharing``; None for this process's own or a malformed one."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("o") == own_origin:
        return None
    chat_id = data.get("c")
    if not isinstance(chat_id, str) or not chat_id:
        return None
    message_id, body, language = data.get("m"), data.get("b"), data.get("l")
    if language is not None and not isinstance(language, str):
        return None
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        return Shared(chat_id, message_id=message_id, language=language)
    if isinstance(body, dict) and body.get("type") in SMALL_PUSHES:
        return Shared(chat_id, body=body)
    return None


class Sharing:
    """Send this process's pushes to the other processes, and hand theirs to this one's tabs."""

    def __init__(self, listener: Listener, origin: str | None = None) -> None:
        self._listener = listener
        # Tells this process's notifications from the others': a fresh one at every start.
        self.origin = origin or secrets.token_hex(8)
        self._queue: asyncio.Queue[Shared] = asyncio.Queue()
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(OUTGOING_LIMIT)
        self._task: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._wanted: Callable[[str], bool] = lambda _chat_id: False

    @classmethod
    def for_database(cls, url: str) -> Sharing:
        """Sharing over the database's notifications, on a listening connection of its own."""
        return cls(Listener(url, NOTIFY_CHANNEL, "the web chat's notifications"))

    @property
    def listener(self) -> Listener:
        """The listening connection (its state is for health reports and tests)."""
        return self._listener

    def _encode(self, fields: dict[str, Any]) -> str:
        return json.dumps({"o": self.origin, **fields}, ensure_ascii=False, separators=(",", ":"))

    async def message(
        self, uow: UnitOfWork, chat_id: str, message_id: int, language: str | None
    ) -> None:
        """Announce a transcript message to the other processes when ``uow`` commits."""
        fields: dict[str, Any] = {"c": chat_id, "m": message_id}
        if language:
            fields["l"] = language
        await uow.notifications.send(NOTIFY_CHANNEL, self._encode(fields))

    def body(self, chat_id: str, body: dict[str, Any]) -> None:
        """Pass a small push on to the other processes soon (dropped if it does not fit).

        Sent by a task of its own, in order: the caller may hold a chat's turn, which must not
        wait for the database. Sent after every message announced before it was committed, so
        it reaches the other processes after them.
        """
        payload = self._encode({"c": chat_id, "b": body})
        if fits(payload) and not self._outgoing.full():
            self._outgoing.put_nowait(payload)

    async def _send(self) -> None:
        while True:
            payload = await self._outgoing.get()
            # While the connection is down it is lost: a tab gets the transcript again when the
            # connection is back, and these pushes are hints the transcript does without.
            await self._listener.send(payload)

    async def start(
        self,
        wanted: Callable[[str], bool],
        show: Callable[[list[Shared]], Awaitable[None]],
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        """Listen; hand others' pushes for chats ``wanted`` here to ``show``, in order.

        ``resync`` runs when listening again after the connection dropped.
        """
        self._wanted = wanted
        self._task = asyncio.create_task(self._work(show, resync), name="web chat sharing")
        self._sender = asyncio.create_task(self._send(), name="web chat sharing sender")
        await self._listener.start(self._received, lambda: self._queue.put_nowait(_RESUMED))

    async def stop(self) -> None:
        """Stop listening; what was received and not yet shown or sent is dropped."""
        await stop_tasks(self._sender, self._task)
        self._sender = self._task = None
        await self._listener.stop()

    def _received(self, payload: str) -> None:
        shared = read_notification(payload, self.origin)
        # Most notifications are for chats with no tab here: dropped before any work.
        if shared is not None and self._wanted(shared.chat_id):
            self._queue.put_nowait(shared)

    async def _work(
        self,
        show: Callable[[list[Shared]], Awaitable[None]],
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        # One batch at a time, in the order committed: a reply before the "handled" after it.
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                while batch:
                    cut = next((i for i, s in enumerate(batch) if s is _RESUMED), None)
                    if cut is None:
                        await show(batch)
                        break
                    await show(batch[:cut])
                    await resync()
                    batch = batch[cut + 1 :]
            except Exception as error:
                # The tabs show it after their next reconnect, from the transcript.
                logger.warning(
                    "could not show other processes' web chat messages (%s)", type(error).__name__
                )
