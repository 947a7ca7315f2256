"""The Telegram channel: long polling or a webhook, update → event, and outbox delivery."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import traceback
import warnings
from dataclasses import replace
from datetime import timedelta
from typing import Any

from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeDefault,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import (
    ChatType,
    FileSizeLimit,
    FloodLimit,
    InlineKeyboardButtonLimit,
    MessageLimit,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler
from telegram.warnings import PTBUserWarning

from bot.channels.telegram.processor import ChatOrderedUpdateProcessor
from bot.channels.telegram.transport import AiohttpRequest
from bot.channels.telegram.webhook import WebhookEndpoint
from bot.config import Settings
from bot.dialogue.channel import ChannelLimits
from bot.dialogue.core import DialogueCore
from bot.dialogue.i18n import Catalogs
from bot.dialogue.outbox import RecipientGone, Rejected, RetryLater, TransientFailure
from bot.dialogue.tasks import stop_tasks
from handlers.events import ACKNOWLEDGEMENT, InboundEvent, UnreadableText, clean_text, parse_command
from storage.database import is_transient, retry_delay

CHANNEL = "telegram"
MEMBERSHIP_CACHE_SECONDS = 60.0
# Telegram documents no limit for a button's text; a phone cuts a long one off anyway.
MAX_BUTTON_LABEL = 64
MEMBER_STATUSES = {"creator", "administrator", "member"}
# Telegram hands out at most 100 updates per getUpdates call.
UPDATES_PER_POLL = 100
COMMANDS = ("start", "help", "privacy", "mydata", "forget", "language", "stop")
# The names the Danish menu shows: Danish texts name these (the English names work too).
DANISH_NAMES = {
    "help": "hjaelp",
    "privacy": "privatliv",
    "mydata": "minedata",
    "forget": "glem",
    "language": "sprog",
}
MAX_BACKOFF_SECONDS = 30.0
# The health board's name for taking in updates.
INTAKE = "telegram intake"
# An update as received: parsed (None if python-telegram-bot cannot read it) and as Telegram sent
# it, which is what the inbox keeps.
Received = tuple[Update | None, dict[str, Any]]
# Seconds a long poll may take beyond its own timeout before the connection counts as lost.
POLL_READ_MARGIN = 10.0
# The update kinds update_to_event reads; a webhook asks Telegram for these only (the poller
# asks for all, and marks the rest done).
HANDLED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
# Telegram opens at most 100 connections to a webhook. Each delivery holds its connection only
# until the update is committed (not while it is applied), so up to the updates the bot takes
# on at once.
MAX_WEBHOOK_CONNECTIONS = 100
# Seconds a webhook delivery waits for an unavailable database before it answers 503: long
# enough to ride out a brief lock, short enough not to hold Telegram's connection (and that
# chat's later updates) while Telegram would deliver it again anyway.
WEBHOOK_STORE_PATIENCE = 5.0

# python-telegram-bot suggests its own method whenever do_api_request names one it knows; the
# channel calls do_api_request on purpose (see _call, _get_updates). Only that suggestion is
# silenced, for the process: a catch_warnings around each call, as before, was left by
# concurrent calls in the wrong order and silenced every warning of the process for good.
OWN_METHOD_SUGGESTION = r"Please use 'Bot\."

logger = logging.getLogger(__name__)


def _retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns that retry_after will become a timedelta; accept both.
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _name(user: Any) -> str | None:
    """A sender's first name as it may be shown to moderators: cleaned, or None."""
    try:
        return clean_text(user.first_name)[:64] or None
    except UnreadableText:
        return None


