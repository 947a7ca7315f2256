"""The dialogue core: the durable inbox, applied exactly once, and the replies it causes.

Every channel hands its events here. An event is stored before the channel confirms it to the
platform (``accept``); it is then applied in one unit of work that also queues the replies and
marks the event done (``handle``), so a crash at any moment either repeats nothing or redoes the
whole event; replies go out after the commit (``OutboxDelivery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.dialogue.health import HealthBoard
from bot.dialogue.i18n import BoundTexts, Catalogs, resolve_language
from bot.dialogue.locks import KeyedLocks
from bot.dialogue.metrics import Metrics
from bot.dialogue.outbox import OutboxDelivery, ReplyTurn
from handlers.context import LAST_LANGUAGE, FlowContext, ModerationDesk, OrganisationInfo
from handlers.events import ChatAddress, InboundEvent, Reply, storable
from handlers.router import route
from handlers.screening.rules import Screener
from storage.database import is_transient, retry_delay
from storage.models import InboxStatus, Lane
from storage.uow import UnitOfWork, UnitOfWorkFactory

logger = logging.getLogger(__name__)

# The health board's names for the dialogue core and for sending what it queued.
PART = "dialogue"
DELIVERY = "delivery"
# Events finished by whichever process finds them pending at once (see finish_stale).
STALE_BATCH = 500
STALE_CONCURRENCY = 16
# At shutdown, how long deliveries to other chats (see _deliver_beside) may still run; one still
# waiting then (out a flood wait, say) is stopped, and its messages stay queued for the next start.
BESIDE_GRACE_SECONDS = 5.0

# Reads a stored event's payload back into what flows read (None: nothing for a flow); raises
# when it cannot be read. Channels register one each (see DialogueCore.register_reader).
EventReader = Callable[[dict[str, Any]], Awaitable[InboundEvent | None]]


class _Behind(Exception):
    """The chat has earlier events still pending (stored by another process, or left by one)."""

    def __init__(self, earlier: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__(f"{len(earlier)} earlier events pending")
        self.earlier = earlier


def loggable(external_id: str) -> str:
    """An event's id as logs may show it.

    A web-chat id starts with the participant's own id (``w-<id>:<message>``), which logs must
    not hold; the message part alone still finds the event in the inbox.
    """
    return external_id.rsplit(":", 1)[-1] if external_id.startswith("w-") else external_id


class DialogueCore:
    """Accept, apply and answer inbound events of every channel."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        catalogs: Catalogs,
        detect_language: Callable[[str], str | None],
        organisation: OrganisationInfo,
        clock: Callable[[], datetime],
        delivery: OutboxDelivery,
        zone: ZoneInfo,
        screener: Screener,
        moderation: ModerationDesk,
        staff_chat: ChatAddress | None = None,
        health: HealthBoard | None = None,
        pseudonym_key: bytes = b"",
        metrics: Metrics | None = None,
        several_processes: bool = False,
        whatsapp_enabled: bool = False,
    ) -> None:
        self._uow = uow
        # On a database that several processes share, any of them may have stored a chat's
        # earlier event: it is applied first (per-chat order across processes).
        self._several_processes = several_processes
        self._readers: dict[str, EventReader] = {}
        # Events this process stored (or recovered) and has yet to handle: its own queue holds
        # them, so the search for events another process left behind passes them by.
        self._taken: set[tuple[str, str]] = set()
        self.metrics = metrics or Metrics()
        self.health = health or HealthBoard()
        self._pseudonym_key = pseudonym_key
        # Set at shutdown: events waiting for the database stay pending for the next start.
        self._closing = asyncio.Event()
        # Whether the last attempt found the database away: at shutdown, no event tries again.
        self._database_away = False
        self._screener = screener
        self.moderation = moderation
        self.staff_chat = staff_chat
        self._whatsapp_enabled = whatsapp_enabled
        self._catalogs = catalogs
        self._detect_language = detect_language
        self._organisation = organisation
        self._clock = clock
        self._zone = zone
        self.delivery = delivery
        # One lock per (channel, chat): a chat's events are applied one at a time, in order.
        self._chat_order = KeyedLocks()
        # Other chats an event queued messages for (a moderators' card), to deliver beside the
        # chats' turns, and the one delivery running for each.
        self._wanted_beside: set[ChatAddress] = set()
        self._delivering_beside: dict[ChatAddress, asyncio.Task[None]] = {}

    def register_reader(self, channel: str, reader: EventReader) -> None:
        """Let this process apply a channel's events that another process stored."""
        self._readers[channel] = reader

    async def accept(
        self,
        channel: str,
        events: Sequence[tuple[str, str | None, dict[str, Any]]],
        alongside: Callable[[UnitOfWork, set[str]], Awaitable[None]] | None = None,
    ) -> set[str]:
        """Store raw events (external id, chat id, payload); return external ids of new ones.

        ``alongside`` writes what the channel keeps with the events (the web chat's transcript)
        in the same transaction, given the ids that were new. Raises what the database raises;
        the channel decides whether to retry or set aside.
        """
        storable_events = [
            (external, chat, storable(payload)) for external, chat, payload in events
        ]
        async with self._uow() as uow:
            new_ids = await uow.inbox.add_new(channel, storable_events, self._clock())
            if alongside is not None:
                await alongside(uow, new_ids)
            await uow.commit()
        self._taken.update((channel, external_id) for external_id in new_ids)
        return new_ids

    def in_order(self, channel: str, chat_id: str) -> AbstractAsyncContextManager[None]:
        """Hold a chat's turn: its events are applied one at a time, in the order they asked.

        For a channel whose platform library schedules the handling (Telegram's update
        processor); others call ``submit``, which holds the turn itself.
        """
        return self._chat_order.hold((channel, chat_id))

    async def submit(
        self,
        channel: str,
        external_id: str,
        event: InboundEvent | None,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Apply a stored event in its chat's turn and deliver what it caused.

        ``then`` runs still in the turn, before the chat's next event: what the channel tells
        the citizen's screen about this event comes before the next event's replies.
        """
        if event is None:
            await self.handle(channel, external_id, None)
            return
        async with self.in_order(channel, event.chat_id):
            await self.handle(channel, external_id, event)
            if then is not None:
                await then()

    async def set_aside(
        self, channel: str, external_id: str, chat_id: str | None, raw: str, reason: str
    ) -> None:
        """Keep an event that cannot be stored or read as failed, for an operator to look at.

        ``raw`` is the event as ASCII-only JSON text (every character escaped), which any
        database accepts; the row is purged with the other failed rows and by /forget.
        """
        async with self._uow() as uow:
            await uow.inbox.add_failed(
                channel, external_id, chat_id, {"unreadable": raw}, reason, self._clock()
            )
            await uow.commit()
        logger.error("%s event %s set aside: %s", channel, loggable(external_id), reason)

    async def mark_unreadable(self, channel: str, external_id: str, reason: str) -> None:
        """Mark a stored event that no flow can read as failed; its raw copy stays for now."""
        self._taken.discard((channel, external_id))
        async with self._uow() as uow:
            stored = await uow.inbox.status_of(channel, external_id)
            if stored is not None and stored[1] == InboxStatus.PENDING:
                await uow.inbox.mark_failed(stored[0], self._clock(), reason)
                await uow.commit()
        logger.error("%s event %s cannot be read: %s", channel, loggable(external_id), reason)

    async def still_pending(self, channel: str, external_ids: list[str]) -> set[str]:
        """Of these events, the ones stored and not yet handled."""
        async with self._uow.read() as uow:
            return await uow.inbox.pending_among(channel, external_ids)

    async def pending_payloads(self, channel: str) -> list[tuple[str, dict[str, Any]]]:
        """Return (external id, payload) of a channel's unhandled events, oldest first."""
        async with self._uow.read() as uow:
            rows = await uow.inbox.pending(channel)
            pending = [(row.external_id, row.payload or {}) for row in rows]
        self._taken.update((channel, external_id) for external_id, _ in pending)
        return pending

    def close(self) -> None:
        """Stop waiting for an unavailable database: what is pending is taken up at next start."""
        self._closing.set()
        self.delivery.close()

    async def handle(self, channel: str, external_id: str, event: InboundEvent | None) -> None:
        """Apply one stored event exactly once, then deliver what it caused.

        ``event`` is None for platform events that carry nothing for a flow; they are only
        marked done.
        """
        try:
            await self._handle(channel, external_id, event)
        finally:
            self._taken.discard((channel, external_id))

    async def _handle(self, channel: str, external_id: str, event: InboundEvent | None) -> None:
        started = time.perf_counter()
        others: set[ChatAddress] = set()
        turn: ReplyTurn | None = None
        attempt = 0
        catch_ups = 0
        outcome = "applied"
        while True:
            if self._closing.is_set() and self._database_away:
                return  # still pending: the next start applies it, in order
            try:
                applied, others, turn = await self._apply(channel, external_id, event)
            except _Behind as behind:
                # Still in this chat's turn: its earlier events first, then this one again.
                if catch_ups:
                    # An earlier event stayed pending after its turn (its failure could not be
                    # recorded either): try again later, not in a tight loop.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), retry_delay(catch_ups))
                catch_ups += 1
                for earlier_id, payload in behind.earlier:
                    await self._handle_stored(channel, earlier_id, payload)
                if self._closing.is_set():
                    return  # pending: the next start (or another process) applies it, in order
                continue
            except Exception as exc:
                if is_transient(exc):
                    attempt += 1
                    self._database_away = True
                    self.health.fault(PART, f"database unavailable ({type(exc).__name__})")
                    # The event stays pending and this chat's later events wait behind it, so
                    # order holds; nothing is answered "failed" for a fault that will pass. A
                    # shutdown ends the wait at once.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), retry_delay(attempt))
                    continue
                # The type and where, not the message: it may quote what the citizen wrote.
                logger.error(
                    "handling %s event %s failed: %s\n%s",
                    channel,
                    loggable(external_id),
                    type(exc).__name__,
                    "".join(traceback.format_tb(exc.__traceback__)),
                )
                applied = await self._record_failure_safely(channel, external_id, event, exc)
                outcome = "failed"
            break
        try:
            self._database_away = False
            if attempt:
                self.health.clear(PART)
            if event is None:
                outcome = "ignored"  # a platform event no flow reads: only marked done
            elif not applied and outcome == "applied":
                outcome = "repeated"  # applied before: a redelivery, or recovery racing one
            self.metrics.updates.labels(channel, outcome).inc()
            # The event's own chat is delivered in its turn, so its replies come before the
            # replies to the chat's next event. Other chats (the moderators' card) are delivered
            # beside it: a flood wait there must not hold up this chat's next event.
            for address in others:
                self._deliver_beside(address)
            if applied and event is not None:
                await self._deliver(ChatAddress(channel, event.chat_id), turn)
                self.metrics.reply_seconds.labels(channel).observe(time.perf_counter() - started)
        finally:
            if turn is not None:
                await turn.release()

    async def _deliver(self, address: ChatAddress, turn: ReplyTurn | None = None) -> None:
        try:
            await self.delivery.deliver_chat(address.channel, address.chat_id, turn=turn)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Queued and committed: the redelivery job sends it once the database is back.
            self.health.fault(DELIVERY, f"database unavailable ({type(exc).__name__})")
        else:
            self.health.clear(DELIVERY)

    def _deliver_beside(self, address: ChatAddress) -> None:
        """Deliver a chat's queued messages in a task of its own, outside any chat's turn.

        Many events asking for one chat while its delivery runs (or waits out flood control)
        make one more delivery after it, not one each: the next one reads all that is queued.
        """
        self._wanted_beside.add(address)
        running = self._delivering_beside.get(address)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._deliver_while_wanted(address))
        self._delivering_beside[address] = task

        def forget(finished: asyncio.Task[None]) -> None:
            if self._delivering_beside.get(address) is finished:
                del self._delivering_beside[address]

        task.add_done_callback(forget)

    async def _deliver_while_wanted(self, address: ChatAddress) -> None:
        while address in self._wanted_beside:
            self._wanted_beside.discard(address)
            try:
                await self._deliver(address)
            except Exception as exc:
                # Still queued: the redelivery job tries again. The type and where only.
                logger.error(
                    "delivering to a %s chat failed: %s\n%s",
                    address.channel,
                    type(exc).__name__,
                    "".join(traceback.format_tb(exc.__traceback__)),
                )

    async def finish_deliveries(self, grace: float = BESIDE_GRACE_SECONDS) -> None:
        """At shutdown: let deliveries to other chats finish, those still running after
        ``grace`` seconds stopped (their messages stay queued; a message on the wire at that
        moment may go out again at the next start, as after a kill)."""
        running = [task for task in self._delivering_beside.values() if not task.done()]
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _handle_stored(self, channel: str, external_id: str, payload: dict[str, Any]) -> None:
        """Apply an event read back from the inbox, as if its channel had just received it."""
        try:
            event = await self._readers[channel](payload)
        except Exception as error:
            await self.mark_unreadable(channel, external_id, type(error).__name__)
            return
        await self.handle(channel, external_id, event)

    async def finish_stale(self, older_than: timedelta) -> int:
        """Apply events pending for longer than a live process takes; return how many were read.

        A process killed between storing an event and applying it leaves it pending; with
        several processes nobody restarts in its place, so every process looks for such events
        now and then and applies them in their chat's turn. An event another process is still
        applying waits for that one's commit (the chat's turn) and is then found done.
        """
        if not self._readers:
            return 0
        async with self._uow.read() as uow:
            rows = await uow.inbox.stale_pending(self._clock() - older_than, STALE_BATCH)
            stale = [
                (row.channel, row.chat_id, row.external_id, row.payload or {})
                for row in rows
                if row.channel in self._readers
                and (row.channel, row.external_id) not in self._taken
            ]
        by_chat: dict[tuple[str, str | None], list[tuple[str, dict[str, Any]]]] = {}
        for channel, chat_id, external_id, payload in stale:
            by_chat.setdefault((channel, chat_id), []).append((external_id, payload))
        limit = asyncio.Semaphore(STALE_CONCURRENCY)

        async def finish(channel: str, chat_id: str | None, events: list[Any]) -> None:
            async with limit:
                for external_id, payload in events:
                    if chat_id is None:
                        await self._handle_stored(channel, external_id, payload)
                        continue
                    async with self.in_order(channel, chat_id):
                        await self._handle_stored(channel, external_id, payload)

        await asyncio.gather(*(finish(*chat, events) for chat, events in by_chat.items()))
        if stale:
            logger.info("finished %d events left pending", len(stale))
        return len(stale)

    def texts(self, language: str | None) -> BoundTexts:
        """The texts of a language (None: the default language)."""
        return self._catalogs.texts(language or self._catalogs.default_language)

    async def _apply(
        self, channel: str, external_id: str, event: InboundEvent | None
    ) -> tuple[bool, set[ChatAddress], ReplyTurn | None]:
        """Apply an event exactly once; return whether it was applied now, the other chats it
        queued messages for, and, if it was free, its own chat's delivery, held, with what is
        pending there read in the same unit of work (a unit less for the delivery)."""
        turn = None if event is None else self.delivery.reply_turn(channel, event.chat_id)
        try:
            applied, others = await self._apply_unit(channel, external_id, event, turn)
        except BaseException:
            if turn is not None:
                await turn.release()
            raise
        if turn is not None and turn.pending is None:
            await turn.release()
            turn = None
        return applied, others, turn

    async def _apply_unit(
        self, channel: str, external_id: str, event: InboundEvent | None, turn: ReplyTurn | None
    ) -> tuple[bool, set[ChatAddress]]:
        now = self._clock()
        # With several processes the chat's turn comes first: only then is it certain that no
        # other process is applying the event (each statement reads what is committed by then).
        across_processes = (
            self._several_processes and event is not None and channel in self._readers
        )
        async with self._uow() as uow:
            # The event is claimed (marked done, if still pending and, across processes, no
            # earlier event of its chat is) by one UPDATE once the participant's count is
            # known, instead of read first and marked at the end: a statement less on every
            # update. Leaving the unit without its commit, as any refusal or failure below
            # does, leaves the event pending.
            if across_processes:
                assert event is not None
                await uow.inbox.take_chat_turn(channel, event.chat_id)
            if event is None:
                if await uow.inbox.claim(channel, external_id, now, applied_sequence=0) is None:
                    return False, set()  # already applied
                await uow.commit()
                return False, set()
            # Seen now, reachable, and /stop holds only until they write again (the /stop flow
            # sets it anew). The language is remembered for messages they did not ask for (a
            # moderator's decision).
            participant, first_contact = await uow.participants.arrive_or_add(
                channel, event.chat_id, now
            )
            texts = self._texts_for(participant.language, event)
            if participant.state.get(LAST_LANGUAGE) != texts.language:
                participant.state = {**participant.state, LAST_LANGUAGE: texts.language}
            event_id = await uow.inbox.claim(
                channel,
                external_id,
                now,
                applied_sequence=participant.events_applied,
                in_turn_of=event.chat_id if across_processes else None,
            )
            if event_id is None:
                # The participant's count above goes with the unit, uncommitted.
                if across_processes:
                    in_turn = await uow.inbox.status_in_turn(channel, external_id, event.chat_id)
                    if in_turn is not None and in_turn[1] == InboxStatus.PENDING and in_turn[2]:
                        # Still in this chat's turn: its earlier events first.
                        earlier = await uow.inbox.pending_before(channel, event.chat_id, in_turn[0])
                        raise _Behind(earlier)
                # Already applied (a redelivery, or recovery racing a live event).
                return False, set()
            context = FlowContext(
                event=event,
                participant=participant,
                uow=uow,
                t=texts,
                now=now,
                organisation=self._organisation,
                zone=self._zone,
                detect_language=self._detect_language,
                screener=self._screener,
                moderation=self.moderation,
                texts_in=self.texts,
                staff_chat=self.staff_chat,
                pseudonym_key=self._pseudonym_key,
                whatsapp_enabled=self._whatsapp_enabled,
                first_contact=first_contact,
            )
            outcome = await route(context)
            here = ChatAddress(channel, event.chat_id)
            addressed = [(here, message) for message in outcome.messages] + outcome.elsewhere
            queued = await uow.outbox.add_many(
                [
                    (address.channel, address.chat_id, message.to_payload())
                    for address, message in addressed
                ],
                now,
                inbox_event_id=event_id,
            )
            for (_, message), message_id in zip(addressed, queued, strict=True):
                if isinstance(message, Reply) and message.on_queued is not None:
                    await message.on_queued(message_id)
            if outcome.erased:
                await uow.inbox.unlink(event_id, channel)
            # Taken last, so other deliveries to the chat wait no longer than they must.
            if turn is not None and await turn.take_if_free():
                turn.pending = await uow.outbox.pending_for_chat(channel, event.chat_id, Lane.REPLY)
            await uow.commit()
        return True, {address for address, _ in outcome.elsewhere} - {here}

    def _texts_for(self, stored_language: str | None, event: InboundEvent) -> BoundTexts:
        """The texts in the event's language: stored choice, platform, the text's, default."""
        language = resolve_language(
            stored=stored_language,
            platform_hint=event.language_hint,
            text=event.text if not event.is_command else "",
            default=self._catalogs.default_language,
            detect=self._detect_language,
        )
        return self._catalogs.texts(language)

    async def _record_failure_safely(
        self, channel: str, external_id: str, event: InboundEvent | None, exc: Exception
    ) -> bool:
        attempt = 0
        while True:
            try:
                return await self._record_failure(channel, external_id, event, exc)
            except Exception as second:
                if is_transient(second) and not self._closing.is_set():
                    # Wait, as for applying: the chat's later events must not overtake this one.
                    attempt += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), retry_delay(attempt))
                    continue
                # The event stays pending and is tried again at the next start.
                logger.error(
                    "recording the failure of %s event %s failed too: %s",
                    channel,
                    loggable(external_id),
                    type(second).__name__,
                )
                return False

    async def _record_failure(
        self, channel: str, external_id: str, event: InboundEvent | None, exc: Exception
    ) -> bool:
        """Keep the event (marked failed, raw copy intact) and apologise to the participant."""
        now = self._clock()
        async with self._uow() as uow:
            stored = await uow.inbox.status_of(channel, external_id)
            if stored is None:
                return False
            await uow.inbox.mark_failed(stored[0], now, type(exc).__name__)
            if event is not None:
                participant = await uow.participants.get(channel, event.chat_id)
                texts = self._texts_for(participant.language if participant else None, event)
                apology = Reply(texts("error.generic"))
                await uow.outbox.add(
                    channel, event.chat_id, apology.to_payload(), now, inbox_event_id=stored[0]
                )
            await uow.commit()
        return True
