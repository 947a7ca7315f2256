"""Pol.is's open-data format, both ways: export a consultation's statements and votes, import a
conversation. Pol.is ids are small integers; ours are the per-consultation numbers of
participations and statements, so they are pseudonymous and stable within one consultation.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.consultations.definition import MAX_STATEMENT_LENGTH
from bot.consultations.files import (
    MAX_POLIS_BYTES,
    MAX_POLIS_ROWS,
    FileProblem,
    csv_rows,
    decode_text,
    read_limited,
    restore_cell,
    safe_cell,
)
from bot.dialogue.i18n import english_texts
from handlers.events import UnreadableText, clean_text
from handlers.ideas.groups import GroupModel
from handlers.questionnaire import pick
from handlers.screening.rules import fingerprint
from storage.ideas import CastVote, CurrentVote
from storage.models import (
    Consultation,
    Participation,
    ParticipationStatus,
    Statement,
    StatementOrigin,
    Visibility,
)
from storage.uow import UnitOfWork

COMMENTS = "comments.csv"
VOTES = "votes.csv"
PARTICIPANTS = "participants-votes.csv"
SUMMARY = "summary.csv"
COMMENT_COLUMNS = [
    "timestamp",
    "datetime",
    "comment-id",
    "author-id",
    "agrees",
    "disagrees",
    "moderated",
    "comment-body",
]
VOTE_COLUMNS = ["timestamp", "datetime", "comment-id", "voter-id", "vote"]
PARTICIPANT_COLUMNS = ["participant", "group-id", "n-comments", "n-votes", "n-agree", "n-disagree"]
MODERATED = {Visibility.VISIBLE: 1, Visibility.HELD: 0, Visibility.HIDDEN: -1}
VISIBILITY = {value: key for key, value in MODERATED.items()}
# A citizen's statement that moderation held or hid is not published here either: it may hold
# personal data or abuse. (An imported one was published by Pol.is already.)
WITHHELD = {Visibility.HELD: "(held for moderation)", Visibility.HIDDEN: "(hidden by moderation)"}
# Imported people cannot be written to: they took part on Pol.is, not in a chat.
IMPORTED_CHANNEL = "polis"
# Epoch times above this are milliseconds (Pol.is has written both).
MILLISECONDS_FROM = 10**11
# Ids become statement and participant numbers (32-bit columns); times end by 9999-12-31.
MAX_ID = 2**31 - 1
MAX_TIMESTAMP = 253_402_300_799_999
# Vote events an import stores per INSERT: a few megabytes of rows at a time, not all at once.
VOTES_PER_INSERT = 10_000
# Columns whose numbers may be negative: votes (-1 agrees in Pol.is) and moderation.
SIGNED = ("vote", "moderated")


def js_datetime(moment: datetime) -> str:
    """A time as Pol.is writes it (JavaScript's Date.toString in UTC)."""
    return moment.astimezone(UTC).strftime(
        "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"
    )


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since 1970."""
    return round(moment.timestamp() * 1000)


@dataclass
class PolisExport:
    """What an export wrote."""

    comments: int = 0
    votes: int = 0
    participants: int = 0
    groups: int = 0


def _csv(rows: list[list[object]]) -> str:
    """CSV as Pol.is writes it (lines end in LF), every cell inert."""
    buffer = io.StringIO()
    # The writer quotes a cell holding a character of its line end, and only those: with "\r\n"
    # a cell with a lone CR is quoted too (with "\n" it broke the row), then the end is LF again.
    writer = csv.writer(buffer, lineterminator="\r\n")
    lines: list[str] = []
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([safe_cell(value) for value in row])
        lines.append(buffer.getvalue().removesuffix("\r\n") + "\n")
    return "".join(lines)


async def export_polis(
    uow: UnitOfWork, consultation: Consultation, url: str
) -> tuple[dict[str, str], PolisExport]:
    """The four files of a consultation (comments, votes, participants-votes, summary).

    Participant ids are the participations' numbers: number the newcomers first
    (``ParticipationRepository.number_newcomers``). Someone without one yet (who joined after
    that, and voted while this read) is left out with their votes until the next export.
    """
    statements = await uow.ideas.statements(consultation.id)
    participations = {p.id: p for p in await uow.participations.of_consultation(consultation.id)}
    numbered = {pid for pid, p in participations.items() if p.number is not None}
    events = [
        e for e in await uow.ideas.vote_events(consultation.id) if e.participation_id in numbered
    ]
    stored = await uow.ideas.groups(consultation.id)
    model = GroupModel.from_document(stored.model) if stored and stored.model else None
    by_id = {s.id: s for s in statements}

    def number(participation_id: int | None) -> int | str:
        participation = participations.get(participation_id) if participation_id else None
        return participation.number if participation and participation.number is not None else ""

    counted: Counter[tuple[int, int]] = Counter((e.statement_id, e.value) for e in events)
    comment_rows: list[list[object]] = [list(COMMENT_COLUMNS)]
    for statement in statements:
        body = statement.text.get(statement.language) or next(iter(statement.text.values()), "")
        if statement.origin == StatementOrigin.CITIZEN and statement.visibility in WITHHELD:
            body = WITHHELD[statement.visibility]
        comment_rows.append(
            [
                epoch_ms(statement.created_at),
                js_datetime(statement.created_at),
                statement.number,
                number(statement.participation_id),
                counted[(statement.id, 1)],
                counted[(statement.id, -1)],
                MODERATED.get(statement.visibility, 0),
                body,
            ]
        )
    # The last vote of each participant on each statement, as the matrix Pol.is publishes.
    last: dict[int, dict[int, int]] = {}
    for participation_id, statement_id, value in await uow.ideas.current_votes(consultation.id):
        if participation_id in numbered:
            last.setdefault(participation_id, {})[by_id[statement_id].number] = value
    authors = Counter(s.participation_id for s in statements if s.participation_id in numbered)
    people = sorted(
        (participations[p] for p in set(last) | set(authors)), key=lambda p: p.number or 0
    )
    numbers = [s.number for s in statements]
    participant_rows: list[list[object]] = [[*PARTICIPANT_COLUMNS, *(str(n) for n in numbers)]]
    for participation in people:
        votes = last.get(participation.id, {})
        group = model.members.get(participation.id) if model else None
        participant_rows.append(
            [
                participation.number,
                "" if group is None else group,
                authors.get(participation.id, 0),
                len(votes),
                sum(1 for v in votes.values() if v == 1),
                sum(1 for v in votes.values() if v == -1),
                *[votes.get(n, "") for n in numbers],
            ]
        )
    voters = {e.participation_id for e in events}
    groups = len(model.centers) if model else 0
    description = pick(consultation.ideas.get("prompt", {}), "da") or pick(
        consultation.purpose, "da"
    )
    summary_rows: list[list[object]] = [
        ["topic", pick(consultation.title, "da")],
        ["url", url],
        ["views", len(participations)],
        ["voters", len(voters)],
        ["voters-in-conv", len(model.members) if model else 0],
        ["commenters", len(authors)],
        ["comments", len(statements)],
        ["groups", groups],
        ["conversation-description", description],
    ]
    # The votes' rows and every file's text are plain values by now: they are made in a
    # thread, so a large conversation's hundreds of thousands of votes (seconds of work) do not
    # hold up the chats the same process answers.
    statement_numbers = {s.id: s.number for s in statements}
    participant_numbers = {p: number(p) for p in voters}
    files = await asyncio.to_thread(
        _files,
        {COMMENTS: comment_rows, PARTICIPANTS: participant_rows, SUMMARY: summary_rows},
        events,
        statement_numbers,
        participant_numbers,
    )
    return files, PolisExport(len(statements), len(events), len(people), groups)


def _files(
    tables: dict[str, list[list[object]]],
    events: list[CastVote],
    statement_numbers: dict[int, int],
    participant_numbers: dict[int | None, int | str],
) -> dict[str, str]:
    """Every file's text: the given tables, and the votes' file made from the vote log."""
    vote_rows: list[list[object]] = [list(VOTE_COLUMNS)]
    for event in events:
        vote_rows.append(
            [
                epoch_ms(event.at),
                js_datetime(event.at),
                statement_numbers[event.statement_id],
                participant_numbers[event.participation_id],
                event.value,
            ]
        )
    tables = {**tables, VOTES: vote_rows}
    return {name: _csv(tables[name]) for name in (COMMENTS, VOTES, PARTICIPANTS, SUMMARY)}


def write_folder(directory: Path, files: dict[str, str]) -> None:
    """Write exported files into a folder, creating it if needed."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")


