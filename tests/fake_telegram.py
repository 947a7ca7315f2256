"""A fake Telegram Bot API server for tests: the real HTTP protocol, Telegram's refusals.

It runs on its own event loop in a background thread, so a bot under test can run in the test's
loop or in another process. Tests act as citizens through a ``FakeBot`` handle: send text and
commands, press inline buttons, read what the bot sent to each chat, and inject errors. Each
``FakeBot`` has its own token and state, so tests sharing the server do not see each other.

Flood control follows Telegram's published limits: about one message per second to one private
chat (short bursts tolerated), 20 per minute to a group, and 30 per second in bulk to chats that
have not just written to the bot. Requests past a limit get 429 with ``retry_after``.

With a webhook set, updates are POSTed to it as Telegram's Bot API server does: JSON with the
``X-Telegram-Bot-Api-Secret-Token`` header, one update of a chat at a time and the chat's next
only after a 2xx answer, at most ``max_connections`` at once, and anything but 2xx delivered
again after a growing pause; getUpdates is refused (409) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
# Parameters Telegram accepts JSON-serialised inside form fields.
JSON_FIELDS = {
    "reply_markup",
    "allowed_updates",
    "commands",
    "scope",
    "entities",
    "caption_entities",
    "reply_parameters",
    "link_preview_options",
    "media",
}
INT_FIELDS = {"offset", "limit", "timeout", "message_id", "user_id", "max_connections"}
RECENT_CONTACT_SECONDS = 60.0
# About one message a second to a private chat, after a burst of this many.
TELEGRAM_PRIVATE_BURST = 20.0
WEBHOOK_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's default, and its most.
WEBHOOK_CONNECTIONS = 40
MAX_WEBHOOK_CONNECTIONS = 100
# Telegram waits 1 s before delivering again and doubles the pause each time; the fake starts
# shorter (tests wait for it) and doubles up to this.
WEBHOOK_RETRY_CAP_SECONDS = 2.0


class ApiError(Exception):
    """A Bot API error in Telegram's shape."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


@dataclass
class Injected:
    method: str | None
    chat_id: int | None
    error: ApiError
    times: int


@dataclass
class TokenBucket:
    capacity: float
    per_second: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


@dataclass
class SentMessage:
    """A message the bot sent, as it looks now."""

    chat_id: int
    message_id: int
    text: str | None
    reply_markup: dict[str, Any] | None
    kind: str = "text"
    caption: str | None = None
    edits: int = 0
    # A photo's file id: the one Telegram gave the upload, or the one the bot sent again.
    file_id: str = ""
    deleted: bool = False
    sent_at: float = field(default_factory=time.monotonic)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]

    def as_message(self, bot: FakeBot) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self.message_id,
            "from": bot.me,
            "chat": bot.chats[self.chat_id],
            "date": int(time.time()),
        }
        if self.text is not None:
            message["text"] = self.text
        if self.caption is not None:
            message["caption"] = self.caption
        if self.kind == "photo":
            message["photo"] = [
                {
                    "file_id": self.file_id,
                    "file_unique_id": "u",
                    "width": 1,
                    "height": 1,
                }
            ]
        if self.kind == "document":
            message["document"] = {"file_id": f"doc{self.message_id}", "file_unique_id": "d"}
        if self.reply_markup:
            message["reply_markup"] = self.reply_markup
        return message


