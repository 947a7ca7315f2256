"""What every command shares: settings, one-line failures, logging, the database."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import re
import sys
import traceback
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from telegram.error import InvalidToken
from telegram.warnings import PTBDeprecationWarning

from bot.config import Settings, SettingsError, load_settings
from handlers.events import clean_text, storable
from handlers.moderation.trail import CLI_ACTOR as CLI_ACTOR  # the commands import it from here
from storage.models import Consultation, ItemStatus, ModerationItem
from storage.uow import UnitOfWork, UnitOfWorkFactory

logger = logging.getLogger("bot")

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print one line to stderr and exit."""
    mistake(message)
    sys.exit(code)


def mistake(message: str) -> None:
    """Print one line to stderr: a mistake may quote what a file or a citizen wrote."""
    click.echo(f"borgerdialog: {terminal_text(message)}", err=True)


# Bidirectional embeddings, overrides and isolates reorder what follows them on screen.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def terminal_text(text: str) -> str:
    """Text from outside as one terminal line: no escape sequences, line breaks shown as ⏎.

    Citizens' statements, imported titles and quoted cells reach staff terminals; a control
    character there can move the cursor, recolour or hide lines, or set the window title.
    """
    # storable() turns a lone surrogate into U+FFFD, so clean_text never refuses the text.
    cleaned = _BIDI_CONTROLS.sub("", clean_text(storable(text)))
    return cleaned.replace("\n", "⏎").replace("\t", " ")


class RedactingFormatter(logging.Formatter):
    """Format records, then replace secrets in all of it: message, traceback and stack.

    A filter on the message alone misses the token where it matters most: in a traceback of
    a failed request, whose URL holds it.
    """

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self._secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


class MalformedRequestFilter(logging.Filter):
    """Turn aiohttp's report of a request that is not valid HTTP into one line, without it.

    aiohttp logs such a request (a control character in a header, a broken request line) as an
    ERROR with a traceback that quotes the raw line: a participant's cookie, a staff session or
    an e-mail link's token would be written to the log by anyone who sends one. It is the
    client's mistake, answered with 400; the log only needs to say that it happened.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = (
                "refused a request that is not valid HTTP (%s)",
                (type(error).__name__,),
            )
            record.exc_info = record.exc_text = None
        return True


def configure_logging(settings: Settings) -> None:
    """Log to stderr at the configured level, with the bot token never shown."""
    handler = logging.StreamHandler()
    secrets = [
        secret.get_secret_value()
        for secret in (
            settings.telegram_token,
            settings.web_secret,
            settings.smtp_password,
            settings.whatsapp_token,
            settings.whatsapp_app_secret,
            settings.whatsapp_verify_token,
            settings.messenger_page_token,
            settings.messenger_app_secret,
            settings.messenger_verify_token,
        )
        if secret is not None
    ]
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Third-party chatter at INFO tells an operator nothing they need.
    # PTB warns on every flood-control error that retry_after will change type; we handle both.
    warnings.filterwarnings("ignore", message=".*retry_after.*", category=PTBDeprecationWarning)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())
    for noisy in ("alembic", "apscheduler", "telegram.ext", "aiohttp.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    quiet = max(logging.WARNING, root.level)
    for driver in ("sqlalchemy", "aiosqlite", "asyncpg"):
        logging.getLogger(driver).setLevel(logging.NOTSET if settings.log_database else quiet)


def settings_or_exit() -> Settings:
    """Load settings; on a bad value print one line per variable and exit with code 2."""
    try:
        return load_settings()
    except SettingsError as error:
        for line in error.lines:
            click.echo(f"borgerdialog: {line}", err=True)
        sys.exit(EXIT_BAD_INPUT)


def hold_sqlite_file(settings: Settings) -> IO[bytes] | None:
    """On SQLite, take the database's run lock for this process, or exit if another has it.

    The answer must stay referenced while the bot runs: the lock lasts as long as the file is open.

    SQLite's own locks cannot say this: they are held only while a transaction runs, so a second
    bot would start, and then both would send every planned post; an exclusive locking mode would
    instead shut out the commands (``plan import``, ``moderate``) that staff run beside the bot.
    A lock file taken with flock belongs to the running bot alone, and the kernel frees it when
    the process ends in any way, kill -9 included, so it never outlives the bot as a PID file can.
    """
    from storage.database import is_sqlite

    database = make_url(settings.database_url).database
    if not is_sqlite(settings.database_url) or database in (None, "", ":memory:"):
        return None
    path = Path(database).resolve().with_name(Path(database).name + ".run-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The file stays when the bot ends: removing it could let a starting bot lock a file that
    # the next one no longer finds.
    lock = path.open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        fail(
            f"another borgerdialog process is running on the SQLite database {database}; "
            "stop it first (several processes need PostgreSQL)",
            EXIT_BAD_INPUT,
        )
    return lock


def run_async(coroutine: Coroutine[Any, Any, None], settings: Settings) -> None:
    """Run a coroutine, turning the failures an operator can fix into one clear line."""
    from storage.database import redacted_database_url
    from storage.migrate import SchemaOutdated

    unreachable = f"cannot reach the database {redacted_database_url(settings.database_url)}"
    try:
        asyncio.run(coroutine)
    except SchemaOutdated as error:
        fail(str(error))
    except InvalidToken:
        fail(
            "BORGERDIALOG_TELEGRAM_TOKEN: Telegram refused this token (check it with @BotFather)",
            EXIT_BAD_INPUT,
        )
    except BrokenPipeError as error:
        if _raised_in(error, DATABASE_PACKAGES):  # the database's connection, not our output
            fail(f"{unreachable}: {str(error).splitlines()[0]}")
        # The output was piped into a reader that stopped early (`| head -1`). Left to click's
        # main, which handles it as for the commands that run no loop (`screen`): exit code 1
        # without a word, and its wrapper of stdout swallows the flush at exit, so Python prints
        # no "Exception ignored" either. That is the usual way of Python tools (they do not die
        # of SIGPIPE, whose 141 only the shell sees).
        raise
    except OSError as error:
        if error.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            fail(
                f"cannot listen on {settings.http_host}:{settings.http_port}: the address is "
                "in use (set BORGERDIALOG_HTTP_PORT)"
            )
        # A driver that cannot connect raises a bare OSError (connection refused, no such
        # host); so does writing the output. Only the first is the database's, seen by where
        # it came from; the files a command writes name themselves where they are written.
        if _raised_in(error, DATABASE_PACKAGES):
            fail(f"{unreachable}: {str(error).splitlines()[0]}")
        reason = error.strerror or str(error)
        if _raised_in(error, ("click",)):  # click.echo: what a command prints
            fail(f"standard output: cannot be written: {reason}", EXIT_BAD_INPUT)
        fail(f"{error.filename}: {reason}" if error.filename else reason)
    except (OperationalError, DBAPIError) as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        fail(f"{unreachable}: {reason}")


# The code an OSError passes through when it is the database's: its drivers and our storage.
DATABASE_PACKAGES = ("sqlalchemy", "asyncpg", "aiosqlite", "alembic", "storage")


def _raised_in(error: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether an error came up through code of these packages (a frame of its traceback)."""
    return any(
        str(frame.f_globals.get("__name__", "")).partition(".")[0] in packages
        for frame, _ in traceback.walk_tb(error.__traceback__)
    )