@dataclass(frozen=True)
class PolisProblem:
    """One mistake in a Pol.is folder."""

    file: str
    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file + (f", row {self.row}" if self.row is not None else "")
        where += f", column {self.column}" if self.column else ""
        return f"{where}: {self.reason}"


class PolisFolderError(Exception):
    """A Pol.is folder that cannot be imported; every mistake is listed."""

    def __init__(self, problems: list[PolisProblem]) -> None:
        super().__init__(f"{len(problems)} mistakes")
        self.problems = problems


@dataclass
class PolisImport:
    """What an import did."""

    created: bool
    comments: int = 0
    votes: int = 0
    participants: int = 0
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Comment:
    at: datetime
    number: int
    author: int | None
    moderated: int
    body: str


@dataclass(frozen=True, slots=True)
class _VoteRow:
    at: datetime
    statement: int
    voter: int
    value: int


def _read(
    directory: Path, name: str, columns: list[str], problems: list[PolisProblem]
) -> Iterable[dict[str, str]] | None:
    path = directory / name
    if not path.exists():
        return None
    try:
        rows = _rows(path)
    except FileProblem as problem:
        problems.append(
            PolisProblem(name, problem.row, problem.column, problem.reason.read(english_texts()))
        )
        return []
    header = rows[0] if rows else []
    missing = [c for c in columns if c not in header]
    if missing:
        problems.append(PolisProblem(name, 1, None, f"lacks the columns {', '.join(missing)}"))
        return []
    # A short row has its missing cells empty, as csv.DictReader would give them. Made one at a
    # time as they are read: a list of them all took a few hundred bytes per vote.
    return ({c: row[i] if i < len(row) else "" for i, c in enumerate(header)} for row in rows[1:])


