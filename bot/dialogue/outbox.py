"""Deliver queued messages chat by chat, in order, through the channel that owns the chat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from bot.dialogue.channel import Channel
from bot.dialogue.locks import KeyedLocks
from bot.dialogue.metrics import Metrics
from handlers.events import ACKNOWLEDGEMENT
from storage.database import is_transient, retry_delay
from storage.models import Lane, OutboxStatus
from storage.repositories import QueuedMessage, Settlement
from storage.uow import UnitOfWorkFactory

logger = logging.getLogger(__name__)

# How often a message is retried at once after a network error before it waits for the next
# delivery round (the next event in that chat, the periodic redelivery job, or a restart).
TRANSIENT_RETRIES = 3
# Chats delivered at the same time when working through a backlog.
BACKLOG_CONCURRENCY = 32
# While another process delivers a chat: how long to wait before looking again, first and at most.
BUSY_CHAT_WAIT = (0.02, 0.5)


class ChatLocks(Protocol):
    """Locks that keep a chat's delivery to one process at a time (PostgreSQL advisory locks)."""

    async def try_lock(self, key: str) -> int | None:
        """Take a chat's lock if free; return the ``generation`` it is held under (None: not)."""
        ...

    async def unlock(self, key: str) -> None: ...

    @property
    def generation(self) -> int:
        """Moves on whenever the locks held so far are lost (their connection gone)."""
        ...


class OutcomeWriter(Protocol):
    """Records delivery outcomes outside a unit of work (``storage.advisory.DeliveryOutcomes``)."""

    async def settle_many(self, settlements: Sequence[Settlement]) -> None: ...


def _always() -> bool:
    return True


class RetryLater(Exception):
    """The channel asked us to wait (Telegram's 429); the same message is sent again after."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class RecipientGone(Exception):
    """The recipient cannot be reached (blocked the bot, left, deleted the account)."""


class Rejected(Exception):
    """The channel refused this message for good; sending it again would be refused too."""


class TransientFailure(Exception):
    """A network failure: the message may or may not have arrived."""


# Where a channel's progress through a message sent in several parts is kept, in its payload.
PROGRESS_KEY = "progress"


class PartsProgress:
    """How far a channel got with one outbox message that it sends as several platform messages.

    A platform with small messages (WhatsApp: 1024 characters beside buttons, 10 rows in a list)
    sends one outbox message as several. The channel saves its state after each part but the
    last, with the message in the database; the next attempt (after a network error, a restart
    or a kill -9) gets it back and goes on after the parts that went out, so a failure repeats
    at most the part in flight. What the state holds is the channel's own (a small JSON object).
    """

    def __init__(self, uow: UnitOfWorkFactory, message_id: int, stored: dict[str, Any]) -> None:
        self._uow = uow
        self._message_id = message_id
        # The payload as stored (the bulk lane adds the image's bytes to what it sends).
        self._stored = {k: v for k, v in stored.items() if k != PROGRESS_KEY}
        saved = stored.get(PROGRESS_KEY)
        self.state: dict[str, Any] | None = saved if isinstance(saved, dict) else None

    async def save(self, state: dict[str, Any]) -> None:
        """Keep the state with the message (and here, for an attempt in this process)."""
        self.state = state
        try:
            async with self._uow() as uow:
                await uow.outbox.rewrite_unsent(
                    self._message_id, {**self._stored, PROGRESS_KEY: state}
                )
                await uow.commit()
        except Exception as error:
            # Going on is better for the citizen; a crash before the message is settled would
            # then repeat the parts sent, never lose one.
            logger.warning(
                "outbox message %s: progress not saved (%s)", self._message_id, type(error).__name__
            )


class SendsInParts(Protocol):
    """A channel that may send one outbox message as several, and resume after the parts sent."""

    async def deliver_in_parts(
        self, chat_id: str, payload: dict[str, Any], progress: PartsProgress
    ) -> str | None:
        """Like ``Channel.deliver``, going on from ``progress.state`` and saving it per part."""
        ...


async def send(
    sender: Channel, chat_id: str, payload: dict[str, Any], progress: PartsProgress
) -> str | None:
    """Deliver one payload through its channel, resuming a message sent in parts."""
    # Looked up, not isinstance(): checking a runtime protocol inspects the class's members on
    # every call, which cost as much CPU as a statement, for every message sent.
    if hasattr(sender, "deliver_in_parts"):
        parts: SendsInParts = sender  # type: ignore[assignment]
        return await parts.deliver_in_parts(chat_id, payload, progress)
    return await sender.deliver(chat_id, payload)


class GroupSettler:
    """Record delivery outcomes of many chats in one transaction (a group commit).

    Each delivery waits until its outcome is committed, as if it had committed alone; while one
    transaction commits, the outcomes arriving meanwhile gather for the next. Under a burst a
    single commit settles the messages of many chats instead of one each.
    """

    def __init__(self, uow: UnitOfWorkFactory, outcomes: OutcomeWriter | None = None) -> None:
        self._uow = uow
        # PostgreSQL: outcomes written on a connection of their own, not in a unit of work.
        self._outcomes = outcomes
        self._waiting: list[tuple[Settlement, asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def settle(self, outcome: Settlement) -> None:
        """Return once the outcome is committed; raise what the commit raised."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_waiting(), name="outbox-settler")
        await done

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                outcomes = [outcome for outcome, _ in batch]
                if self._outcomes is not None:
                    await self._outcomes.settle_many(outcomes)
                else:
                    async with self._uow() as uow:
                        await uow.outbox.settle_many(outcomes)
                        await uow.commit()
            except Exception as error:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


