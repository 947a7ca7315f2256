"""``borgerdialog ideas`` (statements, decisions, volunteers, opinion groups) and Pol.is import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from bot.cli.common import (
    CLI_ACTOR,
    EXIT_BAD_INPUT,
    audit_here,
    configure_logging,
    consultation_or_fail,
    decided_before,
    fail,
    local_time,
    mistakes,
    settings_or_exit,
    terminal_text,
    utc_now,
    with_database,
)
from bot.config import Settings
from bot.dialogue.i18n import Catalogs
from handlers.context import Texts
from handlers.events import ChatAddress, Reply, UnreadableText, clean_text, record_id
from handlers.questionnaire import pick, shorten
from storage.models import Consultation, Decision, Statement
from storage.uow import UnitOfWork, UnitOfWorkFactory

# Who the audit trail (and a decided card) names when staff decide from the command line.


async def _statement(uow: UnitOfWork, consultation: Consultation, number: int) -> Statement:
    # A number no column can hold (99999999999999999999) names no statement: the database
    # would refuse the query, not answer it.
    found = record_id(str(number))
    statement = await uow.ideas.by_number(consultation.id, found) if found is not None else None
    if statement is None:
        fail(
            f"'{consultation.slug}' has no statement {number} "
            f"(see 'borgerdialog ideas list {consultation.slug}')",
            EXIT_BAD_INPUT,
        )
    return statement


async def queue_messages(uow: UnitOfWork, messages: list[tuple[ChatAddress, Reply]]) -> int:
    """Queue messages for the running bot to deliver (it picks them up within a minute)."""
    now = utc_now()
    for address, reply in messages:
        await uow.outbox.add(address.channel, address.chat_id, reply.to_payload(), now)
    return len(messages)


def told_author(messages: list[tuple[ChatAddress, Reply]]) -> str:
    """Whether the author will hear a decision, for the line a command prints."""
    # The outbox is delivered by the running bot: its redelivery job sends within a minute.
    if any(reply.edit_ref is None for _, reply in messages):
        return "the running bot tells the author in their chat within a minute"
    return "nobody is told (the author erased their data, is unreachable, or it was staff's own)"


def citizen_texts(settings: Settings) -> Callable[[str | None], Texts]:
    """Texts by language, for messages to citizens (None: the default language)."""
    catalogs = Catalogs(settings.default_language)
    return lambda language: catalogs.texts(language or catalogs.default_language)


@click.group()
def ideas() -> None:
    """Statements of a consultation's ideas phase: list, add, approve, decide, volunteers."""


@ideas.command("list")
@click.argument("slug")
def ideas_list(slug: str) -> None:
    """List the statements with their votes, visibility and decision."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            consultation = await consultation_or_fail(uow, slug)
            statements = await uow.ideas.statements(consultation.id)
            tallies = await uow.ideas.tallies(consultation.id)
            if consultation.ideas_opens_at and consultation.ideas_closes_at:
                click.echo(
                    f"Ideas phase {local_time(consultation.ideas_opens_at, settings)} – "
                    f"{local_time(consultation.ideas_closes_at, settings)} ({settings.timezone}), "
                    + (
                        "pre-moderated"
                        if consultation.ideas.get("premoderation")
                        else "post-moderated"
                    )
                )
            if not statements:
                click.echo("No statements yet.")
                return
            click.echo(
                f"{'no':>4} {'shown':<8} {'agree':>5} {'disagr':>6} {'pass':>4}  {'from':<8} text"
            )
            for s in statements:
                tally = tallies.get(s.id)
                extra = []
                if s.decision:
                    extra.append(f"decision: {s.decision}")
                if s.wants_volunteers:
                    extra.append("wants volunteers")
                click.echo(
                    f"{s.number:>4} {s.visibility:<8} {tally.agree if tally else 0:>5} "
                    f"{tally.disagree if tally else 0:>6} {tally.passed if tally else 0:>4}  "
                    f"{s.origin:<8} {shorten(terminal_text(pick(s.text, 'da')), 70)}"
                    + (f"  [{'; '.join(extra)}]" if extra else "")
                )

    with_database(settings, work)


@ideas.command("add")
@click.argument("slug")
@click.argument("text")
@click.option("--en", "english", help="The statement in English too.")
def ideas_add(slug: str, text: str, english: str | None) -> None:
    """Add a statement in staff's name (shown at once) for citizens to vote on."""
    from handlers.ideas.staff import add_staff_statement

    settings = settings_or_exit()
    configure_logging(settings)
    try:
        # The same door as citizens' text: no control characters reach the statement.
        texts = {"da": " ".join(clean_text(text).split())}
        if english:
            texts["en"] = " ".join(clean_text(english).split())
    except UnreadableText:
        fail("the statement holds a broken character (a lone surrogate)", EXIT_BAD_INPUT)
    if not all(texts.values()):
        fail("the statement is empty", EXIT_BAD_INPUT)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            consultation = await consultation_or_fail(uow, slug)
            limit = int(consultation.ideas.get("max_length", 280))
            if any(len(t) > limit for t in texts.values()):
                fail(f"a statement may be {limit} characters long here", EXIT_BAD_INPUT)
            statement = await add_staff_statement(uow, consultation, texts, utc_now())
            await uow.commit()
            click.echo(f"Added statement {statement.number} to '{slug}'.")

    with_database(settings, work)


