"""Pol.is open data both ways, through the command line (in-process; two calls as a child
process, through the real entry point): import, analyse, export."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.consultations.polis import export_polis, js_datetime
from storage.database import create_engine, create_session_factory
from storage.ideas import CastVote, CurrentVote
from storage.models import Participation
from storage.uow import UnitOfWorkFactory
from tests.cli import borgerdialog, in_process
from tests.opinions import electorate

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def write_csv(path: Path, rows: list[list[object]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def polis_folder(folder: Path) -> None:
    """A conversation of two camps (60 voters, 23 statements) with changed votes and moderation."""
    folder.mkdir()
    votes, _ = electorate(60, seed=11, missing=0.2)
    rng = random.Random(5)
    events: list[tuple[datetime, int, int, int]] = []
    for index, (voter, statement, vote) in enumerate(votes):
        at = START + timedelta(minutes=index)
        if rng.random() < 0.05:
            # A first, different vote, changed later: both rows are in votes.csv.
            events.append((at - timedelta(seconds=30), statement, voter, -vote or 1))
        events.append((at, statement, voter, vote))
    events.sort()
    counted = Counter((s, v) for _, s, _, v in events)
    moderated = {5: -1, 9: 0}
    comments: list[list[object]] = [
        [
            "timestamp",
            "datetime",
            "comment-id",
            "author-id",
            "agrees",
            "disagrees",
            "moderated",
            "comment-body",
        ]
    ]
    for statement in range(1, 24):
        at = START - timedelta(hours=24 - statement)
        comments.append(
            [
                int(at.timestamp() * 1000),
                js_datetime(at),
                statement,
                statement % 7,
                counted[(statement, 1)],
                counted[(statement, -1)],
                moderated.get(statement, 1),
                f'Udsagn nummer {statement}, med "citat" og komma',
            ]
        )
    write_csv(folder / "comments.csv", comments)
    write_csv(
        folder / "votes.csv",
        [["timestamp", "datetime", "comment-id", "voter-id", "vote"]]
        + [[int(at.timestamp() * 1000), js_datetime(at), s, p, v] for at, s, p, v in events],
    )
    write_csv(
        folder / "summary.csv",
        [["topic", "Trafik i midtbyen"], ["conversation-description", "Hvad skal der ske?"]],
    )


def test_import_then_export_reproduces_the_conversation(tmp_path: Path, database_url: str) -> None:
    env = {"BORGERDIALOG_DATABASE_URL": database_url, "BORGERDIALOG_DATA_DIR": str(tmp_path)}
    source, exported = tmp_path / "source", tmp_path / "exported"
    polis_folder(source)

    imported = in_process("import", "polis", str(source), "--slug", "midtby", cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr
    assert (
        "Created consultation 'midtby' from comments.csv, votes.csv, summary.csv" in imported.stdout
    )
    # Refused a second time: numbers of two conversations cannot be merged.
    again = in_process("import", "polis", str(source), "--slug", "midtby", cwd=tmp_path, env=env)
    assert again.returncode == 2
    assert "already has statements" in again.stderr

    # Through the real entry point (a child process): the ideas commands' exit code and output.
    groups = borgerdialog("ideas", "groups", "midtby", cwd=tmp_path, env=env)
    assert groups.returncode == 0, groups.stderr
    assert groups.stdout.startswith("2 opinion groups among")
    consensus = groups.stdout.split("Consensus:")[1].split("Divisive:")[0]
    assert sorted(line.split()[0] for line in consensus.strip().splitlines()) == ["21", "22", "23"]

    result = in_process(
        "export", "midtby", "--format", "polis", str(exported), cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert read_csv(exported / "comments.csv") == read_csv(source / "comments.csv")
    assert read_csv(exported / "votes.csv") == read_csv(source / "votes.csv")
    summary = dict(read_csv(exported / "summary.csv"))
    assert summary["topic"] == "Trafik i midtbyen"
    assert summary["comments"] == "23"
    assert summary["voters"] == "60"
    assert summary["groups"] == "2"

    # The matrix holds each participant's last vote, and its counts match votes.csv.
    matrix = read_csv(exported / "participants-votes.csv")
    header, rows = matrix[0], matrix[1:]
    assert header[:6] == [
        "participant",
        "group-id",
        "n-comments",
        "n-votes",
        "n-agree",
        "n-disagree",
    ]
    last: dict[tuple[str, str], str] = {}
    for _, _, comment, voter, vote in read_csv(source / "votes.csv")[1:]:
        last[(voter, comment)] = vote
    for row in rows:
        person = row[0]
        cells = dict(zip(header[6:], row[6:], strict=True))
        mine = {c: v for (p, c), v in last.items() if p == person}
        assert {c: v for c, v in cells.items() if v != ""} == mine
        assert int(row[3]) == len(mine)
        assert int(row[4]) == sum(1 for v in mine.values() if v == "1")
        assert row[1] in ("0", "1", "")


def test_a_broken_folder_is_reported_by_row_and_column_and_nothing_is_imported(
    tmp_path: Path, database_url: str
) -> None:
    env = {"BORGERDIALOG_DATABASE_URL": database_url, "BORGERDIALOG_DATA_DIR": str(tmp_path)}
    folder = tmp_path / "broken"
    polis_folder(folder)
    rows = read_csv(folder / "votes.csv")
    rows[2][4] = "2"
    rows[3][2] = "99"
    write_csv(folder / "votes.csv", rows)
    # Through the real entry point (a child process): exit code 2 and no traceback.
    result = borgerdialog("import", "polis", str(folder), "--slug", "broken", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "votes.csv, row 3, column vote: must be 1, -1 or 0 (got 2)" in result.stderr
    assert "votes.csv, row 4, column comment-id: 99 is not in comments.csv" in result.stderr
    assert "nothing was imported" in result.stderr
    assert "Traceback" not in result.stderr
    listed = in_process("consultation", "list", cwd=tmp_path, env=env)
    assert "broken" not in listed.stdout
    missing = in_process(
        "import", "polis", str(tmp_path / "nowhere"), "--slug", "x1", cwd=tmp_path, env=env
    )
    assert missing.returncode == 2
    assert "is not a folder" in missing.stderr


def test_a_citizen_who_joins_later_gets_the_next_id_at_the_export_and_keeps_it(
    tmp_path: Path, database_url: str
) -> None:
    """A newcomer is stored without a participant id; the export gives them the next one (above
    every imported id) and the next export shows the same. Read before their id was given
    (they joined while an export ran), they and their votes wait for the next export."""
    env = {"BORGERDIALOG_DATABASE_URL": database_url, "BORGERDIALOG_DATA_DIR": str(tmp_path)}
    source = tmp_path / "source"
    polis_folder(source)
    imported = in_process("import", "polis", str(source), "--slug", "midtby", cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr
    highest = max(int(row[3]) for row in read_csv(source / "votes.csv")[1:])
    standing = len({(row[2], row[3]) for row in read_csv(source / "votes.csv")[1:]})

    async def join_and_vote() -> dict[str, str]:
        engine = create_engine(database_url)
        uow = UnitOfWorkFactory(create_session_factory(engine))
        try:
            async with uow() as unit:
                consultation = await unit.consultations.by_slug("midtby")
                assert consultation is not None
                participant = await unit.participants.add("telegram", "4242", START)
                participation = await unit.participations.add(
                    Participation(
                        consultation_id=consultation.id,
                        participant_id=participant.id,
                        pseudonym="p-newcomer01",
                        status="completed",
                        pending_selection=[],
                        started_at=START,
                        updated_at=START,
                    )
                )
                assert participation.number is None
                (statement, *_) = await unit.ideas.statements(consultation.id)
                # What the dashboard's delete section counts: statements, and votes as they stand.
                assert await unit.ideas.count_in(consultation.id) == (23, standing)
                at = START + timedelta(days=30)
                await unit.ideas.add_imported_votes(
                    [CastVote(statement.id, participation.id, 1, at)],
                    [CurrentVote(statement.id, participation.id, 1, at, at)],
                )
                await unit.commit()
            async with uow.read() as unit:
                files, _ = await export_polis(unit, consultation, "https://example.org")
                return files
        finally:
            await engine.dispose()

    unnumbered = asyncio.run(join_and_vote())
    assert unnumbered["votes.csv"].count("\n") == (source / "votes.csv").read_text().count("\n")
    assert f"\n{highest + 1}," not in unnumbered["participants-votes.csv"]
    for attempt in ("first", "second"):
        exported = tmp_path / attempt
        result = in_process(
            "export", "midtby", "--format", "polis", str(exported), cwd=tmp_path, env=env
        )
        assert result.returncode == 0, result.stderr
        voters = [row[3] for row in read_csv(exported / "votes.csv")[1:]]
        assert voters.count(str(highest + 1)) == 1, attempt
        assert "" not in voters
