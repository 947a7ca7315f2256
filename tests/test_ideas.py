"""The ideas phase end to end over the fake Bot API: statements, voting, where you stand, news."""

from __future__ import annotations

import pytest

from bot.app import BorgerDialog
from handlers.ideas.staff import NotShown, decide, moderate
from scheduler.jobs import send_statement_notices
from storage.models import ItemStatus, ModerationItem, Statement, Visibility, Vote, VoteEvent
from tests.citizens import held_mydata_file, import_consultation
from tests.conftest import eventually, model_rows
from tests.fake_telegram import FakeBot
from tests.ideas import (
    SEEDS,
    card_statement,
    ideas_source,
    join,
    statements,
    uow_of,
    vote,
    vote_through,
    write_statement,
)
from tests.moderators import Moderator, new_card


async def test_citizens_write_vote_change_report_see_where_they_stand_and_hear_decisions(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source())
    anna = await join(fake_bot, 401)

    # A statement too long is refused politely and nothing is stored.
    await anna.tap("✍️ Skriv et udsagn")
    (refusal,) = await anna.write("Lang " * 40)
    assert "grænsen er 120" in (refusal.text or "")
    assert {s.origin for s in await statements(app)} == {"staff"}
    # Characters that show nothing are no statement: 30 zero-width spaces, joiners around "ok".
    for invisible in ("\u200b" * 30, "\u2060\u200d" * 15 + "ok", "\u3164" * 30, "\u2800" * 30):
        (refusal,) = await anna.write(invisible)
        assert (refusal.text or "").startswith("Skriv gerne lidt mere"), refusal.text
    assert {s.origin for s in await statements(app)} == {"staff"}

    # Near a seeded statement: the citizen is offered to vote on that one instead.
    _preview, similar = await anna.write("Flere cykelstier ved skolen, tak", new=2)
    assert "Nogen har allerede skrevet noget lignende" in (similar.text or "")
    assert "»Der skal være flere cykelstier ved skolen«" in (similar.text or "")
    assert [b["text"] for b in similar.buttons] == ["🗳 Stem om »Der skal være flere cykelstie…«"]

    # Edit, then send a different statement.
    await anna.tap("✏️ Ret")
    await anna.write("Der skal males en fodgængerovergang ved bageren")
    await anna.tap("✅ Send")
    assert anna.last().text == "Tak! Dit udsagn er nu med blandt dem, andre stemmer om."
    first = next(s for s in await statements(app) if s.origin == "citizen")
    assert first.visibility == Visibility.VISIBLE
    assert first.text == {"da": "Der skal males en fodgængerovergang ved bageren"}

    # Bo votes one card at a time: never his own, never twice, every visible statement once.
    bo = await join(fake_bot, 402)
    await bo.tap("🗳 Stem om udsagn")
    seen = await vote_through(bo, {"Bilerne skal køre langsommere forbi skolen": "👎 Uenig"})
    assert sorted(seen) == sorted([*SEEDS, first.text["da"]])
    assert any("Vil du se, hvor du står" in text for text in bo.texts())
    assert (bo.last().text or "").startswith("Du har stemt om alle udsagn")

    # Anna votes too, but never gets her own statement.
    await anna.tap("🗳 Stem om udsagn")
    assert sorted(await vote_through(anna)) == sorted(SEEDS)

    # Bo changes his mind from his history: one more vote event, the same number of votes.
    await bo.tap("🗂 Mine stemmer")
    await bo.tap("👎 Bilerne skal køre langsommere forbi s…")
    assert "Din stemme nu: uenig" in (bo.last().text or "")
    await bo.tap("👍 Enig", new=0)
    await eventually(
        lambda: (bo.last().text or "").endswith("✅ Ændret – din stemme: enig"),
        what="the card shows the changed vote",
    )
    assert len(await model_rows(app, Vote)) == 9
    assert len(await model_rows(app, VoteEvent)) == 10

    # Where Bo stands: too few votes per statement for a majority, too few people for groups.
    await bo.tap("📊 Hvor står jeg?")
    standing = bo.last().text or ""
    assert "Du har stemt om 5 af 5 udsagn." in standing
    assert "Meningsgrupperne vises, når nok har stemt." in standing

    # Carla votes on everything but said no to hearing back.
    carla = await join(fake_bot, 403, hear_back=False)
    await carla.tap("🗳 Stem om udsagn")
    assert len(await vote_through(carla)) == 5

    # Bo asked to hear of new statements; Anna writes one; the notice job tells Bo once.
    await bo.tap("🔔 Giv mig besked om nye")
    await write_statement(anna, "Lys på stien gennem parken om vinteren")
    await anna.tap("✅ Send")
    before = len(bo.messages())
    assert (
        await send_statement_notices(uow_of(app), app.clock, app.core.delivery, app.core.texts) == 1
    )
    await eventually(lambda: len(bo.messages()) > before, what="the notice")
    assert bo.last().text == "💡 Der er 1 nyt udsagn at stemme om i »Skolevejen«."
    assert (
        await send_statement_notices(uow_of(app), app.clock, app.core.delivery, app.core.texts) == 0
    )

    # Bo reports it; at one report this consultation holds it for a moderator, who hides it
    # with a reason; Anna hears why and may write it anew.
    moderator = Moderator(fake_bot, 901)
    await bo.tap("🗳 Stem om udsagn")
    assert card_statement(bo.last().text or "") == "Lys på stien gennem parken om vinteren"
    await bo.tap("⚠️ Anmeld")
    assert bo.last().text == "Hvorfor anmelder du udsagnet?"
    # Changing one's mind reports nothing.
    await bo.tap("Fortryd", new=0)
    await eventually(
        lambda: bo.last().text == "Du anmeldte ikke udsagnet. Du kan stadig stemme om det ovenfor.",
        what="the report dialog closed",
    )
    await bo.tap("⚠️ Anmeld")
    await bo.tap("Handler ikke om emnet")
    assert any("taget af, indtil en moderator" in text for text in bo.texts()[-2:])
    card = await new_card(moderator, 0)
    assert "Udsagn 6 i idédelen" in (card.text or "")
    assert "holdt tilbage, fordi borgere har anmeldt det" in (card.text or "")
    second = next(s for s in await statements(app) if s.number == 6)
    assert second.visibility == Visibility.HELD
    await moderator.press(card, "💬 Skjul og forklar")
    # The press is answered before the card is redrawn with the reasons.
    await eventually(
        lambda: "Uden for emnet" in [b["text"] for b in moderator.card_now(card).buttons],
        what="the reasons on the card",
    )
    await moderator.press(card, "Uden for emnet")
    told = await eventually(
        lambda: [t for t in anna.texts() if t.startswith("Dit udsagn »Lys på stien")],
        what="Anna told",
    )
    assert "bliver ikke vist" in told[0]
    assert anna.last().buttons[0]["text"] == "✏️ Skriv et nyt udsagn"
    await anna.tap("✏️ Skriv et nyt udsagn")
    assert "Skriv dit udsagn i én besked" in (anna.last().text or "")

    # Staff accept Anna's first statement: Anna (author) and Bo (voted, asked to hear back)
    # hear it in their chat; Carla voted on it too but said no to hearing back.
    async with uow_of(app)() as uow:
        stored = await uow.ideas.statement(first.id)
        assert stored is not None
        messages = await decide(
            uow,
            stored,
            "accepted",
            "Den kommer på budgettet for 2027.",
            None,
            app.clock(),
            app.core.texts,
        )
        for address, reply in messages:
            await uow.outbox.add(address.channel, address.chat_id, reply.to_payload(), app.clock())
        await uow.commit()
    assert sorted(address.chat_id for address, _ in messages) == ["401", "402"]
    # The statement moderation took down gets no decision: its news would quote it again.
    async with uow_of(app)() as uow:
        hidden = await uow.ideas.statement(second.id)
        assert hidden is not None
        with pytest.raises(NotShown, match="statement 6 is hidden by moderation"):
            await decide(uow, hidden, "accepted", None, None, app.clock(), app.core.texts)
    for citizen in (anna, bo):
        await app.core.delivery.deliver_chat("telegram", str(citizen.id))
        news = citizen.last().text or ""
        assert news.startswith("📣 Nyt fra »Skolevejen« om udsagnet")
        assert "✅ Det er vedtaget." in news
        assert "Begrundelse: Den kommer på budgettet for 2027." in news
    assert "fordi du skrev udsagnet" in (anna.last().text or "")
    assert "fordi du stemte om udsagnet" in (bo.last().text or "")
    assert not any("📣" in text for text in carla.texts())
    # Bo's own data name the report he made (a report is his, not only the statement's).
    summary, _file = await bo.write("/mydata", new=2)
    assert "• Udsagn, du har anmeldt: 1" in (summary.text or "")


