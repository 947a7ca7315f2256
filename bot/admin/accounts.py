"""Staff accounts and logins: the rules, without the web (the CLI and the pages share them)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from handlers.events import without_invisible
from storage.models import StaffAccount, StaffRole, StaffSession
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is only a load
ACCOUNT_FAILURES_BEFORE_LOCK = 5
ACCOUNT_LOCK = timedelta(minutes=15)
ADDRESS_ATTEMPTS = 20
ADDRESS_WINDOW = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so an unknown address costs as long as a wrong
# password and the answer's timing does not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why, in one line.

    ``key`` and ``params`` name the same reason as a text of the catalogs, for the dashboard.
    """

    def __init__(self, message: str, key: str, **params: object) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


def normalise_email(email: str) -> str:
    """The e-mail as stored: trimmed and lower-cased; AccountError if it is no address."""
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError(f"not an e-mail address: {email!r}", "admin.accounts.error.email")
    return email


def check_password(password: str) -> None:
    """Refuse a password too short (or absurdly long) to use. Characters that show nothing
    (zero-width ones) do not count, and a password of spaces alone is none."""
    shown = without_invisible(password)
    if len(shown) < MIN_PASSWORD_LENGTH or not shown.strip():
        raise AccountError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
            "admin.accounts.error.short",
            minimum=MIN_PASSWORD_LENGTH,
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters",
            "admin.accounts.error.long",
            maximum=MAX_PASSWORD_LENGTH,
        )


async def hash_password(password: str) -> str:
    """An argon2id hash of a password that passed check_password."""
    check_password(password)
    # Off the event loop, as _verify: a hash takes a good part of a second of CPU.
    return await asyncio.to_thread(_hasher.hash, password)


