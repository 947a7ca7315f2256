"""A fake WhatsApp Cloud API (Meta's Graph API) for tests: real HTTP, WhatsApp's refusals.

It runs on its own event loop in a background thread, like the fake Bot API. Toward the bot it
is the Graph API: ``POST /<version>/<phone number id>/messages`` and ``.../media`` with a bearer
token, answering errors in the Graph shape ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`` and refusing what WhatsApp refuses: more than 3 reply buttons,
a title over 20 characters (24 on a list row, 72 in a description), more than 10 rows, an
interactive text over 1024, an unknown template, and free-form messages to someone whose last
message is older than 24 hours (131047).

Toward the test it plays the citizens and Meta's webhook: ``send_text``, ``tap`` and the like
POST a signed delivery (``X-Hub-Signature-256``) to the bot, and deliver again after a pause
until the bot answers 2xx, as Meta does. Deliveries go one at a time, or over
``webhook_connections`` connections at once as Meta's do under load, each citizen's always on the
same one, so a citizen's messages arrive in the order they were written.

``MetaFake`` is what the fakes of Meta's platforms share (its own thread and loop, the signed
webhook deliveries, Graph errors); ``tests/fake_messenger.py`` is the other one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")

VERSION = "v23.0"
WINDOW_SECONDS = 24 * 3600
MAX_TEXT = 4096
MAX_INTERACTIVE_BODY = 1024
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_ROW_ID = 200
MAX_LIST_BUTTON = 20
MAX_CAPTION = 1024
# Meta waits longer between redeliveries; tests wait for this.
REDELIVERY_PAUSE = 0.05
REDELIVERIES = 40


class GraphRefusal(Exception):
    """A Graph API error in Meta's shape."""

    def __init__(self, code: int, message: str, status: int = 400, subcode: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.subcode = subcode

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": secrets.token_hex(8),
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": error}


def parameter(message: str) -> GraphRefusal:
    return GraphRefusal(100, f"(#100) Invalid parameter: {message}")


@dataclass
class WaMessage:
    """A message the bot sent to a citizen."""

    id: str
    to: str
    body: dict[str, Any]
    # When the request reached the fake (time.monotonic()), to tell a repeat sent before a kill.
    sent_at: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        return str(self.body["type"])

    @property
    def text(self) -> str:
        """What the citizen reads: the text, the interactive text, the caption or template."""
        part = self.body[self.kind]
        if self.kind == "text":
            return str(part["body"])
        if self.kind == "interactive":
            return str(part["body"]["text"])
        if self.kind == "template":
            parameters = part["components"][0]["parameters"]
            return " ".join(str(p["text"]) for p in parameters)
        return str(part.get("caption") or "")

    @property
    def choices(self) -> list[dict[str, str]]:
        """The reply buttons or list rows: id, title (and description)."""
        if self.kind != "interactive":
            return []
        part = self.body["interactive"]
        if part["type"] == "button":
            return [dict(b["reply"], kind="button_reply") for b in part["action"]["buttons"]]
        return [
            dict(row, kind="list_reply")
            for section in part["action"]["sections"]
            for row in section["rows"]
        ]

    @property
    def reply_to(self) -> str | None:
        return (self.body.get("context") or {}).get("message_id")


@dataclass
class Delivery:
    """A webhook delivery and what became of it."""

    body: bytes
    answers: list[int] = field(default_factory=list)
    done: asyncio.Event | None = None


class MetaFake:
    """A fake Meta platform on its own thread: its Graph API routes, its signed webhook."""

    def __init__(self) -> None:
        self.token = "EAAG" + secrets.token_hex(16)
        self.app_secret = secrets.token_hex(16)
        self.verify_token = secrets.token_hex(8)
        self.webhook_url = ""
        self.refused: list[tuple[str, int]] = []
        # When each citizen last wrote (the fake's own clock), for the 24-hour window.
        self.last_inbound: dict[str, float] = {}
        self.deliveries: list[Delivery] = []
        # What the next messages to a citizen meet: a refusal, or None (taken as usual).
        self._errors: dict[str, list[GraphRefusal | None]] = {}
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._queues: list[asyncio.Queue[Delivery]] = []
        self._workers: list[asyncio.Task[None]] = []
        self.port = 0
        # A simulated round trip on every Graph API call: half before, half after answering.
        self.latency = 0.0
        # Webhook connections delivering at once (set before start); a citizen keeps to one.
        self.webhook_connections = 1
        # How often and how far apart a delivery without a 2xx is delivered again. Meta keeps
        # trying for days; a test that restarts the bot needs more than the default.
        self.redeliveries = REDELIVERIES
        self.redelivery_pause = REDELIVERY_PAUSE

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{VERSION}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def call(self, function: Callable[[], T]) -> T:
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return future.result(10)

    def add_routes(self, app: web.Application) -> None:
        """The platform's Graph API routes."""
        raise NotImplementedError

    async def _start(self) -> None:
        app = web.Application(client_max_size=120 * 1024 * 1024)
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(100, self.webhook_connections))
        )
        self._queues = [asyncio.Queue() for _ in range(max(1, self.webhook_connections))]
        self._workers = [asyncio.create_task(self._deliver_in_order(q)) for q in self._queues]

    async def _stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- injected errors ---------------------------------------------------------------------

    def fail_next(
        self, recipient: str, code: int, times: int = 1, status: int = 400, after: int = 0
    ) -> None:
        """Refuse the next messages to a citizen with a Graph error (131056, 551…), after
        taking ``after`` of them as usual."""
        injected: list[GraphRefusal | None] = [None] * after
        injected += [GraphRefusal(code, f"injected {code}", status=status) for _ in range(times)]
        self.call(lambda: self._errors.setdefault(recipient, []).extend(injected))

    def _injected(self, recipient: str) -> None:
        injected = self._errors.get(recipient)
        if injected:
            refusal = injected.pop(0)
            if refusal is not None:
                raise refusal

    # -- the webhook ---------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    def deliver(self, envelope: dict[str, Any]) -> Delivery:
        """Queue a signed delivery to the bot (delivered again until it answers 2xx)."""
        body = json.dumps(envelope).encode()
        delivery = Delivery(body)

        return self.call(lambda: self._put(delivery, self.sender(envelope)))

    def _put(self, delivery: Delivery, sender: str) -> Delivery:
        delivery.done = asyncio.Event()
        self.deliveries.append(delivery)
        # A citizen's deliveries always go over the same connection: in the order written.
        self._queues[hash(sender) % len(self._queues)].put_nowait(delivery)
        return delivery

    def sender(self, envelope: dict[str, Any]) -> str:
        """Whose delivery it is (the platform's fake knows where its envelopes say so)."""
        return ""

    def text_envelope(self, sender: str, text: str) -> tuple[dict[str, Any], str]:
        """A delivery of one text a citizen wrote, and the message's platform id."""
        raise NotImplementedError

    def send_many(self, texts: list[tuple[str, str]]) -> list[str]:
        """Many citizens write at once (``(sender, text)`` in order); return the message ids."""

        def put_all() -> list[str]:
            ids = []
            for sender, text in texts:
                envelope, message_id = self.text_envelope(sender, text)
                self._put(Delivery(json.dumps(envelope).encode()), sender)
                ids.append(message_id)
            return ids

        return self.call(put_all)

    async def _deliver_in_order(self, queue: asyncio.Queue[Delivery]) -> None:
        assert self._session is not None
        while True:
            delivery = await queue.get()
            for _ in range(self.redeliveries):
                try:
                    async with self._session.post(
                        self.webhook_url,
                        data=delivery.body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Hub-Signature-256": self.sign(delivery.body),
                        },
                    ) as response:
                        delivery.answers.append(response.status)
                        if 200 <= response.status < 300:
                            break
                except aiohttp.ClientError:
                    delivery.answers.append(0)
                await asyncio.sleep(self.redelivery_pause)
            assert delivery.done is not None
            delivery.done.set()