async def test_pre_moderated_statements_wait_for_approval_before_anyone_votes_on_them(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source(moderation="pre"))
    anna = await join(fake_bot, 411)
    moderator = Moderator(fake_bot, 901)
    await write_statement(anna, "Lys på stien gennem parken om vinteren")
    await anna.tap("✅ Send")
    assert "En moderator læser alle udsagn, før andre ser dem" in (anna.last().text or "")
    card = await new_card(moderator, 0)
    assert "venter på godkendelse (forhåndsmoderation)" in (card.text or "")
    assert "«Lys på stien gennem parken om vinteren»" in (card.text or "")

    # Until approved, nobody gets it as a card.
    bo = await join(fake_bot, 412)
    await bo.tap("🗳 Stem om udsagn")
    assert "Lys på stien gennem parken om vinteren" not in await vote_through(bo)

    await moderator.press(card, "✅ Godkend")
    approved = await eventually(
        lambda: [t for t in anna.texts() if t.startswith("✅ Dit udsagn")], what="Anna told"
    )
    assert "er godkendt og vises nu for andre" in approved[0]
    await bo.tap("🗳 Stem om udsagn")
    assert card_statement(bo.last().text or "") == "Lys på stien gennem parken om vinteren"

    # A second one is approved by staff from the command line's function; Anna hears it too.
    await write_statement(anna, "Cykelparkering ved hallen skal være overdækket")
    await anna.tap("✅ Send")
    await new_card(moderator, 1)
    async with uow_of(app)() as uow:
        consultation = await uow.consultations.by_slug("skolevej")
        assert consultation is not None
        statement = await uow.ideas.by_number(consultation.id, 6)
        assert statement is not None
        assert statement.visibility == Visibility.HELD
        messages = await moderate(uow, statement, True, "staff", app.clock(), app.core.texts)
        for address, reply in messages:
            await uow.outbox.add(address.channel, address.chat_id, reply.to_payload(), app.clock())
        await uow.commit()
    await app.core.delivery.deliver_chat("telegram", str(anna.id))
    assert "»Cykelparkering ved hallen skal være overdækket«" in (anna.last().text or "")


