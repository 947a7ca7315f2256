"""A content-plan sheet as a file: its cells as text, and the images its rows name.

The command line reads the sheet from a path and the images from the sheet's folder; the
dashboard reads both from an upload. Either way the same limits and the same cells.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.consultations.files import (
    MAX_SHEET_IMAGE_BYTES,
    MAX_SHEET_ROWS,
    FileMissing,
    FileProblem,
    csv_rows,
    decode_text,
    size_text,
    xlsx_data_rows,
)
from handlers.events import Phrase, clean_text
from handlers.plan import rules
from handlers.plan.rules import PlanError

SHEET_SUFFIXES = (".csv", ".xlsx")


def sheet_rows(name: str, data: bytes) -> list[list[str]]:
    """The cells of a CSV (comma or semicolon) or XLSX sheet as text; FileProblem if unreadable."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in SHEET_SUFFIXES:
        raise FileProblem(Phrase("mistake.file.not_a_sheet"))
    if suffix == ".xlsx":
        rows = list(xlsx_data_rows(data, MAX_SHEET_ROWS, cell_text))
    else:
        text = decode_text(data)
        first = text.splitlines()[0] if text.strip() else ""
        # Danish spreadsheets save CSV with semicolons; others use commas.
        delimiter = ";" if first.count(";") > first.count(",") else ","
        rows = csv_rows(text, MAX_SHEET_ROWS, delimiter)
    # Cells become posts: they enter as a citizen's message does (no NUL, no terminal escapes).
    return [[clean_text(cell) for cell in row] for row in rows]


def cell_text(value: object) -> str:
    """A workbook cell as the text staff typed."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        # A date cell is a local time, as staff typed it.
        return value.strftime(rules.TIME_FORMAT)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def image_loader(read: Callable[[str], bytes]) -> Callable[[str], bytes]:
    """Load the images a sheet names with ``read`` (which raises FileProblem, FileMissing).

    An image used in many rows is read once; all of them together stay within a limit, so a
    sheet cannot fill the memory with thousands of photos.
    """
    loaded: dict[str, bytes] = {}

    def load(name: str) -> bytes:
        if name not in loaded:
            try:
                content = read(name)
            except FileMissing:
                raise PlanError(Phrase("mistake.plan.no_image", name=repr(name))) from None
            except FileProblem as problem:
                # An image's problem has no row or column of its own: the row is the sheet's.
                reason = Phrase(
                    "mistake.plan.image_problem", name=repr(name), problem=problem.reason
                )
                raise PlanError(reason) from None
            if sum(map(len, loaded.values())) + len(content) > MAX_SHEET_IMAGE_BYTES:
                limit = size_text(MAX_SHEET_IMAGE_BYTES)
                raise PlanError(Phrase("mistake.plan.images_too_large", limit=limit))
            loaded[name] = content
        return loaded[name]

    return load
