"""The flow tier: the real dialogue core and flows on a real SQLite database, without HTTP.

A flow test talks to the core as a channel would (``accept`` then ``submit``) and reads what
the core delivered through a recording channel that shows messages as a phone would: new ones
appended, edited ones changed in place, acknowledgements beside them. Everything below the
channel is the application's own, built by the composition root (``bot.app.build_core``), so
a flow test proves what the flows do in milliseconds; what the platform in between does is
left to the end-to-end tests (one per journey, through the fake Bot API or the browser).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import build_core
from bot.config import Settings, load_settings
from bot.consultations.definition import parse_definition
from bot.consultations.importer import import_definition
from bot.dialogue.channel import ChannelLimits
from bot.dialogue.core import DialogueCore
from bot.dialogue.health import HealthBoard
from bot.dialogue.i18n import Catalogs
from bot.dialogue.outbox import OutboxDelivery
from handlers.events import (
    ACKNOWLEDGEMENT,
    MAX_BUTTON_LABEL,
    MAX_BUTTON_PAYLOAD_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_IMAGE_BYTES,
    MAX_TEXT_LENGTH,
    InboundEvent,
    parse_command,
)
from storage.database import create_engine, create_session_factory
from storage.definitions import DefinitionCache
from storage.migrate import prepare_schema
from storage.uow import UnitOfWorkFactory

# The flows are told they talk to Telegram: what they do for a Telegram chat is what is tested.
CHANNEL = "telegram"
# The sizes the flows write for (Telegram's); the recording channel paces nothing.
LIMITS = ChannelLimits(
    MAX_TEXT_LENGTH, MAX_CAPTION_LENGTH, MAX_BUTTON_LABEL, MAX_BUTTON_PAYLOAD_BYTES, MAX_IMAGE_BYTES
)


@dataclass
class Shown:
    """A bot message as the citizen's screen shows it now."""

    ref: int
    text: str
    buttons: list[list[dict[str, str]]]
    edits: int = 0

    def labels(self) -> list[str]:
        return [button["label"] for row in self.buttons for button in row]


@dataclass
class RecordingChannel:
    """A channel keeping what the core delivers, per chat, as a phone would show it."""

    channel: str = CHANNEL
    limits: ChannelLimits = LIMITS
    screens: dict[str, list[Shown]] = field(default_factory=dict)
    # The text of each acknowledged button press (None: a silent acknowledgement).
    acknowledgements: dict[str, list[str | None]] = field(default_factory=dict)
    documents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _refs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        kind = payload["type"]
        if kind == ACKNOWLEDGEMENT:
            self.acknowledgements.setdefault(chat_id, []).append(payload.get("text"))
            return None
        if kind == "document":
            self.documents.setdefault(chat_id, []).append(payload)
            return str(next(self._refs))
        screen = self.screens.setdefault(chat_id, [])
        edit_ref = payload.get("edit_ref")
        if edit_ref is not None:
            for shown in screen:
                if str(shown.ref) == edit_ref:
                    shown.text, shown.buttons = payload["text"], payload["buttons"]
                    shown.edits += 1
                    return edit_ref
        shown = Shown(next(self._refs), payload["text"], payload["buttons"])
        screen.append(shown)
        return str(shown.ref)


class FlowBot:
    """The core, its database and the recording channel, for one test."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = create_engine(settings.database_url)
        self.uow = UnitOfWorkFactory(
            create_session_factory(self.engine),
            create_session_factory(self.engine, read_only=True),
            DefinitionCache(),
        )
        self.channel = RecordingChannel()
        delivery = OutboxDelivery(self.uow, clock)
        delivery.register(self.channel)
        self.core: DialogueCore = build_core(
            settings,
            self.uow,
            Catalogs(settings.default_language),
            delivery,
            clock,
            b"flow tests",
            HealthBoard(),
        )
        self._events = itertools.count(1)

    async def start(self) -> None:
        await prepare_schema(self.engine, self.settings.database_url)

    async def stop(self) -> None:
        await self.engine.dispose()

    async def import_consultation(self, source: str) -> None:
        async with self.uow() as unit:
            definition = parse_definition(source, self.settings.zone)
            await import_definition(unit, definition, self.clock())
            await unit.commit()

    async def receive(self, event: InboundEvent) -> None:
        """Take an event in as a channel does: stored first, then applied in the chat's turn."""
        external_id = str(next(self._events))
        await self.core.accept(CHANNEL, [(external_id, event.chat_id, {"event": external_id})])
        await self.core.submit(CHANNEL, external_id, event)

    def citizen(self, chat_id: int, language: str | None = "da") -> FlowCitizen:
        return FlowCitizen(self, str(chat_id), language)


class FlowCitizen:
    """One citizen in a private chat, driven like ``tests.citizens.Citizen``, without HTTP."""

    def __init__(self, bot: FlowBot, chat_id: str, language: str | None) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.language = language

    def messages(self) -> list[Shown]:
        return self.bot.channel.screens.get(self.chat_id, [])

    def texts(self) -> list[str]:
        return [message.text for message in self.messages()]

    def acknowledgements(self) -> list[str | None]:
        return self.bot.channel.acknowledgements.get(self.chat_id, [])

    async def write(self, text: str) -> list[Shown]:
        """Send text; return the bot messages it added."""
        before = len(self.messages())
        command = parse_command(text)
        await self.bot.receive(
            InboundEvent(
                channel=CHANNEL,
                chat_id=self.chat_id,
                text=text,
                command=command.name if command else None,
                argument=command.argument if command else "",
                language_hint=self.language,
                sender_id=self.chat_id,
            )
        )
        return self.messages()[before:]

    def button(self, label: str) -> tuple[Shown, str]:
        """Find a button by its visible label, newest message first."""
        for message in reversed(self.messages()):
            for row in message.buttons:
                for button in row:
                    if button["label"] == label and "payload" in button:
                        return message, button["payload"]
        shown = [label for message in self.messages() for label in message.labels()]
        raise AssertionError(f"no button {label!r}; buttons shown: {shown}")

    async def tap(self, label: str) -> list[Shown]:
        """Tap a visible button; return the bot messages it added."""
        message, payload = self.button(label)
        return await self.press(message.ref, payload)

    async def press(self, message_ref: int, payload: str) -> list[Shown]:
        """Send a button press, also one no message shows (an old or forged payload)."""
        before = len(self.messages())
        await self.bot.receive(
            InboundEvent(
                channel=CHANNEL,
                chat_id=self.chat_id,
                button=payload,
                button_message_ref=str(message_ref),
                button_ack_ref=f"ack-{message_ref}",
                language_hint=self.language,
                sender_id=self.chat_id,
            )
        )
        return self.messages()[before:]


async def flow_bot(tmp_path: Path, clock: Callable[[], datetime] | None = None) -> FlowBot:
    settings = load_settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}",
        data_dir=tmp_path,
    )
    bot = FlowBot(settings, clock or (lambda: datetime.now(UTC)))
    await bot.start()
    return bot


async def running_flow_bot(tmp_path: Path) -> AsyncIterator[FlowBot]:
    """For a fixture: a started flow bot, stopped after the test."""
    bot = await flow_bot(tmp_path)
    try:
        yield bot
    finally:
        await bot.stop()