def update_to_event(update: Update, bot_username: str | None) -> InboundEvent | None:
    """Translate a Telegram update into the core's vocabulary; None if no flow cares about it."""
    query = update.callback_query
    if query is not None:
        message = query.message
        chat = message.chat if message is not None else None
        return InboundEvent(
            channel=CHANNEL,
            chat_id=str(chat.id if chat is not None else query.from_user.id),
            button=query.data or "",
            button_message_ref=str(message.message_id) if isinstance(message, Message) else None,
            button_ack_ref=query.id,
            language_hint=query.from_user.language_code,
            is_private_chat=chat is None or chat.type == ChatType.PRIVATE,
            sender_id=str(query.from_user.id),
            sender_name=_name(query.from_user),
        )
    message = update.message
    if message is None:
        return None
    try:
        text = clean_text(message.text or "")
    except UnreadableText:
        text, unreadable = "", True
    else:
        unreadable = False
    parsed = parse_command(text)
    addressee = parsed.addressee.lower() if parsed else ""
    if addressee and bot_username and addressee != bot_username.lower():
        # '/start@another_bot' in a group is meant for that bot, not for us.
        return None
    user = message.from_user
    return InboundEvent(
        channel=CHANNEL,
        chat_id=str(message.chat.id),
        text=text,
        command=parsed.name if parsed else None,
        argument=parsed.argument if parsed else "",
        language_hint=user.language_code if user is not None else None,
        is_private_chat=message.chat.type == ChatType.PRIVATE,
        unsupported_content=message.text is None,
        unreadable=unreadable,
        sender_id=str(user.id) if user is not None else None,
        sender_name=_name(user) if user is not None else None,
    )


def _keyboard(rows: list[list[dict[str, str]]]) -> dict[str, Any] | None:
    """An outbox message's buttons as the Bot API's inline keyboard (None: no buttons)."""
    if not rows:
        return None
    return {
        "inline_keyboard": [
            [
                {"text": button["label"], "callback_data": button["payload"]}
                if "payload" in button
                else {"text": button["label"], "url": button["url"]}
                for button in row
            ]
            for row in rows
        ]
    }


def _markup(rows: list[list[dict[str, str]]]) -> InlineKeyboardMarkup | None:
    """The same keyboard as python-telegram-bot's object, for the calls made through it."""
    keyboard = _keyboard(rows)
    return InlineKeyboardMarkup.de_json(keyboard, None) if keyboard else None


