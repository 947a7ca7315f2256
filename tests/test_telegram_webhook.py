"""Telegram webhook mode: deliveries over HTTP, forged ones refused, nothing lost or applied twice.

The fake Bot API delivers to the bot's webhook as Telegram does (the secret header, a chat's next
update only after a 2xx answer, redelivery of anything else). Tests that only check who may
deliver run on SQLite; the ones that rely on the inbox ignoring a repeat run on both databases.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import Conflict

from bot.app import BorgerDialog
from bot.channels.telegram.transport import AiohttpRequest
from bot.channels.telegram.webhook import MAX_BODY_BYTES, PATH, SECRET_HEADER
from bot.config import Settings, SettingsError, load_settings
from storage.models import InboxEvent, InboxStatus, Participant
from tests.citizens import Citizen
from tests.conftest import eventually, table_rows
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.postgres import free_port

SECRET = "webhook_Secret-42"
HELP_REPLY = "Det kan du her"
# Tests where the database makes no difference run on SQLite alone.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def webhook_settings(
    make_settings: Callable[..., Settings], fake_bot: FakeBot, fake_telegram: FakeTelegram
) -> Settings:
    """Settings for the bot in webhook mode, on a port known before the bot starts."""
    port = free_port()
    return make_settings(
        telegram_token=fake_bot.token,
        telegram_api_url=fake_telegram.api_url,
        http_port=port,
        telegram_webhook_url=f"http://127.0.0.1:{port}{PATH}",
        telegram_webhook_secret=SECRET,
    )


@pytest.fixture
async def webhook_app(
    fake_bot: FakeBot, fake_telegram: FakeTelegram, make_settings: Callable[..., Settings]
) -> AsyncIterator[BorgerDialog]:
    """The real application in webhook mode, the fake Telegram delivering to it."""
    app = BorgerDialog(webhook_settings(make_settings, fake_bot, fake_telegram))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def post(
    app: BorgerDialog, body: bytes | Any, secret: str | None = SECRET, **options: Any
) -> int:
    """Deliver a body to the bot's webhook as a forger (or Telegram) could; return the status."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    url = app.settings.telegram_webhook_url
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=options.get("data", data), headers=headers) as response,
    ):
        return response.status


async def inbox(app: BorgerDialog) -> list[Any]:
    return [row for row in await table_rows(app, InboxEvent) if row.channel == "telegram"]