async def test_forget_deletes_a_statement_nobody_was_shown_so_it_can_never_be_published(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """Only what others were shown stays after /glem: a statement still waiting for a
    moderator (pre-moderation) goes, its card loses the text and asks for no decision, and
    the author is not told it stays."""
    await import_consultation(app, ideas_source(moderation="pre"))
    anna = await join(fake_bot, 431)
    moderator = Moderator(fake_bot, 901)
    await write_statement(anna, "Lys på stien gennem parken om vinteren")
    await anna.tap("✅ Send")
    card = await new_card(moderator, 0)
    assert "«Lys på stien gennem parken om vinteren»" in (card.text or "")

    await anna.write("/glem")
    await anna.tap("Ja, slet", new=0)
    await eventually(
        lambda: (anna.last().text or "").startswith("Dine oplysninger og svar er slettet."),
        what="the erasure confirmed",
    )
    assert "står tilbage" not in (anna.last().text or ""), "nothing of hers stays"
    assert [s for s in await statements(app) if s.origin == "citizen"] == []
    await eventually(
        lambda: "Slettet efter borgerens ønske" in (moderator.card_now(card).text or ""),
        what="the card without her text",
    )
    assert "Lys på stien" not in (moderator.card_now(card).text or "")
    assert moderator.card_now(card).buttons == [], "nothing left to decide"
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]
    assert (item.status, item.statement_id) == (ItemStatus.RESUBMITTED, None)


