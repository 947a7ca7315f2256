"""After /forget no table holds anything that links to the citizen; declining keeps only the no."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app import BorgerDialog
from bot.cli.common import audit_here
from bot.consultations.deletion import StillOpen, delete_consultation
from bot.dialogue.i18n import Catalogs
from scheduler.jobs import purge_expired
from storage.models import (
    Base,
    InboxEvent,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    Participant,
    WebMessage,
)
from storage.moderation import CONSULTATION_DELETED
from tests.citizens import Citizen, import_consultation, open_now
from tests.conftest import MODERATORS, eventually, table_rows
from tests.fake_telegram import FakeBot
from tests.moderators import Moderator, consultation_source, join
from tests.webcitizens import open_tab, web_session

NOW_ = datetime.now(UTC)
# A Telegram id that appears nowhere else by chance.
CITIZEN_ID = 987654321


async def every_row(app: BorgerDialog) -> dict[str, list[str]]:
    """Every row of every table, as text, by table name."""
    assert app.engine is not None
    rows: dict[str, list[str]] = {}
    async with app.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            result = await connection.execute(select(table))
            rows[table.name] = [repr(tuple(row)) for row in result.all()]
    return rows


def mentioning(rows: dict[str, list[str]], needle: str) -> dict[str, list[str]]:
    found = {name: [r for r in table if needle in r] for name, table in rows.items()}
    return {name: hits for name, hits in found.items() if hits}


async def settle_and_purge(app: BorgerDialog, hours_later: int = 0) -> None:
    """Run the retention job as the scheduler would, once the last replies are out."""
    assert app.uow is not None

    async def replies_settled() -> bool:
        # A tab shows a reply as it is pushed, a moment before its outbox row is marked sent;
        # the job keeps pending rows.
        rows = await table_rows(app, OutboxMessage)
        return not any(row.status == OutboxStatus.PENDING for row in rows)

    await eventually(replies_settled, what="the last replies marked sent")
    retention = app.settings.inbox_retention_days
    await purge_expired(
        app.uow, lambda: datetime.now(UTC) + timedelta(hours=hours_later), retention
    )


async def anna_with_a_card(app: BorgerDialog, fake_bot: FakeBot) -> tuple[Citizen, Moderator, Any]:
    """Anna takes part in the consultation on traffic; personal data in her answer is held
    and shown masked on a card in the moderators' chat."""
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, CITIZEN_ID)
    moderator = Moderator(fake_bot, 901)
    before = len(moderator.cards())
    await anna.write("Ring til mig på 22 33 44 55, så fortæller jeg mere", new=2)
    await eventually(lambda: len(moderator.cards()) > before, what="a card")
    return anna, moderator, moderator.cards()[-1]


async def card_and_tables_forget_her(
    app: BorgerDialog, moderator: Moderator, card: Any, note: str
) -> None:
    """Her card in the moderators' chat loses her text for the note, and once the retention
    job has run no table names her Telegram id."""
    await eventually(
        lambda: note in (moderator.card_now(card).text or ""), what="the card without her text"
    )
    assert "22 33" not in (moderator.card_now(card).text or "")
    await settle_and_purge(app)
    assert mentioning(await every_row(app), str(CITIZEN_ID)) == {}


