"""Drive the web chat as a browser tab would: the page sets the cookie, then a WebSocket."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp

from tests.conftest import eventually

_ids = itertools.count(1)


class WebTab:
    """One browser tab of a web-chat participant."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.messages: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    async def open(self, origin: str | None = None, headers: dict[str, str] | None = None) -> None:
        headers = {"Origin": origin or self.base_url, **(headers or {})}
        self.socket = await self.session.ws_connect(f"{self.base_url}/chat/ws", headers=headers)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.socket is not None
        async for frame in self.socket:
            event = frame.json()
            self.events.append(event)
            if event["type"] == "history":
                self.messages = {m["id"]: m for m in event["messages"]}
            elif event["type"] == "message":
                self.messages[event["message"]["id"]] = event["message"]

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def bot_texts(self) -> list[str]:
        return [m["text"] for _, m in sorted(self.messages.items()) if m["author"] == "bot"]

    async def send(self, body: dict[str, Any], client_id: str | None = None) -> str:
        assert self.socket is not None
        client_id = client_id or f"c{next(_ids)}"
        await self.socket.send_json({**body, "id": client_id})
        return client_id

    async def write(self, text: str, new: int = 1) -> list[str]:
        """Send text; wait for that many new bot messages; return the bot's texts so far."""
        before = len(self.bot_texts())
        await self.send({"type": "text", "text": text})
        await eventually(
            lambda: len(self.bot_texts()) >= before + new,
            what=f"{new} bot message(s) after {text!r}",
        )
        return self.bot_texts()

    async def tap(self, label: str, new: int = 1) -> list[str]:
        """Press a button shown in the newest message that has it."""
        found = [
            (message_id, button)
            for message_id, message in sorted(self.messages.items(), reverse=True)
            for row in message["buttons"]
            for button in row
            if button["label"] == label
        ]
        if not found:
            raise AssertionError(f"no button {label!r}")
        message_id, button = found[0]
        before = len(self.bot_texts())
        await self.send(
            {"type": "button", "payload": button["payload"], "message": str(message_id)}
        )
        await eventually(
            lambda: len(self.bot_texts()) >= before + new,
            what=f"{new} bot message(s) after tapping {label!r}",
        )
        return self.bot_texts()


def web_session() -> aiohttp.ClientSession:
    """A client session that keeps cookies from 127.0.0.1 (aiohttp skips IP hosts by default)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def open_tab(
    base_url: str, session: aiohttp.ClientSession, headers: dict[str, str] | None = None
) -> WebTab:
    """Load the chat page (which sets the participant cookie), then connect."""
    async with session.get(f"{base_url}/chat", headers=headers) as response:
        assert response.status == 200
    tab = WebTab(base_url, session)
    await tab.open(headers=headers)
    await eventually(lambda: any(e["type"] == "history" for e in tab.events), what="the history")
    return tab
