"""The ideas-phase tests' consultation and a citizen who writes statements and votes on cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.app import BorgerDialog
from storage.models import Statement
from storage.uow import UnitOfWorkFactory
from tests.citizens import Citizen
from tests.conftest import eventually, model_rows
from tests.fake_telegram import FakeBot

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
    return [row[0] for row in await model_rows(app, Statement)]


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