def _rows(path: Path) -> list[list[str]]:
    """A Pol.is CSV file's records, within the size and row limits."""
    text = decode_text(read_limited(path, MAX_POLIS_BYTES))
    return csv_rows(text, MAX_POLIS_ROWS)


def _text(value: str | None) -> str:
    """A text cell as it was meant: quoting against spreadsheets undone, control characters out."""
    try:
        return clean_text(restore_cell((value or "").strip())).strip()
    except UnreadableText:
        return ""


def _int(
    value: str | None,
    name: str,
    row: int,
    column: str,
    problems: list[PolisProblem],
    *,
    empty_ok: bool = False,
    limit: int = MAX_ID,
) -> int | None:
    text = (value or "").strip()
    if not text and empty_ok:
        return None
    number = _whole(text)
    if number is None:
        problems.append(PolisProblem(name, row, column, f"must be a whole number (got {text!r})"))
        return None
    # Ids and times go into the database: a number beyond its columns must stop here.
    low = -limit if column in SIGNED else 0
    if not low <= number <= limit:
        problems.append(PolisProblem(name, row, column, f"must be from {low} to {limit}"))
        return None
    return number


def _whole(text: str) -> int | None:
    """A whole number as Pol.is or a spreadsheet writes it: 12, or 12.0."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _moment(
    value: str | None, name: str, row: int, problems: list[PolisProblem]
) -> datetime | None:
    stamp = _int(value, name, row, "timestamp", problems, limit=MAX_TIMESTAMP)
    if stamp is None:
        return None
    seconds = stamp / 1000 if stamp >= MILLISECONDS_FROM else stamp
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class PolisFolder:
    """A Pol.is folder as read and checked."""

    comments: list[_Comment]
    votes: list[_VoteRow]
    summary: dict[str, str]
    files: list[str]


def read_folder(directory: Path) -> PolisFolder:
    """Read and check a Pol.is folder; raise PolisFolderError listing every mistake."""
    problems: list[PolisProblem] = []
    if not directory.is_dir():
        raise PolisFolderError([PolisProblem(str(directory), None, None, "is not a folder")])
    comment_rows = _read(directory, COMMENTS, COMMENT_COLUMNS, problems)
    vote_rows = _read(directory, VOTES, VOTE_COLUMNS, problems)
    for name, rows in ((COMMENTS, comment_rows), (VOTES, vote_rows)):
        if rows is None:
            problems.append(
                PolisProblem(name, None, None, "is missing (comments.csv and votes.csv are needed)")
            )
    files = [n for n in (COMMENTS, VOTES, PARTICIPANTS, SUMMARY) if (directory / n).exists()]
    comments: list[_Comment] = []
    seen: set[int] = set()
    for index, row in enumerate(comment_rows or [], start=2):
        at = _moment(row["timestamp"], COMMENTS, index, problems)
        number = _int(row["comment-id"], COMMENTS, index, "comment-id", problems)
        author = _int(row["author-id"], COMMENTS, index, "author-id", problems, empty_ok=True)
        moderated = _int(row["moderated"], COMMENTS, index, "moderated", problems)
        body = _text(row["comment-body"])
        if moderated is not None and moderated not in VISIBILITY:
            problems.append(
                PolisProblem(COMMENTS, index, "moderated", f"must be 1, 0 or -1 (got {moderated})")
            )
        if not body:
            problems.append(PolisProblem(COMMENTS, index, "comment-body", "is empty"))
        elif len(body) > MAX_STATEMENT_LENGTH:
            problems.append(
                PolisProblem(
                    COMMENTS,
                    index,
                    "comment-body",
                    f"has {len(body)} characters; a statement has at most {MAX_STATEMENT_LENGTH}",
                )
            )
            body = ""
        if number is not None and number in seen:
            problems.append(PolisProblem(COMMENTS, index, "comment-id", f"repeats {number}"))
        if number is not None:
            seen.add(number)
        if at and number is not None and moderated in VISIBILITY and body:
            comments.append(_Comment(at, number, author, moderated, body))
    votes: list[_VoteRow] = []
    for index, row in enumerate(vote_rows or [], start=2):
        at = _moment(row["timestamp"], VOTES, index, problems)
        statement = _int(row["comment-id"], VOTES, index, "comment-id", problems)
        voter = _int(row["voter-id"], VOTES, index, "voter-id", problems)
        value = _int(row["vote"], VOTES, index, "vote", problems)
        if value is not None and value not in (1, -1, 0):
            problems.append(PolisProblem(VOTES, index, "vote", f"must be 1, -1 or 0 (got {value})"))
            continue
        if statement is not None and statement not in seen:
            problems.append(
                PolisProblem(VOTES, index, "comment-id", f"{statement} is not in comments.csv")
            )
            continue
        if at and statement is not None and voter is not None and value is not None:
            votes.append(_VoteRow(at, statement, voter, value))
    summary: dict[str, str] = {}
    if (directory / SUMMARY).exists():
        try:
            pairs = _rows(directory / SUMMARY)
        except FileProblem as problem:
            problems.append(
                PolisProblem(
                    SUMMARY, problem.row, problem.column, problem.reason.read(english_texts())
                )
            )
            pairs = []
        for pair in pairs:
            if len(pair) >= 2:
                summary[_text(pair[0])] = _text(pair[1])
    if problems:
        raise PolisFolderError(problems)
    return PolisFolder(comments, votes, summary, files)


async def import_polis(
    uow: UnitOfWork, folder: PolisFolder, slug: str, now: datetime
) -> PolisImport:
    """Import a Pol.is conversation into a consultation (made if there is none); caller commits.

    A consultation that already has statements is refused: merging two conversations' numbers
    would make neither reproducible.
    """
    comments, votes, summary = folder.comments, folder.votes, folder.summary
    consultation = await uow.consultations.by_slug(slug)
    report = PolisImport(created=consultation is None, files=folder.files)
    if consultation is None:
        topic = summary.get("topic") or slug
        consultation = await uow.consultations.add(
            Consultation(
                slug=slug,
                languages=["da"],
                title={"da": topic},
                purpose={"da": summary.get("conversation-description") or topic},
                basis={"decided": {}, "influence": {}, "decides": {}},
                target_group={"description": {}, "quotas": []},
                citizen_role="co-design",
                organiser={},
                results={},
                moderation={},
                ideas={"prompt": {"da": summary.get("conversation-description") or topic}},
                created_at=now,
                updated_at=now,
            )
        )
    elif await uow.ideas.statements(consultation.id):
        raise PolisFolderError(
            [PolisProblem(slug, None, None, "already has statements; import into a new slug")]
        )
    people: dict[int, Participation] = {}

    async def person(number: int) -> Participation:
        if number not in people:
            participant = await uow.participants.get_or_create(
                IMPORTED_CHANNEL, f"{slug}:{number}", now
            )
            participant.unreachable_at = now
            people[number] = await uow.participations.add(
                Participation(
                    consultation_id=consultation.id,
                    participant_id=participant.id,
                    pseudonym=f"x-{secrets.token_hex(5)}",
                    number=number,
                    status=ParticipationStatus.COMPLETED,
                    pending_selection=[],
                    started_at=now,
                    updated_at=now,
                )
            )
        return people[number]

    statements: dict[int, Statement] = {}
    for comment in sorted(comments, key=lambda c: c.number):
        author = await person(comment.author) if comment.author is not None else None
        statements[comment.number] = await uow.ideas.add_statement(
            Statement(
                consultation_id=consultation.id,
                number=comment.number,
                participation_id=author.id if author else None,
                origin=StatementOrigin.IMPORTED,
                text={"da": comment.body},
                language="da",
                fingerprint=fingerprint(comment.body),
                visibility=VISIBILITY[comment.moderated],
                wants_volunteers=False,
                created_at=comment.at,
            )
        )
    # (statement id, participation id) -> the vote as it stands.
    current: dict[tuple[int, int], CurrentVote] = {}
    events: list[CastVote] = []
    # Stable: votes cast in the same millisecond keep the file's order.
    for row in sorted(votes, key=lambda v: v.at):
        voter = await person(row.voter)
        statement_id = statements[row.statement].id
        events.append(CastVote(statement_id, voter.id, row.value, row.at))
        if len(events) == VOTES_PER_INSERT:
            await uow.ideas.add_imported_votes(events, [])
            events = []
        key = (statement_id, voter.id)
        earlier = current.get(key)
        current[key] = CurrentVote(
            statement_id, voter.id, row.value, earlier.created_at if earlier else row.at, row.at
        )
    await uow.ideas.add_imported_votes(events, list(current.values()))
    await uow.ideas.raise_counter(consultation.id, "statement", max(statements, default=0))
    await uow.ideas.raise_counter(consultation.id, "participant", max(people, default=0))
    report.comments, report.votes, report.participants = len(statements), len(votes), len(people)
    return report
