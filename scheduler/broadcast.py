"""The bulk lane: broadcasts go out at a steady rate, apart from replies to citizens who just wrote.

Replies are delivered chat by chat as soon as an event is handled (``bot.dialogue.outbox``); nothing
here can hold them up. Bulk messages are claimed from the outbox in small batches with a lease, sent
under the bulk rate (and a group's 20 per minute), and settled in short batches. A 429 pauses this
lane only. A sender killed mid-batch leaves its claimed messages to be taken again when the lease
runs out; only the few sent but not yet settled at that instant can arrive twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bot.dialogue.channel import Channel
from bot.dialogue.health import HealthBoard
from bot.dialogue.metrics import Metrics
from bot.dialogue.outbox import (
    PartsProgress,
    RecipientGone,
    Rejected,
    RetryLater,
    TransientFailure,
    send,
)
from storage.database import is_transient
from storage.models import OutboxMessage, OutboxStatus
from storage.plan import BulkResult
from storage.uow import UnitOfWorkFactory

# The health board's name for the bulk lane.
HEALTH_PART = "broadcasts"
logger = logging.getLogger(__name__)

# What a batch counts on for a channel its limits leave unpaced (the web chat, e-mail).
UNPACED_PER_SECOND = 250.0
MAX_ATTEMPTS = 5
MAX_BACKOFF_SECONDS = 300.0
SETTLE_EVERY_SECONDS = 0.25
IDLE_POLL_SECONDS = 2.0
# Claim about this many seconds of sending at a time: small batches keep the lease honest.
BATCH_SECONDS = 2.0
IN_FLIGHT = 32
CHATS_REMEMBERED = 10_000
# The window in which a channel's bulk rate is counted at sending: a second, and room for the
# requests' varying way to the platform (see Pacer).
COUNTED_WINDOW_SECONDS = 1.1


class Pacer:
    """Hand out send slots at a steady rate; a pause (429) holds every slot back until it ends.

    Slots are booked ahead for the messages in flight. A task that wakes late (the event loop was
    busy) would send at once, next to the following slot's message, and a platform counts per
    second, not per slot: so ``admit`` checks, at the moment of sending, that no window of one
    second and a little more holds more than the rate (rounded down). The little more is for
    the way to the platform: requests in flight together arrive a few tens of milliseconds
    earlier or later than they left, and two that left just over a second apart may arrive
    within one. The lane runs a little under the rate for it (26 a second for a rate of 29).
    """

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next = 0.0
        self.paused_until = 0.0
        self._in_any_second = max(1, math.floor(per_second)) if math.isfinite(per_second) else 0
        self._sent: deque[float] = deque()

    async def admit(self) -> None:
        """Wait, if need be, until sending now keeps every one-second window within the rate."""
        if not self._in_any_second:
            return
        while True:
            now = self._clock()
            while self._sent and self._sent[0] <= now - COUNTED_WINDOW_SECONDS:
                self._sent.popleft()
            if len(self._sent) < self._in_any_second:
                self._sent.append(now)
                return
            await asyncio.sleep(self._sent[0] + COUNTED_WINDOW_SECONDS - now)

    def pause(self, seconds: float) -> None:
        """Stop handing out slots for a while (Telegram said: retry after)."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)
        self._next = max(self._next, self.paused_until)

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it."""
        now = self._clock()
        slot = max(now, self._next, self.paused_until)
        self._next = slot + self._interval
        return slot - now


class BulkSender:
    """Send the bulk lane's messages until stopped."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
        sender: Callable[[str], Channel | None],
        channels: Callable[[], list[str]],
        lease: timedelta,
        on_settled: Callable[[set[int]], Awaitable[None]],
        health: HealthBoard | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._uow = uow
        self._metrics = metrics or Metrics()
        self._health = health or HealthBoard()
        self._clock = clock
        self._sender = sender
        self._channels = channels
        # Each channel is paced by its own limits: a 429 from one platform holds only its lane.
        self._pacers: dict[str, Pacer] = {}
        # When each chat may next get a message (a group 20 a minute, a private chat 1 a second).
        self._chat_next: dict[tuple[str, str], float] = {}
        self._lease = lease
        self._on_settled = on_settled
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._results: list[BulkResult] = []
        self._result_posts: set[int] = set()
        self._gone: set[tuple[str, str]] = set()
        self._images: dict[int, bytes | None] = {}
        self.sent = 0

    def start(self) -> None:
        """Start sending in the background (needs a running event loop)."""
        self._task = asyncio.create_task(self._run(), name="bulk-sender")

    def wake(self) -> None:
        """New bulk messages were queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the messages in flight, settle them, and stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.send_batch()
            except Exception as error:
                if is_transient(error):
                    # Said once on the health board; nothing was sent that is not settled later.
                    self._health.fault(
                        HEALTH_PART, f"database unavailable ({type(error).__name__})"
                    )
                else:
                    logger.exception("bulk sending failed; trying again shortly")
                handled = 0
            else:
                self._health.clear(HEALTH_PART)
            if handled == 0 and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    async def send_batch(self) -> int:
        """Claim a batch of bulk messages and send them; return how many were claimed."""
        channels = [c for c in self._channels() if self._sender(c) is not None]
        if not channels:
            return 0
        per_second = sum(self._per_second(channel) for channel in channels)
        limit = max(10, min(500, int(per_second * BATCH_SECONDS)))
        async with self._uow() as unit:
            batch = await unit.plan.claim_bulk(channels, self._clock(), self._lease, limit)
            await unit.commit()
        if not batch:
            return 0
        await self._load_images(batch)
        in_flight = asyncio.Semaphore(IN_FLIGHT)
        batch_done = asyncio.Event()
        flusher = asyncio.create_task(self._flush_periodically(batch_done))
        try:
            await asyncio.gather(*(self._send(message, in_flight) for message in batch))
        finally:
            # Never cancel a flush halfway: results taken out but not committed would be lost,
            # and their messages sent again when the lease runs out.
            batch_done.set()
            await flusher
            await self._flush()
        return len(batch)

    async def _load_images(self, batch: list[OutboxMessage]) -> None:
        wanted = {int(m.payload["image_post"]) for m in batch if "image_post" in m.payload}
        for post_id in wanted - set(self._images):
            async with self._uow() as unit:
                post = await unit.plan.get(post_id)
                self._images[post_id] = post.image if post is not None else None

    async def _send(self, message: OutboxMessage, in_flight: asyncio.Semaphore) -> None:
        sender = self._sender(message.channel)
        assert sender is not None
        payload: dict[str, Any] = dict(message.payload)
        if "image_post" in payload:
            payload["image"] = self._images.get(int(payload["image_post"]))
        async with in_flight:
            result = await self._attempt(sender, message, payload)
        self._results.append(result)
        if message.post_id is not None:
            self._result_posts.add(message.post_id)

    async def _attempt(
        self, sender: Channel, message: OutboxMessage, payload: dict[str, Any]
    ) -> BulkResult:
        progress = PartsProgress(self._uow, message.id, message.payload)
        while True:
            if (message.channel, message.chat_id) in self._gone:
                return BulkResult(message.id, OutboxStatus.UNREACHABLE, "recipient unreachable")
            await asyncio.sleep(self._wait_for_slot(sender, message))
            pacer = self._pacers.get(message.channel)
            if pacer is not None:
                await pacer.admit()
                if pacer.paused_until > time.monotonic():
                    continue
            try:
                external_id = await send(sender, message.chat_id, payload, progress)
            except RetryLater as wait:
                self._metrics.flood_waits.labels(message.channel, message.lane).inc()
                # Only this lane waits; replies to citizens go on meanwhile.
                logger.warning(
                    "bulk lane of %s paused %.0f s by flood control", message.channel, wait.seconds
                )
                self._pacer(sender).pause(wait.seconds)
                continue
            except RecipientGone:
                self._metrics.recipients_gone.labels(message.channel, message.lane).inc()
                self._gone.add((message.channel, message.chat_id))
                return BulkResult(message.id, OutboxStatus.UNREACHABLE, "recipient unreachable")
            except Rejected as refusal:
                return BulkResult(message.id, OutboxStatus.FAILED, str(refusal))
            except TransientFailure as failure:
                # The message may or may not have arrived; sending it again may repeat it.
                logger.warning("bulk message %s: network error (%s)", message.id, failure)
                attempts = message.attempts + 1
                if attempts >= MAX_ATTEMPTS:
                    reason = f"network errors on {attempts} attempts ({failure})"
                    return BulkResult(message.id, OutboxStatus.FAILED, reason)
                backoff = min(MAX_BACKOFF_SECONDS, 2.0**attempts)
                retry_at = self._clock() + timedelta(seconds=backoff)
                return BulkResult(
                    message.id, OutboxStatus.PENDING, str(failure), next_attempt_at=retry_at
                )
            else:
                self.sent += 1
                return BulkResult(message.id, OutboxStatus.SENT, external_id=external_id)

    def _per_second(self, channel: str) -> float:
        sender = self._sender(channel)
        rate = sender.limits.bulk_per_second if sender is not None else None
        return rate or UNPACED_PER_SECOND

    def _pacer(self, sender: Channel) -> Pacer:
        """The channel's pacer; an unpaced channel gets one too, for a 429-like pause."""
        pacer = self._pacers.get(sender.channel)
        if pacer is None:
            rate = sender.limits.bulk_per_second
            pacer = self._pacers[sender.channel] = Pacer(rate or float("inf"))
        return pacer

    def _wait_for_slot(self, sender: Channel, message: OutboxMessage) -> float:
        limits = sender.limits
        if limits.bulk_per_second is None and not limits.seconds_between(message.chat_id):
            return 0.0
        wait = self._pacer(sender).reserve()
        between = limits.seconds_between(message.chat_id)
        if between:
            # A chat takes messages no faster than its platform allows, whatever the bulk rate.
            chat = (message.channel, message.chat_id)
            now = time.monotonic()
            if len(self._chat_next) > CHATS_REMEMBERED:
                # A chat whose next slot has passed needs no entry: a broadcast to 100,000
                # chats must not keep 100,000 of them.
                self._chat_next = {key: at for key, at in self._chat_next.items() if at > now}
            slot = max(now + wait, self._chat_next.get(chat, 0.0))
            self._chat_next[chat] = slot + between
            wait = slot - now
        return wait

    async def _flush_periodically(self, batch_done: asyncio.Event) -> None:
        while not batch_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch_done.wait(), SETTLE_EVERY_SECONDS)
            await self._flush()

    async def _flush(self) -> None:
        if not self._results:
            return
        results, self._results = self._results, []
        posts, self._result_posts = self._result_posts, set()
        gone, self._gone = self._gone, set()
        now = self._clock()
        async with self._uow() as unit:
            await unit.plan.settle_bulk(results, now)
            for channel, chat_id in gone:
                # Nothing more until they write again (the dialogue core clears the mark).
                await unit.participants.mark_unreachable(channel, chat_id, now)
                await unit.plan.give_up_chat(channel, chat_id, now)
            await unit.commit()
        await self._on_settled(posts)
