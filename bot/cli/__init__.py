"""The ``borgerdialog`` command line."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bot import __version__
from bot.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    audit_here,
    configure_logging,
    consultation_or_fail,
    fail,
    hold_sqlite_file,
    local_time,
    logger,
    mistakes,
    run_async,
    settings_or_exit,
    terminal_text,
    utc_now,
    with_database,
    write_output,
)
from bot.config import Settings
from bot.links import QR_BORDER, channel_links, poster_scale, qr_code, reachable_only_here
from storage.uow import UnitOfWorkFactory

if TYPE_CHECKING:  # the commands import what they use when they run: a quick start
    from datetime import datetime

    from bot.consultations.importer import IdeasMove, RoundMove


class CommandLine(click.Group):
    """click's group with its usage mistakes as one line of ours, like every other mistake.

    click prints a usage error as three lines (usage, a hint, the error); ours are one line
    starting "borgerdialog: " with exit code 2, so scripts and people read one kind of answer.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        kwargs["prog_name"] = "borgerdialog"  # also as `python -m bot`: the name in the README
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as asked_nothing:
            # `borgerdialog consultation` alone asks what there is: the help, not a mistake.
            click.echo(asked_nothing.ctx.get_help() if asked_nothing.ctx else "")
            sys.exit(0)
        except click.UsageError as error:
            where = error.ctx.command_path if error.ctx else "borgerdialog"
            message = error.format_message().rstrip(".")
            fail(f"{message[:1].lower()}{message[1:]} (see '{where} --help')", EXIT_BAD_INPUT)
        except click.ClickException as error:
            fail(error.format_message(), error.exit_code)
        except click.Abort:
            # Ctrl-C (or Ctrl-D) where click reads input; click has ended the line already.
            fail("interrupted", EXIT_INTERRUPTED)
        # Without standalone mode click returns --help's and --version's exit code (0).
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=CommandLine, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="borgerdialog")
def main() -> None:
    """borgerdialog: citizen dialogue in the chat apps people already use.

    Settings come from BORGERDIALOG_* environment variables (see the README).
    """


@main.command()
def run() -> None:
    """Run every enabled channel and the web server until SIGINT or SIGTERM."""
    settings = settings_or_exit()
    lock = hold_sqlite_file(settings)
    configure_logging(settings)

    async def serve() -> None:
        from bot.app import BorgerDialog

        await BorgerDialog(settings).run(_stop_on_signals())

    try:
        run_async(serve(), settings)
    finally:
        if lock is not None:
            lock.close()


