"""Exports open well in Danish Excel: typed cells, local times, Danish headers and labels.

The command line runs in-process (click's CliRunner) against a database seeded with fixed times,
so every time the files hold can be asserted exactly; /forget goes through the real bot.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from bot.app import BorgerDialog
from bot.cli import main
from storage.database import create_engine, create_session_factory
from storage.models import Answer, Participation, Statement, Vote
from storage.uow import UnitOfWorkFactory
from tests.citizens import Citizen, answer_all, import_consultation, open_now
from tests.cli import Cli
from tests.conftest import eventually
from tests.fake_telegram import FakeBot

# Summer and winter time in Copenhagen: UTC+2 and UTC+1.
CONSENT = datetime(2026, 7, 1, 10, 15, 30, 123456, tzinfo=UTC)
COMPLETED = datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC)
VOTED = datetime(2026, 12, 2, 22, 30, tzinfo=UTC)
SHEETS = ["Svar", "Spørgsmål", "Udsagn", "Stemmer"]
ENGLISH_MARKS = {"yes", "no", "(skipped)", "completed", "anonymised", "agree", "disagree"}


@pytest.fixture
def seeded(cli: Cli) -> Cli:
    (cli.folder / "friluftsliv.yaml").write_text(open_now(), encoding="utf-8")
    assert cli("consultation", "import", "friluftsliv.yaml").exit_code == 0
    asyncio.run(seed(cli.database_url))
    return cli


ANSWERS: dict[str, list[tuple[str, Any, bool, str | None]]] = {
    "p-00000001": [
        ("age_band", "under_25", False, None),
        ("district", "north", False, None),
        ("activities", ["walking", "cycling"], False, None),
        ("satisfaction", "4", False, None),
        ("dog_zones", "yes", False, None),
        ("dog_zones_where", None, True, None),
        ("visits", 12, False, None),
        ("postcode", "8000", False, None),
        ("idea", "Flere bænke ved åen", False, "da"),
    ],
    "p-00000002": [("age_band", "over_64", False, None), ("dog_zones", "no", False, None)],
}


async def seed(url: str) -> None:
    """Two participants, an anonymised idea, two statements and three votes, at fixed times."""
    engine = create_engine(url)
    try:
        async with UnitOfWorkFactory(create_session_factory(engine))() as uow:
            consultation = await uow.consultations.by_slug("friluftsliv")
            assert consultation is not None
            questions = {q.key: q.id for q in await uow.consultations.questions(consultation.id)}
            participations = {}
            for number, (pseudonym, given) in enumerate(ANSWERS.items(), start=1):
                channel = "web" if number == 2 else "telegram"
                participant = await uow.participants.get_or_create(channel, str(number), CONSENT)
                participations[pseudonym] = await uow.participations.add(
                    Participation(
                        consultation_id=consultation.id,
                        participant_id=participant.id,
                        pseudonym=pseudonym,
                        number=number,
                        status="completed" if number == 1 else "answering",
                        pending_selection=[],
                        hear_back=True if number == 1 else None,
                        consent_at=CONSENT,
                        completed_at=COMPLETED if number == 1 else None,
                        started_at=CONSENT,
                        updated_at=CONSENT,
                    )
                )
                for key, value, skipped, language in given:
                    await uow.participations.save_answer(
                        Answer(
                            participation_id=participations[pseudonym].id,
                            question_id=questions[key],
                            value=value,
                            skipped=skipped,
                            language=language,
                            answered_at=CONSENT,
                        )
                    )
            # An idea whose author used /forget: no participation any more.
            await uow.participations.save_answer(
                Answer(
                    participation_id=None,
                    question_id=questions["idea"],
                    value="Hundeskov i Nordparken",
                    language="da",
                    answered_at=CONSENT,
                )
            )
            statements = [
                await uow.ideas.add_statement(
                    Statement(
                        consultation_id=consultation.id,
                        number=number,
                        origin="staff",
                        text={"da": text},
                        language="da",
                        decision=decision,
                        created_at=CONSENT,
                    )
                )
                for number, text, decision in (
                    (1, "Stierne skal have lys om vinteren", "accepted"),
                    (2, "Mountainbikes skal have egne spor", None),
                )
            ]
            for pseudonym, number, value in (
                ("p-00000001", 1, 1),
                ("p-00000002", 1, -1),
                ("p-00000001", 2, 0),
            ):
                await uow.ideas.add_vote(
                    Vote(
                        statement_id=statements[number - 1].id,
                        participation_id=participations[pseudonym].id,
                        value=value,
                        created_at=VOTED,
                        updated_at=VOTED,
                    )
                )
            await uow.commit()
    finally:
        await engine.dispose()


def values(sheet: Any) -> list[list[Any]]:
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_the_xlsx_answers_sheet_reads_as_danish_with_typed_cells(
    seeded: Cli, tmp_path: Path
) -> None:
    result = seeded("export", "friluftsliv", "--format", "xlsx")
    assert result.exit_code == 0, result.output
    workbook = load_workbook(tmp_path / "friluftsliv.xlsx")
    assert workbook.sheetnames == SHEETS
    sheet = workbook["Svar"]
    header, *rows = values(sheet)
    assert header[:9] == [
        "Deltager",
        "Kanal",
        "Status",
        "Samtykke givet",
        "Besvaret færdig",
        "Vil høre om resultatet",
        "Hvor gammel er du?",
        "Hvor i kommunen bor du?",
        "Hvad laver du i naturen?",
    ]
    assert "Hvad er din bedste idé til naturen i kommunen? (sprog)" in header
    first, second, forgotten = (dict(zip(header, row, strict=True)) for row in rows)
    assert first["Deltager"] == "p-00000001"
    assert first["Status"] == "besvaret"
    assert first["Vil høre om resultatet"] == "Ja"
    assert first["Hvad laver du i naturen?"] == "Går tur; Cykler"
    assert first["Skal der være flere hundeskove?"] == "Ja"
    assert first["Hvor skal den nye hundeskov ligge?"] == "(sprunget over)"
    assert first["Hvad er din bedste idé til naturen i kommunen? (sprog)"] == "dansk"
    # Local wall-clock time (summer, then winter time), without microseconds.
    assert first["Samtykke givet"] == datetime(2026, 7, 1, 12, 15, 30)
    assert first["Besvaret færdig"] == datetime(2026, 12, 1, 9, 0, 5)
    assert second["Status"] == "i gang"
    assert second["Kanal"] == "web"
    assert second["Besvaret færdig"] is None
    assert forgotten["Status"] == "anonymiseret"
    assert forgotten["Hvad er din bedste idé til naturen i kommunen?"] == "Hundeskov i Nordparken"
    # Numbers and scales are numbers Excel can sum; a postcode stays text (it has leading zeros).
    cells = {header[cell.column - 1]: cell for cell in sheet[2]}
    assert (
        cells["Hvor mange gange om måneden er du i naturen?"].data_type,
        first["Hvor mange gange om måneden er du i naturen?"],
    ) == ("n", 12)
    assert (
        cells["Hvor tilfreds er du med stierne i dag?"].value,
        cells["Hvor tilfreds er du med stierne i dag?"].data_type,
    ) == (4, "n")
    assert cells["Hvad er dit postnummer?"].value == "8000"
    assert cells["Samtykke givet"].is_date
    assert cells["Samtykke givet"].number_format == "yyyy-mm-dd hh:mm"
    every = {value for row in rows for value in row if isinstance(value, str)}
    assert not every & ENGLISH_MARKS


def test_the_xlsx_explains_questions_statements_and_votes(seeded: Cli, tmp_path: Path) -> None:
    assert seeded("export", "friluftsliv", "--format", "xlsx").exit_code == 0
    workbook = load_workbook(tmp_path / "friluftsliv.xlsx")
    questions = values(workbook["Spørgsmål"])
    assert questions[0] == ["Id", "Spørgsmål", "Type", "Svarmuligheder"]
    by_id = {row[0]: row for row in questions[1:]}
    assert by_id["district"] == [
        "district",
        "Hvor i kommunen bor du?",
        "bydel",
        "north: Nord; centre: Midtby; south: Syd",
    ]
    assert by_id["dog_zones"][2:] == ["ja/nej", "yes: Ja; no: Nej"]
    statements = values(workbook["Udsagn"])
    assert statements == [
        ["Udsagn nr.", "Udsagn", "enig", "uenig", "ved ikke", "Beslutning"],
        [1, "Stierne skal have lys om vinteren", 1, 1, 0, "vedtaget"],
        [2, "Mountainbikes skal have egne spor", 0, 0, 1, None],
    ]
    votes = values(workbook["Stemmer"])
    assert votes[0] == ["Deltager", "Udsagn nr.", "Stemme", "Tidspunkt"]
    assert sorted(votes[1:]) == [
        ["p-00000001", 1, "enig", datetime(2026, 12, 2, 23, 30)],
        ["p-00000001", 2, "ved ikke", datetime(2026, 12, 2, 23, 30)],
        ["p-00000002", 1, "uenig", datetime(2026, 12, 2, 23, 30)],
    ]
    for name in SHEETS:
        sheet = workbook[name]
        assert sheet.freeze_panes == "A2", name
        widths = [sheet.column_dimensions[letter].width for letter in "ABCD"]
        assert all(10 <= width <= 60 for width in widths), (name, widths)
    # A question's text gets room; a short id column does not take more than it needs.
    assert workbook["Spørgsmål"].column_dimensions["B"].width > 30
    assert workbook["Spørgsmål"].column_dimensions["A"].width < 20


def test_the_csv_opens_in_danish_excel_and_json_stays_for_programs(
    seeded: Cli, tmp_path: Path
) -> None:
    assert seeded("export", "friluftsliv").exit_code == 0
    data = (tmp_path / "friluftsliv.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Deltager;Kanal;Status;Samtykke givet;")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0]["Samtykke givet"] == "2026-07-01 12:15"
    assert rows[0]["Vil høre om resultatet"] == "Ja"
    assert rows[0]["Hvor skal den nye hundeskov ligge?"] == "(sprunget over)"
    assert rows[0]["Hvor tilfreds er du med stierne i dag?"] == "4"
    assert rows[2]["Status"] == "anonymiseret"

    assert seeded("export", "friluftsliv", "--delimiter", ",", "-o", "en.csv").exit_code == 0
    english = (tmp_path / "en.csv").read_text("utf-8-sig")
    assert english.splitlines()[0].startswith("Deltager,Kanal,Status,")

    assert seeded("export", "friluftsliv", "--format", "json").exit_code == 0
    document = json.loads((tmp_path / "friluftsliv.json").read_text("utf-8"))
    first = document["participants"][0]
    assert first["consent_at"] == CONSENT.isoformat()
    assert first["hear_back"] == "yes"
    assert first["visits"] == 12
    # A point on a scale is a number for a program, as a number answer is.
    assert first["satisfaction"] == 4


async def test_show_counts_a_forgotten_idea_as_the_export_does(
    telegram_app: BorgerDialog,
    fake_bot: FakeBot,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await import_consultation(telegram_app, open_now())
    ida, ulla = Citizen(fake_bot, 401), Citizen(fake_bot, 402)
    await answer_all(ida)
    await answer_all(ulla, idea="Hundeskov i Nordparken")
    await ulla.write("/forget")
    await ulla.tap("Ja, slet", new=0)
    await eventually(
        lambda: (ulla.last().text or "").startswith("Dine oplysninger og svar er slettet."),
        what="erased",
    )
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    env = {"BORGERDIALOG_DATABASE_URL": database_url}
    try:
        shown, exported = [
            await asyncio.to_thread(CliRunner().invoke, main, args, env=env)
            for args in (
                ["consultation", "show", "friluftsliv"],
                ["export", "friluftsliv", "--format", "xlsx"],
            )
        ]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert shown.exit_code == 0, shown.output
    assert exported.exit_code == 0, exported.output
    sheet = load_workbook(tmp_path / "friluftsliv.xlsx")["Svar"]
    header, *rows = values(sheet)
    statuses = [dict(zip(header, row, strict=True))["Status"] for row in rows]
    assert sorted(statuses) == ["anonymiseret", "besvaret"]
    idea_column = header.index("Hvad er din bedste idé til naturen i kommunen?")
    assert len([row for row in rows if row[idea_column]]) == 2
    (idea_line,) = [line for line in shown.stdout.splitlines() if ". idea (" in line]
    assert "; 2 answers)" in idea_line
    assert "Participants: 1 completed" in shown.stdout
    assert "Anonymised: 1 answers kept after their authors used /forget" in shown.stdout
