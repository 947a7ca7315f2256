"""Drive the bot as a citizen on WhatsApp would: write, tap buttons or list rows, read replies."""

from __future__ import annotations

from bot.app import BorgerDialog
from bot.channels.whatsapp.shaping import MAX_BUTTON_TITLE, MAX_ROW_TITLE, cut
from storage.models import InboxStatus, Lane
from tests.conftest import eventually
from tests.fake_graph import FakeGraph, WaMessage

CHANNEL = "whatsapp"


class WaCitizen:
    """One citizen writing to the business number."""

    channel = CHANNEL

    def __init__(self, app: BorgerDialog, fake: FakeGraph, wa_id: str) -> None:
        self.app = app
        self.fake = fake
        self.wa_id = wa_id

    def messages(self) -> list[WaMessage]:
        return self.fake.to(self.wa_id)

    def texts(self) -> list[str]:
        return [m.text for m in self.messages()]

    def last(self) -> WaMessage:
        return self.messages()[-1]

    async def settled(self, wamid: str) -> None:
        """Wait until the message is applied and everything it caused has been sent."""
        assert self.app.uow is not None
        uow = self.app.uow

        async def done() -> bool:
            async with uow.read() as unit:
                stored = await unit.inbox.status_of(self.channel, wamid)
                if stored is None or stored[1] == InboxStatus.PENDING:
                    return False
                waiting = await unit.outbox.pending_for_chat(self.channel, self.wa_id, Lane.REPLY)
            return not waiting

        await eventually(done, what=f"message {wamid} applied and answered")

    async def write(self, text: str) -> list[WaMessage]:
        """Send text; return what the bot sent in answer."""
        before = len(self.messages())
        await self.settled(self.fake.send_text(self.wa_id, text))
        return self.messages()[before:]

    async def open_consultation(self, slug: str) -> list[WaMessage]:
        """Open wa.me/<number>?text=<slug>: the citizen sends the slug it types in."""
        return await self.write(slug)

    async def send_media(self, kind: str = "image") -> list[WaMessage]:
        before = len(self.messages())
        await self.settled(self.fake.send_media(self.wa_id, kind))
        return self.messages()[before:]

    def choice(self, label: str) -> tuple[WaMessage, dict[str, str]]:
        """Find a reply button or list row by the choice's full label, newest message first."""
        shown = (cut(label, MAX_BUTTON_TITLE), cut(label, MAX_ROW_TITLE))
        for message in reversed(self.messages()):
            for choice in message.choices:
                if choice["title"] in shown:
                    return message, choice
        every = [c["title"] for m in self.messages() for c in m.choices]
        raise AssertionError(f"no choice {label!r}; shown: {every}")

    async def tap(self, label: str) -> list[WaMessage]:
        """Tap a button or pick a list row; return what the bot sent in answer."""
        message, choice = self.choice(label)
        before = len(self.messages())
        await self.settled(self.fake.tap(self.wa_id, message, choice))
        return self.messages()[before:]