@main.command()
def demo() -> None:
    """Try borgerdialog: a Danish demo consultation in the web chat (and on Telegram if set)."""
    from bot.consultations.demo import demo_settings

    settings = demo_settings(settings_or_exit())
    lock = hold_sqlite_file(settings)
    configure_logging(settings)

    async def serve() -> None:
        from bot.app import BorgerDialog, prepare_collector_for_serving
        from bot.consultations.demo import DEMO_SLUG, ensure_demo

        stop = _stop_on_signals()
        app = BorgerDialog(settings)
        await app.start()
        try:
            assert app.uow is not None
            async with app.uow() as uow:
                await ensure_demo(uow, utc_now(), settings.zone)
                await uow.commit()
            url = f"{settings.public_base_url}/chat?c={DEMO_SLUG}"
            click.echo(f"\nThe demo consultation is open in the web chat:\n\n    {url}\n")
            if app.telegram is not None:
                click.echo(f"On Telegram: https://t.me/{app.telegram.username}?start={DEMO_SLUG}\n")
            else:
                click.echo(
                    "To try it on Telegram too, create a bot with @BotFather and start again with\n"
                    "    BORGERDIALOG_TELEGRAM_TOKEN=<the token> borgerdialog demo\n"
                )
            click.echo(
                f"Staff work in the dashboard at {settings.public_base_url}/admin once an account"
                " exists:\n    borgerdialog staff add YOU@EXAMPLE.DK --role admin\n"
                "(in another shell, in this folder: the account goes in the same database)\n"
            )
            click.echo("Stop with Ctrl-C.")
            prepare_collector_for_serving()
            await stop.wait()
        finally:
            await app.stop()

    try:
        run_async(serve(), settings)
    finally:
        if lock is not None:
            lock.close()


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; a second signal exits at once."""
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            # Safe: every update and reply is in the database, and resumes at the next start.
            logger.warning("second signal: exiting at once; unfinished work resumes at start")
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    return stop


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade to the newest revision)."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def apply() -> None:
        from storage.database import create_engine
        from storage.migrate import upgrade

        engine = create_engine(settings.database_url)
        try:
            before = await upgrade(engine)
        finally:
            await engine.dispose()
        if before.up_to_date:
            click.echo(f"The database schema is up to date (revision {before.head}).")
        else:
            click.echo(
                f"Migrated the database schema from {before.current or 'empty'} to {before.head}."
            )

    run_async(apply(), settings)


@main.group()
def consultation() -> None:
    """Define consultations from YAML files, list them, show them and link to them."""


@consultation.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Archive removed questions even if they have answers.")
@click.option("--check", is_flag=True, help="Say what an import would change; import nothing.")
def consultation_import(file: Path, force: bool, check: bool) -> None:
    """Validate a consultation file and import it; nothing is imported if anything is wrong."""
    from bot.consultations.definition import DefinitionError, read_definition
    from bot.consultations.importer import QuestionsWithAnswers, import_definition
    from bot.dialogue.i18n import english_texts

    settings = settings_or_exit()
    configure_logging(settings)
    try:
        definition = read_definition(file, settings.zone)
    except DefinitionError as error:
        for mistake in error.errors:
            click.echo(terminal_text(f"{file}: {mistake}"), err=True)
        fail(f"{mistakes(len(error.errors))}; nothing was imported", EXIT_BAD_INPUT)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            try:
                report = await import_definition(uow, definition, utc_now(), force=force)
            except QuestionsWithAnswers as refusal:
                fail(
                    f"removing questions that have answers needs --force: {refusal}; "
                    "nothing was imported",
                    EXIT_BAD_INPUT,
                )
            if not check:
                await audit_here(
                    uow,
                    "consultation_imported",
                    consultation=definition.slug,
                    after="created" if report.created else "updated",
                )
                await uow.commit()
            # A check leaves without committing: the unit's end rolls the import back.
        figures = f"{len(definition.questions)} questions, {len(definition.rounds)} round(s)"
        if check:
            verb = "create" if report.created else "update"
            click.echo(
                f"The file is correct; nothing was imported. Importing it would {verb} "
                f"consultation '{definition.slug}': {figures}."
            )
        else:
            verb = "Created" if report.created else "Updated"
            click.echo(f"{verb} consultation '{definition.slug}': {figures}.")
        if report.changed:
            click.echo(f"  changed fields: {', '.join(report.changed)}")
        if report.reworded:
            click.echo(f"  changed questions: {', '.join(report.reworded)}")
        for move in report.rounds_moved:
            click.echo(f"  {round_move_line(move, settings)}")
        if report.ideas_moved is not None:
            click.echo(f"  {ideas_move_line(report.ideas_moved, settings)}")
        if report.added:
            click.echo(f"  new questions: {', '.join(report.added)}")
        # Checking, the lines say what would be: "would archive", "on import: post 3 is moved".
        archive, remove, added = (
            ("would archive", "would remove", "would be added")
            if check
            else ("archived", "removed", "added")
        )
        for key, count in report.archived.items():
            click.echo(f"  {archive} question {key} with its {count} answers (kept in exports)")
        if report.removed:
            click.echo(f"  {remove} questions without answers: {', '.join(report.removed)}")
        plan = "content plan on import" if check else "content plan"
        for change in report.plan_changes:
            click.echo(f"  {plan}: {change.read(english_texts())}")
        if report.automatic_posts:
            click.echo(
                f"  content plan: {report.automatic_posts} automatic post(s) {added} "
                "(announcement, reminder, results; see 'borgerdialog plan list')"
            )
        if report.changes_nothing:
            click.echo(
                "  nothing would change: the file says what the consultation already does"
                if check
                else "  nothing changed: the file says what the consultation already did"
            )

    with_database(settings, work)


def round_move_line(move: RoundMove, settings: Settings) -> str:
    """A round's new times against its old ones, in local time."""
    return _move_line(f"round {move.number}", move.before, move.after, settings)


def ideas_move_line(move: IdeasMove, settings: Settings) -> str:
    """The ideas phase's new times against its old ones, in local time."""
    return _move_line("ideas phase", move.before, move.after, settings)