@sqlite_only
async def test_start_through_the_webhook_is_answered(
    webhook_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    citizen = Citizen(fake_bot, 4101)
    replies = await citizen.write("/start")
    assert replies[0].text
    assert (1, 200) in fake_bot.webhook_deliveries()
    (_, _, asked, _), *_ = fake_bot.requests("setWebhook")
    assert asked["secret_token"] == SECRET
    assert asked["allowed_updates"] == ["message", "callback_query"]
    assert 1 <= asked["max_connections"] <= 100
    assert "drop_pending_updates" not in asked
    # Webhook mode neither polls nor removes the webhook.
    assert not fake_bot.requests("getUpdates")
    assert not fake_bot.requests("deleteWebhook")
    assert webhook_app.telegram is not None
    assert webhook_app.telegram.state == "running"


@sqlite_only
async def test_forged_deliveries_are_refused_and_not_stored(
    webhook_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    forged = {"update_id": 900_001, **fake_bot.message_update(4102, "/help")}
    assert await post(webhook_app, forged, secret=None) == 401
    assert await post(webhook_app, forged, secret="wrong") == 401
    assert await post(webhook_app, forged, secret=SECRET[:-1]) == 401
    assert await post(webhook_app, forged, secret=SECRET + "x") == 401
    assert await inbox(webhook_app) == []
    assert fake_bot.sent(4102) == []


async def test_a_redelivery_is_applied_once(webhook_app: BorgerDialog, fake_bot: FakeBot) -> None:
    # Telegram's copy of the answer is lost: it delivers the update again.
    fake_bot.lose_webhook_answers(1)
    citizen = Citizen(fake_bot, 4103)
    await citizen.write("/help")
    await eventually(
        lambda: [d for d in fake_bot.webhook_deliveries() if d[0] == 1] == [(1, 200), (1, 200)],
        what="the update delivered twice",
    )
    # And as a replay by hand, after it was handled.
    replay = {"update_id": 1, **fake_bot.message_update(4103, "/help")}
    assert await post(webhook_app, replay) == 200
    await citizen.write("/help")
    assert [t.startswith(HELP_REPLY) for t in citizen.texts()] == [True, True]
    (participant,) = [p for p in await table_rows(webhook_app, Participant) if p.chat_id == "4103"]
    assert participant.events_applied == 2
    assert sorted(row.external_id for row in await inbox(webhook_app)) == ["1", "2"]


@sqlite_only
async def test_a_delivery_the_database_did_not_take_comes_again(
    webhook_app: BorgerDialog, fake_bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import exc

    assert webhook_app.core is not None
    # Give up on the database at once instead of after five seconds.
    monkeypatch.setattr("bot.channels.telegram.channel.WEBHOOK_STORE_PATIENCE", 0.1)
    real_accept = webhook_app.core.accept
    faults: list[set[str]] = []

    async def commit_then_lose_the_answer(channel: str, events: list[Any]) -> set[str]:
        stored = await real_accept(channel, events)
        if not faults:
            # Committed, but the connection dropped before the bot heard so: it answers 503.
            faults.append(stored)
            raise exc.OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))
        return stored

    monkeypatch.setattr(webhook_app.core, "accept", commit_then_lose_the_answer)
    citizen = Citizen(fake_bot, 4108)
    replies = await citizen.write("/help")
    assert faults, "the fault was not injected"
    assert replies[0].text.startswith(HELP_REPLY)
    assert fake_bot.webhook_deliveries()[:2] == [(1, 503), (1, 200)]
    await citizen.write("/help")
    (participant,) = [p for p in await table_rows(webhook_app, Participant) if p.chat_id == "4108"]
    assert participant.events_applied == 2


@sqlite_only
async def test_an_oversized_body_is_refused(webhook_app: BorgerDialog, fake_bot: FakeBot) -> None:
    update = {"update_id": 900_002, **fake_bot.message_update(4104, "x")}
    update["padding"] = "x" * MAX_BODY_BYTES
    assert await post(webhook_app, update) == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap holds while reading
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b" " * 4096

    assert await post(webhook_app, b"", data=chunks()) == 413
    assert await inbox(webhook_app) == []
    assert fake_bot.sent(4104) == []


@sqlite_only
async def test_a_body_that_is_no_update_is_set_aside_and_confirmed(
    webhook_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    # Not JSON, not an object, no update id, and an update id with something unreadable.
    for body in (b"no json\xff", b"[1, 2]", b'{"message": {}}', b'{"update_id": 7, "message": 1}'):
        assert await post(webhook_app, body) == 200
        assert await post(webhook_app, body) == 200  # a repeat is set aside once
    rows = await inbox(webhook_app)
    assert len(rows) == 4
    assert {row.status for row in rows} == {InboxStatus.FAILED}
    # Intake goes on.
    assert (await Citizen(fake_bot, 4105).write("/help"))[0].text.startswith(HELP_REPLY)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"telegram_webhook_url": "http://bot.kommune.dk/telegram/webhook"},
            "BORGERDIALOG_TELEGRAM_WEBHOOK_URL: must be an https:// address",
        ),
        ({}, "BORGERDIALOG_TELEGRAM_WEBHOOK_SECRET: needed with"),
        ({"telegram_webhook_secret": "has space"}, "BORGERDIALOG_TELEGRAM_WEBHOOK_SECRET: must"),
        ({"telegram_webhook_secret": "x" * 257}, "BORGERDIALOG_TELEGRAM_WEBHOOK_SECRET: must"),
        ({"telegram_webhook_secret": "blåbær"}, "BORGERDIALOG_TELEGRAM_WEBHOOK_SECRET: must"),
    ],
)
def test_bad_webhook_settings_say_so_in_one_line(values: dict[str, str], expected: str) -> None:
    given = {
        "telegram_token": "123456:ABCDEFGHIJKLMNOP",
        "telegram_webhook_url": "https://bot.kommune.dk/telegram/webhook",
        **values,
    }
    if "telegram_webhook_secret" not in values and values:
        given["telegram_webhook_secret"] = SECRET
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, **given)
    (line,) = refused.value.lines
    assert line.startswith(expected)
    assert values.get("telegram_webhook_secret", "\0") not in line  # a secret is never echoed


