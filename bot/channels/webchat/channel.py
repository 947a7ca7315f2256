"""The web chat channel: a page, a WebSocket per tab, and delivery into a stored transcript.

Inbound, each message a tab sends carries a client id; it is stored in the inbox (unique per
participant and client id, so a resend after a reconnect is ignored) and only then acknowledged,
so a closed socket loses nothing the citizen sent. A frame the page would never send (broken
JSON, a lone surrogate, a made-up button) is refused with its client id and a reason in the
participant's language, so the page drops it from its resend queue; the socket stays open.
Messages of one participant are applied in order, through the same dialogue core as Telegram.
Outbound, the bot's messages are written to the transcript (web_messages) and pushed to every
open tab of that participant; a reconnecting tab gets the transcript again. On PostgreSQL, tabs
connected to other processes get every push too (``sharing.py``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bot.channels.webchat.identity import COOKIE, MAX_AGE_SECONDS, CookieSigner
from bot.channels.webchat.limits import OpenCounts, TokenBuckets, client_address
from bot.channels.webchat.sharing import Shared, Sharing
from bot.config import Settings
from bot.dialogue.channel import ChannelLimits
from bot.dialogue.core import DialogueCore
from bot.dialogue.i18n import Catalogs, supported_language
from bot.dialogue.outbox import RecipientGone
from handlers.events import (
    ACKNOWLEDGEMENT,
    MAX_BUTTON_PAYLOAD_BYTES,
    InboundEvent,
    UnreadableText,
    clean_text,
    parse_command,
    storable,
)
from handlers.payloads import (
    CardAction,
    CardButton,
    GoBack,
    IdeasAction,
    IdeasButton,
    Payload,
    SkipQuestion,
    TickOption,
    parse,
)
from handlers.questionnaire import pick
from storage.database import is_transient
from storage.models import Consultation, WebMessage
from storage.uow import UnitOfWork, UnitOfWorkFactory

CHANNEL = "web"
# The health board's name for taking in web-chat messages.
INTAKE = "web intake"
HISTORY_LIMIT = 200
MAX_TEXT = 2000
# The page never sends a bigger frame; a bigger one gets a polite refusal. Beyond the hard cap
# aiohttp closes the socket unread (1009), which only a script can provoke.
MAX_FRAME_BYTES = 16 * 1024
HARD_FRAME_BYTES = 64 * 1024
# A participant may send this many messages (taps included) at once, then two per second:
# more than a quick human taps and types, far less than a script.
RATE_BURST = 30.0
RATE_PER_SECOND = 2.0
# Cookies are free, so one address gets its own, larger bucket: room for a school class or an
# office behind one address, not for a script with a pile of cookies.
ADDRESS_BURST = 60.0
ADDRESS_PER_SECOND = 6.0
NEW_COOKIES_PER_MINUTE = 20.0
SOCKETS_PER_ADDRESS = 20
# At shutdown a socket gets this long to close politely (the browser's reply to our close frame);
# after that its connection is dropped, so one stalled tab cannot hold up the process's exit.
CLOSE_SECONDS = 5.0
SOCKETS_PER_PARTICIPANT = 8
PAGE_TEXT_KEYS = (
    "web.title",
    "web.input_label",
    "web.send",
    "web.menu_label",
    "web.connecting",
    "web.offline",
    "web.rate_limited",
    "web.too_long",
    "web.not_sent",
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
# The page makes ids with crypto.randomUUID (36 characters) or a shorter base-36 stand-in; the
# inbox key "w-<24-character participant>:<client id>" must fit its 64 characters.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
# A transcript message id as the page echoes it; 18 digits fit any database's big integer.
_MESSAGE_REF = re.compile(r"[0-9]{1,18}")
# A consultation's slug as a link carries it (the files allow 2-40; the flow says if unknown).
_SLUG = re.compile(r"[a-z0-9-]{1,64}")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")
# An unreadable client id is still echoed, when it is a string, so a (broken) page can drop it.
_ECHOED_ID_LENGTH = 200

logger = logging.getLogger(__name__)


class Refused(Exception):
    """A frame the channel will not take, with the text key that tells the participant why."""

    def __init__(self, key: str, client_id: str | None = None) -> None:
        super().__init__(key)
        self.key = key
        self.client_id = client_id


@dataclass(frozen=True)
class Inbound:
    """One well-formed message from a tab: typed text or a pressed button."""

    client_id: str
    kind: str
    text: str = ""
    payload: str = ""
    message_ref: str = ""


def read_frame(data: str) -> Inbound:
    """Read one text frame from a tab; raise Refused for anything the page would not send."""
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        # Deep nesting makes the parser recurse until Python stops it: unreadable, not a crash.
        raise Refused("web.unreadable") from None
    if not isinstance(message, dict):
        raise Refused("web.unreadable")
    raw_id = message.get("id")
    echo = raw_id if isinstance(raw_id, str) and len(raw_id) <= _ECHOED_ID_LENGTH else None
    if len(data.encode("utf-8")) > MAX_FRAME_BYTES:
        raise Refused("web.too_long", echo)
    if not isinstance(raw_id, str) or not _CLIENT_ID.fullmatch(raw_id):
        raise Refused("web.unreadable", echo)
    kind = message.get("type")
    if kind == "text":
        text = message.get("text")
        if not isinstance(text, str):
            raise Refused("web.unreadable", raw_id)
        try:
            text = clean_text(text).strip()
        except UnreadableText:
            raise Refused("web.unreadable", raw_id) from None
        if not text:
            raise Refused("answer.text_empty", raw_id)
        if len(text) > MAX_TEXT:
            raise Refused("web.too_long", raw_id)
        return Inbound(raw_id, "text", text=text)
    if kind == "button":
        payload = message.get("payload")
        ref = message.get("message", "")
        if not isinstance(payload, str) or not isinstance(ref, str):
            raise Refused("button.stale", raw_id)
        try:
            cleaned = clean_text(payload)
        except UnreadableText:
            raise Refused("button.stale", raw_id) from None
        # Payloads the bot hands out are clean and short already; anything else was made up.
        size = len(payload.encode("utf-8"))
        if cleaned != payload or not 1 <= size <= MAX_BUTTON_PAYLOAD_BYTES:
            raise Refused("button.stale", raw_id)
        if ref and not _MESSAGE_REF.fullmatch(ref):
            raise Refused("button.stale", raw_id)
        return Inbound(raw_id, "button", payload=payload, message_ref=ref)
    if kind == "open":
        # The page opens the consultation its link names (?c=SLUG) with this, not with a
        # typed /start, so the citizen's bubble can show the consultation's title.
        slug = link_slug(message.get("slug"))
        if slug is None:
            raise Refused("web.unreadable", raw_id)
        return Inbound(raw_id, "open", text=slug)
    raise Refused("web.unreadable", raw_id)


def link_slug(value: object) -> str | None:
    """The slug a link names (?c=Friluftsliv), as /start reads one: case and the spaces around
    it do not matter, since people type links off posters. None if it cannot be a slug."""
    if not isinstance(value, str):
        return None
    slug = value.strip().lower()
    return slug if _SLUG.fullmatch(slug) else None


def language_tag(value: str | None) -> str | None:
    """A language tag as a browser sends it (da-DK), or None for anything else."""
    if not value:
        return None
    tag = value.split(",")[0].split(";")[0].strip()
    return tag if _LANGUAGE_TAG.fullmatch(tag) else None


def cookie_header(value: str, *, secure: bool, embedded: bool) -> str:
    """The Set-Cookie value for a participant cookie.

    Written by hand: Python before 3.14 refuses the Partitioned attribute in http.cookies,
    which aiohttp's set_cookie goes through. The value is [A-Za-z0-9_.-] only, so it needs no
    quoting.
    """
    parts = [f"{COOKIE}={value}", "Path=/", f"Max-Age={MAX_AGE_SECONDS}", "HttpOnly"]
    if secure:
        parts.append("Secure")
    # Inside a municipality's page (an iframe from another site) a Lax cookie is never sent;
    # there it must be SameSite=None, which browsers allow only on HTTPS, and is kept per
    # embedding site (partitioned).
    parts.append("SameSite=None" if embedded else "SameSite=Lax")
    if embedded:
        parts.append("Partitioned")
    return "; ".join(parts)


# A ticked option of a multiple-choice question: its label starts with the ticked box.
TICKED = "☑"


def steps_aside(payload: Payload | None) -> bool:
    """Whether a button steps aside from answering (back, skip, report, stop, cancel).

    The page shows these plainer than the answers, so the answer is the obvious thing to press.
    """
    if isinstance(payload, GoBack | SkipQuestion):
        return True
    if isinstance(payload, CardButton):
        return payload.action in (CardAction.REPORT, CardAction.STOP)
    return isinstance(payload, IdeasButton) and payload.action == IdeasAction.CANCEL_DRAFT


def _button_json(button: dict[str, Any]) -> dict[str, Any]:
    """A stored button as the page gets it: flagged secondary, or pressed when a ticked option."""
    wire = button.get("payload")
    if not isinstance(wire, str):
        return button
    shown = dict(button)
    payload = parse(wire)
    if steps_aside(payload):
        shown["secondary"] = True
    if isinstance(payload, TickOption):
        shown["pressed"] = str(button.get("label", "")).startswith(TICKED)
    return shown


def _message_json(message: WebMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": message.id,
        "author": message.author,
        "text": message.text,
        "buttons": [[_button_json(b) for b in row] for row in message.buttons or []],
        "expects_text": message.expects_text,
    }
    if message.attachment:
        body["attachment"] = message.attachment
    return body


@dataclass
class _Tab:
    """One open socket and what it was opened with."""

    socket: web.WebSocketResponse
    chat_id: str
    address: str
    language_hint: str | None


class WebChatChannel:
    """Everything web-chat specific, built by the composition root."""

    channel = CHANNEL
    # The page shows any length; these bounds keep a frame small. Not paced: a message goes
    # to the open tabs at once.
    limits = ChannelLimits(
        max_text=16_000,
        max_caption=16_000,
        max_button_label=200,
        max_button_payload_bytes=64,
        max_image_bytes=10_000_000,
    )

    def __init__(
        self,
        settings: Settings,
        core: DialogueCore,
        uow: UnitOfWorkFactory,
        catalogs: Catalogs,
        signer: CookieSigner,
        clock: Callable[[], datetime],
        sharing: Sharing | None = None,
    ) -> None:
        self._settings = settings
        # With several processes (PostgreSQL): how pushes reach tabs connected to the others.
        self._sharing = sharing
        self._core = core
        self._uow = uow
        self._catalogs = catalogs
        previous = settings.web_previous_secret
        # After a rotation, cookies signed with the old secret stay valid until re-signed.
        self._signer = (
            signer.accepting([previous.get_secret_value().encode()]) if previous else signer
        )
        self._clock = clock
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        # The stored language of participants with an open tab, for the channel's own texts.
        self._languages: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._participant_messages = TokenBuckets(RATE_BURST, RATE_PER_SECOND)
        self._address_messages = TokenBuckets(ADDRESS_BURST, ADDRESS_PER_SECOND)
        self._new_cookies = TokenBuckets(NEW_COOKIES_PER_MINUTE, NEW_COOKIES_PER_MINUTE / 60)
        self._address_sockets = OpenCounts(SOCKETS_PER_ADDRESS)
        self._participant_sockets = OpenCounts(SOCKETS_PER_PARTICIPANT)
        self.state = "starting"

    @property
    def sharing(self) -> Sharing | None:
        """How pushes reach tabs on other processes (None: this is the only process)."""
        return self._sharing

    # -- lifecycle ---------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Serve the page, its files, the embed snippet and the WebSocket."""
        app.router.add_get("/chat", self.page)
        app.router.add_get("/chat/embed.js", self.embed)
        app.router.add_get("/chat/static/{name}", self.static)
        app.router.add_get("/chat/ws", self.socket)

    async def start(self) -> None:
        """Deliver what a crash left queued, then apply what it left unhandled."""
        if self._sharing is not None:
            await self._sharing.start(self._has_tabs, self._show_shared, self._resync)
        self._core.delivery.register(self)
        self._core.register_reader(CHANNEL, self._read_stored)
        await self._core.delivery.deliver_backlog(CHANNEL)
        for external_id, payload in await self._core.pending_payloads(CHANNEL):
            self._schedule(external_id, payload)
        self.state = "running"

    async def stop(self) -> None:
        """Finish the messages taken in, then close every socket."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # All at once, each within CLOSE_SECONDS; cancelled, aiohttp drops the connection.
        closing = [
            asyncio.wait_for(socket.close(), CLOSE_SECONDS)
            for sockets in list(self._sockets.values())
            for socket in list(sockets)
        ]
        await asyncio.gather(*closing, return_exceptions=True)
        if self._sharing is not None:
            await self._sharing.stop()
        self._core.delivery.unregister(CHANNEL)
        self.state = "stopped"

    # -- the page ----------------------------------------------------------------------------

    def _address(self, request: web.Request) -> str:
        return client_address(request, self._settings.trusted_proxy)

    def _page_language(self, request: web.Request, stored: str | None) -> str:
        wanted = request.query.get("lang")
        first = language_tag(request.headers.get("Accept-Language"))
        return (
            supported_language(wanted)
            or supported_language(stored)
            or supported_language(first)
            or self._catalogs.default_language
        )

    def _too_many(self, request: web.Request, key: str) -> web.HTTPTooManyRequests:
        text = self._catalogs.texts(self._page_language(request, None))(key)
        return web.HTTPTooManyRequests(text=text, headers={"Retry-After": "60"})

    async def page(self, request: web.Request) -> web.Response:
        """The chat page; sets the participant cookie, afresh on every visit (sliding)."""
        now = self._clock()
        participant = self._signer.verify(request.cookies.get(COOKIE), now, legacy=True)
        if participant is None and not self._new_cookies.take(self._address(request)):
            raise self._too_many(request, "web.too_many_visitors")
        cookie = self._signer.issue(now, participant)
        participant = cookie.split(".", 1)[0]
        try:
            # A read: it never waits behind a writer holding SQLite's lock.
            async with self._uow.read() as uow:
                stored = await uow.participants.get(CHANNEL, f"w-{participant}")
                consultation = await self._linked_consultation(uow, request)
        except Exception as error:
            if not is_transient(error):
                raise
            # The page works without the stored language and the title; the socket will wait.
            stored, consultation = None, None
        language = self._page_language(request, stored.language if stored else None)
        texts = {
            lang: {key: self._catalogs.texts(lang)(key) for key in PAGE_TEXT_KEYS}
            for lang in ("da", "en")
        }
        # The header names the consultation the link opens (else the chat), in both languages.
        heading = {
            lang: pick(consultation.title, lang) if consultation else texts[lang]["web.title"]
            for lang in ("da", "en")
        }
        template = resources.files("bot.channels.webchat").joinpath("static/chat.html")
        page = template.read_text(encoding="utf-8")
        page = (
            page.replace("{{lang}}", language)
            .replace("{{title}}", html.escape(texts[language]["web.title"]))
            .replace("{{texts}}", html.escape(json.dumps(texts, ensure_ascii=False)))
            .replace("{{heading}}", html.escape(heading[language]))
            .replace("{{headings}}", html.escape(json.dumps(heading, ensure_ascii=False)))
            .replace("{{organisation}}", html.escape(self._settings.organisation_name))
            .replace("{{max_text}}", str(MAX_TEXT))
            .replace("{{embedded}}", "true" if request.query.get("embed") else "false")
        )
        response = web.Response(text=page, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        secure = self._settings.public_base_url.startswith("https://")
        embedded = bool(request.query.get("embed")) and secure
        response.headers.add("Set-Cookie", cookie_header(cookie, secure=secure, embedded=embedded))
        return response

    @staticmethod
    async def _linked_consultation(uow: UnitOfWork, request: web.Request) -> Consultation | None:
        slug = link_slug(request.query.get("c"))
        return await uow.consultations.by_slug(slug) if slug is not None else None

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
        participant = self._signer.verify(request.cookies.get(COOKIE), self._clock())
        if participant is None:
            raise web.HTTPForbidden(text="open /chat first")
        chat_id = f"w-{participant}"
        address = self._address(request)
        if not (
            self._address_sockets.has_room(address) and self._participant_sockets.has_room(chat_id)
        ):
            raise self._too_many(request, "web.too_many_tabs")
        # The page says which language the browser prefers; the handshake's own header is a
        # fallback, since some browsers send none (or their interface language) with it.
        tab = _Tab(
            web.WebSocketResponse(heartbeat=30, max_msg_size=HARD_FRAME_BYTES),
            chat_id,
            address,
            language_tag(request.query.get("lang"))
            or language_tag(request.headers.get("Accept-Language")),
        )
        socket = tab.socket
        # Counted before the handshake, so a burst of connections cannot slip past the caps.
        self._address_sockets.opened(address)
        self._participant_sockets.opened(chat_id)
        try:
            await socket.prepare(request)
            self._sockets.setdefault(chat_id, set()).add(socket)
            async with self._uow.read() as uow:
                history = await uow.web_messages.history(chat_id, HISTORY_LIMIT)
                stored = await uow.participants.get(CHANNEL, chat_id)
            if stored is not None and stored.language:
                self._languages[chat_id] = stored.language
            await _send(
                socket,
                {
                    "type": "history",
                    "messages": [_message_json(m) for m in history],
                    "language": stored.language if stored and stored.language else None,
                },
            )
            async for frame in socket:
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._receive(tab, frame.data)
        finally:
            self._address_sockets.closed(address)
            self._participant_sockets.closed(chat_id)
            self._sockets.get(chat_id, set()).discard(socket)
            if not self._sockets.get(chat_id):
                self._sockets.pop(chat_id, None)
                self._languages.pop(chat_id, None)
        return socket

    def _language(self, tab: _Tab) -> str:
        return (
            supported_language(self._languages.get(tab.chat_id))
            or supported_language(tab.language_hint)
            or self._catalogs.default_language
        )

    async def _refuse(self, tab: _Tab, client_id: str | None, key: str) -> None:
        text = self._catalogs.texts(self._language(tab))(key)
        await _send(tab.socket, {"type": "error", "id": client_id, "text": text})

    async def _receive(self, tab: _Tab, data: str | bytes) -> None:
        refusal: Refused | None = None
        inbound: Inbound | None = None
        if isinstance(data, str):
            try:
                inbound = read_frame(data)
            except Refused as refused:
                refusal = refused
        else:
            # The page sends only text frames.
            refusal = Refused("web.unreadable")
        client_id = inbound.client_id if inbound else refusal.client_id if refusal else None
        # Every frame counts, refused ones too: one bucket per participant, a larger one per
        # address (cookies are free).
        if not (
            self._participant_messages.take(tab.chat_id)
            and self._address_messages.take(tab.address)
        ):
            await self._refuse(tab, client_id, "web.rate_limited")
            return
        if refusal is not None or inbound is None:
            await self._refuse(tab, client_id, refusal.key if refusal else "web.unreadable")
            return
        chat_id = tab.chat_id
        payload = storable(
            {
                "type": inbound.kind,
                "text": inbound.text,
                "payload": inbound.payload,
                "message": inbound.message_ref,
                "language": tab.language_hint,
                "chat": chat_id,
            }
        )
        external_id = f"{chat_id}:{inbound.client_id}"
        shown: WebMessage | None = None

        async def show_in_transcript(uow: UnitOfWork, new_ids: set[str]) -> None:
            # The citizen's own bubble is stored with the event: both or neither.
            nonlocal shown
            if new_ids and inbound.kind in ("text", "open"):
                bubble = await self._bubble(uow, tab, inbound)
                if bubble is None:
                    return
                shown = await uow.web_messages.add(chat_id, "citizen", bubble, self._clock())
                if self._sharing is not None:
                    # For the citizen's tabs on other processes, announced with the commit.
                    await self._sharing.message(uow, chat_id, shown.id, None)

        try:
            new = await self._core.accept(
                CHANNEL, [(external_id, chat_id, payload)], alongside=show_in_transcript
            )
        except Exception as error:
            if not is_transient(error):
                raise
            self._core.health.fault(INTAKE, f"cannot store messages ({type(error).__name__})")
            # Not acknowledged, so the page keeps the message; it reconnects after a pause and
            # sends it again, by when the database may be back.
            await tab.socket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"try again")
            return
        self._core.health.clear(INTAKE)
        await _send(tab.socket, {"type": "received", "id": inbound.client_id})
        if shown is not None:
            await self._push(chat_id, {"type": "message", "message": _message_json(shown)})
        if new or await self._core.still_pending(CHANNEL, [external_id]):
            # A resend of a message stored by a commit whose answer was lost is still pending:
            # schedule it too (handling an event twice does nothing the second time).
            self._schedule(external_id, payload)

    async def _bubble(self, uow: UnitOfWork, tab: _Tab, inbound: Inbound) -> str | None:
        """What the citizen's own bubble shows: what they wrote, or the consultation opened
        (None for a link to no consultation: the citizen typed nothing, the bot's answer says
        what is wrong)."""
        if inbound.kind != "open":
            return inbound.text
        consultation = await uow.consultations.by_slug(inbound.text)
        if consultation is None:
            return None
        return pick(consultation.title, self._language(tab))

    def _schedule(self, external_id: str, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._process(external_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, external_id: str, payload: dict[str, Any]) -> None:
        chat_id = str(payload["chat"])

        async def tell_tabs_it_was_handled() -> None:
            # By now the replies are pushed. A tab disables a message's buttons when one is
            # pressed; a refused press replaces nothing, so this is what lets it enable them
            # again, and what tells it a typed answer was dealt with (kept when refused).
            await self._push_everywhere(
                chat_id,
                {
                    "type": "handled",
                    "id": external_id.rpartition(":")[2],
                    "message": payload.get("message") or None,
                },
            )

        await self._core.submit(
            CHANNEL, external_id, self._event(payload), then=tell_tabs_it_was_handled
        )

    async def _read_stored(self, payload: dict[str, Any]) -> InboundEvent:
        """A message another process stored (the tab was connected there), read back."""
        return self._event(payload)

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
        if payload["type"] == "open":
            slug = str(payload["text"])
            return InboundEvent(
                channel=CHANNEL,
                chat_id=chat_id,
                text=f"/start {slug}",
                command="start",
                argument=slug,
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
        """Send to this process's open tabs of a chat."""
        for socket in list(self._sockets.get(chat_id, ())):
            await _send(socket, body)

    async def _push_everywhere(self, chat_id: str, body: dict[str, Any]) -> None:
        """Send a push that is not in the transcript to the chat's tabs on every process."""
        await self._push(chat_id, body)
        if self._sharing is not None:
            self._sharing.body(chat_id, body)

    # -- pushes from other processes ---------------------------------------------------------

    def _has_tabs(self, chat_id: str) -> bool:
        return chat_id in self._sockets

    async def _show_shared(self, batch: list[Shared]) -> None:
        """Push what other processes pushed to their tabs of chats with a tab here."""
        wanted = {(s.chat_id, s.message_id) for s in batch if s.message_id is not None}
        messages: dict[tuple[str, int], dict[str, Any]] = {}
        shown_here: set[tuple[str, int]] = set()
        if wanted:
            # One read for the batch; a message erased since (/forget) is not shown.
            async with self._uow.read() as uow:
                for chat_id, message_id in sorted(wanted):
                    message = await uow.web_messages.get(chat_id, message_id)
                    if message is not None:
                        messages[(chat_id, message_id)] = _message_json(message)
        for shared in batch:
            if shared.body is not None:
                await self._push(shared.chat_id, shared.body)
                continue
            if shared.message_id is None:
                continue
            key = (shared.chat_id, shared.message_id)
            shown = messages.get(key)
            # Read once, as it is now: a later edit in the same batch shows nothing new. The
            # first place keeps the order the messages were written in.
            if shown is None or key in shown_here:
                continue
            shown_here.add(key)
            if shared.language and shared.chat_id in self._sockets:
                self._languages[shared.chat_id] = shared.language
            await self._push(
                shared.chat_id, {"type": "message", "message": shown, "language": shared.language}
            )

    async def _resync(self) -> None:
        """Give every open tab the transcript again: pushes were missed while not listening."""
        chats = list(self._sockets)
        if not chats:
            return
        async with self._uow.read() as uow:
            histories = {
                chat_id: (
                    await uow.web_messages.history(chat_id, HISTORY_LIMIT),
                    await uow.participants.get(CHANNEL, chat_id),
                )
                for chat_id in chats
            }
        for chat_id, (history, stored) in histories.items():
            # The same as a tab gets when it reconnects.
            await self._push(
                chat_id,
                {
                    "type": "history",
                    "messages": [_message_json(m) for m in history],
                    "language": stored.language if stored and stored.language else None,
                },
            )

    # -- outbound ----------------------------------------------------------------------------

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Write a bot message into the transcript and show it in every open tab."""
        now = self._clock()
        kind = payload["type"]
        if kind == ACKNOWLEDGEMENT:
            if payload.get("text"):
                # The reason belongs next to the pressed message, not in a status line that a
                # phone has scrolled out of sight; the ack reference is that message's id.
                ref = str(payload.get("ack_ref") or "")
                notice = {
                    "type": "notice",
                    "text": payload["text"],
                    "message": ref if _MESSAGE_REF.fullmatch(ref) else None,
                }
                await self._push_everywhere(chat_id, notice)
            return None
        transcript_erased = False
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
                # Only ASCII digits that fit a big integer: int("²") fails, 20 digits overflow.
                if edit_ref is not None and _MESSAGE_REF.fullmatch(str(edit_ref)):
                    message = await uow.web_messages.get(chat_id, int(edit_ref))
                    # Gone with the transcript (/forget erased it): the tabs drop what they
                    # still show of it, so no erased question stays pressable on screen.
                    transcript_erased = message is None
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
            if self._sharing is not None:
                # Announced with the commit, to the tabs of this chat on other processes.
                await self._sharing.message(uow, chat_id, message.id, language)
            await uow.commit()
        if language and chat_id in self._sockets:
            self._languages[chat_id] = language
        await self._push(
            chat_id, {"type": "message", "message": _message_json(message), "language": language}
        )
        if transcript_erased:
            await self._push_everywhere(chat_id, {"type": "cleared", "keep": message.id})
        return str(message.id)


async def _send(socket: web.WebSocketResponse, body: dict[str, Any]) -> None:
    """Send to a tab unless it has gone; a tab closing mid-send is not an error."""
    if socket.closed:
        return
    # The tab may go away between the check and the write; it gets the transcript (and resends
    # what was not acknowledged) when it reconnects.
    with contextlib.suppress(ConnectionResetError):
        await socket.send_json(body)
