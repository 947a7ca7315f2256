"""A small consultation for the results page's tests: every kind of question, an ideas phase,
and citizens who answer and vote through the fake Telegram as anyone would."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.app import BorgerDialog
from tests.citizens import Citizen, import_consultation
from tests.conftest import eventually
from tests.fake_telegram import FakeBot
from tests.ideas import vote_through, write_statement

SLUG = "trafik"
SEEDS = (
    "Der skal være 30 km/t forbi skolen",
    "Der skal være en skolepatrulje ved krydset",
    "Forældre må ikke sætte børn af ved skolens port",
    "Der skal være flere cykelstativer ved skolen",
    "Bussen skal køre oftere om morgenen",
)
# Camp A agrees with the first two and disagrees with the next two, camp B the other way
# round; everyone agrees with the last: two opinion groups and one consensus.
CAMP_A, CAMP_B, EVERYONE = SEEDS[:2], SEEDS[2:4], SEEDS[4]
OWN_STATEMENT = "Lys på stien gennem parken om vinteren"
TRANSPORT = ("Går", "Cykler", "Bliver kørt")
WORRIES = (("Farten",), ("Farten", "Krydset"), ("Mørket",))
MINUTES = (5, 10, 12, 15, 8, 20, 25, 10, 30, 12, 45, 7)
# Free texts: one with a phone number and one with an e-mail address (held, masked), two plain.
COMMENTS = {
    0: "Ring til mig på 22 33 44 55, så fortæller jeg mere om krydset",
    1: "Krydset ved Brugsen er farligt om morgenen",
    2: "The crossing near the shop is dangerous in the morning",
    3: "Skriv til mig på anna.jensen@example.dk om stien",
}
# Telegram ids no page may show: long enough never to be part of a pseudonym or a count.
FIRST_ID = 880_000_101


def results_source() -> str:
    now = datetime.now(UTC)
    opens = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    closes = (now + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    seeds = "\n".join(f'    - "{seed}"' for seed in SEEDS)
    return f"""
slug: {SLUG}
languages: [da, en]
title: {{da: Trafik ved skolen, en: Traffic at the school}}
purpose: {{da: Vi vil gøre vejen til skolen tryggere., en: We want a safer way to school.}}
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
  - id: transport
    kind: single
    text: {{da: "Hvordan kommer dit barn i skole?", en: "How does your child get to school?"}}
    options:
      - {{id: walk, label: {{da: Går, en: Walks}}}}
      - {{id: bike, label: {{da: Cykler, en: Cycles}}}}
      - {{id: car, label: {{da: Bliver kørt, en: Is driven}}}}
  - id: worries
    kind: multiple
    text: {{da: "Hvad bekymrer dig på vejen?", en: "What worries you on the way?"}}
    options:
      - {{id: speed, label: {{da: Farten, en: Speed}}}}
      - {{id: crossing, label: {{da: Krydset, en: The crossing}}}}
      - {{id: dark, label: {{da: Mørket, en: The dark}}}}
  - id: safety
    kind: scale
    text: {{da: "Hvor tryg er skolevejen i dag?", en: "How safe is the way to school today?"}}
    labels:
      low: {{da: Meget utryg, en: Very unsafe}}
      high: {{da: Meget tryg, en: Very safe}}
  - id: minutes
    kind: number
    text: {{da: "Hvor mange minutter tager turen?", en: "How many minutes does it take?"}}
    min: 0
    max: 120
  - id: comment
    kind: text
    text: {{da: "Er der andet, vi skal vide?", en: "Anything else we should know?"}}
    max_length: 300
    optional: true
ideas:
  opens: "{opens}"
  closes: "{closes}"
  prompt: {{da: "Hvad skal der til for en tryg skolevej?", en: "What makes a safe way to school?"}}
  max_length: 120
  moderation: post
  statements:
{seeds}
"""


@dataclass(frozen=True)
class Person:
    """What one citizen of the small consultation answers and how they vote."""

    index: int

    @property
    def user_id(self) -> int:
        return FIRST_ID + self.index

    @property
    def transport(self) -> str:
        return TRANSPORT[self.index % 3]

    @property
    def worries(self) -> tuple[str, ...]:
        return WORRIES[self.index % 3]

    @property
    def safety(self) -> int:
        return 1 + self.index % 5

    @property
    def minutes(self) -> int:
        return MINUTES[self.index % len(MINUTES)] + self.index // len(MINUTES)

    @property
    def comment(self) -> str | None:
        return COMMENTS.get(self.index)

    @property
    def hear_back(self) -> bool:
        return self.index % 4 != 3

    @property
    def camp(self) -> str:
        return "A" if self.index % 2 == 0 else "B"

    def choice(self, statement: str) -> str:
        # Now and then someone passes: people in a camp are alike, not the same (the same
        # person always makes the same choice, so the test knows every vote).
        unsure = random.Random(f"{self.index} {statement}").random()
        if statement in CAMP_A or statement in CAMP_B:
            if unsure < 0.2:
                return "🤷 Ved ikke"
            agrees = (statement in CAMP_A) == (self.camp == "A")
            return "👍 Enig" if agrees else "👎 Uenig"
        if statement == OWN_STATEMENT:
            return "🤷 Ved ikke" if unsure < 0.3 else "👍 Enig"
        return "👍 Enig"


async def take_part(fake_bot: FakeBot, person: Person, *, write: bool = False) -> Citizen:
    """A citizen answers every question, says whether to hear back, writes a statement when
    asked to, and votes on every card."""
    citizen = Citizen(fake_bot, person.user_id)
    await citizen.write(f"/start {SLUG}", new=2)
    await citizen.tap("Ja, jeg giver samtykke")
    await citizen.tap(person.transport)
    for worry in person.worries:
        await citizen.tap(f"☐ {worry}", new=0)
    await citizen.tap("Færdig")
    await citizen.tap(str(person.safety))
    await citizen.write(str(person.minutes))
    if person.comment is None:
        await citizen.tap("Spring over", new=0)
    else:
        await citizen.write(person.comment, new=0)
    await eventually(
        lambda: any(b["text"] == "Nej" for b in citizen.last().buttons),
        what="the question about hearing back",
    )
    menu = await citizen.tap("Ja" if person.hear_back else "Nej")
    assert (menu[-1].text or "").startswith("💡 Idéer til »Trafik ved skolen«"), menu[-1].text
    if write:
        await write_statement(citizen, OWN_STATEMENT)
        await citizen.tap("✅ Send")
    await citizen.tap("🗳 Stem om udsagn")
    await vote_through(citizen, {s: person.choice(s) for s in (*SEEDS, OWN_STATEMENT)})
    return citizen


async def small_consultation(
    app: BorgerDialog, fake_bot: FakeBot, people: int
) -> dict[int, Citizen]:
    """The consultation with ``people`` citizens; the first writes a statement (number 6)."""
    await import_consultation(app, results_source())
    return {
        index: await take_part(fake_bot, Person(index), write=index == 0) for index in range(people)
    }
