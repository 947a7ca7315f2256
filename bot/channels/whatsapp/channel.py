"""The WhatsApp channel: Meta's webhook → inbox → dialogue core, and outbox → Graph API.

Inbound, a signed delivery (``webhook.py``) may hold several messages and status notifications.
Every message is stored in the inbox under its WhatsApp id (``wamid``) before the delivery is
answered 200, so a redelivery is applied once; statuses update the outbox row whose message they
are about. A citizen's chat id is their ``wa_id`` (their phone number): personal data, so logs
name inbox and outbox ids, never it.

There are no slash commands on WhatsApp: a whole message such as "mine data" or "glem mig" is
read as the command it names (``handlers.typed_commands``); a tapped reply button or list row
carries the bot's button payload.

Outbound, replies go as free-form messages: the citizen wrote within the last 24 hours. A
planned post (the bulk lane) to a citizen whose last message is older goes as the approved
template the content plan names for it; without one it is refused with the reason, which the
post's report shows.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.channels.meta.intake import SignedWebhookChannel, WebhookIntake
from bot.channels.meta.text import SentTexts, typed_event
from bot.channels.whatsapp.graph import GraphClient
from bot.channels.whatsapp.shaping import (
    MAX_CAPTION,
    MAX_TEXT,
    shape_message,
    template_message,
)
from bot.config import Settings
from bot.dialogue.channel import ChannelLimits
from bot.dialogue.core import DialogueCore
from bot.dialogue.i18n import Catalogs, supported_language
from bot.dialogue.outbox import PartsProgress, Rejected
from handlers.context import language_of
from handlers.events import ACKNOWLEDGEMENT, MAX_BUTTON_PAYLOAD_BYTES, InboundEvent
from handlers.plan.rules import in_service_window
from storage.models import OutboxStatus
from storage.uow import UnitOfWorkFactory

CHANNEL = "whatsapp"
PATH = "/whatsapp/webhook"
# The health board's name for taking in deliveries.
INTAKE = "whatsapp intake"
# Throughput per business number: 80 messages a second by default, inbound included
# (developers.facebook.com/documentation/business-messaging/whatsapp/throughput; error 130429).
# The bulk lane keeps below it, leaving room for the citizens who write meanwhile.
BULK_PER_SECOND = 60.0
# The pair rate: about one message every 6 seconds to one citizen, sustained, with short
# bursts tolerated (Meta's error 131056; summarised in dev.to/wapgrowai_org "WhatsApp Cloud API
# rate limits in practice"). The bulk lane sends one post per citizen, so this only spaces the
# rare second post.
CHAT_PER_SECOND = 1 / 6
# An uploaded file: documents up to 100 MB, images 5 MB (Cloud API media limits).
MAX_IMAGE_BYTES = 5 * 1024 * 1024
# Message kinds that carry nothing to answer: a reaction to a bot message, a system notice.
IGNORED_KINDS = {"reaction", "system", "ephemeral", "request_welcome", "unsupported_reaction"}
# Status notifications in the order they happen; a late "delivered" never undoes a "read".
STATUS_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
# Meta's reasons a sent message did not arrive because of the citizen's side.
GONE_CODES = {131026, 131047, 131050}

logger = logging.getLogger(__name__)


class WhatsAppChannel(SignedWebhookChannel):
    """Everything WhatsApp-specific, built from settings by the composition root."""

    channel = CHANNEL
    # Text of a message 4096; a caption and an interactive message's text 1024. A button's
    # title is 20 (a list row's 24): shorter than the flows write (64), so this channel cuts
    # titles and writes each choice in full into the text (shaping.py) instead of the flows
    # writing for it. Button ids take 256 bytes, more than the bot's payloads (64).
    limits = ChannelLimits(
        max_text=MAX_TEXT,
        max_caption=MAX_CAPTION,
        max_button_label=20,
        max_button_payload_bytes=256,
        max_image_bytes=MAX_IMAGE_BYTES,
        bulk_per_second=BULK_PER_SECOND,
        chat_per_second=CHAT_PER_SECOND,
    )

    def __init__(
        self,
        settings: Settings,
        core: DialogueCore,
        uow: UnitOfWorkFactory,
        catalogs: Catalogs,
        clock: Callable[[], datetime],
    ) -> None:
        assert settings.whatsapp_token is not None
        assert settings.whatsapp_app_secret is not None
        assert settings.whatsapp_verify_token is not None
        self._settings = settings
        self._core = core
        self._uow = uow
        self._catalogs = catalogs
        self._clock = clock
        self._phone_number_id = settings.whatsapp_phone_number_id
        self._graph = GraphClient(
            settings.whatsapp_api_url,
            settings.whatsapp_token.get_secret_value(),
            settings.whatsapp_phone_number_id,
        )
        super().__init__(
            platform="WhatsApp",
            path=PATH,
            intake=WebhookIntake(core, CHANNEL, INTAKE, read_event),
            api=self._graph,
            app_secret=settings.whatsapp_app_secret.get_secret_value(),
            verify_token=settings.whatsapp_verify_token.get_secret_value(),
        )
        # What messages sent lately said: an "edit" then sends only what is new.
        self._sent = SentTexts()

    # -- inbound -----------------------------------------------------------------------------

    async def take_in(self, body: bytes) -> bool:
        """Store a delivery's messages and apply its statuses; True once stored."""
        try:
            delivery = json.loads(body)
        except ValueError:
            delivery = None
        messages, statuses = _read_delivery(delivery, self._phone_number_id)
        events = [(str(m["id"]), str(m["from"]), {"message": m}) for m in messages]
        if not await self._intake.take(events):
            return False
        if statuses:
            await self._apply_statuses(statuses)
        return True

    async def _apply_statuses(self, statuses: list[dict[str, Any]]) -> None:
        """Record what became of sent messages; a failure on the citizen's side marks them gone."""
        now = self._clock()
        async with self._uow() as uow:
            for status in statuses:
                name = str(status.get("status") or "")
                if name not in STATUS_ORDER:
                    continue
                codes = {
                    error.get("code")
                    for error in status.get("errors") or []
                    if isinstance(error, dict)
                }
                gone = name == "failed" and bool(codes & GONE_CODES)
                outcome = None
                if name == "failed":
                    outcome = OutboxStatus.UNREACHABLE if gone else OutboxStatus.FAILED
                reason = (
                    f"WhatsApp error {', '.join(str(c) for c in sorted(codes, key=str))}"
                    if codes
                    else None
                )
                message_id = await uow.outbox.record_platform_status(
                    CHANNEL,
                    str(status.get("id") or ""),
                    name,
                    STATUS_ORDER[name],
                    outcome,
                    reason,
                )
                if gone and status.get("recipient_id"):
                    await uow.participants.mark_unreachable(
                        CHANNEL, str(status["recipient_id"]), now
                    )
                    logger.info("outbox message %s did not arrive: citizen unreachable", message_id)
            await uow.commit()

    # -- outbound ----------------------------------------------------------------------------

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Send one outbox payload; return the WhatsApp id of the message carrying the buttons."""
        return await self._send_parts(chat_id, payload, None)

    async def deliver_in_parts(
        self, chat_id: str, payload: dict[str, Any], progress: PartsProgress
    ) -> str | None:
        """Send one outbox payload, going on after the parts an earlier attempt sent."""
        return await self._send_parts(chat_id, payload, progress)

    async def _send_parts(
        self, chat_id: str, payload: dict[str, Any], progress: PartsProgress | None
    ) -> str | None:
        # One outbox message may be several WhatsApp messages (an image, a long text, more
        # choices than one list holds). The parts are shaped once and kept with the outbox
        # message after each one sent, so a retry (or a restart) sends the rest, not it all.
        state = progress.state if progress is not None else None
        if state and isinstance(state.get("parts"), list) and isinstance(state.get("sent"), int):
            parts, done = state["parts"], state["sent"]
            sent, text = state.get("last"), state.get("text")
        else:
            parts, text, sent = await self._shape(chat_id, payload)
            done = 0
        for index in range(done, len(parts)):
            sent = await self._graph.send({"to": chat_id, **parts[index]})
            if progress is not None and index + 1 < len(parts):
                await progress.save({"parts": parts, "sent": index + 1, "last": sent, "text": text})
        if sent is not None and text is not None:
            self._sent.remember(sent, text)
        return sent

    async def _shape(
        self, chat_id: str, payload: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str | None, str | None]:
        """The WhatsApp messages (without recipient) for a payload, in sending order; the text
        to remember for edits (None: not a message of the conversation); and what to answer if
        there is nothing to send."""
        kind = payload.get("type")
        if kind == ACKNOWLEDGEMENT:
            # WhatsApp has no answer to a tap; what an acknowledgement says (a stale button,
            # "choose at least one") goes as a message of its own.
            if payload.get("text"):
                return [{"type": "text", "text": {"body": payload["text"]}}], None, None
            return [], None, None
        if "template" in payload and not await self._in_window(chat_id):
            template = payload.get("template")
            if not template:
                raise Rejected("outside WhatsApp's 24-hour window and the post names no template")
            message = template_message(
                str(template["name"]), str(template["language"]), payload["text"]
            )
            return [message], None, None
        if kind == "document":
            content = base64.b64decode(payload["content"])
            media = await self._graph.upload(content, payload["filename"], "application/json")
            document: dict[str, Any] = {"id": media, "filename": payload["filename"]}
            if payload.get("caption"):
                document["caption"] = payload["caption"][:MAX_CAPTION]
            return [{"type": "document", "document": document}], None, None
        parts: list[dict[str, Any]] = []
        text = str(payload.get("text") or "")
        rows = payload.get("buttons") or []
        edit_ref = payload.get("edit_ref")
        if not isinstance(edit_ref, str) or not edit_ref.startswith("wamid."):
            edit_ref = None
        if edit_ref is not None and not rows:
            text = self._sent.only_new(edit_ref, text)
            if not text:
                return [], None, edit_ref  # nothing the citizen has not seen
        image = payload.get("image")
        if image and len(image) > MAX_IMAGE_BYTES:
            # The flows allow Telegram's 10 MB; WhatsApp takes 5. The text still goes.
            logger.warning("a post's image is over WhatsApp's 5 MB: sent as text only")
            image = None
        if image:
            media = await self._graph.upload(image, "image.png", "image/png")
            picture: dict[str, Any] = {"id": media}
            if not any(b.get("payload") for row in rows for b in row):
                links = "\n".join(f"{b['label']}: {b['url']}" for row in rows for b in row)
                caption = f"{text}\n\n{links}" if links else text
                if len(caption) <= MAX_CAPTION:
                    picture["caption"] = caption
                    text, rows = "", []
            parts.append({"type": "image", "image": picture})
        if text.strip() or rows:
            parts += shape_message(
                text or "…", rows, choose=await self._choose_label(chat_id, rows)
            )
        if parts and edit_ref is not None:
            # WhatsApp cannot change a sent message: the new state goes as a reply to it.
            parts[0] = {**parts[0], "context": {"message_id": edit_ref}}
        return parts, text, None

    async def _in_window(self, chat_id: str) -> bool:
        """Whether the citizen wrote within the last 24 hours (free-form messages allowed)."""
        async with self._uow.read() as uow:
            participant = await uow.participants.get(CHANNEL, chat_id)
        return participant is not None and in_service_window(
            participant.last_seen_at, self._clock()
        )

    async def _choose_label(self, chat_id: str, rows: list[list[dict[str, str]]]) -> str:
        """The list button's text in the citizen's language (read only when a list is sent)."""
        if sum(1 for row in rows for b in row if b.get("payload")) <= 3:
            return ""
        async with self._uow.read() as uow:
            participant = await uow.participants.get(CHANNEL, chat_id)
        language = supported_language(language_of(participant) if participant else None)
        return self._catalogs.texts(language or self._catalogs.default_language)("whatsapp.choose")


def _read_delivery(
    delivery: Any, phone_number_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages and statuses a delivery holds for our number (anything else is skipped)."""
    messages: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    if not isinstance(delivery, dict):
        return messages, statuses
    for entry in delivery.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or change.get("field") != "messages":
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata") or {}
            if str(metadata.get("phone_number_id") or "") != phone_number_id:
                continue  # another number of the same app: not ours to answer
            for message in value.get("messages") or []:
                if (
                    isinstance(message, dict)
                    and isinstance(message.get("id"), str)
                    and 0 < len(message["id"]) <= 128
                    and isinstance(message.get("from"), str)
                    and 0 < len(message["from"]) <= 64
                ):
                    messages.append(message)
            statuses += [s for s in value.get("statuses") or [] if isinstance(s, dict)]
    return messages, statuses


