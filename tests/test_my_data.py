"""A citizen sees, erases and pauses what the bot holds about them; answers can be changed."""

from __future__ import annotations

import pytest

from bot.app import BorgerDialog
from storage.models import Answer, Participant, Participation
from tests.citizens import Citizen, answer_all, held_mydata_file, import_consultation, open_now
from tests.conftest import eventually, table_rows
from tests.fake_telegram import FakeBot


async def test_mydata_shows_everything_as_text_and_json(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(telegram_app, open_now())
    ida = Citizen(fake_bot, 201)
    await answer_all(ida)
    summary, document = await ida.write("/mydata", new=2)
    assert (summary.text or "").startswith("Det har vi gemt om dig")
    assert "Ny friluftspolitik – besvaret" in (summary.text or "")
    assert "Hvad er dit postnummer?: 8000" in (summary.text or "")
    assert document.kind == "document"
    assert document.caption == "Dine data som JSON"
    sent = [r for r in fake_bot.requests("sendDocument") if r[3] == 200]
    assert sent[0][2]["document"]["filename"] == "mine-data.json"
    # The fake keeps only the size of uploads; the outbox held the JSON until it was sent.
    assert sent[0][2]["document"]["size"] > 500


@pytest.mark.usefixtures("quick_retries")
async def test_mydata_json_content(telegram_app: BorgerDialog, fake_bot: FakeBot) -> None:
    await import_consultation(telegram_app, open_now())
    ida = Citizen(fake_bot, 202)
    idea = "En sti hele vejen rundt om søen, med bænke for hver halve kilometer, " * 3
    await answer_all(ida, idea=idea.strip())
    # Hold the document in the outbox (network down) to read exactly what would be sent.
    fake_bot.inject(500, "Internal Server Error", method="sendDocument", chat_id=202, times=4)
    ida.fake.send_message(202, "/mydata")
    record = await eventually(lambda: held_mydata_file(telegram_app), what="the JSON queued")
    (consultation,) = record["consultations"]
    assert consultation["status"] == "completed"
    assert consultation["consent_given_at"] is not None
    stored = {a["question"]: a["stored_as"] for a in consultation["answers"]}
    assert stored["Hvor gammel er du?"] == "under_25"
    assert stored["Hvad laver du i naturen?"] == ["running"]
    assert stored["Hvad er dit postnummer?"] == "8000"
    # The answer as the citizen chose it, not the option's id.
    shown = {a["question"]: a["answer"] for a in consultation["answers"]}
    assert shown["Hvor gammel er du?"] == "Under 25"
    # A typed answer whole, not shortened as in the message.
    assert shown["Hvad er din bedste idé til naturen i kommunen?"] == idea.strip()
    assert consultation["reports"] == []


async def test_forget_erases_answers_and_anonymises_ideas(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(telegram_app, open_now())
    ulla = Citizen(fake_bot, 203)
    await answer_all(ulla, idea="Hundeskov i Nordparken")
    (question,) = await ulla.write("/forget")
    assert "anonymiseret" in (question.text or "")
    await ulla.tap("Nej, behold", new=0)
    await eventually(lambda: ulla.last().text == "Intet er slettet.", what="nothing erased")
    assert len(await table_rows(telegram_app, Answer)) == 8

    await ulla.write("/forget")
    await ulla.tap("Ja, slet", new=0)
    await eventually(
        lambda: (ulla.last().text or "").startswith("Dine oplysninger og svar er slettet."),
        what="erased",
    )
    assert "1 idé står tilbage uden forbindelse til dig." in (ulla.last().text or "")
    assert await table_rows(telegram_app, Participant) == []
    assert await table_rows(telegram_app, Participation) == []
    (idea,) = await table_rows(telegram_app, Answer)
    assert idea.value == "Hundeskov i Nordparken"
    assert idea.participation_id is None

    # Writing again starts afresh, as a new participant.
    (greeting,) = await ulla.write("/start")
    assert (greeting.text or "").startswith("Hej og velkommen")


async def test_stop_pauses_until_the_citizen_writes_again(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(telegram_app, open_now())
    tor = Citizen(fake_bot, 204)
    await tor.write("/start friluftsliv", new=2)
    await tor.tap("Ja, jeg giver samtykke")
    (reply,) = await tor.write("/stop")
    assert reply.text == (
        "Du får ingen beskeder fra mig, før du selv skriver igen.\n\n"
        "Dine svar er gemt. Skriv /start, når du vil fortsætte."
    )
    (participant,) = await table_rows(telegram_app, Participant)
    assert participant.stopped_at is not None
    await tor.write("/hjaelp")
    (participant,) = await table_rows(telegram_app, Participant)
    assert participant.stopped_at is None


async def test_a_finished_citizen_can_change_an_answer_without_counting_twice(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(telegram_app, open_now())
    eja = Citizen(fake_bot, 205)
    await answer_all(eja)
    (summary,) = await eja.write("/start friluftsliv")
    assert (summary.text or "").startswith("Du har allerede svaret på »Ny friluftspolitik«.")
    (which,) = await eja.tap("Ret et svar")
    assert which.text == "Hvilket svar vil du rette?"
    # Each question whole, as far as a button holds (64 characters: what the flows write for).
    labels = [b["text"] for b in which.buttons]
    assert "Hvor mange gange om måneden er du i naturen?" in labels
    assert "Hvad er din bedste idé til naturen i kommunen?" in labels
    (question,) = await eja.tap("Hvor tilfreds er du med stierne i dag?")
    assert "Dit svar nu: 5" in (question.text or "")
    (updated,) = await eja.tap("2")
    assert (updated.text or "").startswith("Dine svar til »Ny friluftspolitik« er opdateret:")
    (participation,) = await table_rows(telegram_app, Participation)
    assert participation.status == "completed"
    answers = {a.question_id: a.value for a in await table_rows(telegram_app, Answer)}
    assert "2" in answers.values()
    assert "5" not in answers.values()