def _verify_now(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def _verify(password_hash: str, password: str) -> bool:
    # In a thread: argon2 is made to take a good part of a second of CPU, and the login form is
    # open to anyone; run on the event loop, a handful of guesses at once would stall every
    # citizen's chat and the health check for seconds. argon2-cffi lets go of the GIL meanwhile.
    return await asyncio.to_thread(_verify_now, password_hash, password)


def account_pseudonym(key: bytes, account_id: int) -> str:
    """The account as the audit trail names it: keyed, so only the installation can link it."""
    return hmac.new(key, f"staff-account:{account_id}".encode(), "sha256").hexdigest()[:10]


def token_hash(token: str) -> str:
    """What the database keeps of a session token: a leaked table logs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()


def address_hash(key: bytes, address: str) -> str:
    return hmac.new(key, f"login-address:{address}".encode(), "sha256").hexdigest()


def _check_role(role: str) -> None:
    if role not in StaffRole.ALL:
        roles = ", ".join(StaffRole.ALL)
        raise AccountError(f"unknown role {role!r} (one of {roles})", "admin.accounts.error.role")


# Changing a password is two steps for the same reason as a login (below): the new password is
# hashed, and the current one checked, before the unit of work that stores it begins.
#   password_hash = await hash_password(password)           # no transaction open
#   async with uow() as unit: await reset_password(unit, email, password_hash); await unit.commit()


async def add_account(
    uow: UnitOfWork, email: str, role: str, password_hash: str, now: datetime
) -> StaffAccount:
    """Create an account with a password hashed beforehand (``hash_password``); AccountError for
    a bad role or a taken e-mail."""
    email = await check_new_account(uow, email, role)
    return await uow.staff.add(
        StaffAccount(
            email=email,
            role=role,
            password_hash=password_hash,
            created_at=now,
            failed_attempts=0,
        )
    )


async def check_new_account(uow: UnitOfWork, email: str, role: str) -> str:
    """The e-mail as a new account stores it; AccountError for a bad address or role, or one
    taken. (Also before asking for a password: nobody should type one for nothing.)"""
    email = normalise_email(email)
    # No control or format characters in a new address: a right-to-left override would make it
    # read differently in the audit log and the accounts list than it is. (Only new ones: an
    # account made before this rule still logs in.)
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in email):
        raise AccountError(f"not an e-mail address: {email!r}", "admin.accounts.error.email")
    _check_role(role)
    if await uow.staff.by_email(email) is not None:
        raise AccountError(f"there is already an account for {email}", "admin.accounts.error.taken")
    return email


async def existing_account(uow: UnitOfWork, email: str) -> StaffAccount:
    email = normalise_email(email)
    account = await uow.staff.by_email(email)
    if account is None:
        raise AccountError(
            f"no account for {email} (see 'borgerdialog staff list')", "admin.accounts.error.none"
        )
    return account


async def reset_password(uow: UnitOfWork, email: str, password_hash: str) -> StaffAccount:
    """Set a new password (hashed beforehand), lift a lock and end the account's sessions
    (whoever had them)."""
    account = await existing_account(uow, email)
    account.password_hash = password_hash
    account.failed_attempts = 0
    account.locked_until = None
    await uow.staff.end_sessions(account.id)
    return account


async def _keep_an_admin(uow: UnitOfWork, account: StaffAccount) -> None:
    """Refuse to take away the last admin: nobody could manage accounts on the web then."""
    if account.role == StaffRole.ADMIN and await uow.staff.count_role(StaffRole.ADMIN) <= 1:
        raise AccountError(
            f"{account.email} is the only admin; make another account admin first",
            "admin.accounts.error.last_admin",
        )


async def change_role(uow: UnitOfWork, account: StaffAccount, role: str) -> None:
    """Give an account another role; its sessions end, so the new role holds at once."""
    _check_role(role)
    if role != account.role:
        await _keep_an_admin(uow, account)
        account.role = role
        await uow.staff.end_sessions(account.id)


async def remove_account(uow: UnitOfWork, account: StaffAccount) -> None:
    """Remove an account and end its sessions; never the last admin."""
    await _keep_an_admin(uow, account)
    await uow.staff.remove(account)


async def check_current_password(stored_hash: str, current: str) -> None:
    """AccountError unless ``current`` is the password of ``stored_hash``; outside any
    transaction, as it takes a good part of a second."""
    if not await _verify(stored_hash, current):
        raise AccountError("the current password is wrong", "admin.password.wrong_current")


async def change_own_password(
    uow: UnitOfWork,
    account: StaffAccount,
    checked_hash: str,
    new_hash: str,
    keep_token_hash: str,
) -> None:
    """A person's own new password (hashed beforehand), once the current one was checked
    against ``checked_hash``; their other sessions end. If the password changed meanwhile (a
    reset by an admin), the check was against the old one: refused as wrong."""
    if account.password_hash != checked_hash:
        raise AccountError("the current password is wrong", "admin.password.wrong_current")
    account.password_hash = new_hash
    await uow.staff.end_other_sessions(account.id, keep_token_hash)


@dataclass(frozen=True)
class Login:
    """What a login attempt came to: ``outcome`` is ok, wrong, locked or throttled."""

    outcome: str
    account: StaffAccount | None = None
    token: str | None = None
    # An account locked by this very attempt: the audit trail records the lockout.
    locked_now: bool = False


@dataclass(frozen=True)
class Attempt:
    """A login attempt, counted against its address: whose account it names (None for an
    unknown e-mail) and, when the limits decide already, the outcome ("throttled" or "locked")."""

    account_id: int | None
    password_hash: str
    outcome: str | None = None
    # Where and when it was counted: a login that succeeds is taken off its address's count.
    address_key: str = ""
    at: datetime | None = None


# A login is three steps, so that no transaction is open while argon2 runs (a good part of a
# second): on SQLite a writing unit holds the one write lock, and every citizen's answer, the
# health check's write probe and every other login would wait for each guess in turn.
#   async with uow() as unit: attempt = await count_attempt(unit, ...); await unit.commit()
#   right = await password_matches(attempt, password)      # no transaction open
#   async with uow() as unit: login = await log_in(unit, attempt, right, now); await unit.commit()
# The attempt is committed before the password is checked: a burst of guesses from one address
# is throttled even while the first of them are still being checked.


async def count_attempt(uow: UnitOfWork, email: str, address_key: str, now: datetime) -> Attempt:
    """Count a login attempt against its address's limit and find the account it names.

    The caller commits whatever the outcome: attempts must be counted too.
    """
    await uow.staff.forget_attempts_before(now - ADDRESS_WINDOW)
    # Sessions left to expire (a closed browser never logs out) go here, with the old attempts:
    # every login clears them, so the table holds only live ones and no job is needed.
    await uow.staff.end_expired_sessions(now - IDLE_TIMEOUT, now - ABSOLUTE_TIMEOUT)
    if await uow.staff.attempts_since(address_key, now - ADDRESS_WINDOW) >= ADDRESS_ATTEMPTS:
        return Attempt(None, _DUMMY_HASH, "throttled")
    await uow.staff.add_attempt(address_key, now)
    try:
        account = await uow.staff.by_email(normalise_email(email))
    except AccountError:
        account = None
    if account is None:
        return Attempt(None, _DUMMY_HASH, None, address_key, now)
    if account.locked_until is not None and account.locked_until > now:
        # Checked before the password: a locked account tells nothing about a guess.
        return Attempt(account.id, account.password_hash, "locked", address_key, now)
    return Attempt(account.id, account.password_hash, None, address_key, now)


async def password_matches(attempt: Attempt, password: str) -> bool:
    """Whether the password is the account's; an unknown e-mail is checked against a dummy hash
    so that it costs as long as a wrong password. Outside any transaction (see above)."""
    if attempt.outcome is not None:
        return False
    return await _verify(attempt.password_hash, password) and attempt.account_id is not None


async def log_in(uow: UnitOfWork, attempt: Attempt, right: bool, now: datetime) -> Login:
    """Record what a counted attempt came to; open a session when the password was right.

    The caller commits whatever the outcome: failures must be counted too.
    """
    if attempt.outcome == "throttled":
        return Login("throttled")
    account = await uow.staff.get(attempt.account_id) if attempt.account_id is not None else None
    if account is None:
        return Login("wrong")
    if account.locked_until is not None and account.locked_until > now:
        # Locked before, or by another guess while this one was checked.
        return Login("locked", account)
    if not right or account.password_hash != attempt.password_hash:
        # (A password changed while this one was checked against the old: wrong, as it is now.)
        account.failed_attempts += 1
        if account.failed_attempts >= ACCOUNT_FAILURES_BEFORE_LOCK:
            account.failed_attempts = 0
            account.locked_until = now + ACCOUNT_LOCK
            return Login("locked", account, locked_now=True)
        return Login("wrong", account)
    account.failed_attempts = 0
    account.locked_until = None
    account.last_login_at = now
    if attempt.at is not None:
        # The address's limit is for guesses: a town hall's staff behind one address may log in
        # many times a morning, and only their failures count.
        await uow.staff.forget_attempt(attempt.address_key, attempt.at)
    token = secrets.token_urlsafe(32)
    await uow.staff.add_session(
        StaffSession(
            token_hash=token_hash(token), account_id=account.id, created_at=now, last_seen_at=now
        )
    )
    return Login("ok", account, token)


async def current_session(
    uow: UnitOfWork, token: str | None, now: datetime
) -> tuple[StaffSession, StaffAccount] | None:
    """The session and account a cookie's token belongs to, seen now; None if none or expired.

    An expired session is ended here; a live one's last_seen moves (the caller commits).
    """
    if not token or len(token) > 100:
        return None
    session = await uow.staff.session_by_token_hash(token_hash(token))
    if session is None:
        return None
    if now - session.last_seen_at > IDLE_TIMEOUT or now - session.created_at > ABSOLUTE_TIMEOUT:
        await uow.staff.end_session(session)
        return None
    account = await uow.staff.get(session.account_id)
    if account is None:
        return None
    session.last_seen_at = now
    return session, account


async def audit(
    uow: UnitOfWork,
    event: str,
    account: StaffAccount,
    key: bytes,
    now: datetime,
    *,
    consultation: str = "",
    item_id: int | None = None,
    reason: str | None = None,
    author: str = "",
    before: str | None = None,
    after: str | None = None,
) -> None:
    """Put a staff action in the audit trail the moderation keeps, by the account's pseudonym.

    The caller commits. ``reason`` and ``before``/``after`` are short codes, never free text.
    """
    await uow.moderation.log(
        item_id=item_id,
        consultation=consultation,
        event=event,
        actor=f"{account.role} {account_pseudonym(key, account.id)}",
        author=author,
        at=now,
        before=before,
        after=after,
        reason=reason,
    )


async def audit_command_line(
    uow: UnitOfWork, event: str, account: StaffAccount, key: bytes, now: datetime, actor: str
) -> None:
    """Put an account change made with ``borgerdialog staff`` in the audit trail: whoever sat
    at the terminal is not known, so the actor is the command line's, and the account it
    concerned goes where a decision's author would (by pseudonym)."""
    await uow.moderation.log(
        item_id=None,
        consultation="",
        event=event,
        actor=actor,
        author=account_pseudonym(key, account.id),
        at=now,
    )
