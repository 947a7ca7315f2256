"""The Messenger channel end to end, against a fake Send API that also plays Meta's webhook."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import BorgerDialog
from bot.channels.messenger.channel import _event_id
from bot.channels.messenger.links import messenger_link
from bot.channels.messenger.shaping import MAX_TEXT as MESSENGER_MAX_TEXT
from bot.channels.messenger.shaping import shape_message
from bot.config import Settings, SettingsError, load_settings
from bot.consultations.export import build_table, to_csv
from bot.dialogue.i18n import Catalogs
from handlers.context import OrganisationInfo
from handlers.events import MAX_BUTTON_LABEL, MAX_TEXT_LENGTH
from handlers.privacy import notice_text
from storage.models import InboxEvent, OutboxMessage, Participant
from tests.citizens import Citizen, import_consultation, open_now
from tests.cli import Cli, no_traceback
from tests.conftest import eventually, model_rows, table_rows
from tests.fake_graph import FakeGraph
from tests.fake_messenger import FakeMessenger
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.ideas import ideas_source
from tests.meta_citizens import (
    check_delivered_twice_applied_once,
    check_forged_deliveries_refused,
    join_skolevej,
    last_wrote,
    publish_now,
    running_on,
)
from tests.mscitizens import MsCitizen
from tests.postgres import free_port
from tests.test_links_and_examples import example_open_soon
from tests.wacitizens import WaCitizen
from tests.webcitizens import open_tab, web_session


@pytest.fixture
def fake_messenger() -> Iterator[FakeMessenger]:
    server = FakeMessenger()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def ms_app(
    fake_messenger: FakeMessenger, make_settings: Callable[..., Settings]
) -> AsyncIterator[BorgerDialog]:
    """The real application, built by the composition root, with Messenger on the fake."""
    async with running_on(fake_messenger, make_settings) as app:
        yield app


async def test_a_citizen_walks_the_example_consultation_on_messenger(
    ms_app: BorgerDialog, fake_messenger: FakeMessenger
) -> None:
    await import_consultation(ms_app, open_now())
    anna = MsCitizen(ms_app, fake_messenger, "7100000000000001")

    # The m.me link's ref opens the consultation as /start SLUG does.
    intro = await anna.open_link("friluftsliv")
    assert any("Ny friluftspolitik" in m.text for m in intro)
    # Two choices: a button template. "Ja, jeg giver samtykke" is 22 characters: cut on the
    # button, in full in the text.
    consent = intro[-1]
    assert consent.kind == "buttons"
    assert [c["title"] for c in consent.choices] == ["Ja, jeg giver samty…", "Nej tak"]
    assert "▸ Ja, jeg giver samtykke" in consent.text

    first = await anna.tap("Ja, jeg giver samtykke")
    assert first[-1].text.startswith("1/")
    await anna.tap("Under 25")
    # Four choices with Back: quick replies.
    district = anna.last()
    assert district.kind == "quick_replies"
    await anna.tap("Nord")

    # Multiple choice: each tick sends the question again with what is ticked.
    ticked = await anna.tap("☐ Løber")
    assert any(c["title"] == "☑ Løber" for c in ticked[-1].choices)
    await anna.tap("☐ Cykler")
    await anna.tap("Færdig")
    # The scale: 1-5 and Back as quick replies.
    scale = anna.last()
    assert [c["title"] for c in scale.choices][:5] == ["1", "2", "3", "4", "5"]
    await anna.tap("5")
    await anna.tap("Nej")
    await anna.write("3")
    await anna.write("8000")
    await anna.write("En sti hele vejen rundt om søen")
    assert anna.last().choices, "the last question or the hear-back offer"

    # No message the bot sent was refused by Messenger, and none used a message tag.
    assert fake_messenger.refused == []
    assert fake_messenger.tags == []
    assert {m.messaging_type for m in anna.messages()} == {"RESPONSE"}

    # The export names the channel and a pseudonym, never the page-scoped id.
    assert ms_app.uow is not None
    async with ms_app.uow.read() as uow:
        table = await build_table(uow, "friluftsliv")
    assert table is not None
    exported = to_csv(table).decode("utf-8")
    assert "messenger" in exported
    assert anna.psid not in exported
    assert table.records[0]["participant"]


async def test_the_ideas_phase_on_messenger_write_and_vote(
    ms_app: BorgerDialog, fake_messenger: FakeMessenger
) -> None:
    await import_consultation(ms_app, ideas_source())
    anna = await join_skolevej(MsCitizen(ms_app, fake_messenger, "7100000000000031"))
    await anna.tap("✍️ Skriv et udsagn")
    preview = await anna.write("Der skal males en fodgængerovergang ved bageren")
    assert preview[0].text.startswith("Dit udsagn:")
    await anna.tap("✅ Send")
    assert any("Tak! Dit udsagn er nu med" in m.text for m in anna.messages()[-2:])

    bo = await join_skolevej(MsCitizen(ms_app, fake_messenger, "7100000000000032"))
    card = await bo.tap("🗳 Stem om udsagn")
    assert card[-1].text.startswith("🗳 ")
    seen = 0
    while bo.last().text.startswith("🗳 ") and seen < 10:
        await bo.tap("👍 Enig")
        seen += 1
    assert seen == 5, "four seeded statements and Anna's, each once"
    assert any(m.text.startswith("Du har stemt om alle") for m in bo.messages()[-3:])
    assert fake_messenger.refused == []


async def test_typed_words_work_as_commands_and_attachments_get_the_polite_answer(
    ms_app: BorgerDialog, fake_messenger: FakeMessenger
) -> None:
    await import_consultation(ms_app, open_now())
    bo = MsCitizen(ms_app, fake_messenger, "7100000000000002")
    # A citizen who types the slug (from a poster) gets the consultation too.
    await bo.write("friluftsliv")
    await bo.tap("Ja, jeg giver samtykke")

    data = await bo.write("Mine data")
    document = next(m for m in data if m.kind == "file")
    assert document.file is not None
    assert b"friluftsliv" in document.file

    asked = await bo.write("glem mig")
    assert asked[-1].choices, "forgetting asks for confirmation with buttons"
    done = await bo.tap(asked[-1].choices[0]["title"])
    assert done, "forgetting answers"
    (participants,) = [await table_rows(ms_app, Participant)]
    assert participants == []

    (answer,) = await bo.send_media("image")
    assert "kun læse tekst" in answer.text

    # "Get started" without a link's ref: the open consultations, as /start.
    item = fake_messenger._item(
        bo.psid, postback={"mid": "m_" + "g" * 40, "title": "Kom i gang", "payload": "GET_STARTED"}
    )
    fake_messenger.deliver(fake_messenger.envelope(item))
    await bo.settled("m_" + "g" * 40)
    assert any(c["title"].startswith("Ny friluftspol") for c in bo.last().choices)

    # A post's picture goes as an upload, its text and buttons under it.
    assert ms_app.messenger is not None
    before = len(bo.messages())
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    await ms_app.messenger.deliver(
        bo.psid,
        {
            "type": "message",
            "text": "Resultaterne",
            "buttons": [[{"label": "Læs mere", "url": "https://kommune.example/r"}]],
            "image": png,
        },
    )
    picture, text = bo.messages()[before:]
    assert picture.kind == "image"
    assert picture.file == png
    assert text.text == "Resultaterne\n\nLæs mere: https://kommune.example/r"
    assert fake_messenger.refused == []


async def test_forged_and_unsigned_deliveries_are_refused_and_nothing_is_stored(
    ms_app: BorgerDialog, fake_messenger: FakeMessenger
) -> None:
    body = (
        b'{"object":"page","entry":[{"id":"' + fake_messenger.page_id.encode() + b'",'
        b'"messaging":[{"sender":{"id":"7100000000000004"},"recipient":{"id":"1"},'
        b'"timestamp":1,"message":{"mid":"m_FORGED","text":"hej"}}]}]}'
    )
    await check_forged_deliveries_refused(ms_app, fake_messenger, "messenger", body)


async def test_a_redelivery_is_applied_once_and_echoes_and_receipts_are_no_input(
    ms_app: BorgerDialog, fake_messenger: FakeMessenger
) -> None:
    dan = MsCitizen(ms_app, fake_messenger, "7100000000000005")
    mid = "m_" + "d" * 80
    item = fake_messenger._item(dan.psid, message={"mid": mid, "text": "hjælp"})
    await check_delivered_twice_applied_once(dan, fake_messenger.envelope(item), mid)

    # An echo of the page's own message, a delivery and a read: no input, nothing answered.
    (answer,) = dan.messages()
    for delivery in (
        fake_messenger.echo(answer),
        fake_messenger.delivered(answer),
        fake_messenger.read(dan.psid),
    ):
        await eventually(lambda d=delivery: d.answers, what="the receipt taken in")
        assert delivery.answers[-1] == 200
    assert len(await table_rows(ms_app, InboxEvent)) == 1
    assert len(dan.messages()) == 1
    rows = await model_rows(ms_app, OutboxMessage)
    sent = next(r[0] for r in rows if r[0].external_message_id == answer.id)
    assert sent.platform_status == "read"

    # A referral in an open conversation (no mid): delivered twice, applied once.
    item = fake_messenger.open_link(dan.psid, "nothing-here", new=False)
    fake_messenger.deliver(fake_messenger.envelope(item))
    await dan.settled(_event_id(item))
    await eventually(
        lambda: all(d.answers and d.answers[-1] == 200 for d in fake_messenger.deliveries),
        what="every delivery answered",
    )
    assert len(await table_rows(ms_app, InboxEvent)) == 2


async def test_a_broadcast_outside_the_window_is_skipped_with_a_reason(
    ms_app: BorgerDialog, fake_messenger: FakeMessenger, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ms_app.messenger is not None
    monkeypatch.setattr(
        ms_app.messenger,
        "limits",
        dataclasses.replace(ms_app.messenger.limits, chat_per_second=None),
    )
    await import_consultation(ms_app, ideas_source())
    recent = await join_skolevej(MsCitizen(ms_app, fake_messenger, "7100000000000011"))
    away = await join_skolevej(MsCitizen(ms_app, fake_messenger, "7100000000000012"))
    await last_wrote(away, timedelta(hours=25))
    before = len(away.messages())

    post = await publish_now(ms_app, "Nyt om skolevejen\n\nVi går i gang i maj.")
    assert post.recipients == 1
    assert recent.last().text == "Nyt om skolevejen\n\nVi går i gang i maj."
    assert len(away.messages()) == before
    assert post.error is not None
    assert "1 Messenger recipient(s) skipped" in post.error
    assert "24 hours" in post.error
    assert fake_messenger.refused == []
    assert fake_messenger.tags == []


@pytest.mark.usefixtures("quick_retries")  # the rate limit's 10 s wait, a twentieth of it
async def test_refusals_map_to_what_the_outbox_does(
    ms_app: BorgerDialog, fake_messenger: FakeMessenger
) -> None:
    eva = MsCitizen(ms_app, fake_messenger, "7100000000000021")
    await eva.write("hjælp")
    # "This person isn't available right now": unreachable until they write again.
    fake_messenger.fail_next(eva.psid, 551)
    await eva.write("hjælp")
    (participant,) = [r[0] for r in await model_rows(ms_app, Participant)]
    assert participant.unreachable_at is not None
    await eva.write("hjælp")
    (participant,) = [r[0] for r in await model_rows(ms_app, Participant)]
    assert participant.unreachable_at is None
    # A rate limit: the same message again after the wait.
    assert ms_app.messenger is not None
    before = len(eva.messages())
    fake_messenger.fail_next(eva.psid, 613)
    await eva.write("privatliv")
    await eventually(lambda: len(eva.messages()) > before, what="the message sent after the wait")
    # The whole notice in one message, within Messenger's 2,000 characters.
    assert "På Messenger bruger vi det nummer, Messenger giver din chat" in eva.texts()[-1]
    assert "Dine rettigheder:" in eva.texts()[-1]


async def test_one_export_holds_citizens_from_telegram_the_web_chat_whatsapp_and_messenger(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    fake_messenger: FakeMessenger,
    make_settings: Callable[..., Settings],
) -> None:
    port = free_port()
    graph = FakeGraph()
    graph.start()
    # Both of Meta's webhooks on the one web server.
    meta = {**graph.settings(port), **fake_messenger.settings(port)}
    app = BorgerDialog(
        make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url, **meta)
    )
    await app.start()
    try:
        await import_consultation(app, open_now())
        telegram = Citizen(fake_bot, 987654321)
        await telegram.write("/start friluftsliv", new=2)
        await telegram.tap("Ja, jeg giver samtykke")
        await telegram.tap("Under 25")
        async with web_session() as session:
            tab = await open_tab(app.settings.public_base_url, session)
            await tab.write("/start friluftsliv", new=2)
            await tab.tap("Ja, jeg giver samtykke")
            await tab.tap("25-64")
            await tab.close()
        whatsapp = WaCitizen(app, graph, "4520000077")
        await whatsapp.write("friluftsliv")
        await whatsapp.tap("Ja, jeg giver samtykke")
        await whatsapp.tap("65 eller derover")
        messenger = MsCitizen(app, fake_messenger, "7100000000000077")
        await messenger.open_link("friluftsliv")
        await messenger.tap("Ja, jeg giver samtykke")
        await messenger.tap("Under 25")

        assert app.uow is not None
        async with app.uow.read() as uow:
            table = await build_table(uow, "friluftsliv")
        assert table is not None
        exported = to_csv(table).decode("utf-8")
        chat_ids = [r[0].chat_id for r in await model_rows(app, Participant)]
    finally:
        await app.stop()
        graph.stop()
    assert sorted((r["channel"], r["age_band"]) for r in table.rows) == [
        ("messenger", "Under 25"),
        ("telegram", "Under 25"),
        ("web", "25-64"),
        ("whatsapp", "65 eller derover"),
    ]
    pseudonyms = {r["participant"] for r in table.rows}
    assert len(pseudonyms) == 4
    assert all(pseudonyms)
    # No platform's id of a citizen anywhere in it: phone number, PSID, Telegram id, cookie id.
    assert len(chat_ids) == 4
    for chat_id in chat_ids:
        assert chat_id not in exported
    assert graph.refused == []
    assert fake_messenger.refused == []


def test_shaping_keeps_within_messengers_limits() -> None:
    """The longest text and labels the flows write, 2 to 20 choices: every message is within
    Messenger's limits, every choice can be tapped, and no label is lost."""
    text = "Spørgsmål " * (MAX_TEXT_LENGTH // 10)
    for count in (0, 2, 3, 4, 13, 14, 20):
        labels = [f"{n:02d} " + "Valgmulighed med en lang tekst " * 3 for n in range(count)]
        labels = [label[:MAX_BUTTON_LABEL] for label in labels]
        rows = [[{"label": label, "payload": f"q:1:2:{n}"}] for n, label in enumerate(labels)]
        messages = shape_message(text[:MAX_TEXT_LENGTH], rows)
        payloads: list[str] = []
        shown = ""
        for message in messages:
            attachment = message.get("attachment")
            if attachment is None:
                assert 0 < len(message["text"]) <= 2000
                shown += message["text"]
                replies = message.get("quick_replies") or []
                assert len(replies) <= 13
                assert all(len(q["title"]) <= 20 for q in replies)
                payloads += [q["payload"] for q in replies]
                continue
            payload = attachment["payload"]
            assert 0 < len(payload["text"]) <= 640
            assert 1 <= len(payload["buttons"]) <= 3
            assert all(len(b["title"]) <= 20 for b in payload["buttons"])
            shown += payload["text"]
            payloads += [b["payload"] for b in payload["buttons"]]
        assert payloads == [f"q:1:2:{n}" for n in range(count)], count
        for label in labels:
            assert label in shown, (count, label)


def test_messenger_settings_are_all_or_nothing_and_never_echo_secrets(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "_env_file": None}
    assert not load_settings(**base).messenger_enabled
    with pytest.raises(SettingsError) as partial:
        load_settings(**base, messenger_page_token="EAAGsecret-token-value")
    assert len(partial.value.lines) == 1
    assert "BORGERDIALOG_MESSENGER_APP_SECRET" in partial.value.lines[0]
    assert "secret-token-value" not in str(partial.value)
    complete = {
        "messenger_page_token": "EAAGsecret-token-value",
        "messenger_app_secret": "app-secret-value",
        "messenger_verify_token": "verify-me",
    }
    settings = load_settings(**base, **complete)
    assert settings.messenger_enabled
    assert settings.messenger_api_url == load_settings(**base).whatsapp_api_url
    assert load_settings(**base, **complete, messenger_page_id="@aarhuskommune").messenger_page_id
    with pytest.raises(SettingsError) as page:
        load_settings(**base, **complete, messenger_page_id="https://facebook.com/x")
    assert page.value.lines[0].startswith("BORGERDIALOG_MESSENGER_PAGE_ID:")
    with pytest.raises(SettingsError) as alone:
        load_settings(**base, messenger_page_id="aarhuskommune")
    assert alone.value.lines[0].startswith("BORGERDIALOG_MESSENGER_PAGE_ID:")
    with pytest.raises(SettingsError) as pasted:
        load_settings(**base, **{**complete, "messenger_app_secret": '"app-secret-value" '})
    assert pasted.value.lines[0].startswith("BORGERDIALOG_MESSENGER_APP_SECRET:")
    assert "app-secret-value" not in str(pasted.value)


def test_consultation_link_gives_an_m_me_link_with_its_qr_code(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert messenger_link("aarhuskommune", "friluftsliv") == (
        "https://m.me/aarhuskommune?ref=friluftsliv"
    )
    for name, value in {
        "PAGE_TOKEN": "EAAGpage-token",
        "APP_SECRET": "app-secret",
        "VERIFY_TOKEN": "verify-me",
        "PAGE_ID": "aarhuskommune",
    }.items():
        monkeypatch.setenv(f"BORGERDIALOG_MESSENGER_{name}", value)
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))
    result = cli("consultation", "link", "friluftsliv", "--qr-dir", "qr")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "messenger: https://m.me/aarhuskommune?ref=friluftsliv" in result.stdout.splitlines()
    names = sorted(path.name for path in (cli.folder / "qr").iterdir())
    assert "friluftsliv-messenger.png" in names
    assert "friluftsliv-messenger.svg" in names
    assert "EAAGpage-token" not in result.output


def test_the_privacy_notice_fits_one_messenger_message_in_both_languages() -> None:
    """Over 2,000 characters a text is cut in two (between paragraphs); the notice, asked for
    while a consultation's consent waits, stays whole even for a long authority's name."""
    organisation = OrganisationInfo(
        name="Københavns Kommune, Teknik- og Miljøforvaltningen",
        privacy_contact="databeskyttelse@tmf.kk.dk eller 33 66 33 66",
        retention_days=3650,
    )
    for language in ("da", "en"):
        text = notice_text(
            Catalogs(language).texts(language), organisation, "messenger", email=False
        )
        assert organisation.privacy_contact in text
        assert len(text) <= MESSENGER_MAX_TEXT, (language, len(text))