class FakeGraph(MetaFake):
    """One WhatsApp business number: the Graph API it answers, the citizens who write to it."""

    def __init__(self) -> None:
        super().__init__()
        self.phone_number_id = str(100000000000000 + secrets.randbelow(10**12))
        self.templates: set[tuple[str, str]] = set()
        self.sent: list[WaMessage] = []
        self.media: dict[str, bytes] = {}

    def settings(self, webhook_port: int) -> dict[str, Any]:
        """The bot's settings for this number, its webhook on ``webhook_port``."""
        self.webhook_url = f"http://127.0.0.1:{webhook_port}/whatsapp/webhook"
        return {
            "whatsapp_token": self.token,
            "whatsapp_phone_number_id": self.phone_number_id,
            "whatsapp_app_secret": self.app_secret,
            "whatsapp_verify_token": self.verify_token,
            "whatsapp_api_url": self.api_url,
            "whatsapp_number": "4512345678",
            "http_port": webhook_port,
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"/{VERSION}/{{number}}/messages", self._messages)
        app.router.add_post(f"/{VERSION}/{{number}}/media", self._upload)

    # -- the Graph API -----------------------------------------------------------------------

    def _check(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise GraphRefusal(190, "Invalid OAuth access token.", status=401)
        if request.match_info["number"] != self.phone_number_id:
            raise GraphRefusal(100, "Unsupported post request: unknown phone number id")

    async def _messages(self, request: web.Request) -> web.Response:
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        answer = self._answer_message(request, await request.read())
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        return answer

    def _answer_message(self, request: web.Request, raw: bytes) -> web.Response:
        body: dict[str, Any] = {}
        try:
            self._check(request)
            try:
                body = json.loads(raw)
            except ValueError:
                raise parameter("the body is not JSON") from None
            if not isinstance(body, dict):
                raise parameter("the body is not a JSON object")
            message_id = self._accept(body)
        except GraphRefusal as refusal:
            self.refused.append((str(body.get("to") or ""), refusal.code))
            return web.json_response(refusal.body(), status=refusal.status)
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": message_id}],
            }
        )

    async def _upload(self, request: web.Request) -> web.Response:
        try:
            self._check(request)
            form = await request.post()
            upload = form.get("file")
            if form.get("messaging_product") != "whatsapp" or not hasattr(upload, "file"):
                raise parameter("messaging_product and file are required")
        except GraphRefusal as refusal:
            return web.json_response(refusal.body(), status=refusal.status)
        media_id = str(900000 + next(self._ids))
        self.media[media_id] = upload.file.read()  # type: ignore[union-attr]
        return web.json_response({"id": media_id})

    def _accept(self, body: dict[str, Any]) -> str:
        if body.get("messaging_product") != "whatsapp":
            raise parameter("messaging_product must be whatsapp")
        to = body.get("to")
        if not isinstance(to, str) or not to.isdigit():
            raise parameter("to")
        self._injected(to)
        kind = body.get("type")
        if kind != "template":
            last = self.last_inbound.get(to)
            if last is None or time.time() - last > WINDOW_SECONDS:
                raise GraphRefusal(
                    131047,
                    "Re-engagement message",
                    subcode=2494010,
                )
        validate = {
            "text": _text,
            "interactive": _interactive,
            "template": self._template,
            "document": self._media_part,
            "image": self._media_part,
        }.get(str(kind))
        if validate is None:
            raise GraphRefusal(131051, "Unsupported message type")
        validate(body)
        context = body.get("context")
        if context is not None and not str(context.get("message_id", "")).startswith("wamid."):
            raise parameter("context.message_id")
        # As long as Meta's are now (86 characters), past the 64 an id column once held.
        message = WaMessage(f"wamid.HBgM{next(self._ids):08d}{secrets.token_hex(36)}", to, body)
        self.sent.append(message)
        return message.id

    def _template(self, body: dict[str, Any]) -> None:
        template = body.get("template") or {}
        key = (template.get("name"), (template.get("language") or {}).get("code"))
        if key not in self.templates:
            raise GraphRefusal(132001, "Template name does not exist in the translation")
        for component in template.get("components") or []:
            for item in component.get("parameters") or []:
                text = str(item.get("text", ""))
                if "\n" in text or "\t" in text or "    " in text:
                    raise GraphRefusal(132018, "There was an issue with the parameters")

    def _media_part(self, body: dict[str, Any]) -> None:
        part = body[body["type"]]
        if str(part.get("id")) not in self.media:
            raise GraphRefusal(131053, "Media upload error: unknown media id")
        if len(str(part.get("caption") or "")) > MAX_CAPTION:
            raise parameter("caption is too long")

    # -- the citizens and the webhook ----------------------------------------------------------

    def envelope(
        self,
        messages: list[dict[str, Any]] | None = None,
        statuses: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": "4512345678",
                "phone_number_id": self.phone_number_id,
            },
        }
        if messages:
            value["contacts"] = [
                {"profile": {"name": "Borger"}, "wa_id": m["from"]} for m in messages
            ]
            value["messages"] = list(messages)
        if statuses:
            value["statuses"] = list(statuses)
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
        }

    def _inbound(self, wa_id: str, kind: str, part: dict[str, Any], **extra: Any) -> dict[str, Any]:
        self.last_inbound[wa_id] = time.time()
        return {
            "from": wa_id,
            "id": f"wamid.HBgN{secrets.token_hex(38)}",
            "timestamp": str(int(time.time())),
            "type": kind,
            kind: part,
            **extra,
        }

    def sender(self, envelope: dict[str, Any]) -> str:
        """Whose delivery it is: the first message's sender, or a status's recipient."""
        for entry in envelope.get("entry") or []:
            for change in entry.get("changes") or []:
                value = change.get("value") or {}
                for item in value.get("messages") or []:
                    return str(item.get("from"))
                for item in value.get("statuses") or []:
                    return str(item.get("recipient_id"))
        return ""

    def text_envelope(self, sender: str, text: str) -> tuple[dict[str, Any], str]:
        message = self._inbound(sender, "text", {"body": text})
        return self.envelope([message]), str(message["id"])

    def send_text(self, wa_id: str, text: str) -> str:
        """The citizen writes; returns the message's wamid."""
        envelope, wamid = self.text_envelope(wa_id, text)
        self.deliver(envelope)
        return wamid

    def send_media(self, wa_id: str, kind: str = "image") -> str:
        part: dict[str, Any] = {"id": "1234", "mime_type": "image/jpeg"}
        if kind == "location":
            part = {"latitude": 55.67, "longitude": 12.56}
        message = self._inbound(wa_id, kind, part)
        self.deliver(self.envelope([message]))
        return str(message["id"])

    def tap(self, wa_id: str, message: WaMessage, choice: dict[str, str]) -> str:
        """The citizen taps a reply button or picks a list row of a message."""
        kind = choice["kind"]
        reply = {"id": choice["id"], "title": choice["title"]}
        if "description" in choice:
            reply["description"] = choice["description"]
        inbound = self._inbound(
            wa_id,
            "interactive",
            {"type": kind, kind: reply},
            context={"from": "4512345678", "id": message.id},
        )
        self.deliver(self.envelope([inbound]))
        return str(inbound["id"])

    def status(self, message: WaMessage, status: str, code: int | None = None) -> Delivery:
        """Tell the bot what became of a message it sent (sent, delivered, read, failed)."""
        notice: dict[str, Any] = {
            "id": message.id,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": message.to,
        }
        if code is not None:
            notice["errors"] = [{"code": code, "title": "injected", "message": "injected"}]
        return self.deliver(self.envelope(statuses=[notice]))

    def to(self, wa_id: str) -> list[WaMessage]:
        """What the bot sent a citizen, oldest first."""
        return self.call(lambda: [m for m in self.sent if m.to == wa_id])