def test_good_webhook_settings() -> None:
    local = load_settings(
        _env_file=None,
        telegram_token="123456:ABCDEFGHIJKLMNOP",
        telegram_webhook_url="http://localhost:8080/telegram/webhook",
        telegram_webhook_secret="A-z_0" * 51,
    )
    assert local.telegram_webhook
    assert not load_settings(_env_file=None, telegram_webhook_secret="ignored").telegram_webhook


@sqlite_only
async def test_switching_between_webhook_and_polling_loses_nothing(
    fake_bot: FakeBot, fake_telegram: FakeTelegram, make_settings: Callable[..., Settings]
) -> None:
    webhook = webhook_settings(make_settings, fake_bot, fake_telegram)
    polling = webhook.model_copy(update={"telegram_webhook_url": ""})
    citizen = Citizen(fake_bot, 4106)
    written = 0

    async def run(settings: Settings, *, while_down: int) -> None:
        """Write while the bot is down, start it, see each message answered, write once more."""
        nonlocal written
        for _ in range(while_down):
            fake_bot.send_message(citizen.id, "/help")
        written += while_down
        app = BorgerDialog(settings)
        await app.start()
        try:
            await eventually(lambda: len(citizen.texts()) == written, what="answers to all")
            await citizen.write("/help")
            written += 1
        finally:
            await app.stop()

    await run(webhook, while_down=0)
    await run(polling, while_down=2)  # pending at Telegram while the webhook was set
    await run(webhook, while_down=2)  # pending for getUpdates, and polling's last batch
    await run(polling, while_down=1)
    assert citizen.texts() == [citizen.texts()[0]] * written
    assert citizen.texts()[0].startswith(HELP_REPLY)


async def test_the_fake_delivers_in_chat_order_and_again_until_2xx(
    fake_bot: FakeBot, fake_telegram: FakeTelegram
) -> None:
    received: list[tuple[int, str | None]] = []
    refusals = iter([500, 500])

    async def webhook(request: web.Request) -> web.Response:
        update = await request.json()
        received.append((update["update_id"], request.headers.get(SECRET_HEADER)))
        return web.Response(status=next(refusals, 200))

    receiver = web.Application()
    receiver.router.add_post("/hook", webhook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    request = AiohttpRequest(2)
    bot = Bot(fake_bot.token, base_url=fake_telegram.api_url, request=request)
    try:
        first = fake_bot.send_message(4107, "første")
        second = fake_bot.send_message(4107, "anden")
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token=SECRET)
        with pytest.raises(Conflict):
            await bot.get_updates()
        await eventually(lambda: fake_bot.unconfirmed() == 0, what="both updates confirmed")
        # The chat's second update waits until the first is answered 2xx.
        assert [update_id for update_id, _ in received] == [first, first, first, second]
        assert {secret for _, secret in received} == {SECRET}
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0
        assert info.last_error_message
        await bot.delete_webhook()
        assert await bot.get_updates() == ()
    finally:
        await request.shutdown()
        await runner.cleanup()