def _move_line(
    what: str,
    before: tuple[datetime, datetime] | None,
    after: tuple[datetime, datetime] | None,
    settings: Settings,
) -> str:
    def times(window: tuple[datetime, datetime]) -> str:
        return f"{local_time(window[0], settings)} – {local_time(window[1], settings)}"

    if before is None:
        assert after is not None
        return f"{what} is new: {times(after)}"
    if after is None:
        return f"{what} is dropped (was {times(before)})"
    return f"{what}: {times(after)} (was {times(before)})"


@consultation.command("list")
def consultation_list() -> None:
    """List every consultation with its state and how many took part."""
    from handlers.questionnaire import delete_due, pick, span_of

    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            consultations = await uow.consultations.all()
            if not consultations:
                click.echo(
                    "No consultations yet: import one with 'borgerdialog consultation import FILE'."
                )
                return
            click.echo(f"{'slug':<24} {'state':<9} {'answering':>9} {'completed':>9}  title")
            now = utc_now()
            due = []
            for item in consultations:
                rounds = await uow.consultations.rounds(item.id)
                state = span_of(item, rounds, now)
                participations = await uow.participations.of_consultation(item.id)
                answering = sum(p.status == "answering" for p in participations)
                completed = sum(p.status == "completed" for p in participations)
                click.echo(
                    f"{item.slug:<24} {state.status:<9} {answering:>9} {completed:>9}  "
                    f"{terminal_text(pick(item.title, 'da'))}"
                )
                if delete_due(item, state, len(participations), now, settings.delete_reminder_days):
                    due.append(item.slug)
            if due:
                click.echo(
                    f"\nClosed more than {settings.delete_reminder_days} days ago and still "
                    f"holding data about citizens: {', '.join(due)}. Delete each when its "
                    "purpose is served ('borgerdialog consultation delete SLUG'), so citizens' "
                    "data is kept no longer than needed."
                )

    with_database(settings, work)


@consultation.command("show")
@click.argument("slug")
def consultation_show(slug: str) -> None:
    """Show a consultation: texts, rounds, questions and participation."""
    from bot.consultations.export import ANONYMISED, build_table, counts
    from bot.consultations.progress import quota_coverage
    from handlers.questionnaire import pick

    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            item = await consultation_or_fail(uow, slug)
            # A title or purpose may come from an imported Pol.is summary: shown as one line.
            click.echo(
                f"{terminal_text(pick(item.title, 'da'))} [{item.slug}], languages: "
                f"{', '.join(item.languages)}, role: {item.citizen_role}"
            )
            click.echo(f"Purpose: {terminal_text(pick(item.purpose, 'da'))}")
            organiser = f"{item.organiser.get('name')} <{item.organiser.get('contact')}>"
            click.echo(f"Organiser: {terminal_text(organiser)}")
            for index, round_ in enumerate(await uow.consultations.rounds(item.id), 1):
                click.echo(
                    f"Round {index}: {local_time(round_.opens_at, settings)} – "
                    f"{local_time(round_.closes_at, settings)} ({settings.timezone})"
                )
            # Counted from the export's own table, so both say the same numbers: an idea kept
            # after its author used /forget counts, under "anonymised".
            table = await build_table(uow, slug)
            assert table is not None
            counted = counts(table)
            for index, question in enumerate(
                await uow.consultations.questions(item.id, include_archived=True), 1
            ):
                flags = [question.kind]
                if question.optional:
                    flags.append("optional")
                if question.condition:
                    flags.append(
                        f"when {question.condition['question']} in "
                        f"{'/'.join(question.condition['in'])}"
                    )
                if question.archived_at:
                    flags.append("archived")
                answered = f"{counted.answered.get(question.key, 0)} answers"
                if skipped := counted.skipped.get(question.key, 0):
                    answered += f", {skipped} skipped"
                click.echo(
                    f"  {index:>2}. {question.key} ({', '.join(flags)}; {answered}): "
                    f"{terminal_text(pick(question.text, 'da'))}"
                )
            for quota in await quota_coverage(uow, item):
                mark = "reached" if quota.met else "not yet"
                click.echo(
                    f"Quota {quota.question_key} = {quota.option}: {quota.reached} of at "
                    f"least {quota.minimum} ({mark})"
                )
            by_status = dict(counted.statuses)
            anonymised = by_status.pop(ANONYMISED, 0)
            click.echo(
                "Participants: "
                + (", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none yet")
            )
            if anonymised:
                click.echo(
                    f"Anonymised: {anonymised} answers kept after their authors used /forget "
                    "(one row each in the export)"
                )

    with_database(settings, work)


