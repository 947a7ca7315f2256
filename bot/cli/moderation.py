"""``borgerdialog screen`` and ``borgerdialog moderation``: screening rules and the audit trail."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, time
from pathlib import Path
from typing import NoReturn

import click

from bot.cli.common import (
    CLI_ACTOR,
    EXIT_BAD_INPUT,
    configure_logging,
    decided_before,
    fail,
    local_time,
    settings_or_exit,
    terminal_text,
    utc_now,
    with_database,
)
from bot.cli.ideas import citizen_texts, queue_messages, told_author
from bot.config import Settings
from bot.consultations.files import FileProblem, decode_text, read_limited, safe_cell
from bot.dialogue.i18n import Catalogs, english_texts, make_language_identifier
from bot.dialogue.i18n.languages import explain as explain_language
from handlers.events import UnreadableText, clean_text, record_id
from handlers.moderation.cards import REASONS, describe, load_view, masked_text
from handlers.moderation.trail import TRAIL_COLUMNS, trail_row
from handlers.screening.offensive_model import REASONS_SHOWN, OffensiveModel
from handlers.screening.rules import Screener, WordLists, screen_in_order
from storage.uow import UnitOfWorkFactory

# The queue lists everything that waits; a moderator chat's /queue shows ten at a time.
QUEUE_ALL = 10_000


# A file of comments to screen is read whole; this is some hundred thousand comments.
MAX_SCREEN_BYTES = 64 * 1024 * 1024


def _input_lines(file: Path | None) -> Iterable[str]:
    """The lines to screen, as text: refused with one line where they are not UTF-8.

    A file is read as every file the command line reads (within a limit, no devices); standard
    input line by line, so texts are screened as they come.
    """
    if file is None or file == Path("-"):
        return _stdin_lines()
    try:
        text = decode_text(read_limited(file, MAX_SCREEN_BYTES))
    except FileProblem as problem:
        _refuse_file(str(file), problem)
    # newline="": lines end at CR LF, LF or CR alike, and a CSV field keeps its line breaks.
    return io.StringIO(text, newline="")


def _stdin_lines() -> Iterator[str]:
    # Bytes, decoded here: the text layer would replace what is not UTF-8 without a word.
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            yield decode_text(raw)
        except FileProblem as problem:
            _refuse_file("standard input", FileProblem(problem.reason, number))


def _refuse_file(name: str, problem: FileProblem) -> NoReturn:
    """One line: the input, the line (as the other mistakes of screen say it) and the reason."""
    where = f"line {problem.row}: " if problem.row is not None else ""
    fail(f"{name}: {where}{problem.reason.read(english_texts())}", EXIT_BAD_INPUT)


def _lines(source: Iterable[str]) -> Iterator[tuple[str, str | None]]:
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
                try:
                    # JSON can spell half a UTF-16 pair ("\ud800"), which no UTF-8 file holds:
                    # unreadable text, refused as the bytes that are not UTF-8 are.
                    clean_text(record["text"])
                except UnreadableText:
                    fail(
                        f"line {number}: the text holds a broken character (a lone surrogate)",
                        EXIT_BAD_INPUT,
                    )
                author = record.get("author")
                yield record["text"], str(author) if author is not None else None
                continue
        yield line, None


def _csv_rows(source: Iterable[str], column: str) -> Iterator[tuple[str, str | None]]:
    """Texts from one column of a CSV file (comma or semicolon separated, as Excel writes)."""
    # Read whole: standard input cannot be rewound after sniffing, and such files are small.
    data = "".join(source)
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
@click.option(
    "--explain",
    is_flag=True,
    help="Add the scores behind the flags and the language: the offensive-language model's "
    "probability, band and what weighed most, and each candidate language's share.",
)
def screen(
    file: Path | None,
    column: str | None,
    languages: str,
    reason_language: str | None,
    explain: bool,
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
    lists = WordLists.load(settings.screening_dir)
    model = OffensiveModel.load()
    screener = Screener(
        lists, make_language_identifier(settings.language_priors), offensive_model=model
    )
    source = _input_lines(file)
    items = _csv_rows(source, column) if column else _lines(source)
    for result in screen_in_order(screener, items, languages=wanted):
        record: dict[str, object] = {
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
        if explain:
            record["explain"] = _explanation(result.text, lists, model, settings)
        click.echo(json.dumps(record, ensure_ascii=False))


def _explanation(
    text: str, lists: WordLists, model: OffensiveModel, settings: Settings
) -> dict[str, object]:
    """The scores behind one text's offensive-language flags and its language."""
    offensive = model.score(text, lists, reasons=REASONS_SHOWN)
    language = explain_language(text, settings.language_priors)
    return {
        "offensive": {
            "probability": round(offensive.probability, 3),
            "probability_without_swearing": round(offensive.probability_unsworn, 3),
            "band": offensive.band,
            "borderline_from": model.borderline_from,
            "clear_from": model.clear_from,
            "weighed_most": [[what, weight] for what, weight in offensive.reasons],
        },
        "language": {
            "language": language.language,
            "decided_by": language.reason,
            "scores": [
                [code, round(share, 3)] for code, share in language.scores if share >= 0.001
            ],
        },
    }


@click.group()
def moderation() -> None:
    """Moderation without Telegram: the queue, decisions on it, and the audit trail."""