class ReplyTurn:
    """A chat's reply delivery, to be held by this process from the moment its pending messages
    are read in the unit of work that queued the newest (see ``OutboxDelivery.reply_turn``)."""

    def __init__(
        self,
        locks: KeyedLocks,
        key: tuple[str, str, str],
        shared_locks: ChatLocks | None = None,
    ) -> None:
        self.pending: list[QueuedMessage] | None = None
        self._locks = locks
        self._key = key
        self._shared_locks = shared_locks
        self._let_go: Callable[[], None] | None = None
        self._shared_held = False
        self._shared_generation = 0

    async def take_if_free(self) -> bool:
        """Hold the chat's delivery now if nobody delivers it or waits to; say whether held.

        With several processes, also across them (the chat's shared lock, only tried): a chat
        another process is sending to, or a lock connection that fails, leaves the delivery to
        ``deliver_chat`` after the commit, which waits for the chat or reports the database.
        """
        if self._let_go is not None:
            return True
        self._let_go = await self._locks.take_if_free(self._key)
        if self._let_go is None or self._shared_locks is None:
            return self._let_go is not None
        try:
            under = await self._shared_locks.try_lock(shared_key(*self._key))
            if under is not None:
                self._shared_held, self._shared_generation = True, under
        except Exception as error:
            logger.warning("chat delivery lock not taken (%s)", type(error).__name__)
        if not self._shared_held:
            await self.release()
        return self._shared_held

    def still_ours(self) -> bool:
        """Whether the chat is still held across processes (a lost lock connection lost it)."""
        locks = self._shared_locks
        return locks is None or locks.generation == self._shared_generation

    async def release(self) -> None:
        """Let the chat's delivery go, if held (once; again does nothing)."""
        let_go, self._let_go = self._let_go, None
        shared_held, self._shared_held = self._shared_held, False
        try:
            if shared_held:
                assert self._shared_locks is not None
                # Shielded: cancelled half-way, the chat would stay locked on the server while
                # this process thinks it let go (and a later take would stack on it).
                await asyncio.shield(self._shared_locks.unlock(shared_key(*self._key)))
        finally:
            if let_go is not None:
                let_go()


