"""The questionnaire's rules, one citizen at a time, at the flow tier (real core, SQLite, no HTTP).

The journey through Telegram itself, on both databases, is in tests/test_consultation_flow.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.models import Answer, Participation
from tests.citizens import example_with_round, open_now
from tests.conftest import table_rows
from tests.exports import export_rows
from tests.flows import FlowBot, running_flow_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[FlowBot]:
    async for running in running_flow_bot(tmp_path):
        yield running


async def test_an_english_citizen_gets_english_texts(bot: FlowBot) -> None:
    await bot.import_consultation(open_now())
    john = bot.citizen(102, language="en")
    intro, _consent = await john.write("/start friluftsliv")
    assert intro.text.startswith("A new outdoor-recreation policy")
    assert "There are 8–9 questions" in intro.text
    (question,) = await john.tap("Yes, I consent")
    assert question.text.startswith("1/9 · How old are you?")
    (district,) = await john.tap("65 or over")
    assert district.labels() == ["North", "Town centre", "South", "◀ Back"]


async def test_back_changes_the_previous_answer_and_conditions_follow(bot: FlowBot) -> None:
    await bot.import_consultation(open_now())
    bo = bot.citizen(103)
    await bo.write("/start friluftsliv")
    await bo.tap("Ja, jeg giver samtykke")
    await bo.tap("25-64")
    (again,) = await bo.tap("◀ Tilbage")
    assert again.text.startswith("1/9 · Hvor gammel er du?")
    assert "Dit svar nu: 25-64" in again.text
    await bo.tap("65 eller derover")
    await bo.tap("Syd")
    assert await bo.tap("☐ Løber") == [], "a tick changes the question in place"
    await bo.tap("Færdig")
    await bo.tap("2")
    (visits,) = await bo.tap("Nej")
    # "No" to dog forests: the conditional question is not asked.
    assert visits.text.startswith("6/8 · Hvor mange gange")
    (back,) = await bo.tap("◀ Tilbage")
    assert back.text.startswith("5/8 · Skal der være flere hundeskove?")
    (conditional,) = await bo.tap("Ja")
    assert conditional.text.startswith("6/9 · Hvor skal den nye hundeskov ligge?")
    (_number,) = await bo.tap("Spring over")
    rows = await export_rows(bot)
    assert rows[0]["age_band"] == "65 eller derover"
    assert rows[0]["dog_zones_where"] == "(skipped)"


async def test_typing_when_a_button_is_expected_gets_a_hint(bot: FlowBot) -> None:
    await bot.import_consultation(open_now())
    eva = bot.citizen(104)
    await eva.write("/start friluftsliv")
    await eva.tap("Ja, jeg giver samtykke")
    (hint,) = await eva.write("jeg er 40")
    assert hint.text == "Brug knapperne under spørgsmålet til at svare."
    assert await table_rows(bot, Answer) == []


async def test_stale_and_forged_buttons_change_nothing(bot: FlowBot) -> None:
    await bot.import_consultation(open_now())
    ole = bot.citizen(105)
    await ole.write("/start friluftsliv")
    (first_question,) = await ole.tap("Ja, jeg giver samtykke")
    _, payload = ole.button("Under 25")
    await ole.tap("Under 25")
    # The first question's buttons are gone; an old client sending its payload again is refused.
    assert await ole.press(first_question.ref, payload) == []
    stale = "Den knap virker ikke længere. Skriv /start for at komme videre."
    assert ole.acknowledgements()[-1] == stale
    # Someone else's participation id in a payload is refused too.
    stranger = bot.citizen(106)
    (help_text,) = await stranger.write("/hjaelp")
    # As Danes type it where the keyboard has æ (the web chat): the same help.
    (typed_help,) = await stranger.write("/hjælp")
    assert typed_help.text == help_text.text
    assert await stranger.press(help_text.ref, payload.replace("a:", "a:9", 1)) == []
    assert (stranger.acknowledgements()[-1] or "").startswith("Den knap virker ikke længere")
    assert len(await table_rows(bot, Answer)) == 1


async def test_consent_refused_stores_only_the_refusal(bot: FlowBot) -> None:
    await bot.import_consultation(open_now())
    kim = bot.citizen(107)
    await kim.write("/start friluftsliv")
    (goodbye,) = await kim.tap("Nej tak")
    assert goodbye.text.startswith("Helt i orden – vi gemmer ingen svar fra dig.")
    (participation,) = await table_rows(bot, Participation)
    assert participation.status == "declined"
    assert participation.consent_at is None
    assert await table_rows(bot, Answer) == []
    (row,) = await export_rows(bot)
    assert row["status"] == "declined"


async def test_closed_and_not_yet_open_rounds(bot: FlowBot) -> None:
    now = datetime.now(UTC)
    await bot.import_consultation(
        example_with_round(now - timedelta(days=30), now - timedelta(days=1), slug="lukket")
    )
    await bot.import_consultation(
        example_with_round(now + timedelta(days=3), now + timedelta(days=30), slug="snart")
    )
    mia = bot.citizen(109)
    (closed,) = await mia.write("/start lukket")
    assert closed.text.startswith("»Ny friluftspolitik« er lukket")
    assert "Resultaterne offentliggøres" in closed.text
    (upcoming,) = await mia.write("/start snart")
    assert upcoming.text.startswith("»Ny friluftspolitik« er ikke åben endnu. Den åbner ")
    (listing,) = await mia.write("/start")
    assert "Der er ingen åben borgerdialog lige nu. Den næste åbner" in listing.text
    assert await table_rows(bot, Participation) == []


async def test_start_lists_open_consultations_as_buttons(bot: FlowBot) -> None:
    await bot.import_consultation(open_now())
    per = bot.citizen(110)
    (listing,) = await per.write("/start")
    assert "Vælg den borgerdialog, du vil være med i:" in listing.text
    intro, _consent = await per.tap("Ny friluftspolitik")
    assert intro.text.startswith("Ny friluftspolitik")


async def test_the_round_closing_mid_conversation_stops_answers(bot: FlowBot) -> None:
    await bot.import_consultation(open_now())
    sif = bot.citizen(111)
    await sif.write("/start friluftsliv")
    await sif.tap("Ja, jeg giver samtykke")
    now = datetime.now(UTC)
    await bot.import_consultation(
        example_with_round(now - timedelta(days=30), now - timedelta(minutes=1))
    )
    (closed,) = await sif.tap("Under 25")
    assert closed.text.startswith("»Ny friluftspolitik« er lukket")
    assert await table_rows(bot, Answer) == []


async def test_a_results_post_names_yes_and_no_in_each_language(bot: FlowBot) -> None:
    from handlers.plan.results import chart_png, gather_results, results_text

    # A consultation whose first charted question is yes/no, which stores no option labels.
    source = open_now()
    start, end = source.index("  # single: one option"), source.index("  # yesno")
    source = source[:start] + source[end:]
    source = "\n".join(line for line in source.splitlines() if "question: age_band" not in line)
    await bot.import_consultation(source)
    for number, answer in ((201, "Ja"), (202, "Ja"), (203, "Nej")):
        citizen = bot.citizen(number)
        await citizen.write("/start friluftsliv")
        await citizen.tap("Ja, jeg giver samtykke")
        await citizen.tap(answer)
    async with bot.uow.read() as uow:
        consultation = await uow.consultations.by_slug("friluftsliv")
        assert consultation is not None
        results = await gather_results(uow, consultation, bot.core.texts, ("da", "en"))
    assert [(label["da"], label["en"], count) for label, count in results.bars] == [
        ("Ja", "Yes", 2),
        ("Nej", "No", 1),
    ]
    danish = results_text(results, bot.core.texts("da"), public=True, limit=4096)
    assert "„Skal der være flere hundeskove?“: flest svarede Ja (67 %)." in danish
    english = results_text(results, bot.core.texts("en"), public=True, limit=4096)
    assert "Yes (67 %)" in english
    assert chart_png(results, "da") is not None


async def test_a_typed_slug_opens_a_consultation_but_an_answer_stays_an_answer(
    bot: FlowBot,
) -> None:
    await bot.import_consultation(open_now())
    # Channels without deep links (WhatsApp's wa.me) type the slug in: it opens the consultation.
    eva = bot.citizen(104)
    intro, _consent = await eva.write("friluftsliv")
    assert intro.text.startswith("Ny friluftspolitik")
    await eva.tap("Ja, jeg giver samtykke")
    await eva.tap("Under 25")
    await eva.tap("Nord")
    await eva.tap("☐ Løber")
    await eva.tap("Færdig")
    await eva.tap("5")
    await eva.tap("Nej")
    await eva.write("3")
    await eva.write("8000")
    # Asked for an idea, the citizen writes the slug: that is the idea, not a restart.
    replies = await eva.write("friluftsliv")
    assert not any(reply.text.startswith("Ny friluftspolitik") for reply in replies)
    assert "friluftsliv" in [str(row.value) for row in await table_rows(bot, Answer)]


async def test_answers_in_the_active_participation_leave_the_participants_state_alone(
    bot: FlowBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each answer makes its participation the active one: already so, nothing is written (a
    statement less an answer, a round trip on PostgreSQL), and the conversation carries on."""
    from storage.repositories import ParticipantRepository
    from tests.flows import CHANNEL

    await bot.import_consultation(open_now())
    bo = bot.citizen(104)
    await bo.write("/start friluftsliv")
    await bo.tap("Ja, jeg giver samtykke")
    written: list[dict[str, object]] = []
    write = ParticipantRepository.set_state

    async def recorded(
        repository: ParticipantRepository, participant: object, state: dict[str, object]
    ) -> None:
        written.append(state)
        await write(repository, participant, state)  # type: ignore[arg-type]

    monkeypatch.setattr(ParticipantRepository, "set_state", recorded)
    await bo.tap("25-64")
    (question,) = await bo.tap("Syd")
    assert question.text.startswith("3/")
    assert written == []
    async with bot.uow() as unit:
        participant = await unit.participants.get(CHANNEL, "104")
        assert participant is not None
        (participation,) = await unit.participations.of_participant(participant.id)
        assert participant.state["participation"] == participation.id