async def test_my_data_shows_statements_and_votes_and_forget_keeps_statements_anonymised(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source())
    anna = await join(fake_bot, 421)
    await write_statement(anna, "Lys på stien gennem parken om vinteren")
    await anna.tap("✅ Send")
    await anna.tap("🗳 Stem om udsagn")
    await vote(anna, "👎 Uenig")
    summary, _file = await anna.write("/mydata", new=2)
    assert "• Idédelen: 1 udsagn skrevet, 1 stemmer" in (summary.text or "")

    await anna.write("/forget")
    await anna.tap("Ja, slet", new=0)
    await eventually(lambda: "1 idé" in (anna.last().text or ""), what="the erasure confirmed")
    (kept,) = [s for s in await statements(app) if s.origin == "citizen"]
    assert kept.participation_id is None
    assert kept.text == {"da": "Lys på stien gennem parken om vinteren"}
    assert await model_rows(app, Vote) == []
    assert await model_rows(app, VoteEvent) == []


async def test_citizens_volunteer_for_a_statement_staff_look_for_help_on(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source())
    async with uow_of(app)() as uow:
        consultation = await uow.consultations.by_slug("skolevej")
        assert consultation is not None
        for statement in await uow.ideas.statements(consultation.id):
            statement.wants_volunteers = True
        await uow.commit()
    anna = await join(fake_bot, 431)
    await anna.tap("🗳 Stem om udsagn")
    card = anna.last()
    assert "🙋 Kommunen søger borgere" in (card.text or "")
    words = card_statement(card.text or "")
    await anna.tap("🙋 Jeg vil gerne hjælpe")
    assert "må kommunen skrive til dig her i chatten" in (anna.last().text or "")
    await anna.tap("Ja, skriv til mig", new=0)
    await eventually(
        lambda: anna.last().text == "Tak! Kommunen skriver til dig her i chatten.",
        what="the offer confirmed",
    )
    async with uow_of(app)() as uow:
        assert consultation is not None
        (offer,) = await uow.ideas.volunteers(consultation.id)
        _, statement, participation, participant = offer
        assert statement_text_of(statement) == words
        assert participant.chat_id == "431"
        assert participation.pseudonym.startswith("p-")
    # Offering twice is counted once.
    await anna.tap("🙋 Jeg vil gerne hjælpe")
    await anna.tap("Ja, skriv til mig", new=0)
    await eventually(
        lambda: anna.last().text == "Du har allerede meldt dig – tak!", what="counted once"
    )
    # Her offer is part of what /minedata shows her, in the message and in the file (held in
    # the outbox to be read).
    fake_bot.inject(500, "Internal Server Error", method="sendDocument", chat_id=431, times=4)
    (summary,) = await anna.write("/minedata")
    assert "• Udsagn, du har tilbudt at hjælpe med: 1" in (summary.text or "")
    record = await eventually(lambda: held_mydata_file(app), what="the JSON queued")
    (offered,) = record["consultations"][0]["offers_to_help"]
    assert (offered["statement"], offered["text"]) == (statement.number, words)


def statement_text_of(statement: Statement) -> str:
    return statement.text["da"]
