"""Hostile and malformed Telegram input: each gets a polite answer or is set aside, intake goes on.

Every case is followed by an ordinary message from the same or another citizen, which must be
answered: nothing may stop intake, and no case may leave a traceback or a pending event behind.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BorgerDialog
from storage.models import Answer, InboxEvent, InboxStatus, Participant, Participation
from tests.citizens import Citizen, import_consultation, open_now
from tests.conftest import eventually, table_rows
from tests.fake_telegram import FakeBot
from tests.moderators import consultation_source as moderation_consultation
from tests.moderators import join as join_consultation

HELP_REPLY = "Det kan du her"

# Button payloads a modified client can send; none was made by the bot for this citizen.
FORGED_PAYLOADS = [
    "x",
    ":",
    "::::",
    "c:",
    "c:nonexistent-slug",
    "c:" + "a" * 62,
    "a:1:2:²",
    "a:²:1:0",
    "a:1:1:99999999999999999999",
    "a:-1:1:0",
    "a:0:0:0",
    "a:1:1:1:1:1:1",
    "t:1:1:٣",
    "d:1:1",
    "s:1",
    "b:",
    "b:١",
    "i:m:99999999999999999999",
    "i:m:2147483648",
    "i:m:0",
    "i:zz:1",
    "i:v:-5",
    "v:1:agree",
    "v:99999999999999999999:a",
    "V:²:a",
    "rw:²",
    "rw:99999999999999999999",
    "rw:",
    "f:maybe",
    "f:y:y",
    "ok:1:y",
    "ok:²:y",
    "ok:1:maybe",
    "h:99999999999999999999:y",
    "r:1:2:3",
    "e:1",
    "e:1:2:3",
    "m:a:1",
    "m:w:1:nonsense",
    "pc:1:y",
    "pa:ok",
    "lang:xx",
    "lang:",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'; DROP TABLE participants; --",
    "%00",
    "vote:12:agree",
    "🙂",
    "c:friluftsliv\u202e",
    "c:friluft\u0000sliv",
    " c:friluftsliv",
]


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.exc_info is not None or "Traceback" in record.getMessage()
    ]


async def _still_answers(citizen: Citizen) -> None:
    replies = await citizen.write("/help")
    assert replies[-1].text.startswith(HELP_REPLY)


async def test_forged_button_payloads_get_a_polite_no_and_change_nothing(
    telegram_app: BorgerDialog, fake_bot: FakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    await import_consultation(telegram_app, open_now())
    citizen = Citizen(fake_bot, 4242)
    await citizen.write("/start friluftsliv", new=2)
    await citizen.tap("Ja, jeg giver samtykke")
    answers_before = await table_rows(telegram_app, Answer)
    message_id = citizen.last().message_id
    refused = {}
    for payload in FORGED_PAYLOADS:
        answer = await citizen.forge(message_id, payload)
        refused[payload] = answer.get("text")
    stale = {p: text for p, text in refused.items() if not (text or "").startswith("Den knap")}
    assert stale == {}, "these payloads were not answered as stale"
    assert await table_rows(telegram_app, Answer) == answers_before
    await _still_answers(citizen)
    failed = [row for row in await table_rows(telegram_app, InboxEvent) if row.status != "done"]
    assert failed == []
    assert _tracebacks(caplog) == []


async def test_the_end_of_questions_buttons_forged_before_the_end_are_refused(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """ "Tell me what happens" and "change an answer" are offered once every question is
    answered. Pressed (forged) by someone who declined consent, or halfway through, they are
    stale: no wish is stored without consent, and the question on screen stays as it was."""
    await import_consultation(telegram_app, open_now())
    declined = Citizen(fake_bot, 4250)
    await declined.write("/start friluftsliv", new=2)
    await declined.tap("Nej tak")
    halfway = Citizen(fake_bot, 4251)
    await halfway.write("/start friluftsliv", new=2)
    (question,) = await halfway.tap("Ja, jeg giver samtykke")
    participations = await table_rows(telegram_app, Participation)
    for citizen in (declined, halfway):
        participant = await _participant(telegram_app, citizen.id)
        (participation,) = [row for row in participations if row.participant_id == participant]
        for payload in (f"h:{participation.id}:y", f"r:{participation.id}"):
            answer = await citizen.forge(citizen.last().message_id, payload)
            assert (answer.get("text") or "").startswith("Den knap"), payload
    after = {row.id: row for row in await table_rows(telegram_app, Participation)}
    assert [row.hear_back for row in after.values()] == [None, None]
    assert sorted(row.status for row in after.values()) == ["answering", "declined"]
    assert halfway.last().text == question.text
    assert [b["text"] for b in halfway.last().buttons] == [b["text"] for b in question.buttons]


async def test_erase_everything_forged_without_forget_asked_erases_nothing(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """ "Erase everything" acts only as the answer to /forget: pressed (forged) without it, or
    after answering "keep" to it, the button is stale and every answer stays. Asked again, it
    erases."""
    await import_consultation(telegram_app, open_now())
    citizen = Citizen(fake_bot, 4255)
    await citizen.write("/start friluftsliv", new=2)
    await citizen.tap("Ja, jeg giver samtykke")
    answer = await citizen.forge(citizen.last().message_id, "f:y")
    assert (answer.get("text") or "").startswith("Den knap")
    await citizen.write("/glem")
    await citizen.tap("Nej, behold", new=0)
    answer = await citizen.forge(citizen.last().message_id, "f:y")
    assert (answer.get("text") or "").startswith("Den knap")
    assert len(await table_rows(telegram_app, Participation)) == 1
    await citizen.write("/glem")
    await citizen.tap("Ja, slet", new=0)
    assert await table_rows(telegram_app, Participation) == []


async def test_an_answer_of_invisible_characters_is_empty(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """Zero-width characters and joiners show nothing: such an answer is empty, and the
    question waits for a real one."""
    await import_consultation(telegram_app, moderation_consultation())
    anna = await join_consultation(fake_bot, 4260)
    (empty,) = await anna.write("\u200d\u200b\u2060 \u200b")
    assert empty.text == "Dit svar er tomt. Skriv gerne et par ord."
    assert await table_rows(telegram_app, Answer) == []
    (next_question,) = await anna.write("En cykelsti langs Skolevej")
    assert (next_question.text or "").startswith("2/2")
    (answer,) = await table_rows(telegram_app, Answer)
    assert answer.value == "En cykelsti langs Skolevej"


async def _participant(app: BorgerDialog, user_id: int) -> int:
    (participant,) = [
        row for row in await table_rows(app, Participant) if row.chat_id == str(user_id)
    ]
    return int(participant.id)


def _message(fake_bot: FakeBot, user_id: int, **fields: Any) -> dict[str, Any]:
    update = fake_bot.message_update(user_id, "x")
    update["message"].update(fields)
    return update


# (case id, how to build the update from the fake bot, what the author sees: a reply starting
# with this, or None when no reply is right: not for a flow, or not from a person we can answer)
def _hostile_updates(fake_bot: FakeBot, user: int) -> list[tuple[str, dict[str, Any], str | None]]:
    polite_unreadable = "Jeg kunne ikke læse din besked"
    return [
        ("nul-in-text", _message(fake_bot, user, text="Hej\u0000 med dig"), "Tak for din besked"),
        ("only-nul", _message(fake_bot, user, text="\u0000"), None),
        ("lone-surrogate", _message(fake_bot, user, text="Hej \ud800 der"), polite_unreadable),
        ("terminal-escape", _message(fake_bot, user, text="\x1b[2J\x1b[31mHej"), None),
        ("vertical-tab", _message(fake_bot, user, text="a\x0bb"), None),
        ("rtl-override", _message(fake_bot, user, text="\u202eHej"), None),
        ("very-long-text", _message(fake_bot, user, text="å" * 20000), None),
        ("start-with-nul", _message(fake_bot, user, text="/start fri\u0000luftsliv"), None),
        ("command-lone-surrogate", _message(fake_bot, user, text="/start \udfff"), None),
        ("name-with-escape", _renamed(fake_bot, user, "\x1b[31mEvil\u0000"), None),
        ("text-is-null", _message(fake_bot, user, text=None), None),
        ("edited-message", {"edited_message": _message(fake_bot, user)["message"]}, None),
        ("channel-post", {"channel_post": _message(fake_bot, user)["message"]}, None),
        ("unknown-update-kind", {"something_new": {"a": 1}}, None),
        ("empty-update", {}, None),
        ("message-not-an-object", {"message": "oops"}, None),
        ("message-without-chat", {"message": {"message_id": 1, "date": 1, "text": "x"}}, None),
        ("chat-without-id", _message(fake_bot, user, chat={"type": "private"}), None),
        ("from-is-a-list", _message(fake_bot, user, **{"from": [1, 2]}), None),
        ("date-is-text", _message(fake_bot, user, date="yesterday"), None),
        ("huge-chat-id", _message(fake_bot, user, chat={"id": 10**30, "type": "private"}), None),
        ("nested-deep", {"message": _nested(500)}, None),
        ("callback-without-message", _callback(fake_bot, user, message=None), None),
        ("callback-without-data", _callback(fake_bot, user, data=None), None),
        ("callback-nul-data", _callback(fake_bot, user, data="c:\u0000"), None),
    ]


def _renamed(fake_bot: FakeBot, user: int, name: str) -> dict[str, Any]:
    update = _message(fake_bot, user, text="Hej")
    update["message"]["from"] = {**update["message"]["from"], "first_name": name}
    return update


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _callback(fake_bot: FakeBot, user: int, **fields: Any) -> dict[str, Any]:
    message = fake_bot.message_update(user, "x")["message"]
    query: dict[str, Any] = {
        "id": f"forged-{user}",
        "from": message["from"],
        "message": message,
        "chat_instance": str(user),
        "data": "x",
    }
    query.update(fields)
    if query.get("message") is None:
        query.pop("message", None)
    if query.get("data") is None:
        query.pop("data", None)
    return {"callback_query": query}


async def test_hostile_updates_never_stop_intake(
    telegram_app: BorgerDialog, fake_bot: FakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    await import_consultation(telegram_app, open_now())
    caplog.set_level(logging.WARNING)
    author = Citizen(fake_bot, 5151)
    bystander = Citizen(fake_bot, 6161)
    cases = _hostile_updates(fake_bot, author.id)
    unanswered = []
    for case, update, expected in cases:
        before = len(author.messages())
        fake_bot.push_raw(update)
        # Someone else writes right after: intake must go on past the hostile update.
        await _still_answers(bystander)
        if expected is not None:

            def answered(b: int = before, e: str = expected) -> bool:
                return any(m.text.startswith(e) for m in author.messages()[b:])

            try:
                await eventually(answered, timeout=10, what=case)
            except pytest.fail.Exception:
                unanswered.append((case, [m.text[:60] for m in author.messages()[before:]]))
    assert unanswered == []
    await eventually(lambda: fake_bot.unconfirmed() == 0, what="every update confirmed")
    assert telegram_app.telegram is not None
    assert telegram_app.telegram.state == "running"
    rows = await table_rows(telegram_app, InboxEvent)
    assert [row.external_id for row in rows if row.status == InboxStatus.PENDING] == []
    assert _tracebacks(caplog) == []
    assert telegram_app.engine is not None
    async with telegram_app.engine.connect() as connection:
        payloads = (await connection.execute(select(InboxEvent.payload))).scalars().all()
    assert not any("\u0000" in str(payload) for payload in payloads)


def test_updates_without_a_usable_id_are_each_kept_once_by_their_content() -> None:
    from bot.channels.telegram.channel import _as_inbox_event

    first = _as_inbox_event(None, {"not an object": [1, 2]})
    second = _as_inbox_event(None, {"update_id": "7", "message": {"chat": {"id": 5}}})
    again = _as_inbox_event(None, {"not an object": [1, 2]})
    # Not all "-1": each is kept for an operator, and the same one again is recognised.
    assert first[0] != second[0]
    assert first[0] == again[0]
    assert first[0].startswith("unreadable-")
    # The chat is still found, so /forget reaches what that citizen sent.
    assert second[1] == "5"
    assert _as_inbox_event(None, {"update_id": 12})[0] == "12"
