"""Export a consultation's answers: one row per participant, one column per question.

The table keeps typed values (times, numbers, answers with their questions). JSON writes them
for machines (ids as keys, ISO times in UTC); CSV and XLSX write them for people opening the
file in a spreadsheet: headers and labels in the consultation's language, local times, numbers
as numbers, and every cell through ``safe_cell``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import Any

from bot.consultations.files import safe_cell
from bot.dialogue.i18n import BoundTexts, Catalogs, load_catalog
from handlers.context import Texts
from handlers.questionnaire import pick
from handlers.questions import kind_of
from storage.ideas import Tally
from storage.models import (
    Answer,
    Question,
    Statement,
    Visibility,
    VoteValue,
)
from storage.uow import UnitOfWork

FORMATS = ("csv", "xlsx", "json")
DELIMITERS = (";", ",")
# The machine-readable marks of the JSON export (and of ``ExportTable.rows``).
SKIPPED = "(skipped)"
# A free text a moderator has not approved, or has hidden, stays out of exports: it may hold
# personal data or abuse that must not travel further.
WITHHELD = {Visibility.HELD: "(held for moderation)", Visibility.HIDDEN: "(hidden by moderation)"}
WITHHELD_KEYS = {Visibility.HELD: "export.held", Visibility.HIDDEN: "export.hidden"}
ANONYMISED = "anonymised"
FIXED_COLUMNS = ["participant", "channel", "status", "consent_at", "completed_at", "hear_back"]
COLUMN_KEYS = {
    "participant": "export.column.participant",
    "channel": "export.column.channel",
    "status": "export.column.status",
    "consent_at": "export.column.consent_at",
    "completed_at": "export.column.completed_at",
    "hear_back": "export.column.hear_back",
}
STATUS_KEYS = {
    "invited": "status.invited",
    "declined": "status.declined",
    "answering": "status.answering",
    "completed": "status.completed",
    ANONYMISED: "export.anonymised",
}
VOTE_KEYS = {
    VoteValue.AGREE: "ideas.vote.agree",
    VoteValue.DISAGREE: "ideas.vote.disagree",
    VoteValue.PASS: "ideas.vote.pass",
}
DECISION_KEYS = {
    "accepted": "export.decision.accepted",
    "rejected": "export.decision.rejected",
    "considering": "export.decision.considering",
    "merged": "export.decision.merged",
}
LANGUAGE_KEYS = {"da": "language.name.da", "en": "language.name.en"}
# Excel has no time zones: local wall-clock times, to the minute as staff read them.
TIME_FORMAT = "yyyy-mm-dd hh:mm"
CSV_TIME = "%Y-%m-%d %H:%M"
# Column widths in characters: wide enough for a date-time, never wider than a screen's half.
MIN_WIDTH, MAX_WIDTH = 10, 60


@dataclass(frozen=True)
class Given:
    """An answer with its question: rendered for machines or for people when written."""

    question: Question
    answer: Answer


@dataclass(frozen=True)
class StatementLine:
    """A statement of the ideas phase with its votes."""

    statement: Statement
    tally: Tally


@dataclass(frozen=True)
class VoteLine:
    """One participant's current vote on a statement."""

    participant: str
    number: int
    value: int
    at: datetime