def _moderate_command(approve: bool) -> click.Command:
    verb = "approve" if approve else "hide"

    @click.command(verb)
    @click.argument("slug")
    @click.argument("number", type=int)
    def command(slug: str, number: int) -> None:
        from handlers.ideas.staff import AlreadyDecided, StaffError, moderate

        settings = settings_or_exit()
        configure_logging(settings)

        async def work(uow_factory: UnitOfWorkFactory) -> None:
            async with uow_factory() as uow:
                consultation = await consultation_or_fail(uow, slug)
                statement = await _statement(uow, consultation, number)
                try:
                    messages = await moderate(
                        uow,
                        statement,
                        approve,
                        CLI_ACTOR,
                        utc_now(),
                        citizen_texts(settings),
                        settings.zone,
                    )
                except AlreadyDecided as taken:
                    fail(decided_before(taken.item, settings), EXIT_BAD_INPUT)
                except StaffError as refusal:
                    fail(str(refusal), EXIT_BAD_INPUT)
                await queue_messages(uow, messages)
                await uow.commit()
            shown = "shown to citizens" if approve else "hidden"
            click.echo(f"Statement {number} of '{slug}' is {shown}; {told_author(messages)}.")

        with_database(settings, work)

    command.help = (
        "Approve a statement (it is shown) and tell its author."
        if approve
        else "Hide a statement and tell its author."
    )
    return command


ideas.add_command(_moderate_command(True))
ideas.add_command(_moderate_command(False))


@ideas.command("decide")
@click.argument("slug")
@click.argument("number", type=int)
@click.argument("decision", type=click.Choice(Decision.ALL))
@click.option("--reason", help="A short reason, told to citizens (up to 500 characters).")
@click.option("--into", "into", type=int, help="For 'merged': the statement it was merged into.")
def ideas_decide(
    slug: str, number: int, decision: str, reason: str | None, into: int | None
) -> None:
    """Record a decision on a statement; its author and the voters who asked hear it in the chat."""
    from handlers.ideas.staff import StaffError, decide

    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            consultation = await consultation_or_fail(uow, slug)
            statement = await _statement(uow, consultation, number)
            merged = await _statement(uow, consultation, into) if into is not None else None
            before = statement.decision
            try:
                messages = await decide(
                    uow, statement, decision, reason, merged, utc_now(), citizen_texts(settings)
                )
            except StaffError as refusal:
                fail(str(refusal), EXIT_BAD_INPUT)
            told = await queue_messages(uow, messages)
            await audit_here(
                uow,
                "statement_decided",
                consultation=slug,
                reason=f"statement {number}",
                before=before,
                after=decision,
            )
            await uow.commit()
        click.echo(f"Statement {number}: {decision}. {told} citizen(s) will hear it in their chat.")

    with_database(settings, work)