async def test_forget_on_telegram_leaves_no_trace_in_any_table(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    anna, moderator, _ = await anna_with_a_card(app, fake_bot)
    await anna.write("Fordi vejen er farlig om morgenen", new=2)
    # An update Telegram's library cannot read, from her chat: kept aside with its raw copy.
    broken = fake_bot.message_update(CITIZEN_ID, "hej")
    broken["message"]["from"] = [CITIZEN_ID]
    fake_bot.push_raw(broken)
    await anna.write("/help")
    linked = mentioning(await every_row(app), str(CITIZEN_ID))
    assert {"participants", "inbox_events", "outbox_messages"} <= set(linked)

    await anna.write("/forget")
    await anna.tap("Ja, slet", new=0)
    await eventually(
        lambda: (anna.last().text or "").startswith("Dine oplysninger og svar er slettet."),
        what="erased",
    )
    card = moderator.cards()[-1]
    await card_and_tables_forget_her(app, moderator, card, "Slettet efter borgerens ønske")
    # The moderators' own chat keeps its messages (cards are edited later).
    assert mentioning(await every_row(app), str(MODERATORS)) != {}


async def test_a_chat_that_never_answered_is_forgotten_after_the_retention_period(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """Once quiet for the retention period, someone who only asked for help, and someone who
    opened a consultation and never said yes or no, are forgotten as at /forget. Kept: a
    citizen who took part and one who said no (their consultation keeps them); a chat with a
    message received since (one that failed is kept for an operator); and groups: the
    moderators' chat, whose card waits there to be edited when decided, and a group whose
    members only asked for help there once (as a staff chat may be)."""
    _, moderator, card = await anna_with_a_card(app, fake_bot)
    await moderator.press(card, "✅ Godkend")
    asker = Citizen(fake_bot, 876543219)
    await asker.write("/help")
    looker = Citizen(fake_bot, 876543217)
    await looker.write("/start trafik", new=2)
    decliner = Citizen(fake_bot, 876543216)
    await decliner.write("/start trafik", new=2)
    await decliner.tap("Nej tak")
    failing = Citizen(fake_bot, 876543215)
    await failing.write("/help")
    group = -100876543
    fake_bot.send_message(876543218, "/help", chat_id=group, chat_type="group")
    await eventually(lambda: fake_bot.texts(group), what="the group's answer")
    await settle_and_purge(app)
    assert app.engine is not None
    assert app.uow is not None
    retention = app.settings.inbox_retention_days
    # A message of theirs kept as received after the job's cutoff (a failure's, kept whole).
    async with app.engine.begin() as connection:
        moved = datetime.now(UTC) + timedelta(days=retention + 5)
        await connection.execute(
            update(InboxEvent)
            .where(InboxEvent.chat_id == "876543215")
            .values(received_at=moved, handled_at=moved, status=InboxStatus.FAILED)
        )

    def later(days: float) -> Any:
        return lambda: datetime.now(UTC) + timedelta(days=days)

    counts = await purge_expired(app.uow, later(retention - 1), retention)
    assert counts[3] == 0
    assert "participants" in mentioning(await every_row(app), "876543219"), "quiet too briefly"
    counts = await purge_expired(app.uow, later(retention + 1), retention)
    rows = await every_row(app)
    assert mentioning(rows, "876543219") == {}
    assert mentioning(rows, "876543217") == {}, "opened, never answered: gone with the chat"
    assert "participants" in mentioning(rows, str(CITIZEN_ID)), "she took part"
    assert "outbox_messages" in mentioning(rows, str(MODERATORS)), "the card stays"
    chats = {row.chat_id for row in await table_rows(app, Participant)}
    assert {str(CITIZEN_ID), str(MODERATORS), str(group), "876543216", "876543215"} <= chats
    assert counts[3] == 2
    # Back after that, the one who asked is a newcomer; the bot answers as to anyone.
    (again,) = await asker.write("/help")
    assert "/privatliv" in (again.text or "")


async def test_deleting_a_closed_consultation_forgets_who_took_part_only_there(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """Answers are kept until their consultation is deleted: then nothing links to a citizen
    who took part only there, and the moderators' card loses the text, as at /forget."""
    anna, moderator, card = await anna_with_a_card(app, fake_bot)
    assert app.uow is not None
    moderators = Catalogs("da").texts("da")
    async with app.uow() as uow:
        consultation = await uow.consultations.by_slug("trafik")
        assert consultation is not None
        # Open, and Anna in the middle of it: refused.
        with pytest.raises(StillOpen):
            await delete_consultation(uow, consultation, datetime.now(UTC), moderators)
    # A results broadcast under way: what it has not sent yet quotes the contributions.
    async with app.uow() as uow:
        consultation = await uow.consultations.by_slug("trafik")
        assert consultation is not None
        (results,) = [
            post
            for post in await uow.plan.of_consultation(consultation.id, ["planned"])
            if post.kind == "results"
        ]
        waiting = await uow.outbox.add("telegram", "55555", {"text": "De mest støttede…"}, NOW_)
        await uow.commit()
    assert app.engine is not None
    async with app.engine.begin() as connection:
        await connection.execute(
            update(OutboxMessage).where(OutboxMessage.id == waiting).values(post_id=results.id)
        )
    async with app.uow() as uow:
        consultation = await uow.consultations.by_slug("trafik")
        assert consultation is not None
        after_closing = datetime.now(UTC) + timedelta(days=40)
        report = await delete_consultation(uow, consultation, after_closing, moderators)
        await audit_here(uow, CONSULTATION_DELETED, consultation="trafik")  # as the commands do
        await uow.commit()
    assert app.core is not None
    for chat in report.chats:
        await app.core.delivery.deliver_chat(chat.channel, chat.chat_id)
    assert (report.participations, report.forgotten) == (1, 1)
    assert not [row for row in await table_rows(app, OutboxMessage) if row.id == waiting]
    await card_and_tables_forget_her(app, moderator, card, "Slettet sammen med høringen")
    left = {name for name, rows in (await every_row(app)).items() if rows}
    assert not left & {"consultations", "participations", "answers", "moderation_items"}
    # She may write again, as anyone new; the link on a poster says the consultation ended.
    before = len(anna.texts())
    await anna.write("/start trafik")
    await eventually(
        lambda: any(
            t.startswith("Den borgerdialog er afsluttet, og det, der blev sagt i den, er slettet.")
            for t in anna.texts()[before:]
        ),
        what="the link's consultation said to have ended",
    )


async def test_deleting_a_consultation_takes_it_out_of_the_conversation_of_who_goes_on(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """Bo takes part in two consultations and is in the middle of the one deleted: he stays,
    with the other, and his conversation no longer points into the one that is gone."""
    await import_consultation(app, open_now())
    await import_consultation(app, consultation_source())
    bo = Citizen(fake_bot, CITIZEN_ID + 1)
    await bo.write("/start friluftsliv", new=2)
    await bo.tap("Ja, jeg giver samtykke")
    await join(fake_bot, CITIZEN_ID + 1)  # now in the traffic consultation
    assert app.uow is not None
    async with app.uow() as uow:
        participant = await uow.participants.get("telegram", str(CITIZEN_ID + 1))
        assert participant is not None
        in_traffic = participant.state["participation"]
        consultation = await uow.consultations.by_slug("trafik")
        assert consultation is not None
        after_closing = datetime.now(UTC) + timedelta(days=40)
        report = await delete_consultation(
            uow, consultation, after_closing, Catalogs("da").texts("da")
        )
        await uow.commit()
    assert (report.participations, report.forgotten) == (1, 0)
    async with app.uow() as uow:
        participant = await uow.participants.get("telegram", str(CITIZEN_ID + 1))
        assert participant is not None
        assert participant.state.get("participation") != in_traffic
        assert [p.consultation_id for p in await uow.participations.of_participant(participant.id)]


async def test_deleting_a_consultation_erases_the_web_transcript_of_who_goes_on(
    telegram_app: BorgerDialog,
) -> None:
    """A web participant who also takes part elsewhere keeps their participation there, not
    the transcript that holds what they answered in the deleted consultation."""
    await import_consultation(telegram_app, open_now())
    await import_consultation(telegram_app, consultation_source())
    base = f"http://127.0.0.1:{telegram_app.settings.http_port}"
    async with web_session() as session:
        tab = await open_tab(base, session)
        await tab.write("/start friluftsliv", new=2)
        await tab.tap("Ja, jeg giver samtykke")
        await tab.write("/start trafik", new=2)
        await tab.tap("Ja, jeg giver samtykke")
        await tab.close()
    (participant,) = await table_rows(telegram_app, Participant)
    assert [
        m for m in await table_rows(telegram_app, WebMessage) if m.chat_id == participant.chat_id
    ]
    assert telegram_app.uow is not None
    async with telegram_app.uow() as uow:
        consultation = await uow.consultations.by_slug("friluftsliv")
        assert consultation is not None
        later = datetime.now(UTC) + timedelta(days=400)
        await delete_consultation(uow, consultation, later, Catalogs("da").texts("da"))
        await uow.commit()
    assert [p.id for p in await table_rows(telegram_app, Participant)] == [participant.id]
    assert not [
        m for m in await table_rows(telegram_app, WebMessage) if m.chat_id == participant.chat_id
    ]


async def test_forget_in_the_web_chat_leaves_no_trace_in_any_table(
    telegram_app: BorgerDialog,
) -> None:
    await import_consultation(telegram_app, open_now())
    base = f"http://127.0.0.1:{telegram_app.settings.http_port}"
    async with web_session() as session:
        tab = await open_tab(base, session)
        await tab.write("/start friluftsliv", new=2)
        await tab.tap("Ja, jeg giver samtykke")
        await tab.tap("Under 25")
        (participant,) = await table_rows(telegram_app, Participant)
        web_id = participant.chat_id.removeprefix("w-")
        assert mentioning(await every_row(telegram_app), web_id)
        await tab.write("/forget")
        await tab.tap("Ja, slet", new=0)
        await eventually(
            lambda: tab.bot_texts()[-1].startswith("Dine oplysninger og svar er slettet."),
            what="erased",
        )
        await tab.close()
    # The answer to /forget stays in the page's transcript a day, so the tab can show it.
    await settle_and_purge(telegram_app)
    assert set(mentioning(await every_row(telegram_app), web_id)) == {"web_messages"}
    await settle_and_purge(telegram_app, hours_later=25)
    assert mentioning(await every_row(telegram_app), web_id) == {}


async def test_declining_keeps_nothing_the_visitor_wrote(telegram_app: BorgerDialog) -> None:
    await import_consultation(telegram_app, open_now())
    base = f"http://127.0.0.1:{telegram_app.settings.http_port}"
    async with web_session() as session:
        tab = await open_tab(base, session)
        await tab.write("Jeg hedder Ole, CPR 010190-1234, og jeg har en idé")
        await tab.write("/start friluftsliv", new=2)
        await tab.tap("Nej tak")
        await tab.close()
    rows = await every_row(telegram_app)
    assert mentioning(rows, "010190") == {}
    assert mentioning(rows, "Ole") == {}
    assert [m.author for m in await table_rows(telegram_app, WebMessage)] == ["bot"] * len(
        await table_rows(telegram_app, WebMessage)
    )


async def test_a_visitor_who_never_consents_is_forgotten_after_a_day(
    telegram_app: BorgerDialog,
) -> None:
    await import_consultation(telegram_app, open_now())
    base = f"http://127.0.0.1:{telegram_app.settings.http_port}"
    async with web_session() as session:
        tab = await open_tab(base, session)
        await tab.write("Min datter går på Nordskolen og har astma")
        await tab.close()
    assert mentioning(await every_row(telegram_app), "astma")
    assert telegram_app.uow is not None
    retention = telegram_app.settings.inbox_retention_days

    def later(hours: int) -> Any:
        return lambda: datetime.now(UTC) + timedelta(hours=hours)

    await purge_expired(telegram_app.uow, later(12), retention)
    assert mentioning(await every_row(telegram_app), "astma"), "kept while they may come back"
    await purge_expired(telegram_app.uow, later(25), retention)
    assert mentioning(await every_row(telegram_app), "astma") == {}
