"""The moderation tests' consultation, a moderator pressing buttons on cards, a citizen who
joins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.citizens import Citizen
from tests.conftest import MODERATORS, eventually
from tests.fake_telegram import FakeBot, SentMessage


def consultation_source(moderation: str = "") -> str:
    now = datetime.now(UTC)
    opens = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    closes = (now + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    return f"""
slug: trafik
languages: [da, en]
title: {{da: Trafik ved skolen, en: Traffic by the school}}
purpose: {{da: Vi vil gøre skolevejen tryggere., en: We want a safer way to school.}}
basis:
  decided: {{da: Der kommer en ny cykelsti., en: A new cycle path is coming.}}
  influence: {{da: Hvor den skal gå., en: Where it goes.}}
  decides: {{da: Teknisk udvalg., en: The technical committee.}}
target_group: {{description: {{da: Forældre og elever, en: Parents and pupils}}}}
citizen_role: co-design
organiser: {{name: Teknik og Miljø, contact: trafik@kommune.example}}
results: {{da: Resultaterne kommer i marts., en: Results come in March.}}
rounds:
  - {{opens: "{opens}", closes: "{closes}"}}
questions:
  - id: idea
    kind: idea
    text: {{da: "Hvad er din bedste idé?", en: "What is your best idea?"}}
    max_length: 280
  - id: why
    kind: text
    text: {{da: "Hvorfor?", en: "Why?"}}
    max_length: 500
{moderation}
"""


class Moderator:
    """A member of the moderator group, pressing buttons on cards."""

    def __init__(self, fake_bot: FakeBot, user_id: int) -> None:
        self.fake = fake_bot
        self.id = user_id

    def cards(self) -> list[SentMessage]:
        return [m for m in self.fake.sent(MODERATORS) if (m.text or "").startswith("🛡")]

    async def press(self, card: SentMessage, label: str) -> dict:
        """Press a button on a card as it looks now; return Telegram's answer to the press."""
        current = next(m for m in self.fake.sent(MODERATORS) if m.message_id == card.message_id)
        data = next(b["callback_data"] for b in current.buttons if b["text"] == label)
        return await self.press_data(card, data)

    async def press_data(self, card: SentMessage, data: str, forge: bool = False) -> dict:
        answers = len(self.fake.callback_answers)
        self.fake.press_button(self.id, card.message_id, data, chat_id=MODERATORS, forge=forge)
        return await eventually(
            lambda: len(self.fake.callback_answers) > answers and self.fake.callback_answers[-1],
            what=f"the press on {data!r} answered",
        )

    def card_now(self, card: SentMessage) -> SentMessage:
        return next(m for m in self.fake.sent(MODERATORS) if m.message_id == card.message_id)


async def join(fake_bot: FakeBot, user_id: int, language: str = "da") -> Citizen:
    citizen = Citizen(fake_bot, user_id, language)
    await citizen.write("/start trafik", new=2)
    await citizen.tap("Ja, jeg giver samtykke" if language == "da" else "Yes, I consent")
    return citizen


async def new_card(moderator: Moderator, before: int) -> SentMessage:
    await eventually(lambda: len(moderator.cards()) > before, what="a card in the moderator chat")
    return moderator.cards()[-1]


async def card_held_by_flood_control(
    fake_bot: FakeBot, citizen: Citizen, text: str, seconds: int
) -> None:
    """The citizen writes an answer that is held for review while Telegram makes the
    moderators' chat wait ``seconds`` (a 429): its card waits in the outbox when this returns."""
    fake_bot.inject(
        429, f"Too Many Requests: retry after {seconds}", chat_id=MODERATORS, retry_after=seconds
    )
    await citizen.write(text, new=2)
    await eventually(lambda: fake_bot.injected_left() == 0, what="the card held by flood control")
