"""Read a content-plan sheet (its rows as text) into post drafts; each mistake with row, column."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.events import MAX_BUTTON_LABEL, Phrase
from handlers.plan import rules
from handlers.plan.planning import FieldError, PostDraft, plan_post
from handlers.plan.rules import PlanError
from storage.models import PlannedPost
from storage.uow import UnitOfWork

# Each column by its English and Danish header; headers are matched without case or spaces.
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "nr"),
    "consultation": ("consultation", "høring", "hoering"),
    "when": ("when", "tidspunkt", "hvornår"),
    "repeat": ("repeat", "gentag"),
    "audience": ("audience", "målgruppe", "modtagere"),
    "text_da": ("text_da", "tekst_da"),
    "text_en": ("text_en", "tekst_en"),
    "image": ("image", "billede"),
    "button_da": ("button_da", "knap_da"),
    "button_en": ("button_en", "knap_en"),
    "button_link": ("button_link", "knap_link"),
    "whatsapp_template": ("whatsapp_template", "whatsapp_skabelon", "whatsapp"),
}
REQUIRED = ("when", "audience", "text_da")
# How a mistake names a post's text by its column's language.
THE_TEXT = {"da": Phrase("mistake.plan.the_da_text"), "en": Phrase("mistake.plan.the_en_text")}
MAX_KEY = 60


@dataclass(frozen=True)
class SheetError:
    """One mistake: the sheet row (1 is the header) and column, and what is wrong."""

    row: int
    column: str
    message: Phrase

    def read(self, t: Callable[..., str]) -> str:
        """The mistake in ``t``'s language: "row 3, column C (when): the consultation has …"."""
        row = t("mistake.where.row", row=self.row)
        column = t("mistake.where.column", column=self.column)
        return f"{row}, {column}: {self.message.read(t)}"


