"""``borgerdialog plan`` (import, list, cancel the content plan) and ``broadcast status``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from bot.cli.common import (
    EXIT_BAD_INPUT,
    configure_logging,
    fail,
    local_time,
    mistake,
    settings_or_exit,
    terminal_text,
    utc_now,
    with_database,
)
from bot.config import Settings
from bot.consultations.files import (
    MAX_SHEET_BYTES,
    MAX_SHEET_IMAGE_BYTES,
    MAX_SHEET_ROWS,
    FileMissing,
    FileProblem,
    csv_rows,
    decode_text,
    read_inside,
    read_limited,
    size_text,
    xlsx_rows,
)
from handlers.events import MAX_IMAGE_BYTES, clean_text
from handlers.plan import rules
from handlers.plan.planning import FieldError, plan_post
from handlers.plan.rules import PlanError
from handlers.plan.sheet import SheetError, column_label, header_columns, read_sheet
from storage.models import OutboxStatus, PlannedPost, PostState
from storage.uow import UnitOfWork, UnitOfWorkFactory


def read_rows(path: Path) -> list[list[str]]:
    """The cells of a CSV (comma or semicolon) or XLSX sheet as text; exit 2 if unreadable."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        fail(f"{path}: the content plan is a .csv or .xlsx file", EXIT_BAD_INPUT)
    try:
        if suffix == ".xlsx":
            rows = list(xlsx_rows(path, MAX_SHEET_ROWS, _cell_text))
        else:
            text = decode_text(read_limited(path, MAX_SHEET_BYTES))
            first = text.splitlines()[0] if text.strip() else ""
            # Danish spreadsheets save CSV with semicolons; others use commas.
            delimiter = ";" if first.count(";") > first.count(",") else ","
            rows = csv_rows(text, MAX_SHEET_ROWS, delimiter)
    except FileProblem as problem:
        fail(f"{path}: {problem}", EXIT_BAD_INPUT)
    # Cells become posts: they enter as a citizen's message does (no NUL, no terminal escapes).
    return [[clean_text(cell) for cell in row] for row in rows]


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        # A date cell is a local time, as staff typed it.
        return value.strftime(rules.TIME_FORMAT)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def image_loader(folder: Path) -> Callable[[str], bytes]:
    """Read the images a sheet names: files next to it, each within Telegram's photo limit.

    An image used in many rows is read once; all of them together stay within a limit, so a
    sheet cannot fill the memory with thousands of photos.
    """
    loaded: dict[str, bytes] = {}

    def load(name: str) -> bytes:
        if name not in loaded:
            try:
                content = read_inside(folder, name, MAX_IMAGE_BYTES)
            except FileMissing:
                raise PlanError(f"no image file {name!r} next to the sheet") from None
            except FileProblem as problem:
                raise PlanError(f"the image {name!r} {problem}") from None
            if sum(map(len, loaded.values())) + len(content) > MAX_SHEET_IMAGE_BYTES:
                limit = size_text(MAX_SHEET_IMAGE_BYTES)
                raise PlanError(f"the sheet's images together are larger than {limit}")
            loaded[name] = content
        return loaded[name]

    return load


def _first_text(post: PlannedPost) -> str:
    # A post's line breaks read as spaces on one line.
    return next(iter(post.texts.values()), "").replace("\n", " ") if post.texts else ""


def describe(post: PlannedPost, settings: Settings, counts: dict[str, int] | None = None) -> str:
    """One line per post for the command line."""
    when = local_time(post.due_at, settings)
    anchor = f" ({rules.describe_anchor(post.anchor)})" if post.anchor else ""
    repeat = (
        f" [{post.occurrence}/{post.repeat['times']} every {post.repeat['every_days']} d]"
        if post.repeat
        else ""
    )
    # A post's other control characters are dropped.
    text = terminal_text(_first_text(post)) if post.texts else f"({post.kind}, written when sent)"
    audience = terminal_text(rules.describe_audience(post.audience))
    line = (
        f"#{post.id:<4} {post.state:<9} {when}{anchor}{repeat}  "
        f"to {audience}  {post.kind}: {text[:50]}"
    )
    if counts is not None and post.recipients:
        line += "\n      " + delivery_line(post, counts)
    if post.error:
        line += f"\n      note: {terminal_text(post.error)}"
    return line


def delivery_line(post: PlannedPost, counts: dict[str, int]) -> str:
    """How a post's broadcast stands."""
    done = post.recipients - counts.get(OutboxStatus.PENDING, 0)
    late = f", {post.late_seconds // 60} min late" if post.late_seconds else ""
    return (
        f"{done}/{post.recipients} done: {counts.get(OutboxStatus.SENT, 0)} delivered, "
        f"{counts.get(OutboxStatus.UNREACHABLE, 0)} unreachable, "
        f"{counts.get(OutboxStatus.FAILED, 0)} failed, "
        f"{counts.get(OutboxStatus.PENDING, 0)} waiting{late}"
    )


