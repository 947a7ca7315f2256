"""The fake Bot API refuses what Telegram refuses, seen through the real PTB client."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter

from bot.channels.telegram.transport import AiohttpRequest
from tests.fake_telegram import FakeBot, FakeTelegram

CITIZEN = 42


@pytest.fixture
async def ptb(fake_bot: FakeBot, fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    fake_bot.send_message(CITIZEN, "hej")  # the chat must exist before the bot can write to it
    bot = Bot(
        fake_bot.token,
        base_url=fake_telegram.api_url,
        request=AiohttpRequest(8),
        get_updates_request=AiohttpRequest(1),
    )
    async with bot:
        yield bot


async def test_get_me_and_unknown_token(ptb: Bot, fake_telegram: FakeTelegram) -> None:
    assert ptb.username == "borgerdialog_test_bot"
    transport = AiohttpRequest(1)
    stranger = Bot("1:nottherightone", base_url=fake_telegram.api_url, request=transport)
    with pytest.raises(InvalidToken):
        await stranger.get_me()
    await transport.shutdown()


async def test_text_limits(ptb: Bot) -> None:
    await ptb.send_message(CITIZEN, "x" * 4096)
    with pytest.raises(BadRequest, match=r"(?i)too long"):
        await ptb.send_message(CITIZEN, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)text is empty"):
        await ptb.send_message(CITIZEN, "   ")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await ptb.send_message(999_999, "hej")


async def test_callback_data_over_64_bytes_is_refused(ptb: Bot) -> None:
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="æ" * 32)]])
    await ptb.send_message(CITIZEN, "64 bytes", reply_markup=ok)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="æ" * 33)]])
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await ptb.send_message(CITIZEN, "66 bytes", reply_markup=too_long)


async def test_edits(ptb: Bot, fake_bot: FakeBot) -> None:
    message = await ptb.send_message(CITIZEN, "første")
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await ptb.edit_message_text("første", chat_id=CITIZEN, message_id=message.message_id)
    await ptb.edit_message_text("anden", chat_id=CITIZEN, message_id=message.message_id)
    assert fake_bot.texts(CITIZEN) == ["anden"]
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await ptb.edit_message_text("x", chat_id=CITIZEN, message_id=9999)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("a", callback_data="a")]])
    await ptb.edit_message_reply_markup(CITIZEN, message.message_id, reply_markup=markup)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await ptb.edit_message_reply_markup(CITIZEN, message.message_id, reply_markup=markup)
    assert await ptb.delete_message(CITIZEN, message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await ptb.delete_message(CITIZEN, message.message_id)


async def test_callback_queries_are_answered_once(ptb: Bot, fake_bot: FakeBot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="yes")]])
    message = await ptb.send_message(CITIZEN, "Spørgsmål", reply_markup=markup)
    with pytest.raises(AssertionError, match=r"(?i)no button"):
        fake_bot.press_button(CITIZEN, message.message_id, "no")
    query_id = fake_bot.press_button(CITIZEN, message.message_id, "yes")
    assert await ptb.answer_callback_query(query_id, text="Tak")
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await ptb.answer_callback_query(query_id)


async def test_flood_control_and_blocked_citizens(
    ptb: Bot, fake_bot: FakeBot, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.private_burst = 3
    for number in range(3):
        await ptb.send_message(CITIZEN, f"besked {number}")
    with pytest.raises(RetryAfter):
        await ptb.send_message(CITIZEN, "en for meget")
    fake_bot.block(CITIZEN)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await ptb.send_message(CITIZEN, "hallo?")


async def test_injected_errors(ptb: Bot, fake_bot: FakeBot) -> None:
    fake_bot.inject(429, "Too Many Requests: retry after 7", method="sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as raised:
        await ptb.send_message(CITIZEN, "hej")
    assert "7" in str(raised.value)
    await ptb.send_message(CITIZEN, "igen")  # injected once only


async def test_get_updates_confirms_by_offset_and_a_second_poller_conflicts(
    ptb: Bot, fake_bot: FakeBot
) -> None:
    updates = await ptb.get_updates(timeout=0)
    assert [u.message.text for u in updates if u.message] == ["hej"]
    assert fake_bot.unconfirmed() == 1
    assert await ptb.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()
    assert fake_bot.unconfirmed() == 0

    waiting = asyncio.create_task(ptb.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    other = Bot(
        fake_bot.token,
        base_url=ptb.base_url.removesuffix(fake_bot.token),
        get_updates_request=AiohttpRequest(1),
        request=AiohttpRequest(1),
    )
    async with other:
        second = asyncio.create_task(other.get_updates(timeout=1))
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates"):
            await waiting
        await second


async def test_webhook_blocks_polling(ptb: Bot) -> None:
    assert await ptb.set_webhook("https://example.invalid/hook", secret_token="abc_DEF-1")
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await ptb.get_updates(timeout=0)
    with pytest.raises(BadRequest, match=r"(?i)secret token"):
        await ptb.set_webhook("https://example.invalid/hook", secret_token="mellemrum ikke ok")
    assert await ptb.delete_webhook()
    await ptb.get_updates(timeout=0)


async def test_files_go_as_multipart(ptb: Bot, fake_bot: FakeBot) -> None:
    photo = await ptb.send_photo(CITIZEN, io.BytesIO(b"\x89PNG fake"), caption="Kort")
    document = await ptb.send_document(CITIZEN, io.BytesIO(b"a;b\n1;2\n"), filename="svar.csv")
    assert photo.caption == "Kort"
    assert document.document is not None
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await ptb.send_photo(CITIZEN, io.BytesIO(b"x"), caption="x" * 1025)
    kinds = [m.kind for m in fake_bot.sent(CITIZEN)]
    assert kinds == ["photo", "document"]


async def test_json_and_query_string_parameters(
    fake_bot: FakeBot, fake_telegram: FakeTelegram
) -> None:
    fake_bot.send_message(CITIZEN, "hej")
    url = f"{fake_telegram.api_url}{fake_bot.token}/sendMessage"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"chat_id": CITIZEN, "text": "som JSON"}) as response:
            assert (await response.json())["ok"] is True
        async with session.get(url, params={"chat_id": str(CITIZEN), "text": "i URL"}) as response:
            assert (await response.json())["result"]["text"] == "i URL"
        async with session.post(url, data={"chat_id": str(CITIZEN), "text": ""}) as response:
            body = await response.json()
            assert response.status == 400
            assert body == {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: message text is empty",
            }
        async with session.post(f"{fake_telegram.api_url}{fake_bot.token}/noSuchMethod") as bad:
            assert bad.status == 404
        markup = json.dumps({"inline_keyboard": [[{"text": "x"}]]})
        async with session.post(
            url, data={"chat_id": str(CITIZEN), "text": "t", "reply_markup": markup}
        ) as response:
            assert response.status == 400