def shared_key(channel: str, chat_id: str, lane: str) -> str:
    """The name of a chat's delivery lock across processes."""
    return f"{channel}:{chat_id}:{lane}"


class OutboxDelivery:
    """Send each chat's pending messages in order; only one delivery per chat runs at a time."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
        metrics: Metrics | None = None,
        shared_locks: ChatLocks | None = None,
        outcomes: OutcomeWriter | None = None,
    ) -> None:
        self._uow = uow
        # Several processes on one database: a chat is delivered by one of them at a time.
        self._shared_locks = shared_locks
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._sleep = sleep
        self._senders: dict[str, Channel] = {}
        self._locks = KeyedLocks()
        self._settler = GroupSettler(uow, outcomes)
        # Set at shutdown: stop waiting for the database to record what was sent.
        self._closing = asyncio.Event()

    def close(self) -> None:
        """Stop waiting for an unavailable database (a shutdown); what waits stays pending."""
        self._closing.set()

    def register(self, sender: Channel) -> None:
        """Let messages of a channel be delivered through this sender."""
        self._senders[sender.channel] = sender

    def sender(self, channel: str) -> Channel | None:
        """The sender of a channel, while its transport is running."""
        return self._senders.get(channel)

    def unregister(self, channel: str) -> None:
        """Stop delivering a channel's messages (its transport is shutting down)."""
        self._senders.pop(channel, None)

    def reply_turn(self, channel: str, chat_id: str) -> ReplyTurn | None:
        """A chat's reply delivery for the unit of work that queues an event's replies.

        The unit takes it (if free) and reads what is pending for the chat in its own
        transaction: no delivery can send any of that meanwhile, so ``deliver_chat`` after the
        commit needs no unit of its own to read it. With several processes the chat's shared
        lock is taken as well before that read, so what another process sent and settled
        before letting the chat go is read as sent. None for a channel not running.
        """
        if channel not in self._senders:
            return None
        return ReplyTurn(self._locks, (channel, chat_id, Lane.REPLY), self._shared_locks)

    async def deliver_chat(
        self,
        channel: str,
        chat_id: str,
        lane: str = Lane.REPLY,
        *,
        turn: ReplyTurn | None = None,
    ) -> None:
        """Deliver everything pending for one chat in one lane, oldest first.

        Given a held ``turn`` (held since its pending messages were read), those are sent, and
        the turn is let go.
        """
        if turn is not None:
            try:
                sender = self._senders.get(channel)
                if sender is not None and turn.pending is not None:
                    await self._send_pending(
                        sender, channel, chat_id, turn.pending, turn.still_ours
                    )
                    return
            finally:
                await turn.release()
        sender = self._senders.get(channel)
        if sender is None:
            return
        async with (
            self._locks.hold((channel, chat_id, lane)),
            self._turn(channel, chat_id, lane) as still_ours,
        ):
            if still_ours is None:
                return  # another process sent everything there was
            # Read under the lock, so two deliveries of one chat can never send a message twice:
            # whatever an earlier delivery sent is settled (committed) before it let go.
            async with self._uow.read() as uow:
                pending = await uow.outbox.pending_for_chat(channel, chat_id, lane)
            await self._send_pending(sender, channel, chat_id, pending, still_ours)

    async def _send_pending(
        self,
        sender: Channel,
        channel: str,
        chat_id: str,
        pending: list[QueuedMessage],
        still_ours: Callable[[], bool],
    ) -> None:
        # A button's acknowledgement is no message in the conversation: it goes out beside
        # the messages after it instead of holding them up for a round trip (the citizen sees
        # the answer to a tap sooner). It is settled before the chat is let go, like the rest.
        acknowledgements: list[asyncio.Task[None]] = []
        try:
            await self._deliver_in_order(
                sender, channel, chat_id, pending, acknowledgements, still_ours
            )
        finally:
            finished = await asyncio.gather(*acknowledgements, return_exceptions=True)
        for result in finished:
            if isinstance(result, BaseException):
                raise result

    @asynccontextmanager
    async def _turn(
        self, channel: str, chat_id: str, lane: str
    ) -> AsyncIterator[Callable[[], bool] | None]:
        """Hold a chat's delivery across processes, or find nothing left to send (None).

        Held, it gives a check of whether the chat is still held (a lock connection lost on the
        way lost the chat with it). Another process delivering the chat read what was pending
        when it started, so a message queued since may not be sent by it: waiting for it to
        finish is not enough. The chat is taken over once free, unless every message of it has
        gone out meanwhile.
        """
        locks = self._shared_locks
        if locks is None:
            yield _always
            return
        key = shared_key(channel, chat_id, lane)
        wait, longest = BUSY_CHAT_WAIT
        while (taken := await locks.try_lock(key)) is None:
            async with self._uow.read() as uow:
                left = await uow.outbox.pending_for_chat(channel, chat_id, lane)
            if not left:
                yield None
                return
            await asyncio.sleep(wait)
            wait = min(wait * 2, longest)
        try:
            yield lambda: locks.generation == taken
        finally:
            # Shielded: cancelled half-way, the chat would stay locked on the server.
            await asyncio.shield(locks.unlock(key))

    async def _deliver_in_order(
        self,
        sender: Channel,
        channel: str,
        chat_id: str,
        pending: list[QueuedMessage],
        acknowledgements: list[asyncio.Task[None]],
        still_ours: Callable[[], bool],
    ) -> None:
        for position, message in enumerate(pending):
            if not still_ours():
                # The chat's lock went with its connection, and another process may be sending
                # from what it reads pending now: the rest stays queued for it (or for the
                # redelivery job). At most the message that was in flight goes out twice, as
                # after a crash.
                logger.warning(
                    "chat delivery lock lost: %d messages left queued", len(pending) - position
                )
                return
            if message.payload.get("type") == ACKNOWLEDGEMENT:
                acknowledgements.append(asyncio.create_task(self._acknowledge(sender, message)))
                continue
            settled = await self._deliver_one(sender, message)
            if settled is None:
                return
            status, external_id, error = settled
            outcome = Settlement(message.id, status, self._clock(), external_id, error)
            if status != OutboxStatus.UNREACHABLE:
                # The next message goes only once this one is recorded as sent, so a crash
                # repeats at most the one message in flight.
                refused = await self._record_sent(outcome)
                if refused is None:
                    return
                if refused and self._shared_locks is not None:
                    # What failed may have taken the chat's shared lock with its connection, and
                    # another process the chat: the rest is read again under the lock, by the
                    # redelivery job or the chat's next event, instead of sent from this list.
                    return
                continue
            async with self._uow() as uow:
                await uow.outbox.settle_many(
                    [outcome]
                    + [
                        Settlement(rest.id, status, outcome.at, error="recipient unreachable")
                        for rest in pending[position + 1 :]
                    ]
                )
                await uow.participants.mark_unreachable(channel, chat_id, outcome.at)
                await uow.commit()
            return

    async def _record_sent(self, outcome: Settlement) -> int | None:
        """Record a delivery's outcome, waiting while the database fails for a passing reason;
        return how often it was refused first, or None if it never took it (a shutdown).

        The message is out: left pending, the redelivery job would send it again, and the
        citizen would read it twice. So the chat stays held (nothing more goes to it, in order)
        and the outcome is tried again until the database takes it. At a shutdown the message
        stays pending, as if it had been in flight at a crash.
        """
        refused = 0
        while True:
            try:
                await self._settler.settle(outcome)
                return refused
            except Exception as error:
                if not is_transient(error) or self._closing.is_set():
                    raise
                refused += 1
                logger.warning(
                    "outbox message %s was sent but its outcome not stored (%s): "
                    "trying again in %.1f s",
                    outcome.message_id,
                    type(error).__name__,
                    retry_delay(refused),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), retry_delay(refused))
                if self._closing.is_set():
                    return None

    async def _acknowledge(self, sender: Channel, message: QueuedMessage) -> None:
        settled = await self._deliver_one(sender, message)
        if settled is not None:
            status, external_id, error = settled
            await self._settler.settle(
                Settlement(message.id, status, self._clock(), external_id, error)
            )

    async def _deliver_one(
        self, sender: Channel, message: QueuedMessage
    ) -> tuple[str, str | None, str | None] | None:
        transient_failures = 0
        progress = PartsProgress(self._uow, message.id, message.payload)
        waited = False
        while True:
            if waited:
                if self._senders.get(message.channel) is not sender:
                    # The channel stopped during the wait (a shutdown): its transport is
                    # closed. The message stays queued for the next start.
                    return None
                # What waited may have been rewritten meanwhile (a moderators' card whose
                # author erased their answer): send what is stored now, as a restart would.
                current = await self._still_pending(message)
                if current is None:
                    return None
                message = current
                progress = PartsProgress(self._uow, message.id, message.payload)
                waited = False
            try:
                external_id = await send(sender, message.chat_id, message.payload, progress)
            except RetryLater as wait:
                self.metrics.flood_waits.labels(message.channel, message.lane).inc()
                logger.warning(
                    "flood control on %s outbox message %s: waiting %.1f s",
                    message.channel,
                    message.id,
                    wait.seconds,
                )
                await self._sleep(wait.seconds)
                waited = True
            except RecipientGone:
                self.metrics.recipients_gone.labels(message.channel, message.lane).inc()
                logger.info("recipient of outbox message %s is unreachable", message.id)
                return OutboxStatus.UNREACHABLE, None, "recipient unreachable"
            except Rejected as refusal:
                logger.error("outbox message %s refused: %s", message.id, refusal)
                return OutboxStatus.FAILED, None, str(refusal)
            except TransientFailure as failure:
                transient_failures += 1
                if transient_failures > TRANSIENT_RETRIES:
                    logger.warning(
                        "outbox message %s left pending after %d network errors: %s",
                        message.id,
                        transient_failures,
                        failure,
                    )
                    return None
                # Said, because it can repeat the message: a request that timed out may have
                # reached the platform all the same.
                logger.warning(
                    "outbox message %s: network error (%s), sending it again",
                    message.id,
                    failure,
                )
                await self._sleep(2.0 ** (transient_failures - 1))
                waited = True
            else:
                return OutboxStatus.SENT, external_id, None

    async def _still_pending(self, message: QueuedMessage) -> QueuedMessage | None:
        """The message as stored now, if it still waits to be sent; None if it does not."""
        async with self._uow.read() as uow:
            stored = await uow.outbox.get(message.id)
            if stored is None or stored.status != OutboxStatus.PENDING:
                return None
            return message._replace(payload=stored.payload)

    async def deliver_backlog(
        self, channel: str, lane: str = Lane.REPLY, queued_before: datetime | None = None
    ) -> int:
        """Deliver every chat's pending messages in a lane; return how many chats were served.

        ``queued_before`` limits it to chats with a message waiting since before that time.
        """
        if channel not in self._senders:
            return 0
        async with self._uow() as uow:
            chats = await uow.outbox.chats_with_pending(channel, lane, queued_before)
        if queued_before is not None:
            # Looking for what another process left: a chat this process is sending to now
            # is not left behind.
            chats = [chat for chat in chats if not self._locks.busy((channel, chat, lane))]
        limit = asyncio.Semaphore(BACKLOG_CONCURRENCY)

        async def one(chat_id: str) -> None:
            async with limit:
                await self.deliver_chat(channel, chat_id, lane)

        await asyncio.gather(*(one(chat_id) for chat_id in chats))
        return len(chats)
