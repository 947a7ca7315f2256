"""``borgerdialog plan`` (import, list, cancel the content plan) and ``broadcast status``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from bot.cli.common import (
    EXIT_BAD_INPUT,
    audit_here,
    configure_logging,
    fail,
    local_time,
    mistake,
    mistakes,
    settings_or_exit,
    terminal_text,
    utc_now,
    with_database,
)
from bot.config import Settings
from bot.consultations.files import MAX_SHEET_BYTES, FileProblem, read_inside, read_limited
from bot.consultations.plan_sheet import SHEET_SUFFIXES, sheet_rows
from bot.consultations.plan_sheet import image_loader as shared_image_loader
from bot.dialogue.i18n import english_texts
from handlers.events import MAX_IMAGE_BYTES, record_id
from handlers.plan import rules
from handlers.plan.sheet import store_sheet
from storage.models import PlannedPost, PostState
from storage.uow import UnitOfWork, UnitOfWorkFactory


def read_rows(path: Path) -> list[list[str]]:
    """The cells of a CSV (comma or semicolon) or XLSX sheet as text; exit 2 if unreadable."""
    if path.suffix.lower() not in SHEET_SUFFIXES:
        fail(f"{path}: the content plan is a .csv or .xlsx file", EXIT_BAD_INPUT)
    try:
        return sheet_rows(path.name, read_limited(path, MAX_SHEET_BYTES))
    except FileProblem as problem:
        fail(f"{path}: {problem}", EXIT_BAD_INPUT)


def image_loader(folder: Path) -> Callable[[str], bytes]:
    """Read the images a sheet names: files next to it, each within Telegram's photo limit."""
    return shared_image_loader(lambda name: read_inside(folder, name, MAX_IMAGE_BYTES))


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
    delivery = rules.Delivery.of(post.recipients, counts)
    late = f", {post.late_seconds // 60} min late" if post.late_seconds else ""
    return (
        f"{delivery.done}/{delivery.total} done: {delivery.sent} delivered, "
        f"{delivery.unreachable} unreachable, {delivery.failed} failed, "
        f"{delivery.pending} waiting{late}"
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

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            stored, problems = await store_sheet(
                uow,
                rows,
                image_loader(path.parent),
                utc_now(),
                settings.zone,
                channel_configured=settings.public_channel_id is not None,
            )
            if problems:
                english = english_texts()
                for problem in problems:
                    mistake(f"{path.name}: {problem.read(english)}")
                fail(f"{mistakes(len(problems))}; nothing was imported", EXIT_BAD_INPUT)
            if not dry_run:
                await audit_here(
                    uow,
                    "plan_sheet_imported",
                    reason=f"{sum(i.created for i in stored)} added",
                    after=f"{len(stored)} rows",
                )
                await uow.commit()
            for imported in stored:
                # Which sheet row became which post: the number 'plan cancel' and staff use.
                post, created = imported.post, imported.created
                verb = "would add" if dry_run and created else "added" if created else "updated"
                target = "a new post" if dry_run and created else f"post #{post.id}"
                click.echo(
                    f"row {imported.row} → {target} "
                    f"(planned {local_time(post.due_at, settings)}), "
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
            # A number no id column can hold is no post (the database would refuse the query).
            post = await uow.plan.get(post_id) if record_id(str(post_id)) is not None else None
            if post is None:
                fail(f"there is no post {post_id} (see 'borgerdialog plan list')", EXIT_BAD_INPUT)
            if not await uow.plan.cancel(post_id, utc_now()):
                fail(
                    f"post {post_id} is {post.state}; only planned posts can be cancelled",
                    EXIT_BAD_INPUT,
                )
            consultation = (
                await uow.consultations.get(post.consultation_id)
                if post.consultation_id is not None
                else None
            )
            await audit_here(
                uow,
                "plan_post_cancelled",
                consultation=consultation.slug if consultation is not None else "",
                item_id=post_id,
                before=PostState.PLANNED,
                after=PostState.CANCELLED,
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
        # As in plan cancel: a number no id column can hold is no post.
        post = await uow.plan.get(post_id) if record_id(str(post_id)) is not None else None
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