class TelegramChannel:
    """Everything Telegram-specific, built from settings by the composition root."""

    channel = CHANNEL

    def __init__(self, settings: Settings, core: DialogueCore, catalogs: Catalogs) -> None:
        assert settings.telegram_token is not None
        self._settings = settings
        warnings.filterwarnings("ignore", message=OWN_METHOD_SUGGESTION, category=PTBUserWarning)
        # Telegram's published limits; the bulk rate and a group's share are settings, since a
        # bot with paid broadcasts may send faster and a careful one slower.
        self.limits = ChannelLimits(
            max_text=MessageLimit.MAX_TEXT_LENGTH,
            max_caption=MessageLimit.CAPTION_LENGTH,
            max_button_label=MAX_BUTTON_LABEL,
            max_button_payload_bytes=InlineKeyboardButtonLimit.MAX_CALLBACK_DATA,
            max_image_bytes=FileSizeLimit.PHOTOSIZE_UPLOAD,
            bulk_per_second=settings.bulk_messages_per_second,
            chat_per_second=FloodLimit.MESSAGES_PER_SECOND_PER_CHAT,
            group_per_minute=settings.group_messages_per_minute,
            group_chat_prefix="-",  # groups and channels have negative ids
            public_channel=settings.public_channel_id is not None,
        )
        self._core = core
        self._catalogs = catalogs
        self.state = "starting"
        self._stopping = asyncio.Event()
        self._poll_task: asyncio.Task[None] | None = None
        long_poll = AiohttpRequest(1, read_timeout=10.0)
        requests = AiohttpRequest(settings.telegram_connections)
        self._requests = (requests, long_poll)
        self.application: Application[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(settings.telegram_token.get_secret_value())
            .base_url(settings.telegram_api_url)
            .base_file_url(settings.telegram_api_url.replace("/bot", "/file/bot"))
            .request(requests)
            .get_updates_request(long_poll)
            .updater(None)
            .concurrent_updates(
                ChatOrderedUpdateProcessor(
                    settings.max_concurrent_updates,
                    lambda chat_id: core.in_order(CHANNEL, chat_id),
                )
            )
            .build()
        )
        self._members = MembershipCache(self.application.bot)
        # Telegram's file id of each image uploaded, by content: a broadcast uploads once.
        self._uploaded: dict[str, str] = {}
        # Held while an image's first upload is under way, so sends of it at the same time (a
        # citizen's results and the channel's) wait for its file id instead of uploading again.
        self._uploading: dict[str, asyncio.Lock] = {}
        # Chats where only members may act: the moderators' and the staff's.
        self._verified_chats = {
            str(chat)
            for chat in (settings.moderator_chat_id, settings.staff_chat_id)
            if chat is not None
        }
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        # Set once webhook deliveries may be taken in (see WebhookEndpoint's ready).
        self._taking_deliveries = False

    def add_routes(self, app: web.Application) -> None:
        """In webhook mode, serve the webhook (before the web server starts: routes freeze)."""
        if not self._settings.telegram_webhook:
            return
        assert self._settings.telegram_webhook_secret is not None
        WebhookEndpoint(
            self._settings.telegram_webhook_secret.get_secret_value(),
            self._take_in_delivery,
            lambda: self._taking_deliveries and not self._stopping.is_set(),
        ).add_route(app)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, recover what a crash left behind, then start polling or set the webhook.

        Raises InvalidToken if Telegram refuses the token.

        Switching between polling and the webhook loses nothing: neither call drops pending
        updates, Telegram keeps each update until it is confirmed (the next getUpdates offset,
        or a 2xx answer to its delivery), and the inbox ignores an update id it already holds.
        """
        await self.application.initialize()
        bot = self.application.bot
        self._core.register_reader(CHANNEL, self._read_stored)
        webhook = self._settings.telegram_webhook
        if not webhook:
            # Telegram refuses getUpdates while a webhook is set; polling owns the bot from here.
            await bot.delete_webhook(drop_pending_updates=False)
        await self._publish_commands()
        self._core.delivery.register(self)
        # Replies of events applied before a crash go out before anything new is handled.
        await self._core.delivery.deliver_backlog(CHANNEL)
        await self.application.start()
        recovered = await self._core.pending_payloads(CHANNEL)
        for external_id, payload in recovered:
            try:
                update = Update.de_json(payload, bot)
            except Exception as error:
                await self._core.mark_unreadable(CHANNEL, external_id, type(error).__name__)
                continue
            await self.application.update_queue.put(update)
        if recovered:
            logger.info("recovered %d unhandled Telegram updates", len(recovered))
        if webhook:
            # Only now: a delivery must queue behind the recovered updates of its chat.
            self._taking_deliveries = True
            if not await self._set_webhook():
                return
        else:
            self._poll_task = asyncio.create_task(self._poll(), name="telegram-durable-poller")
            self._poll_task.add_done_callback(self._poll_ended)
        self.state = "running"
        logger.info(
            "Telegram channel running as @%s (%s)",
            bot.username,
            "webhook" if webhook else "long polling",
        )

    async def _set_webhook(self) -> bool:
        """Ask Telegram to deliver here; False (and an error state) if it refuses the address.

        Never with drop_pending_updates: what waits at Telegram is delivered here instead.
        """
        settings = self._settings
        assert settings.telegram_webhook_secret is not None
        try:
            await self.application.bot.set_webhook(
                settings.telegram_webhook_url,
                secret_token=settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=HANDLED_UPDATES,
                max_connections=min(MAX_WEBHOOK_CONNECTIONS, settings.max_concurrent_updates),
            )
        except BadRequest as error:
            # The rest of the bot (web chat, health) runs on; the health check says why.
            self.state = "error: Telegram refused the webhook address"
            logger.critical("Telegram refused BORGERDIALOG_TELEGRAM_WEBHOOK_URL: %s", error.message)
            return False
        return True

    @property
    def username(self) -> str | None:
        """The bot's username, known once connected."""
        return self.application.bot.username if self.state == "running" else None

    async def stop(self) -> None:
        """Stop taking in, finish the updates already taken in, and close connections.

        The webhook stays set: Telegram keeps what arrives meanwhile for the next start (or
        for another process behind the same address).
        """
        self._stopping.set()
        await stop_tasks(self._poll_task)
        if self.application.running:
            await self.application.stop()
        self._core.delivery.unregister(CHANNEL)
        await self.application.shutdown()
        # PTB skips its shutdown when initialize() failed (a refused token); close ours anyway.
        for request in self._requests:
            await request.shutdown()
        self.state = "stopped"

    async def _publish_commands(self) -> None:
        for language in ("da", "en"):
            texts = self._catalogs.texts(language)
            names = DANISH_NAMES if language == "da" else {}
            commands = [
                BotCommand(names.get(name, name), texts(f"command.{name}")) for name in COMMANDS
            ]
            language_code = None if language == self._catalogs.default_language else language
            await self.application.bot.set_my_commands(
                commands, scope=BotCommandScopeDefault(), language_code=language_code
            )

    # -- inbound -----------------------------------------------------------------------------

    def _poll_ended(self, task: asyncio.Task[None]) -> None:
        """Say so when polling ends while the channel should be running: intake has stopped."""
        if self._stopping.is_set() or task.cancelled():
            return
        error = task.exception()
        if self.state.startswith("error"):
            return  # the loop said why (a refused token)
        self.state = f"error: polling stopped ({type(error).__name__ if error else 'ended'})"
        # The type and where, not the message: it may quote an update.
        where = "".join(traceback.format_tb(error.__traceback__)) if error else ""
        logger.critical("Telegram polling stopped: %s\n%s", self.state, where)

    async def _poll(self) -> None:
        """Long-poll Telegram; store each batch before the next call confirms it.

        getUpdates with offset N confirms every update below N, so the offset only moves past a
        batch once the batch is committed to the inbox. We never derive the offset from the
        database: Telegram may restart its update ids after a quiet week. No failure of the
        database or of one odd update ends this loop: it waits, retries, and sets aside what can
        never be stored or read.
        """
        offset: int | None = None
        failures = 0
        unexpected = 0
        # Set when taking in the last batch failed part-way: it comes again, and what of it is
        # stored but not applied must be queued although storing it again adds nothing new.
        retrying = False
        while not self._stopping.is_set():
            try:
                updates = await self._get_updates(offset)
            except RetryAfter as error:
                await asyncio.sleep(_retry_seconds(error))
                continue
            except InvalidToken:
                self.state = "error: Telegram refused the bot token"
                logger.critical("Telegram refused the bot token; polling stopped")
                return
            except Conflict:
                self.state = "error: another process is polling this bot"
                logger.error("another process is polling this bot (409 Conflict); retrying")
                failures += 1
                await asyncio.sleep(min(MAX_BACKOFF_SECONDS, 2.0**failures))
                continue
            except (NetworkError, TelegramError) as error:
                self.state = "reconnecting"
                failures += 1
                logger.warning("getUpdates failed (%s); retrying", type(error).__name__)
                await asyncio.sleep(min(MAX_BACKOFF_SECONDS, 2.0 ** min(failures, 5) / 4))
                continue
            except Exception as error:
                # Not a Telegram error: an answer that is not what the Bot API documents.
                unexpected += 1
                self.state = "reconnecting"
                logger.error("getUpdates failed unexpectedly: %s", type(error).__name__)
                await asyncio.sleep(retry_delay(unexpected))
                continue
            failures = 0
            unexpected = 0
            self.state = "running"
            if not updates:
                continue
            try:
                taken = await self._take_in(updates, retrying)
            except Exception as error:
                # Whatever failed, the batch is not confirmed: it comes again and is taken in
                # then. The loop itself must never end on it.
                retrying = True
                unexpected += 1
                logger.error("taking in updates failed: %s", type(error).__name__)
                await asyncio.sleep(retry_delay(unexpected))
                continue
            if not taken:
                return  # stopping while the database was away: nothing was confirmed
            retrying = False
            ids = [i for i in (_update_id(raw) for _, raw in updates) if i >= 0]
            if ids:
                offset = max(ids) + 1

    async def _take_in(
        self, updates: list[Received], retrying: bool, patience: float | None = None
    ) -> bool:
        """Store a batch, then queue what of it is new; False if not stored (stopping first,
        or the database still away after ``patience`` seconds)."""
        stored = await self._store(updates, patience)
        if stored is None:
            return False
        new, interrupted = stored
        seen = [_external_id(raw) for _, raw in updates]
        seen = [external_id for external_id in seen if external_id not in new]
        if (interrupted or retrying) and seen:
            # A commit whose answer was lost looks like a duplicate when stored again: queue
            # every update of the batch still pending (handling one twice does nothing).
            new |= await self._core.still_pending(CHANNEL, seen)
        for update, raw in updates:
            # An update stored before (Telegram redelivers what it had no confirmation for)
            # is already queued or handled; queue only the new ones.
            external_id = _external_id(raw)
            if external_id not in new:
                continue
            if update is not None:
                await self.application.update_queue.put(update)
            else:
                await self._core.mark_unreadable(CHANNEL, external_id, "unreadable update")
        return True

    async def _take_in_delivery(self, body: bytes) -> bool:
        """Take in one webhook delivery as the poller takes in a batch; True once stored.

        Telegram delivers an update again when it had no 2xx answer, perhaps after this
        process stored it without answering: every delivery counts as a retry, so an update
        stored but never queued is queued now (a stored one costs one more read, a new one
        nothing). A body that is not an update is set aside and confirmed, as the poller
        does with what it cannot read, so Telegram does not deliver it for a day.
        """
        try:
            item = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8
            item = None
        if isinstance(item, dict) and _update_id(item) >= 0:
            received = _parse(item, self.application.bot)
            return await self._take_in([received], True, WEBHOOK_STORE_PATIENCE)
        shown = item if item is not None else body.decode("utf-8", "replace")
        # Named by its content, so a repeat of the same body is set aside once.
        name = "webhook-" + hashlib.sha256(body).hexdigest()[:32]
        await self._core.set_aside(
            CHANNEL, name, None, json.dumps(shown, ensure_ascii=True), "not an update"
        )
        return True

    async def _store(
        self, updates: list[Received], patience: float | None = None
    ) -> tuple[set[str], bool] | None:
        """Commit a batch to the inbox, waiting out database faults; None if stopping first.

        Returns the external ids stored now, and whether a fault interrupted the storing (an
        interrupted commit may have happened without the bot hearing so). A batch the database
        refuses for what it holds (not for being unavailable) is stored update by update, and an
        update refused on its own is set aside: kept as failed, with its raw text, for an
        operator, and confirmed to Telegram so it cannot block the rest. With ``patience``,
        database faults are waited out only that many seconds (None after that).
        """
        batch = [_as_inbox_event(update, raw) for update, raw in updates]
        deadline = None if patience is None else time.monotonic() + patience
        return await self._store_batch(batch, deadline)

    async def _store_batch(
        self, batch: list[tuple[str, str | None, dict[str, Any]]], deadline: float | None
    ) -> tuple[set[str], bool] | None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                new = await self._core.accept(CHANNEL, batch)
            except Exception as error:
                if not is_transient(error):
                    return await self._store_one_by_one(batch, deadline)
                attempt += 1
                self._core.health.fault(INTAKE, f"cannot store updates ({type(error).__name__})")
                delay = retry_delay(attempt)
                if deadline is not None and time.monotonic() + delay > deadline:
                    return None
                await asyncio.sleep(delay)
                continue
            if attempt:
                self._core.health.clear(INTAKE)
            return new, attempt > 0
        return None

    async def _store_one_by_one(
        self, batch: list[tuple[str, str | None, dict[str, Any]]], deadline: float | None
    ) -> tuple[set[str], bool] | None:
        new: set[str] = set()
        for position, event in enumerate(batch):
            external_id, chat_id, payload = event
            try:
                new |= await self._core.accept(CHANNEL, [event])
            except Exception as error:
                if is_transient(error):
                    # The database went away meanwhile: wait for it with the rest of the batch.
                    rest = await self._store_batch(batch[position:], deadline)
                    return None if rest is None else (new | rest[0], True)
                raw = json.dumps(payload, ensure_ascii=True, default=str)
                await self._core.set_aside(CHANNEL, external_id, chat_id, raw, type(error).__name__)
        return new, False

    async def _get_updates(self, offset: int | None) -> list[Received]:
        """getUpdates, each update parsed on its own.

        python-telegram-bot's get_updates parses the whole answer at once: one update it cannot
        parse fails every poll after it, and is logged whole (with what the citizen wrote). Here
        an update that does not parse is handed on as its raw dictionary, stored as unreadable
        and confirmed like any other.
        """
        bot = self.application.bot
        timeout = self._settings.polling_timeout
        raw = await bot.do_api_request(
            "getUpdates",
            api_kwargs={
                "offset": offset,
                "limit": UPDATES_PER_POLL,
                "timeout": timeout,
                "allowed_updates": Update.ALL_TYPES,
            },
            read_timeout=timeout + POLL_READ_MARGIN,
        )
        return [
            _parse(item if isinstance(item, dict) else {"not an object": item}, bot)
            for item in (raw if isinstance(raw, list) else [])
        ]

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            event = update_to_event(update, self.application.bot.username)
        except Exception as error:
            # Well-formed JSON, but not an update as Telegram documents it: keep it aside.
            await self._core.mark_unreadable(CHANNEL, str(update.update_id), type(error).__name__)
            return
        await self._core.handle(CHANNEL, str(update.update_id), await self._verified(event))

    async def _read_stored(self, payload: dict[str, Any]) -> InboundEvent | None:
        """An update another process stored, read as if it had just arrived here."""
        update = Update.de_json(payload, self.application.bot)
        return await self._verified(update_to_event(update, self.application.bot.username))

    async def _verified(self, event: InboundEvent | None) -> InboundEvent | None:
        """Mark whether the sender belongs to the moderator or staff chat they act in.

        Only members may act there; asked before the unit of work opens.
        """
        if (
            event is not None
            and event.chat_id in self._verified_chats
            and event.sender_id is not None
        ):
            member = await self._members.check(int(event.chat_id), int(event.sender_id))
            event = replace(event, sender_verified=member)
        return event

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        logger.error(
            "unhandled error in the Telegram channel: %s",
            type(error).__name__,
            exc_info=error if error is not None else None,
        )

    # -- outbound ----------------------------------------------------------------------------

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Send one outbox payload to Telegram; translate its errors for the outbox."""
        try:
            if payload["type"] == ACKNOWLEDGEMENT:
                await self._answer_button(payload)
                return None
            if payload["type"] == "document":
                sent = await self.application.bot.send_document(
                    int(chat_id),
                    InputFile(base64.b64decode(payload["content"]), filename=payload["filename"]),
                    caption=payload.get("caption"),
                )
                return str(sent.message_id)
            if payload.get("image"):
                return await self._send_photo(int(chat_id), payload)
            return await self._send_or_edit(int(chat_id), payload)
        except RetryAfter as error:
            raise RetryLater(_retry_seconds(error)) from error
        except Forbidden as error:
            raise RecipientGone(error.message) from error
        except BadRequest as error:
            raise Rejected(error.message) from error
        except (NetworkError, InvalidToken) as error:
            raise TransientFailure(type(error).__name__) from error

    async def _send_or_edit(self, chat_id: int, payload: dict[str, Any]) -> str:
        keyboard = _keyboard(payload.get("buttons") or [])
        edit_ref = payload.get("edit_ref")
        if edit_ref is not None:
            try:
                # Without a keyboard, Telegram removes the one the message had.
                await self._call(
                    "editMessageText",
                    chat_id=chat_id,
                    message_id=int(edit_ref),
                    text=payload["text"],
                    reply_markup=keyboard,
                )
                return str(edit_ref)
            except BadRequest as error:
                reason = error.message.lower()
                if "not modified" in reason:
                    return str(edit_ref)
                if "not found" not in reason and "can't be edited" not in reason:
                    raise
                # The message is gone or too old to edit: say it anew instead.
        sent = await self._call(
            "sendMessage",
            chat_id=chat_id,
            text=payload["text"],
            reply_markup=keyboard,
            allow_paid_broadcast=True if payload.get("paid") else None,
        )
        return str(sent["message_id"])

    async def _call(self, method: str, **parameters: Any) -> Any:
        """Call a Bot API method with plain values; return its plain answer.

        python-telegram-bot's own methods build objects of what they send and of the answer (a
        whole Message, its chat and sender, for every message sent); the outbox needs only the
        message id, and that building was a third of the CPU a message cost. Errors are
        python-telegram-bot's as ever. Parameters that are None are left out.
        """
        return await self.application.bot.do_api_request(
            method,
            api_kwargs={name: value for name, value in parameters.items() if value is not None},
        )

    async def _send_photo(self, chat_id: int, payload: dict[str, Any]) -> str:
        """Send a post's image with its text as caption; upload it once, then reuse its id."""
        image: bytes = payload["image"]
        fingerprint = hashlib.sha256(image).hexdigest()
        if fingerprint not in self._uploaded:
            async with self._uploading.setdefault(fingerprint, asyncio.Lock()):
                if fingerprint not in self._uploaded:
                    upload = InputFile(image, filename="image.png")
                    sent = await self._photo(chat_id, upload, payload)
                    if sent.photo:
                        self._uploaded[fingerprint] = sent.photo[-1].file_id
                    return str(sent.message_id)
        sent = await self._photo(chat_id, self._uploaded[fingerprint], payload)
        return str(sent.message_id)

    async def _photo(
        self, chat_id: int, photo: InputFile | str, payload: dict[str, Any]
    ) -> Message:
        sent: Message = await self.application.bot.send_photo(
            chat_id,
            photo,
            caption=payload["text"],
            reply_markup=_markup(payload.get("buttons") or []),
            allow_paid_broadcast=True if payload.get("paid") else None,
        )
        return sent

    async def _answer_button(self, payload: dict[str, Any]) -> None:
        try:
            await self.application.bot.answer_callback_query(
                payload["ack_ref"], text=payload.get("text"), show_alert=bool(payload.get("alert"))
            )
        except BadRequest as error:
            # Telegram only accepts an answer within a short time; a late one is harmless.
            if "query is too old" not in error.message.lower():
                raise


