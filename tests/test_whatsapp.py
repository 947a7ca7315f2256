"""The WhatsApp channel end to end, against a fake Graph API that also plays Meta's webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest

from bot.app import BorgerDialog
from bot.config import Settings
from storage.models import InboxEvent
from tests.citizens import import_consultation, open_now
from tests.conftest import eventually, table_rows
from tests.fake_graph import FakeGraph
from tests.postgres import free_port
from tests.wacitizens import WaCitizen


@pytest.fixture
def fake_graph() -> Iterator[FakeGraph]:
    server = FakeGraph()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def wa_app(
    fake_graph: FakeGraph, make_settings: Callable[..., Settings]
) -> AsyncIterator[BorgerDialog]:
    """The real application, built by the composition root, with WhatsApp on the fake."""
    app = BorgerDialog(make_settings(**fake_graph.settings(free_port())))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def webhook(app: BorgerDialog) -> str:
    return f"{app.settings.public_base_url}/whatsapp/webhook"


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
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"X-Hub-Signature-256": "sha256=" + "0" * 64},
            {"X-Hub-Signature-256": "sha1=abc"},
        ):
            async with http.post(webhook(wa_app), data=body, headers=headers) as answer:
                assert answer.status == 401
        # The handshake only with the right verify token.
        query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        async with http.get(
            webhook(wa_app), params={**query, "hub.verify_token": "wrong"}
        ) as answer:
            assert answer.status == 403
        async with http.get(
            webhook(wa_app), params={**query, "hub.verify_token": fake_graph.verify_token}
        ) as answer:
            assert answer.status == 200
            assert await answer.text() == "1158201444"
        # Too big: refused before it is read whole.
        big = b"x" * (4 * 1024 * 1024)
        async with http.post(
            webhook(wa_app), data=big, headers={"X-Hub-Signature-256": fake_graph.sign(big)}
        ) as answer:
            assert answer.status == 413
    assert await table_rows(wa_app, InboxEvent) == []
    assert fake_graph.sent == []


async def test_a_redelivered_message_is_applied_once(
    wa_app: BorgerDialog, fake_graph: FakeGraph
) -> None:
    dan = WaCitizen(wa_app, fake_graph, "4520000005")
    inbound = fake_graph._inbound(dan.wa_id, "text", {"body": "hjælp"})
    envelope = fake_graph.envelope([inbound])
    first = fake_graph.deliver(envelope)
    second = fake_graph.deliver(envelope)
    await dan.settled(inbound["id"])
    await eventually(lambda: first.answers and second.answers, what="both deliveries answered")
    assert first.answers[-1] == second.answers[-1] == 200
    await dan.settled(inbound["id"])
    assert len(dan.messages()) == 1
    rows = await table_rows(wa_app, InboxEvent)
    assert len(rows) == 1
