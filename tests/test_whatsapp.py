"""The WhatsApp channel end to end, against a fake Graph API that also plays Meta's webhook."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.app import BorgerDialog
from bot.channels.whatsapp.links import whatsapp_link
from bot.channels.whatsapp.shaping import shape_message
from bot.config import Settings, SettingsError, load_settings
from bot.consultations.export import build_table, to_csv
from bot.dialogue.outbox import TRANSIENT_RETRIES
from storage.models import (
    OutboxMessage,
    OutboxStatus,
    Participant,
    PostState,
)
from tests.citizens import import_consultation, open_now
from tests.conftest import eventually, model_rows
from tests.fake_graph import FakeGraph
from tests.ideas import ideas_source
from tests.meta_citizens import (
    check_delivered_twice_applied_once,
    check_forged_deliveries_refused,
    join_skolevej,
    last_wrote,
    publish_now,
    running_on,
)
from tests.wacitizens import WaCitizen


@pytest.fixture
async def wa_app(
    fake_graph: FakeGraph, make_settings: Callable[..., Settings]
) -> AsyncIterator[BorgerDialog]:
    """The real application, built by the composition root, with WhatsApp on the fake."""
    async with running_on(fake_graph, make_settings) as app:
        yield app


async def test_a_citizen_walks_the_example_consultation_on_whatsapp(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    await import_consultation(wa_app, open_now())
    anna = WaCitizen(wa_app, fake_graph, "4520000001")

    # The wa.me link types the slug in; it opens the consultation as /start SLUG does.
    intro = await anna.write("friluftsliv")
    assert any("Ny friluftspolitik" in m.text for m in intro)
    # "Ja, jeg giver samtykke" is 22 characters: cut on the button, in full in the text.
    consent = intro[-1]
    assert [c["title"] for c in consent.choices] == ["Ja, jeg giver samty…", "Nej tak"]
    assert "▸ Ja, jeg giver samtykke" in consent.text

    first = await anna.tap("Ja, jeg giver samtykke")
    assert first[-1].text.startswith("1/")
    assert first[-1].choices[0]["kind"] == "button_reply"  # three ages: reply buttons
    await anna.tap("Under 25")
    # Four choices with Back: a list message, in the citizen's language.
    district = anna.last()
    assert district.body["interactive"]["type"] == "list"
    assert district.body["interactive"]["action"]["button"] == "Vælg her"
    await anna.tap("Nord")

    # Multiple choice: each tick sends the question again with what is ticked.
    ticked = await anna.tap("☐ Løber")
    assert any(c["title"] == "☑ Løber" for c in ticked[-1].choices)
    await anna.tap("☐ Cykler")
    await anna.tap("Færdig")
    # The scale: 1-5 and Back as a list.
    scale = anna.last()
    assert [c["title"] for c in scale.choices][:5] == ["1", "2", "3", "4", "5"]
    await anna.tap("5")
    await anna.tap("Nej")
    await anna.write("3")
    await anna.write("8000")
    await anna.write("En sti hele vejen rundt om søen")
    assert "Vil du have besked" in anna.last().text or anna.last().choices

    # No message the bot sent was refused by WhatsApp.
    assert fake_graph.refused == []

    # The export names the channel and a pseudonym, never the phone number.
    assert wa_app.uow is not None
    async with wa_app.uow.read() as uow:
        table = await build_table(uow, "friluftsliv")
    assert table is not None
    exported = to_csv(table).decode("utf-8")
    assert "whatsapp" in exported
    assert anna.wa_id not in exported
    assert table.records[0]["participant"]


async def test_typed_words_work_as_commands(wa_app: BorgerDialog, fake_graph: FakeGraph) -> None:
    await import_consultation(wa_app, open_now())
    bo = WaCitizen(wa_app, fake_graph, "4520000002")
    await bo.write("friluftsliv")
    await bo.tap("Ja, jeg giver samtykke")

    data = await bo.write("Mine data")
    assert any(m.kind == "document" for m in data)
    document = next(m for m in data if m.kind == "document")
    assert document.body["document"]["filename"].endswith(".json")

    asked = await bo.write("glem mig")
    assert asked[-1].choices, "forgetting asks for confirmation with buttons"
    labels = [c["title"] for c in asked[-1].choices]
    done = await bo.tap(labels[0])
    assert done, "forgetting answers"

    helped = await bo.write("help")
    assert helped
    assert helped[0].kind == "text"


async def test_anything_but_text_gets_the_polite_answer(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    cy = WaCitizen(wa_app, fake_graph, "4520000003")
    (answer,) = await cy.send_media("image")
    assert "kun læse tekst" in answer.text


async def test_forged_and_unsigned_deliveries_are_refused_and_nothing_is_stored(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    body = (
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",'
        b'"value":{"metadata":{"phone_number_id":"' + fake_graph.phone_number_id.encode() + b'"},'
        b'"messages":[{"from":"4520000004","id":"wamid.FORGED","type":"text",'
        b'"text":{"body":"hej"}}]}}]}]}'
    )
    await check_forged_deliveries_refused(wa_app, fake_graph, "whatsapp", body)


async def test_a_redelivered_message_is_applied_once(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    dan = WaCitizen(wa_app, fake_graph, "4520000005")
    inbound = fake_graph._inbound(dan.wa_id, "text", {"body": "hjælp"})
    await check_delivered_twice_applied_once(dan, fake_graph.envelope([inbound]), inbound["id"])


async def test_a_broadcast_outside_the_window_uses_the_template_or_is_skipped_with_a_reason(
    wa_app: BorgerDialog, fake_graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two posts to one citizen would wait out the pair rate (6 s) between them.
    assert wa_app.whatsapp is not None
    monkeypatch.setattr(
        wa_app.whatsapp, "limits", dataclasses.replace(wa_app.whatsapp.limits, chat_per_second=None)
    )
    await import_consultation(wa_app, ideas_source())
    fake_graph.call(lambda: fake_graph.templates.add(("borgerdialog_nyt", "da")))
    recent = await join_skolevej(WaCitizen(wa_app, fake_graph, "4520000011"))
    away = await join_skolevej(WaCitizen(wa_app, fake_graph, "4520000012"))
    await last_wrote(away, timedelta(hours=25))

    post = await publish_now(
        wa_app, "Nyt om skolevejen\n\nVi går i gang i maj.", "borgerdialog_nyt"
    )
    assert post.recipients == 2
    assert recent.last().kind == "text"
    assert recent.last().text == "Nyt om skolevejen\n\nVi går i gang i maj."
    template = away.last()
    assert template.kind == "template"
    assert template.body["template"]["name"] == "borgerdialog_nyt"
    # One line: Meta refuses line breaks in a template's parameters.
    assert template.text == "Nyt om skolevejen · Vi går i gang i maj."

    before = len(away.messages())
    post = await publish_now(wa_app, "Husk borgermødet", None)
    assert post.recipients == 1
    assert recent.last().text == "Husk borgermødet"
    assert len(away.messages()) == before
    assert post.error is not None
    assert "1 WhatsApp recipient(s) skipped" in post.error
    assert "no WhatsApp template" in post.error
    assert fake_graph.refused == []


async def test_statuses_update_the_outbox_and_131047_marks_the_citizen_unreachable(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    eva = WaCitizen(wa_app, fake_graph, "4520000021")
    (answer,) = await eva.write("hjælp")
    for status in ("sent", "read", "delivered"):  # a late "delivered" never undoes "read"
        delivery = fake_graph.status(answer, status)
        await eventually(lambda d=delivery: d.answers, what=f"the {status} status taken in")

    async def outbox_row() -> OutboxMessage:
        rows = await model_rows(wa_app, OutboxMessage)
        return next(r[0] for r in rows if r[0].external_message_id == answer.id)

    assert (await outbox_row()).platform_status == "read"

    (second,) = await eva.write("privatliv")
    # /privatliv names what WhatsApp adds: the phone number as the chat, and these statuses.
    assert "På WhatsApp er din chats nummer dit telefonnummer" in second.text
    assert "nået frem og læst" in second.text
    delivery = fake_graph.status(second, "failed", code=131047)
    await eventually(lambda: delivery.answers, what="the failed status taken in")
    rows = await model_rows(wa_app, OutboxMessage)
    failed = next(r[0] for r in rows if r[0].external_message_id == second.id)
    assert (failed.status, failed.platform_status) == (OutboxStatus.UNREACHABLE, "failed")
    (participant,) = [r[0] for r in await model_rows(wa_app, Participant)]
    assert participant.unreachable_at is not None

    # A refusal while sending marks them too; writing again makes them reachable.
    fake_graph.fail_next(eva.wa_id, 131026)
    await eva.write("hjælp")
    (participant,) = [r[0] for r in await model_rows(wa_app, Participant)]
    assert participant.unreachable_at is not None
    await eva.write("hjælp")
    (participant,) = [r[0] for r in await model_rows(wa_app, Participant)]
    assert participant.unreachable_at is None


async def test_the_ideas_phase_on_whatsapp_write_and_vote(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    await import_consultation(wa_app, ideas_source())
    anna = await join_skolevej(WaCitizen(wa_app, fake_graph, "4520000031"))
    await anna.tap("✍️ Skriv et udsagn")
    preview = await anna.write("Der skal males en fodgængerovergang ved bageren")
    assert preview[0].text.startswith("Dit udsagn:")
    await anna.tap("✅ Send")
    assert any("Tak! Dit udsagn er nu med" in m.text for m in anna.messages()[-2:])

    bo = await join_skolevej(WaCitizen(wa_app, fake_graph, "4520000032"))
    card = await bo.tap("🗳 Stem om udsagn")
    assert card[-1].text.startswith("🗳 ")
    seen = 0
    while bo.last().text.startswith("🗳 ") and seen < 10:
        await bo.tap("👍 Enig")
        seen += 1
    assert seen == 5, "four seeded statements and Anna's, each once"
    assert any(m.text.startswith("Du har stemt om alle") for m in bo.messages()[-3:])
    assert fake_graph.refused == []


def test_whatsapp_settings_are_all_or_nothing_and_never_echo_secrets(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "_env_file": None}
    assert not load_settings(**base).whatsapp_enabled
    with pytest.raises(SettingsError) as partial:
        load_settings(**base, whatsapp_token="EAAGsecret-token-value")
    assert len(partial.value.lines) == 1
    assert "BORGERDIALOG_WHATSAPP_PHONE_NUMBER_ID" in partial.value.lines[0]
    assert "secret-token-value" not in str(partial.value)
    complete = {
        "whatsapp_token": "EAAGsecret-token-value",
        "whatsapp_phone_number_id": "106540352242922",
        "whatsapp_app_secret": "app-secret-value",
        "whatsapp_verify_token": "verify-me",
    }
    settings = load_settings(**base, **complete)
    assert settings.whatsapp_enabled
    assert settings.whatsapp_api_url.startswith("https://graph.facebook.com/v")
    with pytest.raises(SettingsError) as number:
        load_settings(**base, **complete, whatsapp_number="+45 12 34 56 78")
    assert number.value.lines[0].startswith("BORGERDIALOG_WHATSAPP_NUMBER:")
    with pytest.raises(SettingsError) as pasted:
        load_settings(**base, **{**complete, "whatsapp_app_secret": '"app-secret-value" '})
    assert pasted.value.lines[0].startswith("BORGERDIALOG_WHATSAPP_APP_SECRET:")
    assert "app-secret-value" not in str(pasted.value)


def test_consultation_link_gives_a_wa_me_link() -> None:
    assert whatsapp_link("4512345678", "friluftsliv") == "https://wa.me/4512345678?text=friluftsliv"


def split_message() -> dict[str, Any]:
    """An outbox message WhatsApp takes only as several: a long text and twelve choices."""
    text = "\n\n".join(f"Afsnit {n}: " + "ord " * 60 for n in range(6))
    buttons = [[{"label": f"Valg nummer {n}", "payload": f"x:{n}"}] for n in range(12)]
    return {"type": "message", "text": text, "buttons": buttons, "edit_ref": None}


def as_sent(message: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in message.items() if k not in ("to", "messaging_product", "recipient_type")
    }


async def queue_split_message(
    app: BorgerDialog, fake: FakeGraph
) -> tuple[WaCitizen, int, list[dict[str, Any]]]:
    """A citizen in the window, and the split message queued for them; the parts it makes."""
    citizen = WaCitizen(app, fake, "4520000041")
    await citizen.write("hjælp")
    payload = split_message()
    parts = shape_message(payload["text"], payload["buttons"], choose="Vælg her")
    assert len(parts) >= 3, "a text ahead, then two lists"
    assert app.uow is not None
    async with app.uow() as uow:
        (message_id,) = await uow.outbox.add_many(
            [("whatsapp", citizen.wa_id, payload)], datetime.now(UTC)
        )
        await uow.commit()
    return citizen, message_id, parts


@pytest.mark.usefixtures("quick_retries")
async def test_a_split_message_goes_on_after_the_parts_sent_when_a_later_part_fails(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    citizen, message_id, parts = await queue_split_message(wa_app, fake_graph)
    before = len(citizen.messages())
    # WhatsApp refuses the second part once, as "something went wrong" (transient).
    fake_graph.fail_next(citizen.wa_id, 131000, status=500, after=1)
    assert wa_app.core is not None
    await wa_app.core.delivery.deliver_chat("whatsapp", citizen.wa_id)

    received = citizen.messages()[before:]
    assert [as_sent(m.body) for m in received] == parts, "each part once, in order"
    assert fake_graph.refused == [(citizen.wa_id, 131000)]
    (stored,) = [r[0] for r in await model_rows(wa_app, OutboxMessage) if r[0].id == message_id]
    assert stored.status == OutboxStatus.SENT
    assert stored.external_message_id == received[-1].id


@pytest.mark.usefixtures("quick_retries")
async def test_a_split_message_left_pending_goes_on_from_the_parts_the_database_recorded(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    citizen, message_id, parts = await queue_split_message(wa_app, fake_graph)
    before = len(citizen.messages())
    # The second part fails on every attempt of this round: the message stays pending.
    fake_graph.fail_next(citizen.wa_id, 131000, status=500, after=1, times=TRANSIENT_RETRIES + 1)
    assert wa_app.core is not None
    await wa_app.core.delivery.deliver_chat("whatsapp", citizen.wa_id)
    assert [as_sent(m.body) for m in citizen.messages()[before:]] == parts[:1]
    (stored,) = [r[0] for r in await model_rows(wa_app, OutboxMessage) if r[0].id == message_id]
    assert stored.status == OutboxStatus.PENDING
    assert stored.payload["progress"]["sent"] == 1

    # The next round (the periodic redelivery, or a start after a kill -9) reads the message
    # from the database as this one does, and sends the rest only.
    await wa_app.core.delivery.deliver_chat("whatsapp", citizen.wa_id)
    assert [as_sent(m.body) for m in citizen.messages()[before:]] == parts
    (stored,) = [r[0] for r in await model_rows(wa_app, OutboxMessage) if r[0].id == message_id]
    assert stored.status == OutboxStatus.SENT


def png(side: int) -> bytes:
    """A PNG of noise (noise does not compress: about 3 bytes a pixel)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_an_image_over_whatsapps_5_mb_goes_as_text_only_and_the_report_says_so(
    wa_app: BorgerDialog, fake_graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert wa_app.whatsapp is not None
    monkeypatch.setattr(
        wa_app.whatsapp, "limits", dataclasses.replace(wa_app.whatsapp.limits, chat_per_second=None)
    )
    await import_consultation(wa_app, ideas_source())
    ida = await join_skolevej(WaCitizen(wa_app, fake_graph, "4520000051"))

    small = await publish_now(wa_app, "Sådan bliver krydset", None, image=png(200))
    assert ida.last().kind == "image"
    assert ida.last().text == "Sådan bliver krydset"
    assert small.error is None

    big = png(1450)
    assert 5 * 1024 * 1024 < len(big) < 10 * 1024 * 1024  # Telegram takes it, WhatsApp not
    post = await publish_now(wa_app, "Kortet over skolevejen", None, image=big)
    assert ida.last().kind == "text"
    assert ida.last().text == "Kortet over skolevejen"
    assert post.state == PostState.SENT
    assert post.error is not None
    assert "1 WhatsApp recipient(s) got the text without the image" in post.error
    assert "WhatsApp takes at most 5 MB" in post.error
    assert fake_graph.refused == []