@dataclass
class ExportTable:
    """The export as typed values, before it becomes a file."""

    slug: str
    language: str
    columns: list[str]
    records: list[dict[str, Any]]
    questions: list[Question]
    statements: list[StatementLine] = field(default_factory=list)
    votes: list[VoteLine] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows as the JSON export holds them: ids as keys, ISO times, stable marks."""
        return [{key: _machine(value) for key, value in row.items()} for row in self.records]


def _machine(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Given):
        # Option labels as citizens saw them in Danish; the marks in English, as stable codes.
        return _answer(value, _machine_words(), SKIPPED, WITHHELD, spreadsheet=False)
    return value


@cache
def _machine_words() -> BoundTexts:
    """Danish texts, with yes and no as the lower-case codes the JSON export has always had."""
    return BoundTexts("da", {"answer.yes": "ja", "answer.no": "nej"}, load_catalog("da"))


class Readable:
    """Turns the table's values into what a person reads in a spreadsheet."""

    def __init__(self, language: str, zone: tzinfo) -> None:
        self.language = language
        self.zone = zone
        self.t: BoundTexts = Catalogs(language).texts(language)

    def time(self, value: datetime) -> datetime:
        """A naive local time without microseconds: what Excel can hold and show."""
        return value.astimezone(self.zone).replace(tzinfo=None, microsecond=0)

    def value(self, value: object, column: str = "") -> object:
        """One cell's value: numbers and times typed, labels in the consultation's language."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return self.t("answer.yes" if value else "answer.no")
        if isinstance(value, datetime):
            return self.time(value)
        if isinstance(value, Given):
            return self.answer(value)
        if column == "status" and isinstance(value, str) and value in STATUS_KEYS:
            return self.t(STATUS_KEYS[value])
        if column.endswith("_language") and isinstance(value, str) and value in LANGUAGE_KEYS:
            return self.t(LANGUAGE_KEYS[value])
        return value

    def answer(self, given: Given) -> object:
        """An answer as the citizen chose it: option labels, numbers and scales as numbers."""
        withheld = {visibility: self.t(key) for visibility, key in WITHHELD_KEYS.items()}
        return _answer(given, self.t, self.t("answer.skipped"), withheld, spreadsheet=True)

    def header(self, column: str, questions: dict[str, Question]) -> str:
        """A column's name as a person reads it: the question's text rather than its id."""
        if column in COLUMN_KEYS:
            return self.t(COLUMN_KEYS[column])
        if column.endswith("_language") and column.removesuffix("_language") in questions:
            text = pick(questions[column.removesuffix("_language")].text, self.language)
            return self.t("export.column.language", question=text)
        question = questions.get(column)
        return pick(question.text, self.language) if question is not None else column

    def options(self, question: Question) -> str:
        """The options of a question as "id: label" pairs, so the sheet explains the ids."""
        return kind_of(question).describe_options(question, self.t)


def _answer(
    given: Given, t: Texts, skipped: str, withheld: dict[str, str], *, spreadsheet: bool
) -> object:
    answer, question = given.answer, given.question
    if answer.skipped:
        return skipped
    if answer.visibility in withheld:
        return withheld[answer.visibility]
    return kind_of(question).cell(question, answer.value, t, spreadsheet=spreadsheet)


async def build_table(
    uow: UnitOfWork, slug: str, progress: Callable[[Iterable[Any]], Iterable[Any]] = iter
) -> ExportTable | None:
    """Collect the rows of a consultation's export; None if there is no such consultation."""
    consultation = await uow.consultations.by_slug(slug)
    if consultation is None:
        return None
    questions = await uow.consultations.questions(consultation.id, include_archived=True)
    by_id = {q.id: q for q in questions}
    columns = list(FIXED_COLUMNS)
    for question in questions:
        columns.append(question.key)
        if kind_of(question).free_text:
            columns.append(f"{question.key}_language")
    answers = await uow.participations.answers_of_consultation(consultation.id)
    by_participation: dict[int | None, list[Answer]] = {}
    for answer in answers:
        by_participation.setdefault(answer.participation_id, []).append(answer)
    participations = await uow.participations.of_consultation(consultation.id)
    channels = await uow.participations.channels_of_consultation(consultation.id)
    current_votes = await uow.ideas.votes_of_consultation(consultation.id)
    records: list[dict[str, Any]] = []
    votes: list[VoteLine] = []
    for participation in progress(participations):
        row: dict[str, Any] = {
            "participant": participation.pseudonym,
            "channel": channels.get(participation.participant_id, ""),
            "status": participation.status,
            "consent_at": participation.consent_at,
            "completed_at": participation.completed_at,
            "hear_back": participation.hear_back,
        }
        _fill(row, by_participation.get(participation.id, []), by_id)
        records.append(row)
        for number, value, at in current_votes.get(participation.id, []):
            votes.append(VoteLine(participation.pseudonym, number, value, at))
    # Ideas whose authors used /forget stay, one row each, with nothing that points to anyone.
    for answer in by_participation.get(None, []):
        row = {column: None for column in FIXED_COLUMNS}
        row["status"] = ANONYMISED
        _fill(row, [answer], by_id)
        records.append(row)
    tallies = await uow.ideas.tallies(consultation.id)
    statements = [
        StatementLine(s, tallies.get(s.id) or Tally())
        for s in await uow.ideas.statements(consultation.id)
    ]
    language = consultation.languages[0] if consultation.languages else "da"
    return ExportTable(consultation.slug, language, columns, records, questions, statements, votes)


def _fill(row: dict[str, Any], answers: list[Answer], questions: dict[int, Question]) -> None:
    for answer in answers:
        question = questions[answer.question_id]
        row[question.key] = Given(question, answer)
        if kind_of(question).free_text:
            row[f"{question.key}_language"] = answer.language or ""


@dataclass(frozen=True)
class Counts:
    """What an export holds, counted: ``consultation show`` says the same numbers."""

    answered: dict[str, int]
    skipped: dict[str, int]
    statuses: dict[str, int]


def counts(table: ExportTable) -> Counts:
    """Count the export's rows by status and its answers by question, as written."""
    answered: dict[str, int] = {}
    skipped: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for row in table.records:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        for value in row.values():
            if isinstance(value, Given):
                tally = skipped if value.answer.skipped else answered
                tally[value.question.key] = tally.get(value.question.key, 0) + 1
    return Counts(answered, skipped, statuses)


def _answer_cells(table: ExportTable, readable: Readable) -> Iterable[list[object]]:
    """The answers sheet: readable headers, then one row per participant."""
    questions = {q.key: q for q in table.questions}
    yield [readable.header(column, questions) for column in table.columns]
    for row in table.records:
        yield [readable.value(row.get(column), column) for column in table.columns]