@consultation.command("file")
@click.argument("slug")
def consultation_file(slug: str) -> None:
    """Print a consultation's file as last imported, to change it and import it again."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            item = await consultation_or_fail(uow, slug)
            kept = await uow.consultations.file(item.id)
        if kept is None:
            fail(
                f"no file is kept for '{slug}': it came from a Pol.is import or was imported "
                "before files were kept; import its file once more",
                EXIT_BAD_INPUT,
            )
        # The text as imported, to the letter: a redirect makes it the file again.
        click.echo(kept.source, nl=False)

    with_database(settings, work)


@consultation.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask: delete at once (for scripts).")
def consultation_delete(slug: str, yes: bool) -> None:
    """Delete a consultation with every answer, statement and vote it has; cannot be undone."""
    from bot.cli.ideas import citizen_texts
    from bot.consultations.deletion import StillOpen, delete_consultation, is_open
    from handlers.questionnaire import pick
    from storage.moderation import CONSULTATION_DELETED

    settings = settings_or_exit()
    configure_logging(settings)
    moderators = citizen_texts(settings)(None)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory.read() as uow:
            item = await consultation_or_fail(uow, slug)
            participations, answers = await uow.participations.count_in(item.id)
            rounds = await uow.consultations.rounds(item.id)
            open_now = is_open(item, rounds, utc_now())
            title = terminal_text(pick(item.title, "da"))
        if participations and open_now:
            fail(still_open(slug, participations), EXIT_BAD_INPUT)
        if not yes:
            click.echo(
                f"This deletes '{slug}' ({title}) with {participations} participation(s) and "
                f"{answers} answer(s), its statements, votes, moderation items, planned posts "
                "and kept files. It cannot be undone: export first if the answers are needed "
                f"('borgerdialog export {slug}')."
            )
            typed = click.prompt(
                "Type the consultation's slug to delete it", default="", show_default=False
            )
            if typed.strip().casefold() != slug:
                fail(f"'{typed.strip()}' is not '{slug}'; nothing was deleted", EXIT_BAD_INPUT)
        async with uow_factory() as uow:
            item = await consultation_or_fail(uow, slug)
            try:
                report = await delete_consultation(uow, item, utc_now(), moderators)
            except StillOpen:
                # Someone began answering between the question and the answer to it.
                fail(still_open(slug, participations), EXIT_BAD_INPUT)
            await audit_here(
                uow, CONSULTATION_DELETED, consultation=slug, reason=report.counts_code
            )
            await uow.commit()
        click.echo(
            f"Deleted consultation '{slug}': {report.participations} participation(s) with "
            f"{report.answers} answer(s), {report.statements} statement(s), "
            f"{report.votes} vote(s); "
            f"{report.forgotten} participant(s) who took part only here are forgotten."
        )

    with_database(settings, work)


def still_open(slug: str, participations: int) -> str:
    people = "1 person takes" if participations == 1 else f"{participations} people take"
    return (
        f"'{slug}' is open and {people} part: close it first (set its round's closes, and its "
        f"ideas phase's, to now in 'borgerdialog consultation file {slug}' and import that), "
        "then delete it; nothing was deleted"
    )


@consultation.command("link")
@click.argument("slug")
@click.option("--bot", "bot_username", help="The bot's username (asked from Telegram if unset).")
@click.option(
    "--qr-dir",
    "qr_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write poster-size QR codes, SLUG-telegram, SLUG-whatsapp, SLUG-messenger "
    "and SLUG-web, each "
    "as SVG and PNG "
    "[default: the current folder].",
)
@click.option(
    "--qr",
    "qr_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write only the Telegram link's QR code, to this file (.png or .svg).",
)
def consultation_link(
    slug: str, bot_username: str | None, qr_dir: Path | None, qr_path: Path | None
) -> None:
    """Print the links that open a consultation in every channel, with QR codes."""
    settings = settings_or_exit()
    configure_logging(settings)
    if qr_dir is not None and qr_path is not None:
        fail("give either --qr-dir or --qr, not both", EXIT_BAD_INPUT)
    # Refused before anything is printed or written: a QR code of a broken t.me link prints
    # on a poster as well as a good one.
    if bot_username is not None and not TELEGRAM_BOT_NAME.fullmatch(bot_username.lstrip("@")):
        fail(
            f"--bot {bot_username!r}: a Telegram bot's username is 5-32 letters a-z, digits "
            "and underscores, ending in 'bot' (such as kommune_bot)",
            EXIT_BAD_INPUT,
        )
    if qr_path is not None and qr_path.suffix.lower() not in QR_FORMATS:
        fail(f"--qr {qr_path}: the QR code is written as .png, .svg, .pdf or .eps", EXIT_BAD_INPUT)
    if qr_dir is not None and qr_dir.exists() and not qr_dir.is_dir():
        fail(f"--qr-dir {qr_dir}: is not a folder", EXIT_BAD_INPUT)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            await consultation_or_fail(uow, slug)
        username = None
        if bot_username or settings.telegram_token is not None:
            username = bot_username or await _bot_username(settings)
        links = channel_links(settings, slug, username)
        if qr_path is not None:
            if "telegram" not in links:
                fail("--qr writes the Telegram link: give --bot USERNAME too", EXIT_BAD_INPUT)
            click.echo(links["telegram"])
            _write_qr(links["telegram"], qr_path)
            return
        folder = qr_dir or Path()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            fail(f"{folder}: cannot be made: {error.strerror or error}", EXIT_BAD_INPUT)
        for channel, link in links.items():
            click.echo(f"{channel}: {link}")
            for suffix in QR_SUFFIXES:
                _write_qr(link, folder / f"{slug}-{channel}{suffix}")
        if reachable_only_here(settings):
            click.echo(
                f"web: {links['web']} opens on this machine only: set BORGERDIALOG_PUBLIC_URL "
                "to the address citizens use before printing its QR code",
                err=True,
            )
        if "telegram" not in links:
            click.echo(
                "telegram: give --bot USERNAME (or set BORGERDIALOG_TELEGRAM_TOKEN) for the "
                "t.me link and its QR code"
            )
        if settings.whatsapp_enabled and "whatsapp" not in links:
            click.echo(
                "whatsapp: set BORGERDIALOG_WHATSAPP_NUMBER (the business number, digits with "
                "country code) for the wa.me link and its QR code"
            )

    with_database(settings, work)


# What segno writes that a printer takes: a vector for print, pixels for everything else.
QR_SUFFIXES = (".svg", ".png")
# What --qr may name: those, and the print formats segno also writes.
QR_FORMATS = (*QR_SUFFIXES, ".pdf", ".eps")
# Telegram's rule for a bot's username (core.telegram.org/bots/features#botfather); the case
# does not matter to Telegram. ASCII: without it, [a-z] ignoring case takes the Kelvin sign.
TELEGRAM_BOT_NAME = re.compile(r"[a-z0-9_]{2,29}bot", re.IGNORECASE | re.ASCII)


def _write_qr(link: str, target: Path) -> None:
    """Write a QR code of a link, SVG or PNG by the file's name, big enough for a poster."""
    code = qr_code(link)
    try:
        code.save(str(target), scale=poster_scale(code), border=QR_BORDER)
    except OSError as error:
        fail(f"{target}: cannot be written: {error.strerror or error}", EXIT_BAD_INPUT)
    click.echo(f"QR code written to {target}", err=True)


