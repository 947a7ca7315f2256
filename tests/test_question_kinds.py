"""Question kinds live in one registry: each provides every facet, and a new one is one module."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from bot.consultations.definition import DefinitionError, parse_definition
from bot.consultations.export import build_table, to_csv, to_xlsx
from bot.dialogue.i18n import Catalogs
from handlers.context import Texts
from handlers.events import Phrase
from handlers.questions import (
    Answering,
    DefinitionFields,
    KindFields,
    QuestionKind,
    TypedAnswer,
    all_kinds,
    kind_of,
    register,
    unregister,
)
from handlers.questions.registry import BUILT_IN
from storage.models import Question
from tests.flows import FlowBot, running_flow_bot

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Europe/Copenhagen")
CATALOGS = Catalogs("da")


def example_questions() -> dict[str, Question]:
    """The example consultation's questions, one of each kind, as the importer stores them."""
    source = (ROOT / "examples" / "friluftsliv.yaml").read_text(encoding="utf-8")
    definition = parse_definition(source, ZONE)
    return {
        question.kind: Question(
            id=number,
            key=question.key,
            kind=question.kind,
            text=question.text,
            options=[{"key": o.key, "label": o.label} for o in question.options],
            settings=question.settings,
            optional=question.optional,
        )
        for number, question in enumerate(definition.questions, 1)
    }


def test_the_example_consultation_shows_every_built_in_kind() -> None:
    assert set(example_questions()) == {kind.name for kind in BUILT_IN}


@pytest.mark.parametrize("kind", BUILT_IN, ids=lambda kind: kind.name)
@pytest.mark.parametrize("language", ["da", "en"])
def test_every_kind_provides_every_facet(kind: QuestionKind, language: str) -> None:
    t = CATALOGS.texts(language)
    catalog = CATALOGS.keys(language)
    question = example_questions()[kind.name]
    assert kind_of(question) is kind
    assert kind.label_key in catalog
    assert kind.hint_key is None or kind.hint_key in catalog
    hint = kind.hint(question, t)
    assert hint is None or (hint and "{" not in hint)
    assert kind.has_options == bool(question.options)
    keys = [str(option["key"]) for option in question.options]
    assert all(kind.option_label(question, key, t) for key in keys)
    if kind.answering is Answering.TYPE:
        refused = kind.read(question, "")
        assert refused.error in catalog
        assert t(refused.error, **(refused.params or {}))
        value: Any = "8000"
    else:
        value = keys[:2] if kind.answering is Answering.TICK else keys[0]
    assert kind.show(question, value, t)
    assert kind.cell(question, value, t, spreadsheet=True) not in (None, "")
    assert isinstance(kind.describe_options(question, t), str)


def test_the_questions_sheet_names_the_ends_of_a_scale() -> None:
    scale = example_questions()["scale"]
    described = kind_of(scale).describe_options(scale, CATALOGS.texts("en"))
    assert described == "1: Very dissatisfied; 5: Very satisfied"


class Year(QuestionKind):
    """A year, typed: a kind written as its own module would be, registered by a test alone."""

    name = "year"
    answering = Answering.TYPE
    # A real kind brings texts of its own to the catalogs; this one borrows the number's.
    label_key = "export.kind.number"
    hint_key = "question.hint_number"
    fields = ("earliest",)

    def parse(self, fields: DefinitionFields) -> KindFields:
        earliest = fields.get("earliest", 1900)
        if not isinstance(earliest, int) or isinstance(earliest, bool):
            fields.error("earliest", Phrase("mistake.question.whole_number"))
            earliest = 1900
        return KindFields(settings={"min": earliest, "max": 2100})

    def hint_params(self, question: Question, language: str) -> dict[str, object]:
        return dict(question.settings)

    def read(self, question: Question, text: str) -> TypedAnswer:
        bounds = self.hint_params(question, "")
        if not text.isdigit():
            return TypedAnswer(error="answer.number_invalid", params=bounds)
        if not question.settings["min"] <= int(text) <= question.settings["max"]:
            return TypedAnswer(error="answer.number_out_of_range", params=bounds)
        return TypedAnswer(int(text))

    def cell(self, question: Question, value: Any, t: Texts, *, spreadsheet: bool) -> object:
        return value  # a year stays a number in a spreadsheet


def consultation(earliest: str) -> str:
    today = datetime.now(UTC).astimezone(ZONE)
    opens = (today - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    closes = (today + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    return f"""\
slug: huse
title: Gamle huse
purpose: Vi vil vide, hvor gamle husene i kommunen er.
basis: {{decided: Intet endnu., influence: Bevaringsplanen., decides: Byrådet i juni.}}
target_group: {{description: Husejere}}
citizen_role: co-design
organiser: {{name: Teknik og Miljø, contact: tm@kommune.example}}
results: På kommunens hjemmeside i juni.
rounds:
  - {{opens: {opens}, closes: {closes}}}
questions:
  - id: built
    kind: year
    text: Hvornår er dit hus bygget?
    earliest: {earliest}
"""


@pytest.fixture
def year() -> Iterator[Year]:
    kind = Year()
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)
    assert kind not in all_kinds()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[FlowBot]:
    async for running in running_flow_bot(tmp_path):
        yield running


def test_a_kind_the_registry_does_not_know_is_a_mistake_in_the_file() -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(consultation("1600"), ZONE)
    (error,) = raised.value.errors
    assert str(error) == (
        "line 13: questions[0].kind: must be one of single, multiple, district, yesno, scale, "
        "number, postcode, text, idea (got 'year')"
    )


async def test_a_kind_defined_in_one_place_is_read_asked_answered_and_exported(
    year: Year, bot: FlowBot
) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(consultation("snart"), ZONE)
    assert [str(error) for error in raised.value.errors] == [
        "line 15: questions[0].earliest: must be a whole number"
    ]
    definition = parse_definition(consultation("1600"), ZONE)
    assert definition.questions[0].settings == {"min": 1600, "max": 2100}

    await bot.import_consultation(consultation("1600"))
    citizen = bot.citizen(7)
    await citizen.write("/start huse")
    (asked,) = await citizen.tap("Ja, jeg giver samtykke")
    assert asked.text == "1/1 · Hvornår er dit hus bygget?\n\nSkriv et tal fra 1600 til 2100."
    assert asked.buttons == []
    (refused,) = await citizen.write("1550")
    assert refused.text == "Tallet skal være mellem 1600 og 2100. Prøv igen."
    thanks, _hear_back = await citizen.write("1885")
    assert asked.text.endswith("✅ 1885")
    assert "Hvornår er dit hus bygget?\n  1885" in thanks.text

    async with bot.uow() as unit:
        table = await build_table(unit, "huse")
    assert table is not None
    assert table.rows[0]["built"] == 1885
    header, row = csv.reader(io.StringIO(to_csv(table).decode("utf-8-sig")), delimiter=";")
    assert row[header.index("Hvornår er dit hus bygget?")] == "1885"
    questions = load_workbook(io.BytesIO(to_xlsx(table)))["Spørgsmål"]
    built = [cell.value for cell in questions[2]]
    assert built[:3] == ["built", "Hvornår er dit hus bygget?", "tal"]
