"""A citizen's first steps, end to end: the real app over HTTP against the fake Telegram."""

from __future__ import annotations

import warnings

from sqlalchemy import select

from bot.app import BorgerDialog
from storage.models import InboxEvent, InboxStatus, Participant
from tests.conftest import eventually
from tests.fake_telegram import FakeBot

CITIZEN = 501


async def reply_count(fake_bot: FakeBot, chat_id: int, count: int) -> list[str]:
    return await eventually(
        lambda: (texts := fake_bot.texts(chat_id)) and len(texts) >= count and texts,
        what=f"{count} replies in chat {chat_id}",
    )


async def test_start_greets_in_danish_by_default(telegram_app: BorgerDialog, fake_bot: FakeBot):
    fake_bot.send_message(CITIZEN, "/start", language_code=None)
    texts = await reply_count(fake_bot, CITIZEN, 1)
    assert texts[0].startswith("Hej og velkommen")
    assert "/privatliv" in texts[0]


async def test_start_greets_in_english_for_an_english_telegram(
    telegram_app: BorgerDialog, fake_bot: FakeBot
):
    fake_bot.send_message(CITIZEN, "/start", language_code="en-GB")
    texts = await reply_count(fake_bot, CITIZEN, 1)
    assert texts[0].startswith("Hello and welcome")


async def test_help_privacy_and_fallback(telegram_app: BorgerDialog, fake_bot: FakeBot):
    fake_bot.send_message(CITIZEN, "/help")
    fake_bot.send_message(CITIZEN, "/privacy")
    fake_bot.send_message(CITIZEN, "Hvornår åbner svømmehallen igen?")
    texts = await reply_count(fake_bot, CITIZEN, 3)
    assert "/privatliv" in texts[0]
    assert "/sprog" in texts[0]
    assert "/privacy" in texts[0], "the English names are named as working too"
    assert "Dataansvarlig" in texts[1]
    assert "30 dage" in texts[1]
    assert "Datatilsynet" in texts[1]
    # What Telegram keeps itself is named; the web chat's transcript is not Telegram's.
    assert "Telegram har sin egen kopi af chatten" in texts[1]
    assert "webchat" not in texts[1]
    assert "/hjaelp" in texts[2]


async def test_danish_command_aliases(telegram_app: BorgerDialog, fake_bot: FakeBot):
    fake_bot.send_message(CITIZEN, "/privatliv", language_code="en")
    texts = await reply_count(fake_bot, CITIZEN, 1)
    assert texts[0].startswith("How we look after your data")


async def test_language_choice_is_stored_and_buttons_disappear(
    telegram_app: BorgerDialog, fake_bot: FakeBot
):
    fake_bot.send_message(CITIZEN, "/language", language_code="da")
    await reply_count(fake_bot, CITIZEN, 1)
    question = fake_bot.sent(CITIZEN)[0]
    assert [b["text"] for b in question.buttons] == ["Dansk", "English"]

    query_id = fake_bot.press_button(CITIZEN, question.message_id, "lang:en")
    await eventually(lambda: fake_bot.sent(CITIZEN)[0].edits == 1, what="the question edited")
    answered = fake_bot.sent(CITIZEN)[0]
    assert answered.text == "Fine – I will write in English from now on."
    assert answered.buttons == [], "an answered question must not offer its buttons again"
    await eventually(
        lambda: any(a["callback_query_id"] == query_id for a in fake_bot.callback_answers),
        what="the button press acknowledged",
    )

    # The stored choice beats the Danish Telegram client from now on.
    fake_bot.send_message(CITIZEN, "/start", language_code="da")
    texts = await reply_count(fake_bot, CITIZEN, 2)
    assert texts[1].startswith("Hello and welcome")


async def test_forged_button_gets_a_polite_answer_and_changes_nothing(
    telegram_app: BorgerDialog, fake_bot: FakeBot
):
    fake_bot.send_message(CITIZEN, "/language")
    await reply_count(fake_bot, CITIZEN, 1)
    question = fake_bot.sent(CITIZEN)[0]
    fake_bot.press_button(CITIZEN, question.message_id, "lang:xx", forge=True)
    fake_bot.press_button(CITIZEN, question.message_id, "vote:99:agree", forge=True)
    answers = await eventually(
        lambda: len(fake_bot.callback_answers) >= 2 and fake_bot.callback_answers,
        what="both presses answered",
    )
    assert all(a["text"].startswith("Den knap virker ikke") for a in answers)
    assert fake_bot.sent(CITIZEN)[0].edits == 0
    assert telegram_app.core is not None


async def test_group_chat_is_pointed_to_a_private_chat_and_chatter_ignored(
    telegram_app: BorgerDialog, fake_bot: FakeBot
):
    group = -1001
    fake_bot.send_message(CITIZEN, "hej alle sammen", chat_id=group, chat_type="supergroup")
    fake_bot.send_message(CITIZEN, "/start", chat_id=group, chat_type="supergroup")
    texts = await reply_count(fake_bot, group, 1)
    assert texts == [
        "Skriv til mig i en privat chat, så dine svar ikke bliver delt med hele gruppen."
    ]


async def test_commands_are_published_in_both_languages(
    telegram_app: BorgerDialog, fake_bot: FakeBot
):
    danish = fake_bot.call_commands("default", "")
    english = fake_bot.call_commands("default", "en")
    assert [c["command"] for c in danish] == [
        "start",
        "hjaelp",
        "privatliv",
        "minedata",
        "glem",
        "sprog",
        "stop",
    ]
    assert [c["command"] for c in english][1:3] == ["help", "privacy"]
    assert danish[2]["description"] == "Hvad gemmer vi om dig?"
    assert english[2]["description"] == "What do we store about you?"


async def test_every_update_is_stored_applied_and_its_text_dropped(
    telegram_app: BorgerDialog, fake_bot: FakeBot
):
    fake_bot.send_message(CITIZEN, "Mit cpr-nummer er hemmeligt")
    await reply_count(fake_bot, CITIZEN, 1)
    assert telegram_app.engine is not None
    async with telegram_app.engine.connect() as connection:
        event = (await connection.execute(select(InboxEvent))).one()
        participant = (await connection.execute(select(Participant))).one()
    assert event.status == InboxStatus.DONE
    assert event.payload is None, "the raw message must not outlive its handling"
    assert event.applied_sequence == 1
    assert participant.chat_id == str(CITIZEN)
    assert participant.events_applied == 1


async def test_many_chats_answered_at_once_leave_the_processs_warnings_as_they_were(
    telegram_app: BorgerDialog, fake_bot: FakeBot
):
    """Each Bot API call used to set the warning filters aside and put them back; concurrent
    calls put them back out of order, and every warning of the process ended silenced."""
    silence_everything = ("ignore", None, Warning, None, 0)
    assert silence_everything not in warnings.filters
    chats = range(CITIZEN + 100, CITIZEN + 130)
    fake_bot.send_many([(chat, "/start") for chat in chats])
    for chat in chats:
        await reply_count(fake_bot, chat, 1)
    assert silence_everything not in warnings.filters