def _header(t: BoundTexts, *keys: str) -> list[object]:
    return [t(key) for key in keys]


def _question_cells(table: ExportTable, readable: Readable) -> Iterable[list[object]]:
    t = readable.t
    yield _header(
        t, "export.column.id", "export.column.text", "export.column.kind", "export.column.options"
    )
    for question in table.questions:
        yield [
            question.key,
            pick(question.text, readable.language),
            t(kind_of(question).label_key),
            readable.options(question),
        ]


def _statement_cells(table: ExportTable, readable: Readable) -> Iterable[list[object]]:
    t = readable.t
    yield _header(
        t,
        "export.column.number",
        "export.column.statement",
        "ideas.vote.agree",
        "ideas.vote.disagree",
        "ideas.vote.pass",
        "export.column.decision",
    )
    for line in table.statements:
        statement = line.statement
        text = (
            t(WITHHELD_KEYS[statement.visibility])
            if statement.visibility in WITHHELD_KEYS
            else pick(statement.text, readable.language)
        )
        decision = t(DECISION_KEYS[statement.decision]) if statement.decision else ""
        tally = line.tally
        yield [statement.number, text, tally.agree, tally.disagree, tally.passed, decision]


def _vote_cells(table: ExportTable, readable: Readable) -> Iterable[list[object]]:
    t = readable.t
    yield _header(
        t,
        "export.column.participant",
        "export.column.number",
        "export.column.vote",
        "export.column.time",
    )
    for vote in table.votes:
        label = t(VOTE_KEYS[vote.value]) if vote.value in VOTE_KEYS else vote.value
        yield [vote.participant, vote.number, label, readable.time(vote.at)]


def to_csv(table: ExportTable, zone: tzinfo = UTC, delimiter: str = ";") -> bytes:
    """The answers as CSV for a spreadsheet: a byte-order mark so Excel reads UTF-8 as such.

    Danish Excel splits on semicolons (the comma is its decimal sign); ``delimiter=","`` suits
    spreadsheet programs set up for English.
    """
    readable = Readable(table.language, zone)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    for values in _answer_cells(table, readable):
        writer.writerow(
            [v.strftime(CSV_TIME) if isinstance(v, datetime) else safe_cell(v) for v in values]
        )
    return buffer.getvalue().encode("utf-8-sig")


def to_json(table: ExportTable, zone: tzinfo = UTC, delimiter: str = ";") -> bytes:
    """JSON: the questions with their texts and options, then one object per participant."""
    document = {
        "consultation": table.slug,
        "questions": [
            {
                "id": q.key,
                "kind": q.kind,
                "text": pick(q.text, "da"),
                "archived": q.archived_at is not None,
                "options": [
                    {"id": o["key"], "label": pick(o["label"], "da")}
                    for o in q.options
                    if o.get("label")
                ],
            }
            for q in table.questions
        ],
        "participants": [{c: row.get(c, "") for c in table.columns} for row in table.rows],
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def to_xlsx(table: ExportTable, zone: tzinfo = UTC, delimiter: str = ";") -> bytes:
    """An Excel workbook: answers, questions, statements and votes, each sheet ready to read."""
    from openpyxl import Workbook

    readable = Readable(table.language, zone)
    t = readable.t
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, cells in (
        ("export.sheet.answers", _answer_cells),
        ("export.sheet.questions", _question_cells),
        ("export.sheet.statements", _statement_cells),
        ("export.sheet.votes", _vote_cells),
    ):
        # Excel refuses sheet names over 31 characters.
        _write_sheet(workbook.create_sheet(t(name)[:31]), cells(table, readable))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_sheet(sheet: Any, rows: Iterable[list[object]]) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    for number, values in enumerate(rows, start=1):
        for column, raw in enumerate(values, start=1):
            value = raw if isinstance(raw, datetime) else safe_cell(raw)
            cell = sheet.cell(number, column, value)
            if isinstance(value, str):
                # Text is text: openpyxl would otherwise store a string starting with = as a
                # formula. (safe_cell has quoted it already; this holds for any later change.)
                cell.data_type = "s"
            elif isinstance(value, datetime):
                cell.number_format = TIME_FORMAT
            if number == 1:
                cell.font = Font(bold=True)
            longest = len(TIME_FORMAT) if isinstance(value, datetime) else _longest_line(value)
            widths[column] = max(widths.get(column, 0), longest)
    for column, width in widths.items():
        sheet.column_dimensions[get_column_letter(column)].width = min(
            MAX_WIDTH, max(MIN_WIDTH, width + 2)
        )
    sheet.freeze_panes = "A2"


def _longest_line(value: object) -> int:
    return max((len(line) for line in str(value).splitlines()), default=0)


RENDERERS: dict[str, Callable[[ExportTable, tzinfo, str], bytes]] = {
    "csv": to_csv,
    "json": to_json,
    "xlsx": to_xlsx,
}
