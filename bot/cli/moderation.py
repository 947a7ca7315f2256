"""``borgerdialog screen`` and ``borgerdialog moderation``: screening rules and the audit trail."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path
from typing import TextIO

import click

from bot.cli.common import EXIT_BAD_INPUT, fail, local_time, settings_or_exit, with_database
from bot.consultations.files import safe_cell
from bot.i18n import Catalogs, make_language_identifier
from handlers.moderation.cards import describe
from handlers.screening.rules import Screener, WordLists, screen_in_order
from storage.uow import UnitOfWorkFactory

LOG_COLUMNS = (
    "at",
    "item",
    "consultation",
    "event",
    "actor",
    "author",
    "before",
    "after",
    "reason",
    "flags",
)


def _open_input(file: Path | None) -> TextIO:
    if file is None or file == Path("-"):
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    try:
        return file.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror}", EXIT_BAD_INPUT)


def _lines(source: TextIO) -> Iterator[tuple[str, str | None]]:
    """Texts from JSON lines ({"text": …, "author": …}) or plain lines, mixed as they come."""
    for number, line in enumerate(source, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None  # a plain text that happens to start with a brace
            if isinstance(record, dict):
                if not isinstance(record.get("text"), str):
                    fail(f'line {number}: a JSON line needs a "text" string', EXIT_BAD_INPUT)
                author = record.get("author")
                yield record["text"], str(author) if author is not None else None
                continue
        yield line, None


def _csv_rows(source: TextIO, column: str) -> Iterator[tuple[str, str | None]]:
    """Texts from one column of a CSV file (comma or semicolon separated, as Excel writes)."""
    # Read whole: standard input cannot be rewound after sniffing, and such files are small.
    data = source.read()
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            data[:4096], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(data), dialect=dialect)
    if reader.fieldnames is None or column not in reader.fieldnames:
        found = ", ".join(reader.fieldnames or []) or "none"
        fail(f"the CSV has no column {column!r} (columns: {found})", EXIT_BAD_INPUT)
    for row in reader:
        text = (row.get(column) or "").strip()
        if text:
            yield text, None


@click.command()
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--column", help="Screen this column of a CSV file (otherwise one text per line).")
@click.option(
    "--languages",
    default="da,en",
    show_default=True,
    help="The languages the texts should be in; others are flagged off_language.",
)
@click.option(
    "--language",
    "reason_language",
    type=click.Choice(["da", "en"]),
    help="The language of the reasons (default: BORGERDIALOG_DEFAULT_LANGUAGE).",
)
def screen(
    file: Path | None, column: str | None, languages: str, reason_language: str | None
) -> None:
    """Screen texts with the bot's rules: one JSON line out per text in.

    Reads FILE (or standard input): JSON lines {"text": ...} or plain text, one per line, or with
    --column a CSV file such as comments copied from the municipality's Facebook page. A text that
    appeared earlier in the input is flagged as repeated.
    """
    settings = settings_or_exit()
    wanted = [part.strip() for part in languages.split(",") if part.strip()]
    if not wanted:
        fail("--languages: name at least one language, such as da,en", EXIT_BAD_INPUT)
    texts = Catalogs(settings.default_language).texts(reason_language or settings.default_language)
    screener = Screener(WordLists.load(settings.screening_dir), make_language_identifier())
    with _open_input(file) as source:
        items = _csv_rows(source, column) if column else _lines(source)
        for result in screen_in_order(screener, items, languages=wanted):
            record = {
                "text": result.text,
                "language": result.language,
                "flags": [
                    {
                        "kind": flag.kind,
                        "reason": describe(texts, flag),
                        "start": flag.start,
                        "end": flag.end,
                    }
                    for flag in result.flags
                ],
                "action": result.action,
            }
            click.echo(json.dumps(record, ensure_ascii=False))


@click.group()
def moderation() -> None:
    """The moderation audit trail."""


@moderation.command("log")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%d %H:%M"]),
    help="Only entries from this local date or time on.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
)
def moderation_log(since: datetime | None, file_format: str) -> None:
    """Export every screening result and moderation decision: who, what, when, why.

    Authors and moderators appear by pseudonym; no contribution text is included.
    """
    settings = settings_or_exit()
    cutoff = None
    if since is not None:
        if since.time() == time(0, 0):
            since = datetime.combine(since.date(), time(0, 0))
        cutoff = since.replace(tzinfo=settings.zone)

    async def work(uow: UnitOfWorkFactory) -> None:
        async with uow() as unit:
            entries = await unit.moderation.log_entries(cutoff)
        writer = csv.writer(sys.stdout) if file_format == "csv" else None
        if writer is not None:
            writer.writerow(LOG_COLUMNS)
        for entry in entries:
            row = {
                "at": local_time(entry.at, settings),
                "item": entry.item_id,
                "consultation": entry.consultation,
                "event": entry.event,
                "actor": entry.actor,
                "author": entry.author,
                "before": entry.before or "",
                "after": entry.after or "",
                "reason": entry.reason or "",
                "flags": " ".join(entry.flags),
            }
            if writer is not None:
                # A spreadsheet file like the exports: reasons are free text and stay inert.
                writer.writerow(safe_cell(row[column]) for column in LOG_COLUMNS)
            else:
                click.echo(json.dumps(row, ensure_ascii=False))

    with_database(settings, work)
