"""What the WhatsApp and Messenger tests share: their webhook, a citizen who joins the ideas
consultation, a citizen whose last message is old, a post published now, and the checks that a
forged delivery is refused and a redelivery applied once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from sqlalchemy import update

from bot.app import BorgerDialog
from bot.config import Settings
from handlers.plan.planning import PostDraft, plan_post
from handlers.plan.rules import parse_audience
from storage.models import InboxEvent, Participant, PlannedPost, PostState
from tests.conftest import eventually, table_rows
from tests.fake_graph import FakeGraph
from tests.fake_messenger import FakeMessenger
from tests.postgres import free_port
from tests.wacitizens import WaCitizen

C = TypeVar("C", bound=WaCitizen)


@asynccontextmanager
async def running_on(
    fake: FakeGraph | FakeMessenger, make_settings: Callable[..., Settings]
) -> AsyncIterator[BorgerDialog]:
    """The real application, built by the composition root, with the channel on the fake."""
    app = BorgerDialog(make_settings(**fake.settings(free_port())))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def webhook(app: BorgerDialog, channel: str) -> str:
    return f"{app.settings.public_base_url}/{channel}/webhook"


async def join_skolevej(citizen: C) -> C:
    """Open the one-question consultation from its link, consent, answer, and say yes to news."""
    await citizen.open_consultation("skolevej")
    await citizen.tap("Ja, jeg giver samtykke")
    await citizen.tap("Ja")
    menu = await citizen.tap("Ja")
    assert any(m.text.startswith("💡 Idéer til »Skolevejen«") for m in menu)
    return citizen


async def last_wrote(citizen: WaCitizen, ago: timedelta) -> None:
    """Make a citizen's last message older (in the bot's database and at the fake)."""
    app, fake, chat_id = citizen.app, citizen.fake, citizen.wa_id
    assert app.engine is not None
    async with app.engine.begin() as connection:
        await connection.execute(
            update(Participant)
            .where(Participant.channel == citizen.channel, Participant.chat_id == chat_id)
            .values(last_seen_at=datetime.now(UTC) - ago)
        )
    fake.call(lambda: fake.last_inbound.__setitem__(chat_id, time.time() - ago.total_seconds()))


async def publish_now(
    app: BorgerDialog, text: str, template: str | None = None, image: bytes | None = None
) -> PlannedPost:
    """Plan a post to the consultation's subscribers for now, publish it, wait until sent."""
    assert app.uow is not None
    assert app.publisher is not None
    draft = PostDraft(
        texts={"da": text},
        audience=parse_audience("participants"),
        when="now",
        consultation="skolevej",
        whatsapp_template=template,
        image=image,
    )
    async with app.uow() as uow:
        post, _ = await plan_post(uow, draft, datetime.now(UTC), app.settings.zone, "test")
        await uow.commit()
    await app.publisher.publish_due()

    async def finished() -> PlannedPost | None:
        async with app.uow.read() as uow:  # type: ignore[union-attr]
            stored = await uow.plan.get(post.id)
        return stored if stored is not None and stored.state != PostState.SENDING else None

    found = await eventually(finished, what="the post sent")
    assert isinstance(found, PlannedPost)
    return found


async def check_forged_deliveries_refused(
    app: BorgerDialog, fake: FakeGraph | FakeMessenger, channel: str, body: bytes
) -> None:
    """Unsigned, wrongly signed and oversized deliveries are refused, nothing is stored; the
    handshake answers only the right verify token."""
    url = webhook(app, channel)
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"X-Hub-Signature-256": "sha256=" + "0" * 64},
            {"X-Hub-Signature-256": "sha1=abc"},
            # Signed with another app's secret (the other Meta channel's, say): still not this one.
            {"X-Hub-Signature-256": "sha256=" + "ab" * 32},
        ):
            async with http.post(url, data=body, headers=headers) as answer:
                assert answer.status == 401
        # The handshake only with the right verify token.
        query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        async with http.get(url, params={**query, "hub.verify_token": "wrong"}) as answer:
            assert answer.status == 403
        async with http.get(url, params={**query, "hub.verify_token": fake.verify_token}) as answer:
            assert answer.status == 200
            assert await answer.text() == "1158201444"
        # Too big: refused before it is read whole.
        big = b"x" * (4 * 1024 * 1024)
        async with http.post(
            url, data=big, headers={"X-Hub-Signature-256": fake.sign(big)}
        ) as answer:
            assert answer.status == 413
    assert await table_rows(app, InboxEvent) == []
    assert fake.sent == []


async def check_delivered_twice_applied_once(
    citizen: WaCitizen, envelope: dict[str, Any], message_id: str
) -> None:
    """Meta delivers the same message twice: both answered 200, applied and answered once."""
    first = citizen.fake.deliver(envelope)
    second = citizen.fake.deliver(envelope)
    await citizen.settled(message_id)
    await eventually(lambda: first.answers and second.answers, what="both deliveries answered")
    assert first.answers[-1] == second.answers[-1] == 200
    await citizen.settled(message_id)
    assert len(citizen.messages()) == 1
    assert len(await table_rows(citizen.app, InboxEvent)) == 1
