"""Drive the bot as a citizen would: write, tap buttons by their label, read what came back."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app import BorgerDialog
from bot.consultations.definition import parse_definition
from bot.consultations.importer import import_definition
from storage.database import create_session_factory
from storage.models import Consultation, OutboxMessage, Question
from storage.uow import UnitOfWorkFactory
from tests.conftest import eventually, table_rows
from tests.fake_telegram import FakeBot, SentMessage

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "friluftsliv.yaml"
LOCAL = "%Y-%m-%d %H:%M"


def example_with_round(opens: datetime, closes: datetime, slug: str = "friluftsliv") -> str:
    """The example consultation, with its round moved to the given (UTC) times."""
    source = EXAMPLE.read_text(encoding="utf-8")
    # The questionnaire alone: the ideas phase has tests of its own (tests/test_ideas.py).
    source = source.split("\n# The ideas phase")[0] + "\n"
    source = source.replace("slug: friluftsliv", f"slug: {slug}")
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Copenhagen")
    source = source.replace(
        "    opens: 2026-11-01 09:00", f"    opens: {opens.astimezone(zone).strftime(LOCAL)}"
    )
    return source.replace(
        "    closes: 2027-01-31 23:59", f"    closes: {closes.astimezone(zone).strftime(LOCAL)}"
    )


def with_ideas_phase(source: str, opens: datetime, closes: datetime) -> str:
    """A consultation file (one of example_with_round's) with an ideas phase at these times."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Copenhagen")
    return source + (
        "ideas:\n"
        f"  opens: {opens.astimezone(zone).strftime(LOCAL)}\n"
        f"  closes: {closes.astimezone(zone).strftime(LOCAL)}\n"
        "  prompt:\n    da: Hvad mangler der?\n    en: What is missing?\n"
    )


def open_now(slug: str = "friluftsliv") -> str:
    now = datetime.now(UTC)
    return example_with_round(now - timedelta(days=1), now + timedelta(days=30), slug)


async def import_consultation(app: BorgerDialog, source: str, now: datetime | None = None) -> None:
    """Import a consultation into the running app's database, as the CLI would."""
    assert app.engine is not None
    uow = UnitOfWorkFactory(create_session_factory(app.engine))
    async with uow() as unit:
        await import_definition(
            unit, parse_definition(source, app.settings.zone), now or datetime.now(UTC)
        )
        await unit.commit()


async def question_ids(connection: AsyncConnection, slug: str) -> tuple[int, dict[str, int]]:
    """A stored consultation's id and its questions' ids by key, for writing rows directly."""
    consultation = (
        await connection.execute(select(Consultation.id).where(Consultation.slug == slug))
    ).scalar_one()
    statement = select(Question.key, Question.id).where(Question.consultation_id == consultation)
    return consultation, {key: id_ for key, id_ in (await connection.execute(statement)).all()}


class Citizen:
    """One citizen in a private chat with the bot."""

    def __init__(self, fake_bot: FakeBot, user_id: int, language: str | None = "da") -> None:
        self.fake = fake_bot
        self.id = user_id
        self.language = language

    def messages(self) -> list[SentMessage]:
        return self.fake.sent(self.id)

    def texts(self) -> list[str]:
        return self.fake.texts(self.id)

    def last(self) -> SentMessage:
        return self.messages()[-1]

    async def _wait_for(self, before: int, new: int) -> list[SentMessage]:
        await eventually(
            lambda: len(self.messages()) >= before + new,
            what=f"{new} new message(s) for citizen {self.id}",
        )
        return self.messages()[before:]

    async def write(self, text: str, new: int = 1) -> list[SentMessage]:
        """Send text; wait for that many new bot messages and return them."""
        before = len(self.messages())
        self.fake.send_message(self.id, text, language_code=self.language)
        return await self._wait_for(before, new)

    async def send_media(self, kind: str) -> list[SentMessage]:
        before = len(self.messages())
        self.fake.send_media(self.id, kind)
        return await self._wait_for(before, 1)

    def button(self, label: str) -> tuple[SentMessage, str]:
        """Find a button by its visible label, newest message first."""
        for message in reversed(self.messages()):
            for button in message.buttons:
                if button["text"] == label:
                    return message, button["callback_data"]
        shown = [b["text"] for m in self.messages() for b in m.buttons]
        raise AssertionError(f"no button {label!r}; buttons shown: {shown}")

    async def tap(self, label: str, new: int = 1) -> list[SentMessage]:
        """Tap a visible button; wait for that many new bot messages and the acknowledgement."""
        message, data = self.button(label)
        before = len(self.messages())
        answers = len(self.fake.callback_answers)
        self.fake.press_button(self.id, message.message_id, data, language_code=self.language)
        await eventually(
            lambda: len(self.fake.callback_answers) > answers,
            what=f"the tap on {label!r} acknowledged",
        )
        return await self._wait_for(before, new)

    async def forge(self, message_id: int, data: str) -> dict:
        """Send button data no message shows (an old or forged payload)."""
        answers = len(self.fake.callback_answers)
        self.fake.press_button(self.id, message_id, data, forge=True, language_code=self.language)
        return await eventually(
            lambda: len(self.fake.callback_answers) > answers and self.fake.callback_answers[-1],
            what="the forged tap answered",
        )


async def answer_all(citizen: Citizen, idea: str = "En sti hele vejen rundt om søen") -> None:
    await citizen.write("/start friluftsliv", new=2)
    await citizen.tap("Ja, jeg giver samtykke")
    await citizen.tap("Under 25")
    await citizen.tap("Nord")
    await citizen.tap("☐ Løber", new=0)
    await citizen.tap("Færdig")
    await citizen.tap("5")
    await citizen.tap("Nej")
    await citizen.write("3")
    await citizen.write("8000")
    await citizen.write(idea, new=2)


async def held_mydata_file(app: BorgerDialog) -> dict[str, Any] | None:
    """The /mydata JSON file still waiting in the outbox, read as the citizen would get it.

    A test holds it there by failing sendDocument (``FakeBot.inject``) to read exactly what
    would be sent: the fake Bot API keeps no file's content.
    """
    for message in await table_rows(app, OutboxMessage):
        if message.payload.get("type") == "document" and message.status == "pending":
            record: dict[str, Any] = json.loads(base64.b64decode(message.payload["content"]))
            return record
    return None
