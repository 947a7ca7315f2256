"""Citizens take part in a consultation on Telegram, end to end, through the fake Bot API.

The questionnaire's rules one by one (going back, stale buttons, closed rounds…) are tested at
the flow tier, without HTTP: tests/test_consultation_flows.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.app import BorgerDialog
from bot.config import Settings
from storage.database import create_session_factory
from storage.models import Answer, Participation
from storage.uow import UnitOfWorkFactory
from tests.citizens import Citizen, import_consultation, open_now
from tests.conftest import eventually, table_rows
from tests.exports import export_rows
from tests.fake_telegram import TELEGRAM_PRIVATE_BURST, FakeBot, FakeTelegram


async def test_a_danish_citizen_answers_every_kind_of_question(
    telegram_app: BorgerDialog, fake_bot: FakeBot, fake_telegram: FakeTelegram
) -> None:
    # This journey keeps Telegram's limit of about one message a second to a chat (the other
    # flow tests lift it): the bot waits out the flood control it meets, and nothing is lost.
    fake_telegram.private_burst = TELEGRAM_PRIVATE_BURST
    await import_consultation(telegram_app, open_now())
    anna = Citizen(fake_bot, 101)

    intro, consent = await anna.write("/start friluftsliv", new=2)
    assert intro.text is not None
    assert intro.text.startswith("Ny friluftspolitik")
    for fact in (
        "Formål:",
        "Det er allerede besluttet: Budgettet",
        "Hvem beslutter:",
        # The same count as the first question's "1/9": one question comes only after a "Ja".
        "Der er 8–9 spørgsmål",
        "Teknik og Miljø",
    ):
        assert fact in intro.text
    assert "udtrykkelige samtykke" in (consent.text or "")
    assert "/privatliv" in (consent.text or "")
    # Nothing is stored about her answers before consent.
    assert await table_rows(telegram_app, Answer) == []

    (question,) = await anna.tap("Ja, jeg giver samtykke")
    assert anna.messages()[1].buttons == [], "the consent buttons are gone once answered"
    assert question.text is not None
    assert question.text.startswith("1/9 · Hvor gammel er du?")

    (district,) = await anna.tap("Under 25")
    answered = anna.messages()[2]
    assert answered.buttons == []
    assert answered.text is not None
    assert answered.text.endswith("✅ Under 25")
    assert (district.text or "").startswith("2/9 · Hvor i kommunen bor du?")

    (activities,) = await anna.tap("Nord")
    # Tick two activities, then press done.
    assert (activities.text or "").startswith("3/9 · Hvad laver du i naturen?")
    await anna.tap("☐ Går tur", new=0)
    await anna.tap("☐ Cykler", new=0)
    ticked = ["☑ Går tur", "☑ Cykler", "☐ Løber", "☐ Overnatter i shelter"]
    await eventually(
        lambda: [b["text"] for b in anna.last().buttons][:4] == ticked,
        what="both activities ticked",
    )
    (scale,) = await anna.tap("Færdig")
    assert "1 = Meget utilfreds, 5 = Meget tilfreds" in (scale.text or "")

    await anna.tap("4")
    (conditional,) = await anna.tap("Ja")
    # "Yes" to more dog forests makes the conditional question apply: 9 questions now.
    assert (conditional.text or "").startswith("6/9 · Hvor skal den nye hundeskov ligge?")
    (number,) = await anna.write("Ved skoven bag idrætshallen")
    assert (number.text or "").startswith("7/9")

    (error,) = await anna.write("mange")
    assert error.text == "Det kunne jeg ikke læse som et tal fra 0 til 100. Prøv igen, fx 12."
    (error,) = await anna.write("500")
    assert error.text == "Tallet skal være mellem 0 og 100. Prøv igen."
    (postcode,) = await anna.write("12 gange")
    assert (postcode.text or "").startswith("8/9 · Hvad er dit postnummer?")
    (idea,) = await anna.tap("Spring over")
    assert "højst 280 tegn" in (idea.text or "")

    (too_long,) = await anna.write("x" * 281)
    assert too_long.text == (
        "Dit svar er 281 tegn, men der er plads til 280. Prøv at gøre det kortere."
    )
    (empty,) = await anna.write("   ")
    assert empty.text == "Dit svar er tomt. Skriv gerne et par ord."
    summary, hear_back = await anna.write(
        "Flere bænke langs åen og bedre skiltning af stierne", new=2
    )
    assert (summary.text or "").startswith("Tak for dine svar til »Ny friluftspolitik«!")
    assert "Går tur; Cykler" in (summary.text or "")
    assert "(sprunget over)" in (summary.text or "")
    assert "Resultater: Resultaterne offentliggøres" in (summary.text or "")
    assert hear_back.text == (
        "Vil du have besked her, når der er nyt om resultatet og beslutningen?"
    )
    await anna.tap("Ja", new=0)
    await eventually(lambda: anna.last().buttons == [], what="the hear-back buttons removed")
    assert (anna.last().text or "").endswith("✅ Vi giver dig besked her.")

    (row,) = await export_rows(telegram_app)
    assert row["participant"].startswith("p-")
    # Her Telegram id nowhere as a number of its own (a timestamp's digits may contain it).
    assert not re.search(rf"(?<!\d){anna.id}(?!\d)", json.dumps(row))
    assert {
        k: v for k, v in row.items() if k not in ("participant", "consent_at", "completed_at")
    } == {
        "channel": "telegram",
        "status": "completed",
        "hear_back": "yes",
        "age_band": "Under 25",
        "district": "Nord",
        "activities": "Går tur; Cykler",
        "satisfaction": 4,
        "dog_zones": "ja",
        "dog_zones_where": "Ved skoven bag idrætshallen",
        "dog_zones_where_language": "da",
        "visits": 12,
        "postcode": "(skipped)",
        "idea": "Flere bænke langs åen og bedre skiltning af stierne",
        "idea_language": "da",
    }


async def test_stickers_photos_voice_and_places_get_a_polite_no(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    # Typing where a button is expected: tests/test_consultation_flows.py.
    await import_consultation(telegram_app, open_now())
    eva = Citizen(fake_bot, 104)
    await eva.write("/start friluftsliv", new=2)
    await eva.tap("Ja, jeg giver samtykke")
    for kind in ("sticker", "photo", "voice", "location"):
        (reply,) = await eva.send_media(kind)
        assert reply.text == (
            "Jeg kan kun læse tekst og knaptryk her – ikke billeder, lyd, "
            "filer, steder eller afstemninger."
        )
    assert await table_rows(telegram_app, Answer) == []


async def test_privacy_read_before_consenting_brings_the_consent_card_below_it(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """A careful citizen reads /privatliv before deciding: the choice comes again under what
    they read, and the card above no longer takes a press."""
    await import_consultation(telegram_app, open_now())
    ole = Citizen(fake_bot, 109)
    _intro, card = await ole.write("/start friluftsliv", new=2)
    policy, again = await ole.write("/privatliv", new=2)
    assert (policy.text or "").startswith("Sådan passer vi")
    assert [b["text"] for b in again.buttons] == ["Ja, jeg giver samtykke", "Nej tak"]
    earlier = ole.fake.sent(ole.id)[1]
    assert earlier.message_id == card.message_id
    assert earlier.buttons == []
    assert (earlier.text or "").endswith("⤵ Spørgsmålet er stillet igen nedenfor.")
    await ole.tap("Ja, jeg giver samtykke")
    assert (ole.last().text or "").startswith("1/9")
    # Once consent is given, /privatliv is the policy alone.
    (alone,) = await ole.write("/privatliv")
    assert (alone.text or "").startswith("Sådan passer vi")


async def test_a_restart_mid_conversation_continues_where_the_citizen_was(
    fake_telegram: FakeTelegram, fake_bot: FakeBot, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    first = BorgerDialog(settings)
    await first.start()
    try:
        await import_consultation(first, open_now())
        liv = Citizen(fake_bot, 108)
        await liv.write("/start friluftsliv", new=2)
        await liv.tap("Ja, jeg giver samtykke")
        await liv.tap("25-64")
    finally:
        await first.stop()
    second = BorgerDialog(settings)
    await second.start()
    try:
        await liv.tap("Midtby")
        assert (liv.last().text or "").startswith("3/9")
        welcome, question = await liv.write("/start friluftsliv", new=2)
        assert (
            welcome.text
            == "Velkommen tilbage til »Ny friluftspolitik«. Vi fortsætter, hvor du slap."
        )
        assert (question.text or "").startswith("3/9 · Hvad laver du i naturen?")
    finally:
        await second.stop()


async def test_group_chats_never_run_a_consultation(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(telegram_app, open_now())
    fake_bot.send_message(112, "/start friluftsliv", chat_id=-500, chat_type="group")
    texts = await eventually(lambda: fake_bot.texts(-500), what="the group reply")
    assert texts == [
        "Skriv til mig i en privat chat, så dine svar ikke bliver delt med hele gruppen."
    ]
    assert await table_rows(telegram_app, Participation) == []


async def test_the_export_equals_what_several_citizens_answered(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(telegram_app, open_now())
    # A Danish citizen who finishes, an English one who stops halfway, one who declines.
    ane = Citizen(fake_bot, 301)
    await ane.write("/start friluftsliv", new=2)
    await ane.tap("Ja, jeg giver samtykke")
    await ane.tap("65 eller derover")
    await ane.tap("Syd")
    await ane.tap("☐ Overnatter i shelter", new=0)
    await ane.tap("Færdig")
    await ane.tap("1")
    await ane.tap("Nej")
    await ane.write("30")
    await ane.write("5000")
    await ane.tap("Spring over", new=2)
    await ane.tap("Nej", new=0)
    tom = Citizen(fake_bot, 302, language="en")
    await tom.write("/start friluftsliv", new=2)
    await tom.tap("Yes, I consent")
    await tom.tap("25-64")
    await tom.tap("Town centre")
    await tom.tap("☐ Cycling", new=0)
    await tom.tap("☐ Running", new=0)
    await tom.tap("Done")
    await tom.tap("3")
    await tom.tap("Yes")
    await tom.write("Near the old railway line, where the path ends")
    nis = Citizen(fake_bot, 303)
    await nis.write("/start friluftsliv", new=2)
    await nis.tap("Nej tak")

    rows = await export_rows(telegram_app)
    blank = {"consent_at", "completed_at", "participant"}
    seen = [{k: v for k, v in row.items() if k not in blank} for row in rows]
    assert seen == [
        {
            "channel": "telegram",
            "status": "completed",
            "hear_back": "no",
            "age_band": "65 eller derover",
            "district": "Syd",
            "activities": "Overnatter i shelter",
            "satisfaction": 1,
            "dog_zones": "nej",
            "visits": 30,
            "postcode": "5000",
            "idea": "(skipped)",
            "idea_language": "",
        },
        {
            "channel": "telegram",
            "status": "answering",
            "hear_back": "",
            "age_band": "25-64",
            "district": "Midtby",
            "activities": "Cykler; Løber",
            "satisfaction": 3,
            "dog_zones": "ja",
            "dog_zones_where": "Near the old railway line, where the path ends",
            "dog_zones_where_language": "en",
        },
        {"channel": "telegram", "status": "declined", "hear_back": ""},
    ]
    assert len({row["participant"] for row in rows}) == 3
    assert rows[0]["completed_at"]
    assert not rows[1]["completed_at"]


async def test_removing_an_answered_question_needs_force_and_archives_it(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    from bot.consultations.definition import parse_definition
    from bot.consultations.importer import QuestionsWithAnswers, import_definition

    await import_consultation(telegram_app, open_now())
    liv = Citizen(fake_bot, 304)
    await liv.write("/start friluftsliv", new=2)
    await liv.tap("Ja, jeg giver samtykke")
    await liv.tap("Under 25")
    source = open_now()
    without_age = source[: source.index("  # single:")] + source[source.index("  # district:") :]
    definition = parse_definition(
        without_age.replace(
            "  quotas:\n    - {question: age_band, option: under_25, minimum: 50}\n", ""
        ),
        telegram_app.settings.zone,
    )
    assert telegram_app.engine is not None
    uow = UnitOfWorkFactory(create_session_factory(telegram_app.engine))
    async with uow() as unit:
        with pytest.raises(QuestionsWithAnswers) as refusal:
            await import_definition(unit, definition, datetime.now(UTC))
    assert refusal.value.counts == {"age_band": 1}
    async with uow() as unit:
        report = await import_definition(unit, definition, datetime.now(UTC), force=True)
        await unit.commit()
    assert report.archived == {"age_band": 1}
    # The answer is kept in the export; the question is no longer asked.
    (row,) = await export_rows(telegram_app)
    assert row["age_band"] == "Under 25"
    welcome, question = await liv.write("/start friluftsliv", new=2)
    assert (
        welcome.text == "Velkommen tilbage til »Ny friluftspolitik«. Vi fortsætter, hvor du slap."
    )
    assert (question.text or "").startswith("1/8 · Hvor i kommunen bor du?")
    # Answering on keeps it too: an archived question's answer is no answer made irrelevant.
    await liv.tap("Nord")
    (row,) = await export_rows(telegram_app)
    assert row["age_band"] == "Under 25"