async def _bot_username(settings: Settings) -> str:
    if settings.telegram_token is None:
        fail(
            "give --bot USERNAME, or set BORGERDIALOG_TELEGRAM_TOKEN to ask Telegram",
            EXIT_BAD_INPUT,
        )
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError

    from bot.channels.telegram.transport import AiohttpRequest

    request = AiohttpRequest(1)
    try:
        bot = Bot(
            settings.telegram_token.get_secret_value(),
            base_url=settings.telegram_api_url,
            request=request,
        )
        me = await bot.get_me()
    except InvalidToken:
        raise  # run_async names the token
    except NetworkError as error:
        # Offline, or Telegram down: the link can still be made with the name given by hand.
        fail(f"cannot reach Telegram to ask the bot's username ({error}); give --bot USERNAME")
    finally:
        await request.shutdown()
    assert me.username is not None
    return me.username


@main.command()
@click.argument("slug")
@click.argument("target", required=False, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "xlsx", "json", "polis"]),
    default="csv",
    show_default=True,
    help="polis: the statements and votes as Pol.is's open-data folder (TARGET is the folder).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="The file to write [default: SLUG.FORMAT]; '-' for standard output.",
)
@click.option(
    "--delimiter",
    type=click.Choice([";", ","]),
    default=";",
    show_default=True,
    help="The CSV separator: ';' for Danish Excel, ',' for spreadsheets set up for English.",
)
def export(
    slug: str, target: Path | None, file_format: str, output: Path | None, delimiter: str
) -> None:
    """Export a consultation: answers (one row per participant) or statements and votes.

    Ids are pseudonymous only. TARGET is the file (or, for polis, the folder) to write. CSV
    and XLSX are for people (readable headers, local times); JSON is for programs.
    """
    from bot.consultations.export import RENDERERS, build_table

    settings = settings_or_exit()
    configure_logging(settings)
    if target is not None and output is not None:
        fail("give the file either as TARGET or with --output, not both", EXIT_BAD_INPUT)
    output = output or target
    if file_format == "polis":
        _export_polis(settings, slug, output or Path(f"{slug}-polis"))
        return
    if file_format == "xlsx" and output == Path("-"):
        fail("an xlsx export needs a file (--output FILE)", EXIT_BAD_INPUT)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        def progress(items: Iterable[Any]) -> Iterable[Any]:
            # Shown once the consultation is found: an unknown one is one line, no progress.
            with click.progressbar(list(items), label="Exporting", file=sys.stderr) as bar:
                yield from bar

        async with uow_factory() as uow:
            table = await build_table(uow, slug, progress)
            if table is None:
                fail(
                    f"no consultation '{slug}' (see 'borgerdialog consultation list')",
                    EXIT_BAD_INPUT,
                )
        content = RENDERERS[file_format](table, settings.zone, delimiter)
        if output == Path("-"):
            try:
                sys.stdout.buffer.write(content)
                # Now, not at exit: a failure then would be Python's warning, not our line.
                sys.stdout.buffer.flush()
            except BrokenPipeError:
                raise  # piped into `head`: run_async leaves it to click, which exits quietly
            except OSError as error:
                reason = error.strerror or error
                fail(f"standard output: cannot be written: {reason}", EXIT_BAD_INPUT)
            return
        target = output or Path(f"{slug}.{file_format}")
        write_output(target, content)
        click.echo(f"Wrote {len(table.rows)} rows to {target}", err=True)

    with_database(settings, work)


