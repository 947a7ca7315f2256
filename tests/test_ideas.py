"""The ideas phase end to end over the fake Bot API: statements, voting, where you stand, news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.app import BorgerDialog
from handlers.ideas.staff import decide, moderate
from scheduler.jobs import send_statement_notices
from storage.models import Statement, Visibility, Vote, VoteEvent
from storage.uow import UnitOfWorkFactory
from tests.citizens import Citizen, import_consultation
from tests.conftest import eventually
from tests.fake_telegram import FakeBot
from tests.test_moderation import Moderator, _rows, new_card

SEEDS = (
    "Der skal være flere cykelstier ved skolen",
    "Bilerne skal køre langsommere forbi skolen",
    "Skolen skal have et kys-og-kør-område",
    "Der skal være en skolepatrulje ved krydset",
)
CARD = "🗳 "


def ideas_source(*, moderation: str = "post", reports_to_hold: int = 1) -> str:
    now = datetime.now(UTC)
    opens = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    closes = (now + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    seeds = "\n".join(f'    - "{seed}"' for seed in SEEDS)
    return f"""
slug: skolevej
languages: [da, en]
title: {{da: Skolevejen, en: The way to school}}
purpose: {{da: Vi vil gøre skolevejen tryggere., en: We want a safer way to school.}}
basis:
  decided: {{da: Der er afsat penge., en: Money is set aside.}}
  influence: {{da: Hvad pengene bruges til., en: What the money is spent on.}}
  decides: {{da: Teknisk udvalg., en: The technical committee.}}
target_group: {{description: {{da: Forældre og elever, en: Parents and pupils}}}}
citizen_role: co-design
organiser: {{name: Teknik og Miljø, contact: trafik@kommune.example}}
results: {{da: Resultaterne kommer i marts., en: Results come in March.}}
rounds:
  - {{opens: "{opens}", closes: "{closes}"}}
questions:
  - id: walk
    kind: yesno
    text: {{da: "Går eller cykler dit barn til skole?", en: "Does your child walk or cycle?"}}
moderation:
  reports_to_hold: {reports_to_hold}
ideas:
  opens: "{opens}"
  closes: "{closes}"
  prompt: {{da: "Hvad skal der til for en tryg skolevej?", en: "What makes a safe way to school?"}}
  max_length: 120
  moderation: {moderation}
  statements:
{seeds}
"""


async def join(fake_bot: FakeBot, user_id: int, hear_back: bool = True) -> Citizen:
    """Start, consent, answer the one question, answer hear-back; the ideas menu follows."""
    citizen = Citizen(fake_bot, user_id)
    await citizen.write("/start skolevej", new=2)
    await citizen.tap("Ja, jeg giver samtykke")
    await citizen.tap("Ja", new=2)
    menu = await citizen.tap("Ja" if hear_back else "Nej")
    assert (menu[-1].text or "").startswith("💡 Idéer til »Skolevejen«")
    return citizen


async def write_statement(citizen: Citizen, text: str, new: int = 1) -> None:
    await citizen.tap("✍️ Skriv et udsagn")
    preview = await citizen.write(text, new=new)
    assert (preview[0].text or "").startswith("Dit udsagn:")


def card_statement(text: str) -> str:
    return text.split("»")[1].split("«")[0] if "»" in text else ""


async def statements(app: BorgerDialog) -> list[Statement]:
    return [row[0] for row in await _rows(app, Statement)]


def uow_of(app: BorgerDialog) -> UnitOfWorkFactory:
    assert app.uow is not None
    return app.uow


def settled(citizen: Citizen, pressed: int) -> bool:
    """Whether the answer to a vote has arrived: a new card, or "no more"."""
    last = citizen.last()
    text = last.text or ""
    return last.message_id != pressed and (
        text.startswith(CARD) or text.startswith("Du har stemt om alle")
    )


async def vote(citizen: Citizen, label: str) -> None:
    """Vote on the newest card and wait for what follows."""
    pressed = citizen.last().message_id
    await citizen.tap(label)
    await eventually(lambda: settled(citizen, pressed), what="the next card")


async def vote_through(citizen: Citizen, choose: dict[str, str] | None = None) -> list[str]:
    """Vote on card after card until there are none; return the statements seen in order."""
    seen: list[str] = []
    while (citizen.last().text or "").startswith(CARD):
        statement = card_statement(citizen.last().text or "")
        assert statement not in seen, "a statement came twice"
        seen.append(statement)
        await vote(citizen, (choose or {}).get(statement, "👍 Enig"))
    return seen


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
    assert len(await _rows(app, Vote)) == 9
    assert len(await _rows(app, VoteEvent)) == 10

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
    for citizen in (anna, bo):
        await app.core.delivery.deliver_chat("telegram", str(citizen.id))
        news = citizen.last().text or ""
        assert news.startswith("📣 Nyt fra »Skolevejen« om udsagnet")
        assert "✅ Det er vedtaget." in news
        assert "Begrundelse: Den kommer på budgettet for 2027." in news
    assert "fordi du skrev udsagnet" in (anna.last().text or "")
    assert "fordi du stemte om udsagnet" in (bo.last().text or "")
    assert not any("📣" in text for text in carla.texts())


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
    assert await _rows(app, Vote) == []
    assert await _rows(app, VoteEvent) == []


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


def statement_text_of(statement: Statement) -> str:
    return statement.text["da"]