def column_letter(index: int) -> str:
    """A spreadsheet's name for a 0-based column: A, B, … Z, AA."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def header_columns(header: list[str]) -> dict[str, int]:
    """Where each known column is in the header row (the first, when a name repeats)."""
    where: dict[str, int] = {}
    for index, name in _known_columns(header):
        where.setdefault(name, index)
    return where


def _known_columns(header: list[str]) -> list[tuple[int, str]]:
    """(index, the plan's name) of each header cell the plan knows, in the sheet's order."""
    aliases = {alias: name for name, names in COLUMNS.items() for alias in names}
    found = []
    for index, cell in enumerate(header):
        name = aliases.get(cell.strip().lower().replace(" ", "_").replace("-", "_"))
        if name is not None:
            found.append((index, name))
    return found


def column_label(where: dict[str, int], name: str, header: list[str]) -> str:
    """How a mistake names a column: its letter and its heading as the sheet writes it,
    "C (tidspunkt)"; the plan's own name for a column the sheet lacks."""
    index = where.get(name)
    if index is None:
        return f"- ({name})"
    return f"{column_letter(index)} ({header[index].strip() or name})"


def _columns_twice(header: list[str]) -> list[SheetError]:
    """A column named twice (under one name or two of its names): which one counts would be a
    guess, and the other's cells would be left out without a word."""
    first: dict[str, int] = {}
    errors = []
    for index, name in _known_columns(header):
        if name in first:
            errors.append(
                SheetError(
                    1,
                    f"{column_letter(index)} ({header[index].strip()})",
                    Phrase(
                        "mistake.sheet.column_twice",
                        first=f"{column_letter(first[name])} ({header[first[name]].strip()})",
                    ),
                )
            )
        else:
            first[name] = index
    return errors


def read_sheet(
    rows: list[list[str]], load_image: Callable[[str], bytes]
) -> tuple[list[tuple[int, PostDraft]], list[SheetError]]:
    """Read the header and each row; return the drafts with their row numbers, and the mistakes.

    Columns the plan does not know (notes, owner, status) are left alone, so a team can keep its
    own columns in the same sheet.
    """
    if not rows:
        return [], [SheetError(1, "A", Phrase("mistake.sheet.empty"))]
    header = rows[0]
    where = header_columns(header)
    missing = [name for name in REQUIRED if name not in where]
    if missing:
        headers = ", ".join(header)
        return [], [
            SheetError(1, "-", Phrase("mistake.sheet.no_column", name=name, headers=headers))
            for name in missing
        ]
    if twice := _columns_twice(header):
        return [], twice
    drafts: list[tuple[int, PostDraft]] = []
    errors: list[SheetError] = []
    keys: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue

        def cell(name: str, row: list[str] = row) -> str:
            index = where.get(name)
            return row[index].strip() if index is not None and index < len(row) else ""

        def fail(name: str, message: Phrase, number: int = number) -> None:
            errors.append(SheetError(number, column_label(where, name, header), message))

        draft = read_post(cell, fail, load_image)
        if draft is None:
            continue
        key = cell("id")
        if key:
            if len(key) > MAX_KEY or key.startswith("auto:"):
                fail("id", Phrase("mistake.sheet.id_shape", limit=MAX_KEY))
                continue
            if key in keys:
                fail("id", Phrase("mistake.sheet.id_repeated", id=repr(key), row=keys[key]))
                continue
            keys[key] = number
            draft.key = f"sheet:{key}"
        drafts.append((number, draft))
    return drafts, errors


def read_post(
    cell: Callable[[str], str],
    fail: Callable[[str, Phrase], None],
    load_image: Callable[[str], bytes],
) -> PostDraft | None:
    """Read one post from its cells by column name (a sheet's row, the dashboard's form); each
    mistake goes to ``fail(column, message)``, and then there is no draft."""
    before = _Counter(fail)
    image = None
    if cell("image"):
        try:
            image = rules.check_image(load_image(cell("image")), cell("image"))
        except (PlanError, OSError) as error:
            before.fail("image", _reason(error, cell("image")))
    texts: dict[str, str] = {}
    for language in ("da", "en"):
        raw = cell(f"text_{language}")
        if not raw and language == "en":
            continue
        try:
            texts[language] = rules.check_text(
                raw, with_image=image is not None, what=THE_TEXT[language]
            )
        except PlanError as error:
            before.fail(f"text_{language}", error.phrase)
    audience: dict[str, object] = {}
    try:
        audience = rules.parse_audience(cell("audience"))
    except PlanError as error:
        before.fail("audience", error.phrase)
    repeat = None
    try:
        repeat = rules.parse_repeat(cell("repeat"))
    except PlanError as error:
        before.fail("repeat", error.phrase)
    if not cell("when"):
        before.fail("when", Phrase("mistake.plan.when_missing"))
    button = None
    if cell("button_link") or cell("button_da"):
        try:
            button = _button(cell)
        except PlanError as error:
            before.fail("button_link" if cell("button_da") else "button_da", error.phrase)
    template = cell("whatsapp_template") or None
    if template is not None:
        try:
            template = rules.check_template_name(template)
        except PlanError as error:
            before.fail("whatsapp_template", error.phrase)
    if before.count:
        return None
    return PostDraft(
        texts=texts,
        audience=dict(audience),
        when=cell("when"),
        consultation=cell("consultation") or None,
        repeat=repeat,
        image=image,
        button=button,
        whatsapp_template=template,
    )


# Rows checked between two turns of the event loop for everything else.
ROWS_BETWEEN_TURNS = 100


@dataclass(frozen=True)
class ImportedRow:
    """A sheet row that became a post: new, or an update of the post with the row's id."""

    row: int
    post: PlannedPost
    created: bool


async def store_sheet(
    uow: UnitOfWork,
    rows: list[list[str]],
    load_image: Callable[[str], bytes],
    now: datetime,
    zone: ZoneInfo,
    *,
    channel_configured: bool,
) -> tuple[list[ImportedRow], list[SheetError]]:
    """Read a sheet and check each row against the database, storing the posts in ``uow``.

    Return the stored rows and every mistake (by row, then as found). The caller commits only
    when there is no mistake: a sheet goes in whole or not at all.
    """
    drafts, errors = read_sheet(rows, load_image)
    problems = list(errors)
    stored: list[ImportedRow] = []
    header = rows[0] if rows else []
    where = header_columns(header)
    # The sheet's posts stored before are read in a few statements, and its new ones stored
    # together at the end, not a statement and a flush per row: 2,000 rows held every chat up
    # for over a second.
    known = await uow.plan.by_keys(draft.key for _, draft in drafts if draft.key)
    for position, (number, draft) in enumerate(drafts, start=1):
        if position % ROWS_BETWEEN_TURNS == 0:
            await asyncio.sleep(0)  # the chats' turn (the web chat, sending, health checks)
        try:
            post, created = await plan_post(
                uow,
                draft,
                now,
                zone,
                "sheet",
                channel_configured=channel_configured,
                by_key=known,
            )
        except FieldError as error:
            problems.append(
                SheetError(number, column_label(where, error.field, header), error.phrase)
            )
            continue
        stored.append(ImportedRow(number, post, created))
    await uow.plan.store_added()
    return stored, sorted(problems, key=lambda problem: problem.row)


def _button(cell: Callable[[str], str]) -> dict[str, object]:
    if not cell("button_da"):
        raise PlanError(Phrase("mistake.plan.button_label_missing"))
    if not cell("button_link"):
        raise PlanError(Phrase("mistake.plan.button_link_missing"))
    labels = {lang: cell(f"button_{lang}") for lang in ("da", "en") if cell(f"button_{lang}")}
    for label in labels.values():
        if len(label) > MAX_BUTTON_LABEL:
            raise PlanError(Phrase("mistake.plan.button_label_length", limit=MAX_BUTTON_LABEL))
    return {"label": labels, **rules.check_link(cell("button_link"))}


def _reason(error: PlanError | OSError, name: str) -> Phrase:
    if isinstance(error, PlanError):
        return error.phrase
    if isinstance(error, FileNotFoundError):
        return Phrase("mistake.plan.no_image", name=repr(name))
    problem = str(error.strerror or error)
    return Phrase("mistake.plan.image_unreadable", name=repr(name), problem=problem)


class _Counter:
    """Pass mistakes on and count them."""

    def __init__(self, fail: Callable[[str, Phrase], None]) -> None:
        self._fail = fail
        self.count = 0

    def fail(self, name: str, message: Phrase) -> None:
        self.count += 1
        self._fail(name, message)