class MembershipCache:
    """Whether someone belongs to a chat, asked of Telegram and remembered briefly.

    Brief, so that someone removed from the moderator chat loses their say within a minute.
    """

    def __init__(self, bot: Any, seconds: float = MEMBERSHIP_CACHE_SECONDS) -> None:
        self._bot = bot
        self._seconds = seconds
        self._known: dict[tuple[int, int], tuple[bool, float]] = {}

    async def check(self, chat_id: int, user_id: int) -> bool | None:
        """True for a member, False for anyone else, None when Telegram could not say."""
        now = time.monotonic()
        known = self._known.get((chat_id, user_id))
        if known is not None and known[1] > now:
            return known[0]
        try:
            member = await self._bot.get_chat_member(chat_id, user_id)
        except BadRequest:
            is_member = False  # Telegram does not know them in this chat
        except TelegramError as error:
            logger.warning("could not check a moderator's membership: %s", type(error).__name__)
            return None
        else:
            is_member = member.status in MEMBER_STATUSES or bool(
                getattr(member, "is_member", False)
            )
        self._known[(chat_id, user_id)] = (is_member, now + self._seconds)
        return is_member


def _parse(raw: dict[str, Any], bot: Any) -> Received:
    """An update as python-telegram-bot reads it, with the dictionary it came as."""
    try:
        return Update.de_json(raw, bot), raw
    except Exception as error:
        logger.error("an update could not be read: %s", type(error).__name__)
        return None, raw


