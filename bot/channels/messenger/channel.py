"""The Messenger channel: Meta's webhook → inbox → dialogue core, and outbox → Send API.

Inbound, a signed delivery (``bot.channels.meta.webhook``) may hold several messaging events of
the page. Every citizen event is stored in the inbox under its Messenger id (the ``mid``; a
referral, which has none, under one made from what it says) before the delivery is answered
200, so a redelivery is applied once. A citizen's chat id is their page-scoped id (PSID):
personal data, so logs name inbox and outbox ids, never it.

What counts as citizen input: a text message (typed words such as "mine data" or "glem mig"
read as the command they name, ``handlers.typed_commands``), a tapped quick reply or button
(their payload is the bot's button payload), and a referral from an ``m.me/<page>?ref=<slug>``
link (the consultation opens as /start SLUG does on Telegram). An attachment (a photo, a
sticker, a voice message) gets the polite "only text" answer. Echoes of the page's own messages
are not input; deliveries and reads update the outbox rows they are about.

Outbound, every message is a standard message within 24 hours of the citizen's last one
(``send.py``); the bulk lane skips citizens outside that window and says so in the post's
report (``scheduler.publishing``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.channels.messenger.send import SendClient
from bot.channels.messenger.shaping import (
    MAX_PAYLOAD,
    MAX_TEXT,
    MAX_TITLE,
    payloads_of,
    shape_message,
)
from bot.channels.meta.intake import SignedWebhookChannel, WebhookIntake
from bot.channels.meta.text import ELLIPSIS, SentTexts, split_text, typed_event
from bot.config import Settings
from bot.dialogue.channel import ChannelLimits
from bot.dialogue.core import DialogueCore
from handlers.events import (
    ACKNOWLEDGEMENT,
    MAX_BUTTON_PAYLOAD_BYTES,
    InboundEvent,
    UnreadableText,
    clean_text,
)
from storage.uow import UnitOfWorkFactory

CHANNEL = "messenger"
PATH = "/messenger/webhook"
# The health board's name for taking in deliveries.
INTAKE = "messenger intake"
# The Send API takes 300 calls a second per page for text and links
# (developers.facebook.com/documentation/business-messaging/messenger-platform/overview/
# rate-limiting); the bulk lane keeps below it, leaving room for the citizens who write meanwhile.
BULK_PER_SECOND = 250.0
# "Your app may be rate limited if too many messages are sent to a single thread" (same page,
# no number given): one a second, as Telegram's private chats, spaces the rare second post.
CHAT_PER_SECOND = 1.0
# An attachment sent with the message: up to 25 MB (.../send-messages/saving-assets).
MAX_FILE_BYTES = 25 * 1024 * 1024
# The longest id stored for an event (the inbox's column), and how long a PSID may be.
MAX_EVENT_ID = 128
MAX_PSID = 64
# The latest message that carried each (chat, button payload), for the flows' "edit the
# message whose button was pressed"; see MessengerChannel._button_refs.
REMEMBERED_BUTTONS = 50_000
# A referral's ref is at most 250 characters at Meta; the bot's slugs are far shorter.
MAX_REF = 64

logger = logging.getLogger(__name__)


class MessengerChannel(SignedWebhookChannel):
    """Everything Messenger-specific, built from settings by the composition root."""

    channel = CHANNEL
    # A text message 2000 characters (the Send API reference): shorter than the flows write
    # (4096), so this channel splits a longer text at paragraph breaks, and sends a caption,
    # which Messenger has not, as a text of its own. A button or quick reply title 20: it cuts
    # titles and writes each choice in full into the text (shaping.py). Payloads take 1000.
    limits = ChannelLimits(
        max_text=MAX_TEXT,
        max_caption=MAX_TEXT,
        max_button_label=MAX_TITLE,
        max_button_payload_bytes=MAX_PAYLOAD,
        max_image_bytes=MAX_FILE_BYTES,
        bulk_per_second=BULK_PER_SECOND,
        chat_per_second=CHAT_PER_SECOND,
    )

    def __init__(
        self,
        settings: Settings,
        core: DialogueCore,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
    ) -> None:
        assert settings.messenger_page_token is not None
        assert settings.messenger_app_secret is not None
        assert settings.messenger_verify_token is not None
        self._settings = settings
        self._core = core
        self._uow = uow
        self._clock = clock
        # A numeric page id names the page whose events are ours; a username cannot.
        page = settings.messenger_page_id
        self._page_id = page if page.isdigit() else None
        self._client = SendClient(
            settings.messenger_api_url, settings.messenger_page_token.get_secret_value()
        )
        super().__init__(
            platform="Messenger",
            path=PATH,
            intake=WebhookIntake(core, CHANNEL, INTAKE, self.read_event),
            api=self._client,
            app_secret=settings.messenger_app_secret.get_secret_value(),
            verify_token=settings.messenger_verify_token.get_secret_value(),
        )
        # What messages sent lately said: an "edit" then sends only what is new.
        self._sent = SentTexts()
        # Neither a quick reply nor a button tells which message carried it. The flows answer a
        # tap by editing that message (closing a vote card, a question), so the latest message
        # that carried each payload into a chat is remembered. In memory: after a restart, or on
        # another process, a tap has no message to edit and the flows answer with a new one.
        self._button_refs: OrderedDict[tuple[str, str], str] = OrderedDict()

    # -- inbound -----------------------------------------------------------------------------

    async def take_in(self, body: bytes) -> bool:
        """Store a delivery's citizen events and note its deliveries and reads; True once stored."""
        try:
            delivery = json.loads(body)
        except ValueError:
            delivery = None
        events, delivered, reads = _read_delivery(delivery, self._page_id)
        if not await self._intake.take(events):
            return False
        if delivered or reads:
            await self._apply_receipts(delivered, reads)
        return True

    async def _apply_receipts(
        self, delivered: list[str], reads: list[tuple[str, datetime]]
    ) -> None:
        """Record that sent messages arrived (by their mids) or were read (up to a time)."""
        async with self._uow() as uow:
            for mid in delivered:
                await uow.outbox.record_platform_status(CHANNEL, mid, "delivered", 2, None, None)
            for chat_id, until in reads:
                await uow.outbox.record_read_until(CHANNEL, chat_id, until)
            await uow.commit()

    def read_event(self, payload: dict[str, Any]) -> InboundEvent | None:
        """Translate a stored messaging event into the core's vocabulary (None: nothing to do)."""
        item = payload["messaging"]
        chat_id = str(item["sender"]["id"])
        postback = item.get("postback")
        message = item.get("message")
        referral = item.get("referral")
        if isinstance(postback, dict):
            # "Get started" from an m.me link in a new conversation carries its ref here.
            ref = _ref(postback.get("referral"))
            if ref is not None:
                return _start(chat_id, ref)
            wire = postback.get("payload")
            if isinstance(wire, str) and ":" not in wire:
                # Not a payload the bot makes (they are namespaced, "c:<slug>"): the page's
                # "Get started" button, whatever its payload was set to. It starts, as /start.
                return _start(chat_id, "")
            return self._tap(chat_id, wire, postback.get("mid"))
        if isinstance(referral, dict):
            ref = _ref(referral)
            return _start(chat_id, ref) if ref is not None else None
        if not isinstance(message, dict) or message.get("is_echo"):
            return None
        quick_reply = message.get("quick_reply")
        if isinstance(quick_reply, dict):
            return self._tap(chat_id, quick_reply.get("payload"), message.get("mid"))
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            return typed_event(CHANNEL, chat_id, text)
        # A photo, sticker, voice message, location or file: not read.
        return InboundEvent(channel=CHANNEL, chat_id=chat_id, unsupported_content=True)

    def _tap(self, chat_id: str, wire: Any, mid: Any) -> InboundEvent:
        if (
            not isinstance(wire, str)
            or not 0 < len(wire.encode("utf-8")) <= MAX_BUTTON_PAYLOAD_BYTES
        ):
            # Not a payload the bot made (a "Get started" button set up elsewhere): a stale tap.
            wire = "?"
        return InboundEvent(
            channel=CHANNEL,
            chat_id=chat_id,
            button=wire,
            button_message_ref=self._button_refs.get((chat_id, wire)),
            # No spinner to stop on Messenger; what an acknowledgement says is sent instead.
            button_ack_ref=str(mid) if mid else None,
        )

    # -- outbound ----------------------------------------------------------------------------

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Send one outbox payload; return the Messenger id of the last message sent for it."""
        kind = payload.get("type")
        client = self._client
        if kind == ACKNOWLEDGEMENT:
            # Messenger has no answer to a tap; what an acknowledgement says (a stale button,
            # "choose at least one") goes as a message of its own.
            text = str(payload.get("text") or "")
            return await self._send_texts(chat_id, text) if text.strip() else None
        if kind == "document":
            content = base64.b64decode(payload["content"])
            sent: str | None = await client.send_file(
                chat_id, "file", content, payload["filename"], "application/json"
            )
            caption = str(payload.get("caption") or "")
            return await self._send_texts(chat_id, caption) if caption.strip() else sent
        text = str(payload.get("text") or "")
        rows = payload.get("buttons") or []
        edit_ref = payload.get("edit_ref")
        if not isinstance(edit_ref, str) or not edit_ref:
            edit_ref = None
        if edit_ref is not None and not rows:
            # Messenger cannot change a sent message: the new state goes as a new one.
            text = self._sent.only_new(edit_ref, text)
            if not text:
                return edit_ref  # nothing the citizen has not seen
        sent = None
        image = payload.get("image")
        if image:
            # No caption on Messenger: the picture, then its text (and buttons) below it.
            sent = await client.send_file(chat_id, "image", image, "image.png", "image/png")
        if text.strip() or rows:
            for message in shape_message(text or ELLIPSIS, rows):
                sent = await client.send(chat_id, message)
                for button in payloads_of(message):
                    self._remember_button(chat_id, button, sent)
        if sent is not None:
            self._sent.remember(sent, text)
        return sent

    async def _send_texts(self, chat_id: str, text: str) -> str:
        sent = ""
        for piece in split_text(text, MAX_TEXT):
            sent = await self._client.send(chat_id, {"text": piece})
        return sent

    def _remember_button(self, chat_id: str, payload: str, message_id: str) -> None:
        key = (chat_id, payload)
        self._button_refs.pop(key, None)
        self._button_refs[key] = message_id
        while len(self._button_refs) > REMEMBERED_BUTTONS:
            self._button_refs.popitem(last=False)


def _ref(referral: Any) -> str | None:
    """The slug an m.me link's referral names, cleaned (None: no usable ref)."""
    if not isinstance(referral, dict) or not isinstance(referral.get("ref"), str):
        return None
    try:
        ref = clean_text(referral["ref"]).strip()[:MAX_REF]
    except UnreadableText:
        return None
    return ref or None


