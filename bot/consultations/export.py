"""Export a consultation's answers: one row per participant, one column per question."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.consultations.files import safe_cell
from handlers.questionnaire import option_label, pick
from storage.models import Answer, Participant, Participation, Question, Visibility
from storage.uow import UnitOfWork

FORMATS = ("csv", "xlsx", "json")
SKIPPED = "(skipped)"
# A free text a moderator has not approved, or has hidden, stays out of exports: it may hold
# personal data or abuse that must not travel further.
WITHHELD = {Visibility.HELD: "(held for moderation)", Visibility.HIDDEN: "(hidden by moderation)"}
ANONYMISED = "anonymised"
FIXED_COLUMNS = ["participant", "channel", "status", "consent_at", "completed_at", "hear_back"]


@dataclass
class ExportTable:
    """The export as columns and rows of plain values, before it becomes a file."""

    slug: str
    columns: list[str]
    rows: list[dict[str, Any]]
    questions: list[Question]


def _readable(question: Question, answer: Answer) -> str | int:
    if answer.skipped:
        return SKIPPED
    if answer.visibility in WITHHELD:
        return WITHHELD[answer.visibility]
    if question.kind == "multiple":
        return "; ".join(option_label(question, key, "da", "ja", "nej") for key in answer.value)
    if question.kind in ("single", "district", "yesno", "scale"):
        return option_label(question, str(answer.value), "da", "ja", "nej")
    if question.kind == "number" and type(answer.value) is int:
        # A number stays a number in the sheet, so staff can sum it; -3 is no formula.
        return answer.value
    return str(answer.value)


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
        if question.kind in ("text", "idea"):
            columns.append(f"{question.key}_language")
    answers = await uow.participations.answers_of_consultation(consultation.id)
    by_participation: dict[int | None, list[Answer]] = {}
    for answer in answers:
        by_participation.setdefault(answer.participation_id, []).append(answer)
    participations = await uow.participations.of_consultation(consultation.id)
    channels = await _channels(uow, participations)
    rows: list[dict[str, Any]] = []
    for participation in progress(participations):
        row: dict[str, Any] = {
            "participant": participation.pseudonym,
            "channel": channels.get(participation.participant_id, ""),
            "status": participation.status,
            "consent_at": participation.consent_at.isoformat() if participation.consent_at else "",
            "completed_at": participation.completed_at.isoformat()
            if participation.completed_at
            else "",
            "hear_back": {True: "yes", False: "no", None: ""}[participation.hear_back],
        }
        _fill(row, by_participation.get(participation.id, []), by_id)
        rows.append(row)
    # Ideas whose authors used /forget stay, one row each, with nothing that points to anyone.
    for answer in by_participation.get(None, []):
        row = {column: "" for column in FIXED_COLUMNS}
        row["status"] = ANONYMISED
        _fill(row, [answer], by_id)
        rows.append(row)
    return ExportTable(consultation.slug, columns, rows, questions)


async def _channels(uow: UnitOfWork, participations: list[Participation]) -> dict[int, str]:
    channels: dict[int, str] = {}
    for participation in participations:
        if participation.participant_id not in channels:
            participant: Participant | None = await uow.participants.by_id(
                participation.participant_id
            )
            channels[participation.participant_id] = participant.channel if participant else ""
    return channels


def _fill(row: dict[str, Any], answers: list[Answer], questions: dict[int, Question]) -> None:
    for answer in answers:
        question = questions[answer.question_id]
        row[question.key] = _readable(question, answer)
        if question.kind in ("text", "idea"):
            row[f"{question.key}_language"] = answer.language or ""


def _cells(table: ExportTable) -> Iterable[list[object]]:
    """The header and every row as the cells a spreadsheet file holds: inert, writable."""
    yield [safe_cell(column) for column in table.columns]
    for row in table.rows:
        yield [safe_cell(row.get(column, "")) for column in table.columns]


def to_csv(table: ExportTable) -> bytes:
    """CSV with a byte-order mark, so spreadsheet programs read the Danish letters right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for values in _cells(table):
        writer.writerow(values)
    return buffer.getvalue().encode("utf-8-sig")


def to_json(table: ExportTable) -> bytes:
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


def to_xlsx(table: ExportTable) -> bytes:
    """An Excel workbook with a frozen, bold header row."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = table.slug[:31]
    for number, values in enumerate(_cells(table), start=1):
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(number, column, value)
            if isinstance(value, str):
                # Text is text: openpyxl would otherwise store a string starting with = as a
                # formula. (safe_cell has quoted it already; this holds for any later change.)
                cell.data_type = "s"
            if number == 1:
                cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


RENDERERS: dict[str, Callable[[ExportTable], bytes]] = {
    "csv": to_csv,
    "json": to_json,
    "xlsx": to_xlsx,
}