def read_event(payload: dict[str, Any]) -> InboundEvent | None:
    """Translate a stored WhatsApp message into the core's vocabulary (None: nothing to do)."""
    message = payload["message"]
    chat_id = str(message["from"])
    kind = message.get("type")
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    if kind in IGNORED_KINDS:
        return None
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply")
        wire = reply.get("id") if isinstance(reply, dict) else None
        if isinstance(wire, str) and 0 < len(wire.encode("utf-8")) <= MAX_BUTTON_PAYLOAD_BYTES:
            return InboundEvent(
                channel=CHANNEL,
                chat_id=chat_id,
                button=wire,
                button_message_ref=str(context.get("id")) if context.get("id") else None,
                # No spinner to stop on WhatsApp; what an acknowledgement says is sent instead.
                button_ack_ref=str(message["id"]),
            )
        return InboundEvent(channel=CHANNEL, chat_id=chat_id, unsupported_content=True)
    if kind == "button":
        # A quick-reply button of a template: its text, as if typed.
        text = str((message.get("button") or {}).get("text") or "")
    elif kind == "text":
        text = str((message.get("text") or {}).get("body") or "")
    else:
        # An image, voice message, location, sticker, contact, document…: not read.
        return InboundEvent(channel=CHANNEL, chat_id=chat_id, unsupported_content=True)
    return typed_event(CHANNEL, chat_id, text)