def _update_id(raw: dict[str, Any]) -> int:
    value = raw.get("update_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _external_id(raw: dict[str, Any]) -> str:
    """The inbox name of an update: its id, or for one without a usable id, its content's hash.

    Each such update is kept for an operator once, however many there are, and the same one
    delivered again is recognised.
    """
    update_id = _update_id(raw)
    if update_id >= 0:
        return str(update_id)
    content = json.dumps(raw, ensure_ascii=True, sort_keys=True, default=str).encode()
    return "unreadable-" + hashlib.sha256(content).hexdigest()[:32]


def _as_inbox_event(
    update: Update | None, raw: dict[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    """The inbox row of an update: external id, chat id, and the update as Telegram sent it.

    An update that could not be parsed is stored already marked unreadable, so it is never
    queued for a flow but stays visible to an operator.
    """
    if update is not None:
        return str(update.update_id), _chat_id(update), raw
    text = json.dumps(raw, ensure_ascii=True, default=str)
    return _external_id(raw), _raw_chat_id(raw), {"unreadable": text}


def _raw_chat_id(update: dict[str, Any]) -> str | None:
    """The chat of an update that did not parse, if it can be found: /forget must reach it."""
    for kind in ("message", "edited_message", "callback_query"):
        part = update.get(kind)
        if isinstance(part, dict) and kind == "callback_query":
            part = part.get("message") or {"chat": part.get("from")}
        chat = part.get("chat") if isinstance(part, dict) else None
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return str(chat["id"])
    return None


def _chat_id(update: Update) -> str | None:
    chat = update.effective_chat
    if chat is not None:
        return str(chat.id)
    user = update.effective_user
    return str(user.id) if user is not None else None
