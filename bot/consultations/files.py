"""Files from outside and files for outside: read within limits, write cells nothing runs.

Every file the command line reads (consultation YAML, content-plan sheets, Pol.is folders, the
images a sheet names) goes through ``read_limited``, so a huge, endless or special file becomes
one mistake instead of a hang; and every cell an export writes goes through ``safe_cell``, so a
citizen's ``=HYPERLINK(…)`` stays text in whichever spreadsheet program staff open it with.
"""

from __future__ import annotations

import csv
import io
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bot.dialogue.i18n import english_texts
from handlers.events import Phrase
from handlers.plan.sheet import column_letter

# The limits of what staff hand the command line; far above any real file, far below harm.
MAX_DEFINITION_BYTES = 1024 * 1024
MAX_SHEET_BYTES = 20 * 1024 * 1024
# Unpacked, an XLSX is mostly XML; this bounds the work a small zip ("zip bomb") can cause. It
# is low because openpyxl reads a sheet without a <dimension> element through once before its
# first row: 40 MiB of XML take seconds. (5,000 posts of 4,096 characters would be 20 MiB.)
MAX_XLSX_UNPACKED_BYTES = 40 * 1024 * 1024
MAX_SHEET_ROWS = 5000
# Each image is within Telegram's photo limit (handlers.plan.rules); together they fit in memory.
MAX_SHEET_IMAGE_BYTES = 200 * 1024 * 1024
# Columns beyond this are not read: the plan knows eleven, a team's own notes fit in the rest.
MAX_SHEET_COLUMNS = 64
# A post is at most 4096 characters (Telegram), a statement 1000; a cell may hold a bit more.
MAX_CELL_CHARS = 10_000
MAX_POLIS_BYTES = 200 * 1024 * 1024
# Pol.is's largest public conversations have a few hundred thousand votes.
MAX_POLIS_ROWS = 1_000_000

# OWASP's advice against CSV injection: a cell starting with one of these is a formula (or a
# DDE call) in Excel, LibreOffice or Google Sheets; a leading apostrophe makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
# What XML 1.0, and so XLSX, cannot hold (openpyxl raises IllegalCharacterError on these). Line
# breaks and tabs are kept: they are part of what people wrote.
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class FileProblem(Exception):
    """A file that cannot be used as it is; the reason names the row and column where known."""

    def __init__(self, reason: Phrase, row: int | None = None, column: str | None = None) -> None:
        super().__init__(reason.key)
        self.reason = reason
        self.row = row
        self.column = column

    def read(self, t: Callable[..., str]) -> str:
        """The problem in ``t``'s language: "row 3, column B: …"."""
        places = []
        if self.row is not None:
            places.append(t("mistake.where.row", row=self.row))
        if self.column:
            places.append(t("mistake.where.column", column=self.column))
        reason = self.reason.read(t)
        return f"{', '.join(places)}: {reason}" if places else reason

    def __str__(self) -> str:
        # The command line's language, and the logs'.
        return self.read(english_texts())


class FileMissing(FileProblem):
    """A file that is not there."""


def size_text(limit: int) -> str:
    """A byte limit as people say it: 1 MiB, 500 KiB, or 10 MB where the platform counts so."""
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1_000_000 and limit % 1_000_000 == 0:
        return f"{limit // 1_000_000} MB"
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def read_limited(path: Path, limit: int) -> bytes:
    """Read a regular file of at most ``limit`` bytes; raise FileProblem otherwise.

    Devices (/dev/zero), pipes and folders are refused before they are opened: reading them
    never ends, or blocks. The size is checked while reading too, as a file may grow meanwhile.
    """
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise FileProblem(
                Phrase("mistake.file.folder" if stat.S_ISDIR(mode) else "mistake.file.special")
            )
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise FileMissing(Phrase("mistake.file.missing")) from None
    except OSError as error:
        raise FileProblem(
            Phrase("mistake.file.unreadable", problem=str(error.strerror or error))
        ) from None
    if len(data) > limit:
        raise FileProblem(Phrase("mistake.file.too_large", limit=size_text(limit)))
    return data


def read_inside(folder: Path, name: str, limit: int) -> bytes:
    """Read a file named in a file (an image in a sheet) that must lie within ``folder``."""
    base = folder.resolve()
    try:
        target = (base / name).resolve()
    except (OSError, RuntimeError, ValueError) as error:
        raise FileProblem(Phrase("mistake.file.not_found", problem=str(error))) from None
    # Resolved first, so neither '../' nor a symbolic link leads out of the folder.
    if not target.is_relative_to(base):
        raise FileProblem(Phrase("mistake.file.outside"))
    return read_limited(target, limit)