@ideas.command("volunteers")
@click.argument("slug")
@click.option("--want", type=int, help="Look for volunteers for this statement.")
@click.option("--stop", type=int, help="Stop looking for volunteers for this statement.")
@click.option("--message", help="With --want: write this to its volunteers in their chat.")
def ideas_volunteers(slug: str, want: int | None, stop: int | None, message: str | None) -> None:
    """List who offered to help; mark statements as looking for volunteers; write to them."""
    settings = settings_or_exit()
    configure_logging(settings)
    if message is not None and want is None:
        fail("--message needs --want NUMBER (the statement whose volunteers to write to)", 2)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            consultation = await consultation_or_fail(uow, slug)
            for number, wanted in ((want, True), (stop, False)):
                if number is not None:
                    statement = await _statement(uow, consultation, number)
                    if statement.wants_volunteers != wanted:
                        statement.wants_volunteers = wanted
                        click.echo(
                            f"Statement {number} "
                            + (
                                "now looks for volunteers."
                                if wanted
                                else "no longer looks for volunteers."
                            )
                        )
            volunteers = await uow.ideas.volunteers(consultation.id)
            if message is not None:
                text = message.strip()
                if not text or len(text) > 4000:
                    fail("the message must be 1-4000 characters", EXIT_BAD_INPUT)
                chosen = [
                    (ChatAddress(participant.channel, participant.chat_id), Reply(text))
                    for _, statement, _, participant in volunteers
                    if statement.number == want and participant.unreachable_at is None
                ]
                click.echo(f"Writing to {await queue_messages(uow, chosen)} volunteer(s).")
            await uow.commit()
            if not volunteers:
                click.echo("Nobody has offered to help yet.")
            for volunteer, statement, participation, participant in volunteers:
                click.echo(
                    f"statement {statement.number}: {participation.pseudonym} on "
                    f"{participant.channel}, since {local_time(volunteer.created_at, settings)}"
                )

    with_database(settings, work)


@ideas.command("groups")
@click.argument("slug")
def ideas_groups(slug: str) -> None:
    """Compute the opinion groups now and show them with the consensus and divisive statements."""
    from handlers.ideas.groups import GroupModel
    from scheduler.jobs import refresh_opinion_groups

    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            consultation = await consultation_or_fail(uow, slug)
        await refresh_opinion_groups(uow_factory, utc_now, only=slug)
        async with uow_factory() as uow:
            stored = await uow.ideas.groups(consultation.id)
            statements = {s.id: s for s in await uow.ideas.statements(consultation.id)}
        if stored is None or not stored.model:
            click.echo(
                "Not enough votes for opinion groups yet: they need at least 10 participants "
                "with 7 votes each (or votes on every statement, when there are fewer)."
            )
            return
        model = GroupModel.from_document(stored.model)
        sizes = model.sizes
        click.echo(
            f"{len(sizes)} opinion groups among {sum(sizes)} participants "
            f"(silhouette {model.silhouette:.2f}): "
            + ", ".join(f"{chr(65 + i)} {n}" for i, n in enumerate(sizes))
        )
        for heading, chosen in (("Consensus", model.consensus), ("Divisive", model.divisive)):
            click.echo(f"{heading}:")
            for statement_id in chosen[:10]:
                statement = statements[statement_id]
                shares = " ".join(
                    f"{chr(65 + g)} {round(100 * model.tally(g, statement_id).agree_share)}%"
                    for g in range(len(sizes))
                )
                click.echo(
                    f"  {statement.number:>4} [{shares}] "
                    f"{shorten(terminal_text(pick(statement.text, 'da')), 70)}"
                )
            if not chosen:
                click.echo("  (none)")

    with_database(settings, work)


@click.group("import")
def import_() -> None:
    """Import data from other tools."""


@import_.command("polis")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--slug", required=True, help="The consultation to import into (made if missing).")
def import_polis_command(directory: Path, slug: str) -> None:
    """Import a Pol.is open-data folder (comments.csv and votes.csv, optionally the others)."""
    from bot.consultations.definition import SLUG_PATTERN
    from bot.consultations.polis import PolisFolderError, import_polis, read_folder

    settings = settings_or_exit()
    configure_logging(settings)
    if not SLUG_PATTERN.fullmatch(slug):
        fail("--slug must be 2-40 lower-case letters, digits or hyphens", EXIT_BAD_INPUT)
    try:
        folder = read_folder(directory)
    except PolisFolderError as error:
        for problem in error.problems:
            click.echo(terminal_text(f"{directory}: {problem}"), err=True)
        fail(f"{mistakes(len(error.problems))}; nothing was imported", EXIT_BAD_INPUT)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            try:
                report = await import_polis(uow, folder, slug, utc_now())
            except PolisFolderError as error:
                fail(f"{error.problems[0]}; nothing was imported", EXIT_BAD_INPUT)
            await uow.commit()
        verb = "Created" if report.created else "Filled"
        click.echo(
            f"{verb} consultation '{slug}' from {', '.join(report.files)}: "
            f"{report.comments} statements, {report.votes} votes, "
            f"{report.participants} participants."
        )

    with_database(settings, work)