def _export_polis(settings: Settings, slug: str, directory: Path) -> None:
    """Write the Pol.is open-data files of a consultation into a folder."""
    from bot.consultations.polis import export_polis, write_folder

    if directory.exists() and not directory.is_dir():
        fail(f"{directory} is a file; a Pol.is export is a folder", EXIT_BAD_INPUT)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        # Participants who joined since the last export get their ids first, in a short unit
        # of its own: the export's reading takes seconds, and would hold the consultation's
        # row (statements take their numbers there) all that time.
        async with uow_factory() as uow:
            consultation = await consultation_or_fail(uow, slug)
            await uow.participations.number_newcomers(consultation.id)
            await uow.commit()
        async with uow_factory.read() as uow:
            url = f"{settings.public_base_url}/chat?c={slug}"
            files, report = await export_polis(uow, consultation, url)
        try:
            write_folder(directory, files)
        except OSError as error:
            where = error.filename or directory
            fail(f"{where}: cannot be written: {error.strerror or error}", EXIT_BAD_INPUT)
        click.echo(
            f"Wrote {', '.join(files)} to {directory}: {report.comments} statements, "
            f"{report.votes} votes, {report.participants} participants, {report.groups} groups",
            err=True,
        )

    with_database(settings, work)


# Registered last: these modules import helpers from this package.
from bot.cli.ideas import ideas, import_  # noqa: E402
from bot.cli.moderation import moderation, screen  # noqa: E402
from bot.cli.plan import broadcast, plan  # noqa: E402
from bot.cli.staff import staff  # noqa: E402

main.add_command(screen)
main.add_command(moderation)
main.add_command(ideas)
main.add_command(import_)
main.add_command(plan)
main.add_command(broadcast)
main.add_command(staff)