def _text(body: dict[str, Any]) -> None:
    text = (body.get("text") or {}).get("body")
    if not isinstance(text, str) or not text.strip():
        raise parameter("text.body is required")
    if len(text) > MAX_TEXT:
        raise parameter(f"text.body is longer than {MAX_TEXT}")


def _interactive(body: dict[str, Any]) -> None:
    part = body.get("interactive") or {}
    text = (part.get("body") or {}).get("text")
    if not isinstance(text, str) or not text.strip():
        raise GraphRefusal(131009, "Parameter value is not valid: body.text is required")
    if len(text) > MAX_INTERACTIVE_BODY:
        raise GraphRefusal(131009, "Parameter value is not valid: body.text too long")
    action = part.get("action") or {}
    if part.get("type") == "button":
        buttons = action.get("buttons") or []
        if not 1 <= len(buttons) <= MAX_BUTTONS:
            raise GraphRefusal(131009, "Parameter value is not valid: 1 to 3 buttons")
        titles = [b["reply"]["title"] for b in buttons]
        ids = [b["reply"]["id"] for b in buttons]
        if any(not t or len(t) > MAX_BUTTON_TITLE for t in titles):
            raise GraphRefusal(131009, "Parameter value is not valid: button title length")
        if any(not i or len(i) > MAX_BUTTON_ID for i in ids):
            raise GraphRefusal(131009, "Parameter value is not valid: button id length")
        if len(set(titles)) != len(titles) or len(set(ids)) != len(ids):
            raise GraphRefusal(131009, "Parameter value is not valid: duplicate buttons")
    elif part.get("type") == "list":
        button = action.get("button")
        if not isinstance(button, str) or not button or len(button) > MAX_LIST_BUTTON:
            raise GraphRefusal(131009, "Parameter value is not valid: list button text")
        rows = [row for section in action.get("sections") or [] for row in section["rows"]]
        if not 1 <= len(rows) <= MAX_ROWS:
            raise GraphRefusal(131009, "Parameter value is not valid: 1 to 10 rows")
        for row in rows:
            if not row.get("title") or len(row["title"]) > MAX_ROW_TITLE:
                raise GraphRefusal(131009, "Parameter value is not valid: row title length")
            if len(row.get("description", "")) > MAX_ROW_DESCRIPTION:
                raise GraphRefusal(131009, "Parameter value is not valid: row description")
            if not row.get("id") or len(row["id"]) > MAX_ROW_ID:
                raise GraphRefusal(131009, "Parameter value is not valid: row id")
        if len({row["id"] for row in rows}) != len(rows):
            raise GraphRefusal(131009, "Parameter value is not valid: duplicate row ids")
    else:
        raise GraphRefusal(131009, "Parameter value is not valid: interactive.type")