@moderation.command("queue")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["text", "jsonl"]),
    default="text",
    show_default=True,
)
def moderation_queue(file_format: str) -> None:
    """List what waits for a decision, oldest first, with personal data masked as on the cards."""
    from handlers.moderation.desk import waited

    settings = settings_or_exit()
    configure_logging(settings)
    # Operator output is English, like the rest of the command line.
    t = Catalogs(settings.default_language).texts("en")

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        now = utc_now()
        async with uow_factory() as uow:
            views = [await load_view(uow, item) for item in await uow.moderation.waiting(QUEUE_ALL)]
        if not views and file_format == "text":
            click.echo("Nothing waits for a decision.")
        for view in views:
            item = view.item
            masked = masked_text(view)
            kinds = [flag.kind for flag in view.flags]
            row = {
                "item": item.id,
                "consultation": view.consultation.slug,
                "kind": "statement" if item.statement_id is not None else "answer",
                "waiting_since": local_time(item.created_at, settings),
                "age": waited(t, now - item.created_at),
                "action": item.action,
                "flags": kinds,
                "reports": item.reports,
                # Never the text as written: the card's masking, on one terminal line.
                "text": terminal_text(masked) if masked is not None else None,
            }
            if file_format == "jsonl":
                click.echo(json.dumps(row, ensure_ascii=False))
                continue
            flags = ",".join(kinds) or (f"{item.reports} reports" if item.reports else "-")
            shown = f"«{row['text']}»" if masked is not None else "(withdrawn by its author)"
            click.echo(
                f"#{item.id} {row['age']} waiting · {row['consultation']} · {row['kind']} · "
                f"{item.action} · {flags}: {shown}"
            )

    with_database(settings, work)


def _decision_command(name: str, action: str, summary: str, about: str) -> click.Command:
    @click.command(name)
    @click.argument("item_number", metavar="ITEM", type=int)
    @click.option(
        "--reason",
        type=click.Choice(REASONS),
        help="With hide: the reason template the author is given (as the chat's reason buttons).",
    )
    def command(item_number: int, reason: str | None) -> None:
        from handlers.moderation.decision import TAKEN, WITHDRAWN, decide_elsewhere

        settings = settings_or_exit()
        configure_logging(settings)
        if reason is not None and action != "h":
            fail(
                "--reason goes with 'hide' only (the author of a hidden text is told why)",
                EXIT_BAD_INPUT,
            )
        chosen = "w" if reason is not None else action
        item_id = record_id(str(item_number))
        texts = citizen_texts(settings)

        async def work(uow_factory: UnitOfWorkFactory) -> None:
            async with uow_factory() as uow:
                item = await uow.moderation.get(item_id) if item_id is not None else None
                if item is None:
                    fail(
                        f"no moderation item {item_number} (see 'borgerdialog moderation queue')",
                        EXIT_BAD_INPUT,
                    )
                decided = await decide_elsewhere(
                    uow,
                    item,
                    chosen,
                    reason,
                    by=CLI_ACTOR,
                    actor=CLI_ACTOR,
                    now=utc_now(),
                    texts_in=texts,
                    zone=settings.zone,
                )
                if decided.outcome == TAKEN:
                    fail(decided_before(item, settings), EXIT_BAD_INPUT)
                messages = decided.messages
                await queue_messages(uow, messages)
                await uow.commit()
            if decided.outcome == WITHDRAWN:
                fail(
                    f"item {item_number}: its author withdrew or erased the text; "
                    "the item is closed, nothing else changed",
                    EXIT_BAD_INPUT,
                )
            because = f" ({reason})" if reason else ""
            click.echo(f"Item {item_number} {summary}{because}; {told_author(messages)}.")

        with_database(settings, work)

    command.help = (
        f"{about}\n\nThe same decision as the moderator chat's button: the first decision wins, "
        "the audit trail records it, the author is told in their chat and the card is redrawn."
    )
    return command


moderation.add_command(
    _decision_command(
        "approve", "a", "approved and shown", "Approve a waiting item: the text is used."
    )
)
moderation.add_command(
    _decision_command(
        "hide", "h", "hidden", "Hide a waiting item; its author is told why and can write anew."
    )
)
moderation.add_command(
    _decision_command(
        "rephrase",
        "p",
        "returned to its author to rephrase",
        "Ask the author of a waiting item to put it in other words.",
    )
)


# No entry is older than this; an earlier --since means the whole log.
EARLIEST_YEAR = 2000


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
    if since is not None and since.year < EARLIEST_YEAR:
        since = None  # before anything was logged: everything (year 1 in UTC would not exist)
    if since is not None:
        if since.time() == time(0, 0):
            since = datetime.combine(since.date(), time(0, 0))
        cutoff = since.replace(tzinfo=settings.zone)

    async def work(uow: UnitOfWorkFactory) -> None:
        async with uow() as unit:
            entries = await unit.moderation.log_entries(cutoff)
        writer = csv.writer(sys.stdout) if file_format == "csv" else None
        if writer is not None:
            writer.writerow(TRAIL_COLUMNS)
        for entry in entries:
            row = trail_row(entry, settings.zone)
            if writer is not None:
                # A spreadsheet file like the exports: reasons are free text and stay inert.
                writer.writerow(safe_cell(row[column]) for column in TRAIL_COLUMNS)
            else:
                click.echo(json.dumps(row, ensure_ascii=False))

    with_database(settings, work)