def _start(chat_id: str, slug: str) -> InboundEvent:
    return InboundEvent(channel=CHANNEL, chat_id=chat_id, command="start", argument=slug)


def _read_delivery(
    delivery: Any, page_id: str | None
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str], list[tuple[str, datetime]]]:
    """A delivery's citizen events, delivered mids and reads (anything else is skipped)."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    delivered: list[str] = []
    reads: list[tuple[str, datetime]] = []
    if not isinstance(delivery, dict) or delivery.get("object") != "page":
        return events, delivered, reads
    for entry in delivery.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        if page_id is not None and str(entry.get("id") or "") != page_id:
            continue  # another page of the same app: not ours to answer
        for item in entry.get("messaging") or []:
            if not isinstance(item, dict) or not isinstance(item.get("sender"), dict):
                continue
            sender = str(item["sender"].get("id") or "")
            if not 0 < len(sender) <= MAX_PSID:
                continue
            receipt = item.get("delivery")
            if isinstance(receipt, dict):
                delivered += [str(m) for m in receipt.get("mids") or [] if isinstance(m, str)]
                continue
            read = item.get("read")
            if isinstance(read, dict):
                watermark = read.get("watermark")
                if isinstance(watermark, int) and watermark > 0:
                    reads.append((sender, datetime.fromtimestamp(watermark / 1000, UTC)))
                continue
            message = item.get("message")
            if isinstance(message, dict) and message.get("is_echo"):
                continue  # the page's own message, sent by the bot or by staff in the inbox
            if not any(isinstance(item.get(k), dict) for k in ("message", "postback", "referral")):
                continue  # an opt-in, a reaction, an edit…: nothing the flows answer
            events.append((_event_id(item), sender, {"messaging": item}))
    return events, delivered, reads


def _event_id(item: dict[str, Any]) -> str:
    """The event's Messenger id; for one without (a referral), one made from what it says.

    A redelivery says the same, so it gets the same id and is applied once.
    """
    for key in ("message", "postback"):
        part = item.get(key)
        mid = part.get("mid") if isinstance(part, dict) else None
        if isinstance(mid, str) and 0 < len(mid) <= MAX_EVENT_ID:
            return mid
    said = json.dumps(item, sort_keys=True, ensure_ascii=True, default=str)
    return "ref." + hashlib.sha256(said.encode()).hexdigest()
