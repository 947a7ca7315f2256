"""``borgerdialog staff``: the accounts that log in to the web dashboard."""

from __future__ import annotations

import sys

import click

from bot.admin.accounts import (
    AccountError,
    add_account,
    audit_command_line,
    check_new_account,
    check_password,
    existing_account,
    hash_password,
)
from bot.admin.accounts import reset_password as set_new_password
from bot.cli.common import (
    CLI_ACTOR,
    EXIT_BAD_INPUT,
    configure_logging,
    fail,
    local_time,
    settings_or_exit,
    utc_now,
    with_database,
)
from bot.config import Settings
from storage.models import StaffAccount
from storage.uow import UnitOfWork, UnitOfWorkFactory


async def _audit(uow: UnitOfWork, event: str, account: StaffAccount, settings: Settings) -> None:
    """An account change made here, in the audit trail by the account's pseudonym."""
    # Imported here, as the other commands do: the whole application is slow to import, and
    # `staff list` needs none of it.
    from bot.app import installation_secret, pseudonym_key

    key = pseudonym_key(installation_secret(settings))
    await audit_command_line(uow, event, account, key, utc_now(), CLI_ACTOR)


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or typed twice without echo."""
    if from_stdin:
        # Bytes, decoded below: the text layer's handling of what is not UTF-8 depends on the
        # locale (an error at once, or odd characters that fail later, in the hash).
        line = sys.stdin.buffer.readline()
        password = line.decode("utf-8", errors="surrogateescape").rstrip("\r\n")
    else:
        try:
            password = click.prompt(
                "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
            )
        except click.Abort:  # Ctrl-D or Ctrl-C at the prompt
            fail("no password was given; nothing changed", EXIT_BAD_INPUT)
    try:
        # A terminal that is not UTF-8 gives the same odd characters as such standard input.
        password.encode("utf-8")
    except UnicodeEncodeError:
        fail("the password is not UTF-8 text; nothing changed", EXIT_BAD_INPUT)
    try:
        check_password(password)
    except AccountError as error:
        fail(str(error), EXIT_BAD_INPUT)
    return password


@click.group()
def staff() -> None:
    """Accounts for the web dashboard under /admin: admin, staff or moderator."""


@staff.command("add")
@click.argument("email")
@click.option("--role", required=True, help="admin, staff or moderator.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def staff_add(email: str, role: str, password_stdin: bool) -> None:
    """Create an account; the password is asked for twice (or read from standard input)."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def check(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory.read() as uow:
            try:
                await check_new_account(uow, email, role)
            except AccountError as error:
                fail(str(error), EXIT_BAD_INPUT)

    # The address and role first, as reset-password checks its account: nobody should type a
    # password twice for an account that cannot be made.
    with_database(settings, check)
    password = _read_password(password_stdin)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        # Hashed before the unit of work: on SQLite a writing unit holds the one write lock,
        # and the running bot's replies would wait for argon2 meanwhile.
        password_hash = await hash_password(password)
        async with uow_factory() as uow:
            try:
                account = await add_account(uow, email, role, password_hash, utc_now())
            except AccountError as error:
                fail(str(error), EXIT_BAD_INPUT)
            await _audit(uow, "staff_added", account, settings)
            await uow.commit()
        click.echo(f"Added {account.email} as {account.role}.")

    with_database(settings, work)


@staff.command("list")
def staff_list() -> None:
    """List the accounts: e-mail, role and last login."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory.read() as uow:
            accounts = await uow.staff.all()
        if not accounts:
            click.echo("No accounts yet: add one with 'borgerdialog staff add EMAIL --role admin'.")
            return
        click.echo(f"{'e-mail':<40} {'role':<10} last login")
        for account in accounts:
            last = local_time(account.last_login_at, settings) if account.last_login_at else "never"
            click.echo(f"{account.email:<40} {account.role:<10} {last}")

    with_database(settings, work)


@staff.command("remove")
@click.argument("email")
def staff_remove(email: str) -> None:
    """Remove an account; its sessions end at once."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory() as uow:
            try:
                account = await existing_account(uow, email)
            except AccountError as error:
                fail(str(error), EXIT_BAD_INPUT)
            address = account.email
            await _audit(uow, "staff_removed", account, settings)
            await uow.staff.remove(account)
            await uow.commit()
        click.echo(f"Removed {address}.")

    with_database(settings, work)


@staff.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def staff_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password; a lock is lifted and the account's sessions end."""
    settings = settings_or_exit()
    configure_logging(settings)

    async def check(uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory.read() as uow:
            try:
                await existing_account(uow, email)
            except AccountError as error:
                fail(str(error), EXIT_BAD_INPUT)

    # The account first: nobody should type a new password twice for an address that has none.
    # The prompt waits outside the event loop, whose own Ctrl-C handling would not end it.
    with_database(settings, check)
    password = _read_password(password_stdin)

    async def work(uow_factory: UnitOfWorkFactory) -> None:
        password_hash = await hash_password(password)  # before the unit, as in staff add
        async with uow_factory() as uow:
            try:
                account = await set_new_password(uow, email, password_hash)
            except AccountError as error:
                fail(str(error), EXIT_BAD_INPUT)
            await _audit(uow, "staff_password_reset", account, settings)
            await uow.commit()
        click.echo(f"New password set for {account.email}; its sessions have ended.")

    with_database(settings, work)