def write_output(target: Path, content: bytes) -> None:
    """Write a file a command makes; one line naming it if it cannot be (a folder, a full disk)."""
    try:
        target.write_bytes(content)
    except OSError as error:
        fail(f"{target}: cannot be written: {error.strerror or error}", EXIT_BAD_INPUT)


def mistakes(count: int) -> str:
    """'1 mistake', '3 mistakes': the last line of a refused import."""
    return f"{count} mistake" if count == 1 else f"{count} mistakes"


def tell_if_new_database(settings: Settings) -> None:
    """Say so when an SQLite file is about to be made, so nobody works in it by mistake.

    The data folder is relative to where a command runs: the same command in another folder
    would otherwise list no consultations, or add a staff account, in a new, empty database of
    its own, and say nothing of it.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    path = Path(url.database).resolve()
    if not path.exists():
        click.echo(
            terminal_text(
                f"Note: no database was at {path}; a new, empty one is made there. "
                "To use the bot's, run this where the bot runs or set BORGERDIALOG_DATA_DIR."
            ),
            err=True,
        )


def with_database(settings: Settings, work: Callable[[UnitOfWorkFactory], Awaitable[None]]) -> None:
    """Open the database (bringing SQLite up to date, as run does), do the work, close it."""

    async def main() -> None:
        from storage.database import create_engine, create_session_factory
        from storage.migrate import prepare_schema

        tell_if_new_database(settings)
        engine = create_engine(settings.database_url)
        try:
            await prepare_schema(engine, settings.database_url)
            await work(UnitOfWorkFactory(create_session_factory(engine)))
        finally:
            await engine.dispose()

    run_async(main(), settings)


async def consultation_or_fail(uow: UnitOfWork, slug: str) -> Consultation:
    """The consultation of a slug given on the command line, or one line and exit code 2."""
    consultation = await uow.consultations.by_slug(slug)
    if consultation is None:
        fail(f"no consultation '{slug}' (see 'borgerdialog consultation list')", EXIT_BAD_INPUT)
    return consultation


async def audit_here(
    uow: UnitOfWork,
    event: str,
    *,
    consultation: str = "",
    item_id: int | None = None,
    before: str | None = None,
    after: str | None = None,
    reason: str | None = None,
) -> None:
    """Put a change made at the terminal in the audit trail, as the dashboard puts the same
    change made there (same event, same short codes); the caller commits."""
    await uow.moderation.log(
        item_id=item_id,
        consultation=consultation,
        event=event,
        actor=CLI_ACTOR,
        author="",
        at=utc_now(),
        before=before,
        after=after,
        reason=reason,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_time(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")


# What each decision says about the item, in the one line a refused second decision prints.
DECIDED_AS = {
    ItemStatus.APPROVED: "approved",
    ItemStatus.HIDDEN: "hidden",
    ItemStatus.REPHRASE: "returned for rephrasing",
    ItemStatus.BLOCKED: "hidden and its author blocked",
    ItemStatus.RESUBMITTED: "withdrawn by its author",
}


def decided_before(item: ModerationItem, settings: Settings) -> str:
    """One line on who decided an item first, and when (local time)."""
    when = local_time(item.decided_at, settings) if item.decided_at else "?"
    return (
        f"item {item.id} was already {DECIDED_AS.get(item.status, item.status)} "
        f"by {item.decided_by or '?'} at {when} ({settings.timezone})"
    )
