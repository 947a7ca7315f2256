"""Take in a webhook delivery's events: stored in the inbox first, then applied in chat order.

Meta delivers a webhook again until it is answered 200, for days. So every delivery counts as a
possible redelivery: an event stored before (its answer lost) and still pending is queued again;
one already applied is left alone. A delivery the database refuses for what it holds is taken
event by event, and an event refused alone is set aside for an operator, so it cannot block the
rest; a database that is away answers 503 and Meta delivers it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol, cast

from aiohttp import web

from bot.channels.meta.webhook import SignedWebhook
from bot.dialogue.channel import Channel
from bot.dialogue.core import DialogueCore
from handlers.events import InboundEvent
from storage.database import is_transient

logger = logging.getLogger(__name__)

# (platform's id of the event, chat id, raw payload stored in the inbox)
Event = tuple[str, str, dict[str, Any]]


class WebhookIntake:
    """One channel's events from its webhook into the dialogue core."""

    def __init__(
        self,
        core: DialogueCore,
        channel: str,
        health_part: str,
        read_event: Callable[[dict[str, Any]], InboundEvent | None],
    ) -> None:
        self._core = core
        self._channel = channel
        # The health board's name for taking in deliveries.
        self._health_part = health_part
        self._read_event = read_event
        self._tasks: set[asyncio.Task[None]] = set()
        self._taking = False
        self._stopping = False

    @property
    def ready(self) -> bool:
        """Whether the webhook takes deliveries now (not before a crash's leftovers are queued)."""
        return self._taking and not self._stopping

    async def open(self, sender: Channel) -> None:
        """Deliver what a crash left queued, queue what it left unhandled, then take deliveries."""
        core = self._core
        core.delivery.register(sender)
        await core.delivery.deliver_backlog(self._channel)
        # Apply what another process stored, and what a crash left unhandled.
        core.register_reader(self._channel, self._read_stored)
        for external_id, payload in await core.pending_payloads(self._channel):
            self._schedule(external_id, payload)
        # Only now: a new event must queue behind its chat's recovered ones.
        self._taking = True

    async def close(self) -> None:
        """Stop taking deliveries, finish applying the events taken in, stop delivering."""
        self._stopping = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._core.delivery.unregister(self._channel)

    async def take(self, events: list[Event]) -> bool:
        """Store events and queue the new (or still pending) ones; False if nothing was stored."""
        if not events:
            return True
        core, channel = self._core, self._channel
        try:
            new = await core.accept(channel, events)
        except Exception as error:
            if not is_transient(error):
                new = await self._accept_one_by_one(events)
            else:
                core.health.fault(
                    self._health_part, f"cannot store messages ({type(error).__name__})"
                )
                return False  # 503: Meta delivers it again
        core.health.clear(self._health_part)
        ids = [external for external, _, _ in events]
        again = await core.still_pending(channel, [i for i in ids if i not in new])
        for external_id, _, payload in events:
            if external_id in new or external_id in again:
                self._schedule(external_id, payload)
        return True

    async def _accept_one_by_one(self, events: list[Event]) -> set[str]:
        new: set[str] = set()
        for external_id, chat_id, payload in events:
            try:
                new |= await self._core.accept(self._channel, [(external_id, chat_id, payload)])
            except Exception as error:
                if is_transient(error):
                    raise  # 503: Meta delivers the whole delivery again
                raw = json.dumps(payload, ensure_ascii=True, default=str)
                await self._core.set_aside(
                    self._channel, external_id, chat_id, raw, type(error).__name__
                )
        return new

    def _schedule(self, external_id: str, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._process(external_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, external_id: str, payload: dict[str, Any]) -> None:
        try:
            event = self._read_event(payload)
        except Exception as error:
            await self._core.mark_unreadable(self._channel, external_id, type(error).__name__)
            return
        await self._core.submit(self._channel, external_id, event)

    async def _read_stored(self, payload: dict[str, Any]) -> InboundEvent | None:
        """An event another process stored, read as if it had just arrived here."""
        return self._read_event(payload)


class _Connected(Protocol):
    """A platform client with connections to open and close (the Graph or Send API)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SignedWebhookChannel(ABC):
    """What a Meta channel does around its webhook: serve it, and open and close its intake.

    A channel subclasses it, calls this constructor, and implements ``take_in`` (and, as every
    channel, ``channel``, ``limits`` and ``deliver``).
    """

    def __init__(
        self,
        *,
        platform: str,
        path: str,
        intake: WebhookIntake,
        api: _Connected,
        app_secret: str,
        verify_token: str,
    ) -> None:
        self._platform = platform
        self._path = path
        self._intake = intake
        self._api = api
        self._app_secret = app_secret
        self._verify_token = verify_token
        self.state = "starting"

    def add_routes(self, app: web.Application) -> None:
        """Serve the webhook (before the web server starts: routes freeze)."""
        SignedWebhook(
            self._path,
            self._platform,
            self._app_secret,
            self._verify_token,
            self.take_in,
            lambda: self._intake.ready,
        ).add_routes(app)

    async def start(self) -> None:
        """Deliver what a crash left queued, queue what it left unhandled, then take deliveries."""
        await self._api.start()
        await self._intake.open(cast(Channel, self))
        self.state = "running"
        logger.info("%s channel running (webhook at %s)", self._platform, self._path)

    async def stop(self) -> None:
        """Stop taking deliveries, finish the events taken in, close connections."""
        await self._intake.close()
        await self._api.stop()
        self.state = "stopped"

    @abstractmethod
    async def take_in(self, body: bytes) -> bool:
        """Store a delivery's events (and note what else it says); True once stored."""
