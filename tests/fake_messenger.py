"""A fake Messenger Send API (Meta's Graph API) for tests: real HTTP, Messenger's refusals.

Built on the WhatsApp fake's machinery (``tests.fake_graph.MetaFake``: its own thread and loop,
signed webhook deliveries delivered again until answered 2xx, Graph errors in Meta's shape).
Toward the bot it is the Send API, ``POST /<version>/me/messages`` with the page token as a
bearer token, as JSON or as a form with ``filedata`` (an attachment). It refuses what Messenger
refuses: a text over 2000 characters, more than 13 quick replies, a quick reply or button title
over 20 characters, a payload over 1000, a button template with more than 3 buttons or a text
over 640, an unknown recipient (100/2018001), and a message to someone whose last message is
older than 24 hours without a message tag (10/2018278, "sent outside of allowed window").

Toward the test it plays the citizens: ``send_text``, ``tap``, ``open_link`` (an m.me link's
referral) and the like POST a signed delivery to the bot's ``/messenger/webhook``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_graph import VERSION, WINDOW_SECONDS, Delivery, GraphRefusal, MetaFake

MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13
MAX_TITLE = 20
MAX_PAYLOAD = 1000
MAX_BUTTONS = 3
MAX_BUTTON_TEXT = 640
MAX_FILE = 25 * 1024 * 1024
MESSAGING_TYPES = {"RESPONSE", "UPDATE", "MESSAGE_TAG"}


def parameter(message: str) -> GraphRefusal:
    return GraphRefusal(100, f"(#100) {message}")


@dataclass
class MsMessage:
    """A message the page sent to a citizen."""

    id: str
    to: str
    message: dict[str, Any]
    messaging_type: str
    file: bytes | None = None
    # When the request reached the fake (time.monotonic()), to tell a repeat sent before a kill.
    sent_at: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        """text, quick_replies, buttons, file or image."""
        attachment = self.message.get("attachment")
        if isinstance(attachment, dict):
            return "buttons" if attachment["type"] == "template" else str(attachment["type"])
        return "quick_replies" if self.message.get("quick_replies") else "text"

    @property
    def text(self) -> str:
        attachment = self.message.get("attachment")
        if isinstance(attachment, dict):
            return str(attachment["payload"].get("text") or "")
        return str(self.message.get("text") or "")

    @property
    def choices(self) -> list[dict[str, str]]:
        """The quick replies or postback buttons: title, payload, kind."""
        if self.kind == "quick_replies":
            return [
                {"title": q["title"], "payload": q["payload"], "kind": "quick_reply"}
                for q in self.message["quick_replies"]
            ]
        if self.kind == "buttons":
            return [
                {"title": b["title"], "payload": b["payload"], "kind": "postback"}
                for b in self.message["attachment"]["payload"]["buttons"]
                if b["type"] == "postback"
            ]
        return []


class FakeMessenger(MetaFake):
    """One Facebook page: the Send API it answers, the citizens who write to it."""

    def __init__(self) -> None:
        super().__init__()
        self.page_id = str(100000000000000 + secrets.randbelow(10**12))
        self.sent: list[MsMessage] = []
        # Message tags the bot used (it must use none).
        self.tags: list[str] = []

    def settings(self, webhook_port: int) -> dict[str, Any]:
        """The bot's settings for this page, its webhook on ``webhook_port``."""
        self.webhook_url = f"http://127.0.0.1:{webhook_port}/messenger/webhook"
        return {
            "messenger_page_token": self.token,
            "messenger_app_secret": self.app_secret,
            "messenger_verify_token": self.verify_token,
            "messenger_api_url": self.api_url,
            "messenger_page_id": self.page_id,
            "http_port": webhook_port,
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"/{VERSION}/me/messages", self._messages)

    # -- the Send API --------------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.Response:
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        answer = await self._answer_message(request)
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        return answer

    async def _answer_message(self, request: web.Request) -> web.Response:
        recipient = ""
        try:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise GraphRefusal(190, "Invalid OAuth access token.", status=401)
            file: bytes | None = None
            if request.content_type == "multipart/form-data":
                form = await request.post()
                upload = form.get("filedata")
                if not hasattr(upload, "file"):
                    raise parameter("filedata is required with an attachment upload")
                file = upload.file.read()  # type: ignore[union-attr]
                body = {key: form[key] for key in ("messaging_type",) if key in form}
                for key in ("recipient", "message"):
                    if key in form:
                        body[key] = json.loads(str(form[key]))
            else:
                try:
                    body = await request.json()
                except ValueError:
                    raise parameter("the body is not JSON") from None
            recipient = str((body.get("recipient") or {}).get("id") or "")
            message = self._accept(body, recipient, file)
        except GraphRefusal as refusal:
            self.refused.append((recipient, refusal.code))
            return web.json_response(refusal.body(), status=refusal.status)
        return web.json_response({"recipient_id": recipient, "message_id": message.id})

    def _accept(self, body: dict[str, Any], recipient: str, file: bytes | None) -> MsMessage:
        kind = body.get("messaging_type")
        if kind not in MESSAGING_TYPES:
            raise parameter("messaging_type must be RESPONSE, UPDATE or MESSAGE_TAG")
        if kind == "MESSAGE_TAG":
            self.tags.append(str(body.get("tag")))
        last = self.last_inbound.get(recipient)
        if last is None:
            raise GraphRefusal(100, "No matching user found", subcode=2018001)
        self._injected(recipient)
        if kind != "MESSAGE_TAG" and time.time() - last > WINDOW_SECONDS:
            raise GraphRefusal(
                10,
                "(#10) This message is sent outside of allowed window.",
                status=400,
                subcode=2018278,
            )
        message = body.get("message")
        if not isinstance(message, dict):
            raise parameter("message is required")
        _validate(message, file)
        sent = MsMessage(
            f"m_{next(self._ids):06d}{secrets.token_urlsafe(60)}", recipient, message, kind, file
        )
        self.sent.append(sent)
        return sent

    # -- the citizens and the webhook ----------------------------------------------------------

    def envelope(self, *items: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {
            "object": "page",
            "entry": [{"id": self.page_id, "time": now, "messaging": list(items)}],
        }

    def _item(self, psid: str, **part: Any) -> dict[str, Any]:
        self.last_inbound[psid] = time.time()
        return {
            "sender": {"id": psid},
            "recipient": {"id": self.page_id},
            "timestamp": int(time.time() * 1000),
            **part,
        }

    @staticmethod
    def _mid() -> str:
        return "m_" + secrets.token_urlsafe(64)

    def sender(self, envelope: dict[str, Any]) -> str:
        """Whose delivery it is: the first item's citizen (the recipient of a page's echo)."""
        for entry in envelope.get("entry") or []:
            for item in entry.get("messaging") or []:
                sender = str((item.get("sender") or {}).get("id") or "")
                if sender == self.page_id:
                    return str((item.get("recipient") or {}).get("id") or "")
                return sender
        return ""

    def text_envelope(self, sender: str, text: str) -> tuple[dict[str, Any], str]:
        mid = self._mid()
        return self.envelope(self._item(sender, message={"mid": mid, "text": text})), mid

    def send_text(self, psid: str, text: str) -> str:
        """The citizen writes; returns the message's mid."""
        envelope, mid = self.text_envelope(psid, text)
        self.deliver(envelope)
        return mid

    def send_media(self, psid: str, kind: str = "image") -> str:
        """The citizen sends a photo (or a sticker, audio…)."""
        mid = self._mid()
        attachment = {"type": kind, "payload": {"url": "https://scontent.example/x.jpg"}}
        self.deliver(
            self.envelope(self._item(psid, message={"mid": mid, "attachments": [attachment]}))
        )
        return mid

    def tap(self, psid: str, message: MsMessage, choice: dict[str, str]) -> str:
        """The citizen taps a quick reply or a button of a message."""
        mid = self._mid()
        if choice["kind"] == "quick_reply":
            part: dict[str, Any] = {
                "message": {
                    "mid": mid,
                    "text": choice["title"],
                    "quick_reply": {"payload": choice["payload"]},
                }
            }
        else:
            part = {
                "postback": {"mid": mid, "title": choice["title"], "payload": choice["payload"]}
            }
        self.deliver(self.envelope(self._item(psid, **part)))
        return mid

    def open_link(self, psid: str, ref: str, *, new: bool = True) -> dict[str, Any]:
        """The citizen opens m.me/<page>?ref=<ref>: a new conversation taps "Get started" (a
        postback with the referral), an existing one gets a referral event. Returns the item."""
        referral = {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}
        if new:
            part: dict[str, Any] = {
                "postback": {
                    "mid": self._mid(),
                    "title": "Kom i gang",
                    "payload": "GET_STARTED",
                    "referral": referral,
                }
            }
        else:
            part = {"referral": referral}
        item = self._item(psid, **part)
        self.deliver(self.envelope(item))
        return item

    def delivered(self, message: MsMessage) -> Delivery:
        """Tell the bot a message arrived on the citizen's phone."""
        item = self._item(message.to, delivery={"mids": [message.id], "watermark": 0})
        return self.deliver(self.envelope(item))

    def read(self, psid: str) -> Delivery:
        """Tell the bot the citizen read everything sent so far."""
        watermark = int(time.time() * 1000) + 1000
        return self.deliver(self.envelope(self._item(psid, read={"watermark": watermark})))

    def echo(self, message: MsMessage) -> Delivery:
        """Deliver Meta's echo of a message the page sent (not citizen input)."""
        item = {
            "sender": {"id": self.page_id},
            "recipient": {"id": message.to},
            "timestamp": int(time.time() * 1000),
            "message": {"mid": message.id, "is_echo": True, "text": message.text},
        }
        return self.deliver(self.envelope(item))

    def to(self, psid: str) -> list[MsMessage]:
        """What the page sent a citizen, oldest first."""
        return self.call(lambda: [m for m in self.sent if m.to == psid])


def _validate(message: dict[str, Any], file: bytes | None) -> None:
    attachment = message.get("attachment")
    text = message.get("text")
    if attachment is None:
        if not isinstance(text, str) or not text.strip():
            raise parameter("message.text or message.attachment is required")
        if len(text) > MAX_TEXT:
            raise parameter("param message[text] must be UTF-8 encoded and 2000 characters or less")
        replies = message.get("quick_replies")
        if replies is not None:
            if not isinstance(replies, list) or not 1 <= len(replies) <= MAX_QUICK_REPLIES:
                raise parameter("param message[quick_replies] must have 1 to 13 elements")
            for reply in replies:
                _titled(reply)
                if reply.get("content_type") != "text":
                    raise parameter("quick_replies[content_type] must be text")
        return
    if text is not None:
        raise parameter("message.text and message.attachment cannot both be set")
    kind = attachment.get("type")
    payload = attachment.get("payload") or {}
    if kind in ("file", "image"):
        if file is None or not file or len(file) > MAX_FILE:
            raise GraphRefusal(100, "Attachment size exceeds allowable limit or is missing")
        return
    if kind != "template" or payload.get("template_type") != "button":
        raise parameter("unsupported attachment")
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_BUTTON_TEXT:
        raise parameter("param message[attachment][payload][text] must be 1 to 640 characters")
    buttons = payload.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        raise parameter("param message[attachment][payload][buttons] must have 1 to 3 elements")
    for button in buttons:
        if button.get("type") == "web_url":
            if not str(button.get("url") or "").startswith(("http://", "https://")):
                raise parameter("web_url button needs a url")
            _titled(button, payload_required=False)
        elif button.get("type") == "postback":
            _titled(button)
        else:
            raise parameter("unsupported button type")


def _titled(part: dict[str, Any], *, payload_required: bool = True) -> None:
    title = part.get("title")
    if not isinstance(title, str) or not title or len(title) > MAX_TITLE:
        raise parameter("title must be 1 to 20 characters")
    if payload_required:
        payload = part.get("payload")
        if not isinstance(payload, str) or not payload or len(payload) > MAX_PAYLOAD:
            raise parameter("payload must be 1 to 1000 characters")