def decode_text(data: bytes) -> str:
    """UTF-8 text (with or without a byte-order mark); a FileProblem naming the line otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise FileProblem(Phrase("mistake.file.not_utf8"), row=line) from None


def csv_rows(text: str, max_rows: int, delimiter: str = ",") -> list[list[str]]:
    """The records of a CSV text: a header and at most ``max_rows`` rows, each cell in limits."""
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        number = len(rows) + 1
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as error:
            # The csv module's own limit (128 KiB) is far above ours: say ours.
            if "field limit" in str(error):
                reason = Phrase("mistake.file.cell_too_long", limit=MAX_CELL_CHARS)
                raise FileProblem(reason, number) from None
            reason = Phrase("mistake.file.not_csv", problem=str(error))
            raise FileProblem(reason, number) from None
        if number > max_rows + 1:
            raise FileProblem(Phrase("mistake.file.too_many_rows", limit=max_rows), number)
        check_cells(row, number)
        rows.append(row)


def check_cells(row: list[str], number: int) -> None:
    """Refuse a row with a cell longer than any text the bot could use."""
    for index, value in enumerate(row):
        if len(value) > MAX_CELL_CHARS:
            raise FileProblem(
                Phrase("mistake.file.cell_length", length=len(value), limit=MAX_CELL_CHARS),
                number,
                column_letter(index),
            )


def xlsx_rows(path: Path, max_rows: int, cell_text: Callable[[object], str]) -> Iterator[list[str]]:
    """The rows of an XLSX workbook's first sheet as text: a header and at most ``max_rows``.

    A broken workbook fails inside openpyxl in many ways (a bad zip, missing parts, broken XML,
    dates out of range); each becomes one FileProblem naming the row reached.
    """
    return xlsx_data_rows(read_limited(path, MAX_SHEET_BYTES), max_rows, cell_text)


def xlsx_data_rows(
    data: bytes, max_rows: int, cell_text: Callable[[object], str]
) -> Iterator[list[str]]:
    """``xlsx_rows`` of a workbook already read (an upload), at most MAX_SHEET_BYTES of it."""
    from openpyxl import load_workbook

    if len(data) > MAX_SHEET_BYTES:
        raise FileProblem(Phrase("mistake.file.too_large", limit=size_text(MAX_SHEET_BYTES)))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        # No zip archive at all (a workbook is one): the archive's own words say nothing more.
        raise FileProblem(Phrase("mistake.file.not_a_workbook")) from None
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise FileProblem(
            Phrase("mistake.file.unpacks_too_large", limit=size_text(MAX_XLSX_UNPACKED_BYTES))
        )
    number = 0
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            # The header, the rows, and one more to know that there is one: no further.
            for values in sheet.iter_rows(
                max_row=max_rows + 2, max_col=MAX_SHEET_COLUMNS, values_only=True
            ):
                number += 1
                if number > max_rows + 1:
                    raise FileProblem(Phrase("mistake.file.too_many_rows", limit=max_rows), number)
                row = [cell_text(value) for value in values]
                check_cells(row, number)
                yield row
        finally:
            workbook.close()
    except FileProblem:
        raise
    except Exception as error:  # openpyxl has no one error for a broken file
        problem = f"{type(error).__name__}: {error}"
        reason = Phrase("mistake.file.broken_xlsx", problem=problem)
        raise FileProblem(reason, number + 1 if number else None) from None


def safe_cell(value: object) -> object:
    """A value as an export writes it: numbers stay numbers, text is inert and writable.

    Text that a spreadsheet would run (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a leading
    apostrophe; so does text that already starts with apostrophes before such a character, so
    ``restore_cell`` gives back exactly what was written. Characters XLSX cannot hold go.
    """
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = _UNWRITABLE.sub("", str(value))
    if text.lstrip(QUOTE).startswith(FORMULA_STARTS):
        return QUOTE + text
    return text


def restore_cell(text: str) -> str:
    """Undo ``safe_cell`` on a cell read back (a Pol.is folder this bot or a careful tool wrote)."""
    if text.startswith(QUOTE) and text.lstrip(QUOTE).startswith(FORMULA_STARTS):
        return text[1:]
    return text