@click.group()
def plan() -> None:
    """The content plan: what is posted, to whom, when."""


@plan.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the sheet and show the posts; store nothing.")
def plan_import(path: Path, dry_run: bool) -> None:
    """Add (or update) posts from a content-plan sheet, CSV or XLSX.

    Every mistake is reported with its row and column, and nothing is imported while there is
    one. Rows with an id update the post of that id as long as it has not gone out.
    """
    settings = settings_or_exit()
    configure_logging(settings)
    rows = read_rows(path)
    drafts, errors = read_sheet(rows, image_loader(path.parent))

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        now = utc_now()
        problems: list[SheetError] = list(errors)
        stored: list[tuple[int, PlannedPost, bool]] = []
        where = header_columns(rows[0] if rows else [])
        async with uow_factory() as uow:
            for number, draft in drafts:
                try:
                    post, created = await plan_post(
                        uow,
                        draft,
                        now,
                        settings.zone,
                        "sheet",
                        channel_configured=settings.public_channel_id is not None,
                    )
                    stored.append((number, post, created))
                except FieldError as error:
                    problems.append(
                        SheetError(number, column_label(where, error.field), str(error))
                    )
            if problems:
                for problem in sorted(problems, key=lambda p: p.row):
                    mistake(f"{path.name}: {problem}")
                fail(f"{len(problems)} mistake(s); nothing was imported", EXIT_BAD_INPUT)
            if not dry_run:
                await uow.commit()
            for number, post, created in stored:
                # Which sheet row became which post: the number 'plan cancel' and staff use.
                verb = "would add" if dry_run and created else "added" if created else "updated"
                target = "a new post" if dry_run and created else f"post #{post.id}"
                click.echo(
                    f"row {number} → {target} (planned {local_time(post.due_at, settings)}), "
                    f"{verb}: {terminal_text(_first_text(post))[:50]}"
                )
        verb = "Would import" if dry_run else "Imported"
        click.echo(f"{verb} {len(stored)} post(s) from {path.name} (times in {settings.timezone}).")

    with_database(settings, work)


@plan.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also posts that went out or were cancelled.")
def plan_list(show_all: bool) -> None:
    """List the plan by time: planned and sending posts (all with --all)."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            states = None if show_all else PostState.OPEN
            posts = await uow.plan.listing(states=states, limit=10_000)
            if not posts:
                click.echo("The content plan is empty." if show_all else "Nothing is planned.")
                return
            for post in posts:
                counts = await uow.plan.delivery_counts(post.id) if post.recipients else None
                click.echo(describe(post, settings, counts))
        click.echo(f"Times in {settings.timezone}.")

    with_database(settings, work)


@plan.command("cancel")
@click.argument("post_id", type=int)
def plan_cancel(post_id: int) -> None:
    """Cancel a post that has not gone out."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            post = await uow.plan.get(post_id)
            if post is None:
                fail(f"there is no post {post_id} (see 'borgerdialog plan list')", EXIT_BAD_INPUT)
            if not await uow.plan.cancel(post_id, utc_now()):
                fail(
                    f"post {post_id} is {post.state}; only planned posts can be cancelled",
                    EXIT_BAD_INPUT,
                )
            await uow.commit()
        click.echo(f"Cancelled post {post_id}.")

    with_database(settings, work)


@click.group()
def broadcast() -> None:
    """Broadcasts: posts going out to many recipients."""


@broadcast.command("status")
@click.argument("post_id", type=int, required=False)
def broadcast_status(post_id: int | None) -> None:
    """Show how the posts going out (or one post) are doing."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            await _status(uow, settings, post_id)

    with_database(settings, work)


async def _status(uow: UnitOfWork, settings: Settings, post_id: int | None) -> None:
    if post_id is not None:
        post = await uow.plan.get(post_id)
        if post is None:
            fail(f"there is no post {post_id} (see 'borgerdialog plan list --all')", EXIT_BAD_INPUT)
        posts = [post]
    else:
        posts = await uow.plan.sending()
        finished = await uow.plan.listing(
            states=[PostState.SENT, PostState.FAILED, PostState.SKIPPED], limit=10_000
        )
        posts += sorted(finished, key=lambda p: p.finished_at or p.due_at)[-5:]
    if not posts:
        click.echo("No broadcasts yet.")
        return
    for post in posts:
        counts = await uow.plan.delivery_counts(post.id)
        click.echo(describe(post, settings, counts if post.recipients else None))
