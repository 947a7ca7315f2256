"""The web chat channel: a page, a WebSocket per tab, and delivery into a stored transcript.

Inbound, each message a tab sends carries a client id; it is stored in the inbox (unique per
participant and client id, so a resend after a reconnect is ignored) and only then acknowledged,
so a closed socket loses nothing the citizen sent. Messages of one participant are applied in
order, through the same dialogue core as Telegram. Outbound, the bot's messages are written to
the transcript (web_messages) and pushed to every open tab of that participant; a reconnecting
tab gets the transcript again.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from bot.channels.webchat.identity import COOKIE, CookieSigner
from bot.config import Settings
from bot.core import DialogueCore
from bot.i18n import Catalogs, supported_language
from bot.locks import KeyedLocks
from bot.outbox import RecipientGone
from handlers.events import InboundEvent, parse_command
from storage.models import WebMessage
from storage.uow import UnitOfWorkFactory

CHANNEL = "web"
HISTORY_LIMIT = 200
MAX_TEXT = 2000
# A participant may send this many messages (taps included) at once, then two per second:
# more than a quick human taps and types, far less than a script.
RATE_BURST = 30.0
RATE_PER_SECOND = 2.0
COOKIE_MAX_AGE = 365 * 24 * 3600
PAGE_TEXT_KEYS = (
    "web.title",
    "web.input_label",
    "web.send",
    "web.menu_label",
    "web.connecting",
    "web.offline",
    "web.rate_limited",
    "web.too_long",
    "web.you",
    "web.bot",
    "web.download",
    "web.sending",
    "web.cmd_start",
    "web.cmd_mydata",
    "web.cmd_forget",
    "web.cmd_language",
    "web.cmd_privacy",
)
STATIC_FILES = {"chat.js": "application/javascript", "chat.css": "text/css"}

logger = logging.getLogger(__name__)


def _message_json(message: WebMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": message.id,
        "author": message.author,
        "text": message.text,
        "buttons": message.buttons,
        "expects_text": message.expects_text,
    }
    if message.attachment:
        body["attachment"] = message.attachment
    return body


class WebChatChannel:
    """Everything web-chat specific, built by the composition root."""

    channel = CHANNEL

    def __init__(
        self,
        settings: Settings,
        core: DialogueCore,
        uow: UnitOfWorkFactory,
        catalogs: Catalogs,
        signer: CookieSigner,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._core = core
        self._uow = uow
        self._catalogs = catalogs
        self._signer = signer
        self._clock = clock
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._locks = KeyedLocks()
        self._tasks: set[asyncio.Task[None]] = set()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.state = "starting"

    # -- lifecycle ---------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Serve the page, its files, the embed snippet and the WebSocket."""
        app.router.add_get("/chat", self.page)
        app.router.add_get("/chat/embed.js", self.embed)
        app.router.add_get("/chat/static/{name}", self.static)
        app.router.add_get("/chat/ws", self.socket)

    async def start(self) -> None:
        """Deliver what a crash left queued, then apply what it left unhandled."""
        self._core.delivery.register(self)
        await self._core.delivery.deliver_backlog(CHANNEL)
        for external_id, payload in await self._core.pending_payloads(CHANNEL):
            self._schedule(external_id, payload)
        self.state = "running"

    async def stop(self) -> None:
        """Finish the messages taken in, then close every socket."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for sockets in list(self._sockets.values()):
            for socket in list(sockets):
                await socket.close()
        self._core.delivery.unregister(CHANNEL)
        self.state = "stopped"

    # -- the page ----------------------------------------------------------------------------

    def _participant(self, request: web.Request) -> str | None:
        return self._signer.verify(request.cookies.get(COOKIE))

    def _page_language(self, request: web.Request, stored: str | None) -> str:
        wanted = request.query.get("lang")
        header = request.headers.get("Accept-Language", "")
        first = header.split(",")[0].split(";")[0].strip() if header else None
        return (
            supported_language(wanted)
            or supported_language(stored)
            or supported_language(first)
            or self._catalogs.default_language
        )

    async def page(self, request: web.Request) -> web.Response:
        """The chat page; sets the participant cookie on a first visit."""
        participant = self._participant(request)
        cookie = None
        if participant is None:
            cookie = self._signer.issue()
            participant = cookie.rsplit(".", 1)[0]
        async with self._uow() as uow:
            stored = await uow.participants.get(CHANNEL, f"w-{participant}")
            language = self._page_language(request, stored.language if stored else None)
        texts = {
            lang: {key: self._catalogs.texts(lang)(key) for key in PAGE_TEXT_KEYS}
            for lang in ("da", "en")
        }
        template = resources.files("bot.channels.webchat").joinpath("static/chat.html")
        page = template.read_text(encoding="utf-8")
        page = (
            page.replace("{{lang}}", language)
            .replace("{{title}}", html.escape(texts[language]["web.title"]))
            .replace("{{texts}}", html.escape(json.dumps(texts, ensure_ascii=False)))
            .replace("{{embedded}}", "true" if request.query.get("embed") else "false")
        )
        response = web.Response(text=page, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
            "frame-ancestors " + " ".join(sorted(self._settings.allowed_origins))
        )
        if cookie is not None:
            secure = self._settings.public_base_url.startswith("https://")
            # Inside a municipality's page (an iframe from another site) a Lax cookie is never
            # sent; there it must be SameSite=None, which browsers allow only on HTTPS, and is
            # kept per embedding site (partitioned).
            embedded = bool(request.query.get("embed")) and secure
            response.set_cookie(
                COOKIE,
                cookie,
                max_age=COOKIE_MAX_AGE,
                httponly=True,
                samesite="None" if embedded else "Lax",
                secure=secure,
                path="/",
                partitioned=True if embedded else None,
            )
        return response

    async def static(self, request: web.Request) -> web.Response:
        """The page's script and style sheet."""
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        content = (
            resources.files("bot.channels.webchat")
            .joinpath(f"static/{name}")
            .read_text(encoding="utf-8")
        )
        return web.Response(text=content, content_type=STATIC_FILES[name])

    async def embed(self, request: web.Request) -> web.Response:
        """The snippet a municipality's page includes: it puts the chat in an iframe.

        Use: <div id="borgerdialog"></div><script src="…/chat/embed.js" data-c="slug"></script>
        """
        base = self._settings.public_base_url
        script = (
            "(function(){var s=document.currentScript,c=s.getAttribute('data-c'),"
            "t=document.getElementById(s.getAttribute('data-target')||'borgerdialog');"
            "if(!t)return;var f=document.createElement('iframe');"
            f"f.src='{base}/chat?embed=1'+(c?'&c='+encodeURIComponent(c):'');"
            "f.title=s.getAttribute('data-title')||'Borgerdialog';"
            "f.style.cssText='width:100%;min-height:560px;border:1px solid #767676;"
            "border-radius:8px';t.appendChild(f);})();"
        )
        return web.Response(text=script, content_type="application/javascript")

    # -- the socket --------------------------------------------------------------------------

    async def socket(self, request: web.Request) -> web.StreamResponse:
        """One tab's connection: history first, then messages both ways."""
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") not in self._settings.allowed_origins:
            raise web.HTTPForbidden(text="origin not allowed")
        participant = self._participant(request)
        if participant is None:
            raise web.HTTPForbidden(text="open /chat first")
        chat_id = f"w-{participant}"
        # The page says which language the browser prefers; the handshake's own header is a
        # fallback, since some browsers send none (or their interface language) with it.
        language_hint = (
            request.query.get("lang", "")[:35]
            or request.headers.get("Accept-Language", "").split(",")[0]
            or None
        )
        socket = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
        await socket.prepare(request)
        self._sockets.setdefault(chat_id, set()).add(socket)
        try:
            async with self._uow() as uow:
                history = await uow.web_messages.history(chat_id, HISTORY_LIMIT)
                stored = await uow.participants.get(CHANNEL, chat_id)
            await socket.send_json(
                {
                    "type": "history",
                    "messages": [_message_json(m) for m in history],
                    "language": stored.language if stored and stored.language else None,
                }
            )
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    continue
                await self._receive(socket, chat_id, language_hint, frame.data)
        finally:
            self._sockets.get(chat_id, set()).discard(socket)
            if not self._sockets.get(chat_id):
                self._sockets.pop(chat_id, None)
        return socket

    def _allowed(self, chat_id: str) -> bool:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(chat_id, (RATE_BURST, now))
        tokens = min(RATE_BURST, tokens + (now - stamp) * RATE_PER_SECOND)
        if tokens < 1:
            self._buckets[chat_id] = (tokens, now)
            return False
        self._buckets[chat_id] = (tokens - 1, now)
        return True

    async def _refuse(
        self, socket: web.WebSocketResponse, client_id: str, key: str, language: str
    ) -> None:
        text = self._catalogs.texts(language)(key)
        await socket.send_json({"type": "error", "id": client_id, "text": text})

    async def _receive(
        self, socket: web.WebSocketResponse, chat_id: str, language_hint: str | None, data: str
    ) -> None:
        try:
            message = json.loads(data)
            client_id = str(message["id"])[:40]
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            await socket.send_json({"type": "error", "text": "bad message"})
            return
        language = supported_language(language_hint) or self._catalogs.default_language
        text = str(message.get("text", "")).strip()
        if kind == "text" and (not text or len(text) > MAX_TEXT):
            await self._refuse(
                socket, client_id, "web.too_long" if text else "answer.text_empty", language
            )
            return
        if not self._allowed(chat_id):
            await self._refuse(socket, client_id, "web.rate_limited", language)
            return
        payload = {
            "type": kind,
            "text": text,
            "payload": str(message.get("payload", ""))[:64],
            "message": str(message.get("message", "")),
            "language": language_hint,
            "chat": chat_id,
        }
        external_id = f"{chat_id}:{client_id}"
        now = self._clock()
        async with self._uow() as uow:
            new = await uow.inbox.add_new(CHANNEL, [(external_id, chat_id, payload)], now)
            shown = None
            if new and kind == "text":
                shown = await uow.web_messages.add(chat_id, "citizen", text, now)
            await uow.commit()
        await socket.send_json({"type": "received", "id": client_id})
        if shown is not None:
            await self._push(chat_id, {"type": "message", "message": _message_json(shown)})
        if new:
            self._schedule(external_id, payload)

    def _schedule(self, external_id: str, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._process(external_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, external_id: str, payload: dict[str, Any]) -> None:
        chat_id = str(payload["chat"])
        async with self._locks.hold(chat_id):
            await self._core.handle(CHANNEL, external_id, self._event(payload))

    @staticmethod
    def _event(payload: dict[str, Any]) -> InboundEvent:
        chat_id = str(payload["chat"])
        hint = payload.get("language")
        if payload["type"] == "button":
            return InboundEvent(
                channel=CHANNEL,
                chat_id=chat_id,
                button=payload["payload"],
                button_message_ref=payload.get("message") or None,
                button_ack_ref=payload.get("message") or "web",
                language_hint=hint,
            )
        text = payload["text"]
        command = parse_command(text)
        return InboundEvent(
            channel=CHANNEL,
            chat_id=chat_id,
            text=text,
            command=command.name if command else None,
            argument=command.argument if command else "",
            language_hint=hint,
        )

    async def _push(self, chat_id: str, body: dict[str, Any]) -> None:
        for socket in list(self._sockets.get(chat_id, ())):
            if not socket.closed:
                await socket.send_json(body)

    # -- outbound ----------------------------------------------------------------------------

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Write a bot message into the transcript and show it in every open tab."""
        now = self._clock()
        kind = payload["type"]
        if kind == "ack":
            if payload.get("text"):
                await self._push(chat_id, {"type": "notice", "text": payload["text"]})
            return None
        async with self._uow() as uow:
            participant = await uow.participants.get(CHANNEL, chat_id)
            if participant is None and kind != "message":
                raise RecipientGone("the participant is gone")
            message: WebMessage | None = None
            if kind == "document":
                content = payload["content"]
                base64.b64decode(content, validate=True)
                message = await uow.web_messages.add(
                    chat_id,
                    "bot",
                    payload.get("caption") or payload["filename"],
                    now,
                    attachment={"filename": payload["filename"], "content": content},
                )
            else:
                edit_ref = payload.get("edit_ref")
                if edit_ref is not None and str(edit_ref).isdigit():
                    message = await uow.web_messages.get(chat_id, int(edit_ref))
                if message is not None:
                    message.text = payload["text"]
                    message.buttons = payload.get("buttons") or []
                    message.expects_text = bool(payload.get("expects_text"))
                    message.updated_at = now
                else:
                    message = await uow.web_messages.add(
                        chat_id,
                        "bot",
                        payload["text"],
                        now,
                        buttons=payload.get("buttons"),
                        expects_text=bool(payload.get("expects_text")),
                    )
            language = participant.language if participant else None
            await uow.commit()
        await self._push(
            chat_id, {"type": "message", "message": _message_json(message), "language": language}
        )
        return str(message.id)
