"""Drive the bot as a citizen on Messenger would: open an m.me link, write, tap, read replies."""

from __future__ import annotations

from typing import Any

from bot.app import BorgerDialog
from bot.channels.messenger.channel import _event_id
from bot.channels.meta.text import cut
from tests.fake_messenger import MAX_TITLE, FakeMessenger, MsMessage
from tests.wacitizens import WaCitizen


class MsCitizen(WaCitizen):
    """One citizen writing to the page (their page-scoped id in place of a phone number)."""

    channel = "messenger"
    fake: FakeMessenger  # type: ignore[assignment]

    def __init__(self, app: BorgerDialog, fake: FakeMessenger, psid: str) -> None:
        super().__init__(app, fake, psid)  # type: ignore[arg-type]
        self.psid = psid

    def messages(self) -> list[MsMessage]:  # type: ignore[override]
        return self.fake.to(self.psid)

    def last(self) -> MsMessage:  # type: ignore[override]
        return self.messages()[-1]

    async def open_link(self, slug: str, *, new: bool = True) -> list[MsMessage]:
        """Open m.me/<page>?ref=<slug>; return what the bot sent in answer."""
        before = len(self.messages())
        item: dict[str, Any] = self.fake.open_link(self.psid, slug, new=new)
        await self.settled(_event_id(item))
        return self.messages()[before:]

    async def open_consultation(self, slug: str) -> list[MsMessage]:  # type: ignore[override]
        """Open m.me/<page>?ref=<slug> in a new conversation."""
        return await self.open_link(slug)

    def choice(self, label: str) -> tuple[MsMessage, dict[str, str]]:  # type: ignore[override]
        """Find a quick reply or button by the choice's full label, newest message first."""
        shown = cut(label, MAX_TITLE)
        for message in reversed(self.messages()):
            for choice in message.choices:
                if choice["title"] == shown:
                    return message, choice
        every = [c["title"] for m in self.messages() for c in m.choices]
        raise AssertionError(f"no choice {label!r}; shown: {every}")