class FakeBot:
    """One bot's state on the fake server, and the handle a test drives it with."""

    def __init__(self, server: FakeTelegram, token: str, bot_id: int, username: str) -> None:
        self._server = server
        self.token = token
        self.me = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Borgerdialog",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.chats: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self.messages: dict[tuple[int, int], SentMessage] = {}
        self.transcript: dict[int, list[SentMessage]] = {}
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.webhook: dict[str, Any] = {"url": ""}
        self.blocked: set[int] = set()
        self.members: dict[tuple[int, int], str] = {}
        self.injected: list[Injected] = []
        self.log: list[tuple[float, str, dict[str, Any], int]] = []
        self.last_contact: dict[int, float] = {}
        self.chat_buckets: dict[int, TokenBucket] = {}
        self.bulk_bucket = TokenBucket(capacity=30, per_second=30)
        # Paid broadcast (allow_paid_broadcast): up to 1000 messages a second, paid in Stars.
        self.paid_bucket = TokenBucket(capacity=1000, per_second=1000)
        self.paid_messages = 0
        # Photos uploaded, and the file ids Telegram handed out for them.
        self.uploads = 0
        self.files: set[str] = set()
        self.new_updates = asyncio.Event()
        self.active_poll: asyncio.Future[None] | None = None
        self.confirmed_up_to = 0
        # Webhook deliveries made: (update id, HTTP status, or 0 when there was no answer).
        self.deliveries: list[tuple[int, int]] = []
        # This many 2xx answers are lost on the way back, as on a dropped connection: Telegram
        # has no confirmation and delivers the update again.
        self.lose_answers = 0
        self._webhook_wakeup = asyncio.Event()
        self._webhook_task: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()

    # -- acting as citizens (thread-safe: every call runs on the server's loop) -----------------

    def send_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        language_code: str | None = "da",
        chat_type: str = "private",
    ) -> int:
        """A citizen writes to the bot; return the update id."""
        return self._server.call(
            lambda: self._add_message(user_id, text, chat_id, language_code, chat_type)
        )

    def send_many(self, messages: list[tuple[int, str]], language_code: str = "da") -> list[int]:
        """Many citizens write at once (user id, text), queued atomically in this order."""
        return self._server.call(
            lambda: [self._add_message(u, t, None, language_code, "private") for u, t in messages]
        )

    def send_media(self, user_id: int, kind: str = "sticker") -> int:
        """A citizen sends something that is not text: sticker, photo, voice or location."""
        samples: dict[str, Any] = {
            "sticker": {
                "file_id": "s1",
                "file_unique_id": "s1",
                "type": "regular",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
            },
            "photo": [{"file_id": "p1", "file_unique_id": "p1", "width": 1, "height": 1}],
            "voice": {"file_id": "v1", "file_unique_id": "v1", "duration": 2},
            "location": {"latitude": 56.15, "longitude": 10.2},
        }
        return self._server.call(
            lambda: self._add_message(
                user_id, "", None, "da", "private", extra={kind: samples[kind]}
            )
        )

    def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        forge: bool = False,
        language_code: str | None = "da",
    ) -> str:
        """A citizen presses an inline button; return the callback query id.

        A real client can only press buttons the message shows; ``forge`` sends data anyway,
        as a modified client could.
        """
        return self._server.call(
            lambda: self._add_callback(user_id, message_id, data, chat_id, forge, language_code)
        )

    def push_raw(self, update: dict[str, Any]) -> int:
        """Queue an update exactly as given (a hostile or malformed one); return its id."""
        return self._server.call(lambda: self._push(dict(update)))

    def message_update(self, user_id: int, text: str) -> dict[str, Any]:
        """A private text message as Telegram would deliver it, without queueing it."""
        user = self._server.call(lambda: self._user(user_id, "da"))
        self._server.call(lambda: self._chat(user_id, "private", user))
        return {
            "message": {
                "message_id": 1,
                "from": user,
                "chat": {"id": user_id, "type": "private", "first_name": user["first_name"]},
                "date": int(time.time()),
                "text": text,
            }
        }

    def open_chats(self, user_ids: list[int], language_code: str = "da") -> None:
        """Citizens who wrote to the bot long ago: the bot may write to them, as bulk sends."""

        def open_all() -> None:
            for user_id in user_ids:
                user = self._user(user_id, language_code)
                self.chats.setdefault(user_id, self._chat(user_id, "private", user))

        self._server.call(open_all)

    def open_channel(self, chat_id: int, chat_type: str = "channel") -> None:
        """A channel (or group) the bot was added to and may post in."""
        self._server.call(lambda: self._chat(chat_id, chat_type, {}))

    def block(self, chat_id: int) -> None:
        """The citizen blocks the bot: further sends to them get 403."""
        self._server.call(lambda: self.blocked.add(chat_id))

    def inject(
        self,
        code: int,
        description: str,
        *,
        method: str | None = None,
        chat_id: int | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next matching requests fail with this error."""
        error = ApiError(code, description, retry_after)
        self._server.call(lambda: self.injected.append(Injected(method, chat_id, error, times)))

    def injected_left(self) -> int:
        """How many injected failures have not happened yet."""
        return self._server.call(lambda: sum(max(0, i.times) for i in self.injected))

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Set someone's membership status in a group (for getChatMember)."""
        self._server.call(lambda: self.members.__setitem__((chat_id, user_id), status))

    # -- reading what happened ----------------------------------------------------------------

    def sent(self, chat_id: int) -> list[SentMessage]:
        """The messages the bot sent to a chat, in order, as they look now."""
        return self._server.call(lambda: list(self.transcript.get(chat_id, [])))

    def texts(self, chat_id: int) -> list[str]:
        """The texts (or captions) of the bot's visible messages in a chat."""
        return [m.text or m.caption or "" for m in self.sent(chat_id) if not m.deleted]

    def chats_with(self, text: str) -> dict[int, int]:
        """How many messages (text or caption) equal to ``text`` each chat got."""

        def count() -> dict[int, int]:
            found: dict[int, int] = {}
            for chat_id, messages in self.transcript.items():
                n = sum(1 for m in messages if text in (m.text, m.caption))
                if n:
                    found[chat_id] = n
            return found

        return self._server.call(count)

    def requests(self, method: str | None = None) -> list[tuple[float, str, dict[str, Any], int]]:
        """Every request the bot made (time, method, parameters, HTTP status)."""
        return self._server.call(
            lambda: [entry for entry in self.log if method is None or entry[1] == method]
        )

    def call_commands(self, scope: str, language_code: str) -> list[dict[str, Any]]:
        """The commands the bot published for a scope and language ('' for the default)."""
        return self._server.call(lambda: list(self.commands.get((scope, language_code), [])))

    def unconfirmed(self) -> int:
        """How many updates the bot has not yet confirmed (getUpdates offset or webhook 2xx)."""
        return self._server.call(lambda: len(self.updates))

    def webhook_deliveries(self) -> list[tuple[int, int]]:
        """Each webhook delivery made: (update id, HTTP status; 0 when there was no answer)."""
        return self._server.call(lambda: list(self.deliveries))

    def lose_webhook_answers(self, count: int = 1) -> None:
        """Lose the next ``count`` 2xx answers to deliveries: those updates come again."""
        self._server.call(lambda: setattr(self, "lose_answers", count))

    # -- internals (server loop only) --------------------------------------------------------

    def _user(self, user_id: int, language_code: str | None) -> dict[str, Any]:
        user = {"id": user_id, "is_bot": False, "first_name": f"Borger {user_id}"}
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        return user

    def _chat(self, chat_id: int, chat_type: str, user: dict[str, Any]) -> dict[str, Any]:
        if chat_id not in self.chats:
            chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
            if chat_type == "private":
                chat["first_name"] = user["first_name"]
            else:
                chat["title"] = f"Gruppe {chat_id}"
            self.chats[chat_id] = chat
        return self.chats[chat_id]

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _push(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        update["update_id"] = update_id
        self.updates.append(update)
        self.new_updates.set()
        self._webhook_wakeup.set()
        return update_id

    # -- webhook delivery (server loop only) ---------------------------------------------------

    def _start_webhook(self) -> None:
        self._webhook_wakeup.set()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhook())

    async def _deliver_webhook(self) -> None:
        """Deliver pending updates while a webhook is set, as Telegram's WebhookActor does."""
        in_flight: set[Any] = set()  # the chats with an update on the way
        pauses: dict[int, tuple[float, float]] = {}  # update id: (next try, pause after it)
        while self.webhook["url"]:
            self._webhook_wakeup.clear()
            now = time.monotonic()
            limit = self.webhook.get("max_connections") or WEBHOOK_CONNECTIONS
            waiting = set(in_flight)
            for update in list(self.updates):
                chat = _queue_of(update)
                if chat in waiting:
                    continue  # behind this chat's earlier update
                waiting.add(chat)
                allowed = self.webhook.get("allowed_updates") or []
                if allowed and not any(kind in update for kind in allowed):
                    self.updates.remove(update)  # not asked for: never delivered
                    continue
                next_try = pauses.get(update["update_id"], (now, 0.0))[0]
                if next_try > now or len(in_flight) >= limit:
                    continue
                in_flight.add(chat)
                post = asyncio.get_running_loop().create_task(
                    self._post_update(update, chat, in_flight, pauses)
                )
                # The loop holds only weak references to tasks.
                self._posts.add(post)
                post.add_done_callback(self._posts.discard)
            soonest = min((t for t, _ in pauses.values() if t > now), default=now + 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._webhook_wakeup.wait(), max(0.01, soonest - now))

    async def _post_update(
        self,
        update: dict[str, Any],
        chat: Any,
        in_flight: set[Any],
        pauses: dict[int, tuple[float, float]],
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if self.webhook.get("secret_token"):
            headers[WEBHOOK_SECRET_HEADER] = self.webhook["secret_token"]
        status = 0
        try:
            session = self._server.client
            assert session is not None
            async with session.post(
                self.webhook["url"], data=json.dumps(update), headers=headers
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        finally:
            in_flight.discard(chat)
            self._webhook_wakeup.set()
        update_id = update["update_id"]
        self.deliveries.append((update_id, status))
        if 200 <= status < 300 and self.lose_answers > 0:
            self.lose_answers -= 1
            status = 0
        if 200 <= status < 300:
            pauses.pop(update_id, None)
            self.updates = [u for u in self.updates if u["update_id"] != update_id]
            self.webhook["last_success"] = time.time()
            return
        pause = pauses.get(update_id, (0.0, self._server.webhook_retry_seconds))[1]
        pauses[update_id] = (time.monotonic() + pause, min(pause * 2, WEBHOOK_RETRY_CAP_SECONDS))
        self.webhook["last_error_date"] = int(time.time())
        self.webhook["last_error_message"] = (
            f"Wrong response from the webhook: {status}" if status else "Connection failed"
        )

    def _add_message(
        self,
        user_id: int,
        text: str,
        chat_id: int | None,
        language_code: str | None,
        chat_type: str,
        extra: dict[str, Any] | None = None,
    ) -> int:
        chat_id = user_id if chat_id is None else chat_id
        user = self._user(user_id, language_code)
        chat = self._chat(chat_id, chat_type, user)
        self.last_contact[chat_id] = time.monotonic()
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
        }
        if extra:
            message.update(extra)
        else:
            message["text"] = text
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._push({"message": message})

    def _add_callback(
        self,
        user_id: int,
        message_id: int,
        data: str,
        chat_id: int | None,
        forge: bool,
        language_code: str | None,
    ) -> str:
        chat_id = user_id if chat_id is None else chat_id
        sent = self.messages.get((chat_id, message_id))
        if sent is None or sent.deleted:
            raise AssertionError(f"no message {message_id} in chat {chat_id} to press")
        if not forge and data not in [b.get("callback_data") for b in sent.buttons]:
            raise AssertionError(f"message {message_id} shows no button with data {data!r}")
        query_id = f"{chat_id}-{message_id}-{len(self.callback_queries) + 1}"
        user = self._user(user_id, language_code)
        self.last_contact[chat_id] = time.monotonic()
        query = {
            "id": query_id,
            "from": user,
            "message": sent.as_message(self),
            "chat_instance": str(chat_id),
            "data": data,
        }
        self.callback_queries[query_id] = {"answered": False}
        self._push({"callback_query": query})
        return query_id


Handler = Callable[[FakeBot, dict[str, Any]], Any]


class FakeTelegram:
    """The fake Bot API server. ``start()`` it once; ``new_bot()`` for each test."""

    def __init__(self, *, auto_chats: bool = False) -> None:
        # With auto_chats, a message to an unknown positive chat id opens a private chat, as if
        # that citizen had written first (for benchmarks that skip the inbound side).
        self.auto_chats = auto_chats
        self.latency = 0.0
        self.private_burst = TELEGRAM_PRIVATE_BURST
        self._bots: dict[str, FakeBot] = {}
        self._ids = itertools.count(7_000_000_001)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="fake-telegram"
        )
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Delivers webhook updates; the first pause before delivering again (Telegram: 1 s).
        self.client: aiohttp.ClientSession | None = None
        self.webhook_retry_seconds = 0.1

    @property
    def api_url(self) -> str:
        """The base URL to give the bot (PTB's ``base_url``)."""
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def call(self, function: Callable[[], T]) -> T:
        """Run a function on the server's loop and return its result."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(10)

    def new_bot(self, username: str = "borgerdialog_test_bot") -> FakeBot:
        bot_id = next(self._ids)
        token = f"{bot_id}:AAFakeTokenForTests{bot_id}"

        def create() -> FakeBot:
            bot = FakeBot(self, token, bot_id, username)
            self._bots[token] = bot
            return bot

        return self.call(create)

    async def _start(self) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def _stop(self) -> None:
        for bot in self._bots.values():
            bot.webhook = {"url": ""}
            if bot._webhook_task is not None:
                bot._webhook_task.cancel()
        if self.client is not None:
            await self.client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the protocol -----------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method_name = request.match_info["method"]
        bot = self._bots.get(token)
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        status = 200
        params: dict[str, Any] = {}
        try:
            if bot is None:
                raise ApiError(401, "Unauthorized")
            params = await self._params(request)
            handler = METHODS.get(method_name.lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            self._check_injected(bot, method_name, params)
            result = handler(bot, params)
            if asyncio.iscoroutine(result):
                result = await result
            body: dict[str, Any] = {"ok": True, "result": result}
        except ApiError as error:
            status, body = error.code, error.body()
        if bot is not None:
            bot.log.append((time.monotonic(), method_name, params if status != 401 else {}, status))
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        return web.json_response(body, status=status)

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        content_type = request.content_type
        if request.can_read_body:
            if content_type == "application/json":
                try:
                    raw.update(await request.json())
                except json.JSONDecodeError:
                    raise bad_request("can't parse JSON") from None
            elif content_type == "multipart/form-data":
                reader = await request.multipart()
                async for part in reader:
                    name = part.name or ""
                    if part.filename:  # type: ignore[union-attr]
                        raw[name] = {
                            "filename": part.filename,  # type: ignore[union-attr]
                            "size": len(await part.read()),
                        }  # type: ignore[union-attr]
                    else:
                        raw[name] = await part.text()  # type: ignore[union-attr]
            else:
                raw.update(await request.post())
        params: dict[str, Any] = {}
        for name, value in raw.items():
            if isinstance(value, str) and name in JSON_FIELDS:
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise bad_request(f"can't parse {name} JSON object") from None
            elif isinstance(value, str) and name in INT_FIELDS:
                try:
                    value = int(value)
                except ValueError:
                    raise bad_request(f"invalid {name} specified") from None
            elif isinstance(value, str) and value in ("true", "false"):
                value = value == "true"
            params[name] = value
        return params

    @staticmethod
    def _check_injected(bot: FakeBot, method: str, params: dict[str, Any]) -> None:
        chat_id = _maybe_int(params.get("chat_id"))
        for injected in bot.injected:
            if injected.times <= 0:
                continue
            if injected.method is not None and injected.method.lower() != method.lower():
                continue
            if injected.chat_id is not None and injected.chat_id != chat_id:
                continue
            injected.times -= 1
            raise injected.error


def _queue_of(update: dict[str, Any]) -> Any:
    """The chat an update is queued under for webhook delivery (its own id if none)."""
    for kind, part in update.items():
        if kind == "callback_query" and isinstance(part, dict):
            part = part.get("message") or {"chat": part.get("from")}
        chat = part.get("chat") if isinstance(part, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            return chat["id"]
    return ("update", update.get("update_id"))


def _maybe_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _chat_of(bot: FakeBot, params: dict[str, Any]) -> int:
    if "chat_id" not in params or params["chat_id"] in ("", None):
        raise bad_request("chat_id is empty")
    chat_id = _maybe_int(params["chat_id"])
    if chat_id is not None and chat_id > 0 and bot._server.auto_chats and chat_id not in bot.chats:
        bot._chat(chat_id, "private", bot._user(chat_id, None))
        bot.last_contact[chat_id] = time.monotonic()
    if chat_id is None or chat_id not in bot.chats:
        raise bad_request("chat not found")
    return chat_id


def _check_text(text: Any, limit: int = MAX_TEXT, what: str = "message text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise bad_request(f"{what} is empty")
    if len(text) > limit:
        raise bad_request(
            "message is too long" if what == "message text" else "message caption is too long"
        )
    return text


def _check_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if not str(button.get("text", "")).strip():
                raise bad_request("BUTTON_TEXT_EMPTY")
            data = button.get("callback_data")
            if data is not None:
                size = len(str(data).encode("utf-8"))
                if not 1 <= size <= MAX_CALLBACK_DATA:
                    raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
                raise bad_request("BUTTON_URL_INVALID")
            if data is None and url is None:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are "
                    "unallowed in the inline keyboard"
                )
    return markup


def _flood_control(bot: FakeBot, chat_id: int, params: dict[str, Any] | None = None) -> None:
    if chat_id in bot.blocked:
        raise ApiError(403, "Forbidden: bot was blocked by the user")
    now = time.monotonic()
    chat_type = bot.chats[chat_id]["type"]
    if chat_type == "private":
        bucket = bot.chat_buckets.setdefault(
            chat_id, TokenBucket(capacity=bot._server.private_burst, per_second=1.0)
        )
    else:
        bucket = bot.chat_buckets.setdefault(chat_id, TokenBucket(capacity=20, per_second=1 / 3))
    wait = bucket.take(now)
    # auto_chats stands for citizens who just wrote (benchmarks): replies are not bulk sends.
    recent = (
        bot._server.auto_chats
        or now - bot.last_contact.get(chat_id, -1e9) <= RECENT_CONTACT_SECONDS
    )
    paid = bool((params or {}).get("allow_paid_broadcast"))
    if not wait and not recent:
        wait = (bot.paid_bucket if paid else bot.bulk_bucket).take(now)
    if paid and not wait:
        bot.paid_messages += 1
    if wait:
        raise ApiError(429, f"Too Many Requests: retry after {int(wait) + 1}", int(wait) + 1)


def _record(bot: FakeBot, chat_id: int, message: SentMessage) -> dict[str, Any]:
    bot.messages[(chat_id, message.message_id)] = message
    bot.transcript.setdefault(chat_id, []).append(message)
    return message.as_message(bot)


def _find_own_message(bot: FakeBot, params: dict[str, Any], missing: str) -> SentMessage:
    chat_id = _chat_of(bot, params)
    message = bot.messages.get((chat_id, _maybe_int(params.get("message_id")) or -1))
    if message is None or message.deleted:
        raise bad_request(missing)
    return message


# -- methods -----------------------------------------------------------------------------------


def get_me(bot: FakeBot, _params: dict[str, Any]) -> dict[str, Any]:
    return bot.me


async def get_updates(bot: FakeBot, params: dict[str, Any]) -> list[dict[str, Any]]:
    if bot.webhook["url"]:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    offset = params.get("offset")
    if isinstance(offset, int) and offset > 0:
        bot.confirmed_up_to = max(bot.confirmed_up_to, offset - 1)
        bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
    limit = min(max(int(params.get("limit") or 100), 1), 100)
    timeout = float(params.get("timeout") or 0)
    if bot.active_poll is not None and not bot.active_poll.done():
        bot.active_poll.set_exception(
            ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot "
                "instance is running",
            )
        )
    poll: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    bot.active_poll = poll
    deadline = time.monotonic() + timeout
    try:
        while not bot.updates and time.monotonic() < deadline:
            bot.new_updates.clear()
            waiter = asyncio.ensure_future(bot.new_updates.wait())
            done, _ = await asyncio.wait(
                {waiter, poll},
                timeout=deadline - time.monotonic(),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            if poll in done:
                poll.result()
    finally:
        if bot.active_poll is poll:
            bot.active_poll = None
    return bot.updates[:limit]


def send_message(bot: FakeBot, params: dict[str, Any]) -> dict[str, Any]:
    chat_id = _chat_of(bot, params)
    text = _check_text(params.get("text"))
    markup = _check_markup(params.get("reply_markup"))
    if params.get("parse_mode") not in (None, "", "HTML", "MarkdownV2", "Markdown"):
        raise bad_request("unsupported parse_mode")
    _flood_control(bot, chat_id, params)
    message = SentMessage(chat_id, bot._next_message_id(chat_id), text, markup)
    return _record(bot, chat_id, message)


def _send_media(kind: str) -> Handler:
    def send(bot: FakeBot, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _chat_of(bot, params)
        if not params.get(kind):
            raise bad_request(f"there is no {kind} in the request")
        caption = params.get("caption")
        if caption is not None and len(caption) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        markup = _check_markup(params.get("reply_markup"))
        sent = params[kind]
        if isinstance(sent, str) and sent not in bot.files:
            raise bad_request("wrong file identifier/HTTP URL specified")
        _flood_control(bot, chat_id, params)
        message_id = bot._next_message_id(chat_id)
        if isinstance(sent, str):
            file_id = sent
        else:
            bot.uploads += 1
            file_id = f"{kind}-{chat_id}-{message_id}"
            bot.files.add(file_id)
        message = SentMessage(
            chat_id, message_id, None, markup, kind=kind, caption=caption, file_id=file_id
        )
        return _record(bot, chat_id, message)

    return send


def edit_message_text(bot: FakeBot, params: dict[str, Any]) -> dict[str, Any]:
    message = _find_own_message(bot, params, "message to edit not found")
    text = _check_text(params.get("text"))
    markup = _check_markup(params.get("reply_markup"))
    if text == message.text and markup == message.reply_markup:
        raise bad_request(
            "message is not modified: specified new message content and reply "
            "markup are exactly the same as a current content and reply markup "
            "of the message"
        )
    _flood_control(bot, message.chat_id)
    message.text, message.reply_markup = text, markup
    message.edits += 1
    return message.as_message(bot)


def edit_message_reply_markup(bot: FakeBot, params: dict[str, Any]) -> dict[str, Any]:
    message = _find_own_message(bot, params, "message to edit not found")
    markup = _check_markup(params.get("reply_markup"))
    if markup == message.reply_markup:
        raise bad_request(
            "message is not modified: specified new message content and reply "
            "markup are exactly the same as a current content and reply markup "
            "of the message"
        )
    message.reply_markup = markup
    message.edits += 1
    return message.as_message(bot)


def delete_message(bot: FakeBot, params: dict[str, Any]) -> bool:
    message = _find_own_message(bot, params, "message to delete not found")
    message.deleted = True
    return True


def answer_callback_query(bot: FakeBot, params: dict[str, Any]) -> bool:
    query = bot.callback_queries.get(str(params.get("callback_query_id", "")))
    if query is None or query["answered"]:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    text = params.get("text")
    if text is not None and len(text) > MAX_CALLBACK_ANSWER:
        raise bad_request("MESSAGE_TOO_LONG")
    query["answered"] = True
    bot.callback_answers.append(params)
    return True


def set_my_commands(bot: FakeBot, params: dict[str, Any]) -> bool:
    commands = params.get("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("commands must be an array of at most 100 BotCommand")
    for command in commands:
        name = str(command.get("command", ""))
        if not (1 <= len(name) <= 32 and all(c.islower() or c.isdigit() or c == "_" for c in name)):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    scope = (params.get("scope") or {"type": "default"})["type"]
    bot.commands[(scope, params.get("language_code") or "")] = commands
    return True


def get_my_commands(bot: FakeBot, params: dict[str, Any]) -> list[dict[str, Any]]:
    scope = (params.get("scope") or {"type": "default"})["type"]
    return bot.commands.get((scope, params.get("language_code") or ""), [])


def set_webhook(bot: FakeBot, params: dict[str, Any]) -> bool:
    url = str(params.get("url", ""))
    if url and not url.startswith(("https://", "http://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.get("secret_token")
    if secret is not None and not (
        1 <= len(secret) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)
    ):
        raise bad_request("secret token contains unallowed characters")
    connections = params.get("max_connections", WEBHOOK_CONNECTIONS)
    if not 1 <= connections <= MAX_WEBHOOK_CONNECTIONS:
        raise bad_request("invalid max_connections specified")
    if params.get("drop_pending_updates"):
        bot.updates.clear()
    # Like Telegram, allowed_updates left out keeps the list given before.
    allowed = params.get("allowed_updates", bot.webhook.get("allowed_updates"))
    bot.webhook = {
        "url": url,
        "secret_token": secret,
        "max_connections": connections,
        "allowed_updates": allowed,
    }
    if url:
        bot._start_webhook()
    return True


def delete_webhook(bot: FakeBot, params: dict[str, Any]) -> bool:
    bot.webhook = {"url": "", "allowed_updates": bot.webhook.get("allowed_updates")}
    bot._webhook_wakeup.set()
    if params.get("drop_pending_updates"):
        bot.updates.clear()
    return True


def get_webhook_info(bot: FakeBot, _params: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "url": bot.webhook["url"],
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates),
    }
    if bot.webhook["url"]:
        info["max_connections"] = bot.webhook["max_connections"]
        if bot.webhook.get("allowed_updates"):
            info["allowed_updates"] = bot.webhook["allowed_updates"]
        if "last_error_date" in bot.webhook:
            info["last_error_date"] = bot.webhook["last_error_date"]
            info["last_error_message"] = bot.webhook["last_error_message"]
    return info


def get_chat(bot: FakeBot, params: dict[str, Any]) -> dict[str, Any]:
    return bot.chats[_chat_of(bot, params)]


def get_chat_member(bot: FakeBot, params: dict[str, Any]) -> dict[str, Any]:
    chat_id = _chat_of(bot, params)
    user_id = _maybe_int(params.get("user_id"))
    if user_id is None or user_id not in bot.users:
        raise bad_request("user not found")
    status = bot.members.get((chat_id, user_id), "left")
    return {"status": status, "user": bot.users[user_id]}


def ok(_bot: FakeBot, _params: dict[str, Any]) -> bool:
    return True


METHODS: dict[str, Handler] = {
    "getme": get_me,
    "getupdates": get_updates,
    "sendmessage": send_message,
    "sendphoto": _send_media("photo"),
    "senddocument": _send_media("document"),
    "editmessagetext": edit_message_text,
    "editmessagereplymarkup": edit_message_reply_markup,
    "deletemessage": delete_message,
    "answercallbackquery": answer_callback_query,
    "setmycommands": set_my_commands,
    "getmycommands": get_my_commands,
    "setwebhook": set_webhook,
    "deletewebhook": delete_webhook,
    "getwebhookinfo": get_webhook_info,
    "getchat": get_chat,
    "getchatmember": get_chat_member,
    "sendchataction": ok,
    "close": ok,
    "logout": ok,
}


def main() -> None:
    """Serve the fake on a port until interrupted; print its API URL and a bot token."""
    import argparse

    parser = argparse.ArgumentParser(description="A fake Telegram Bot API server for testing.")
    parser.add_argument("--latency", type=float, default=0.0, help="round trip in seconds")
    parser.add_argument("--auto-chats", action="store_true", help="open chats on first send")
    parser.add_argument("--burst", type=float, default=20.0, help="per-chat burst allowance")
    parser.add_argument(
        "--citizen",
        action="store_true",
        help="write to the bot from this terminal as a citizen: a line is a message, "
        "#N presses button N of the last message that has buttons",
    )
    arguments = parser.parse_args()
    server = FakeTelegram(auto_chats=arguments.auto_chats)
    server.latency = arguments.latency
    server.private_burst = arguments.burst
    server.start()
    bot = server.new_bot()
    print(json.dumps({"api_url": server.api_url, "token": bot.token}), flush=True)
    try:
        if arguments.citizen:
            CitizenConsole(bot).run()
        else:
            threading.Event().wait()
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        # A bot still long-polling may hold the server's stop up; the process ends anyway.
        with contextlib.suppress(TimeoutError):
            server.stop()


class CitizenConsole:
    """One citizen (user 1001) in a terminal: what they type goes to the bot, what the bot
    sends (or edits) is printed with its buttons numbered."""

    CITIZEN = 1001

    def __init__(self, bot: FakeBot) -> None:
        self.bot = bot
        self.shown: dict[int, tuple[str, int]] = {}  # message id: (text, edits) as printed
        self.buttons: tuple[int, list[dict[str, Any]]] | None = None

    def run(self) -> None:
        print("Type a message (e.g. /start friluftsliv) or #N to press button N; Ctrl-D ends.")
        while True:
            self.wait_for_replies()
            line = input("> ").strip()
            if not line:
                continue
            if line.startswith("#") and line[1:].isdigit():
                if self.buttons is None:
                    print("(no message with buttons)")
                    continue
                message_id, buttons = self.buttons
                number = int(line[1:])
                if 1 <= number <= len(buttons) and "callback_data" in buttons[number - 1]:
                    data = buttons[number - 1]["callback_data"]
                    try:
                        self.bot.press_button(self.CITIZEN, message_id, data)
                    except AssertionError:  # the message has lost that button meanwhile
                        print(f"(button {number} is no longer there)")
                else:
                    print(f"(no button {number})")
                continue
            self.bot.send_message(self.CITIZEN, line)

    def wait_for_replies(self, quiet: float = 0.7, longest: float = 5.0) -> None:
        """Print what changed until nothing more has come for ``quiet`` seconds."""
        started = last_change = time.monotonic()
        while time.monotonic() - last_change < quiet and time.monotonic() - started < longest:
            if self.print_changes():
                last_change = time.monotonic()
            time.sleep(0.05)

    def print_changes(self) -> bool:
        changed = False
        for message in self.bot.sent(self.CITIZEN):
            text = message.text or message.caption or f"[{message.kind}]"
            if message.deleted or self.shown.get(message.message_id) == (text, message.edits):
                continue
            edited = message.message_id in self.shown
            self.shown[message.message_id] = (text, message.edits)
            changed = True
            print(("(edited) " if edited else "") + text)
            if message.buttons:
                self.buttons = (message.message_id, message.buttons)
            elif self.buttons is not None and self.buttons[0] == message.message_id:
                self.buttons = None  # edited without its buttons
                labels = [f"#{n} {b['text']}" for n, b in enumerate(message.buttons, 1)]
                print("   " + "   ".join(labels))
            print()
        return changed


if __name__ == "__main__":
    main()
