"""Staff accounts, their sessions and login attempts. Like every repository, it never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import StaffAccount, StaffLoginAttempt, StaffSession


class StaffRepository:
    """Accounts, sessions and attempts of the dashboard's login."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, account: StaffAccount) -> StaffAccount:
        """Add an account (its e-mail lower-cased by the caller)."""
        self._session.add(account)
        await self._session.flush()
        return account

    async def by_email(self, email: str) -> StaffAccount | None:
        statement = select(StaffAccount).where(StaffAccount.email == email)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def get(self, account_id: int) -> StaffAccount | None:
        return await self._session.get(StaffAccount, account_id)

    async def count_role(self, role: str) -> int:
        statement = select(func.count(StaffAccount.id)).where(StaffAccount.role == role)
        return int((await self._session.execute(statement)).scalar_one())

    async def all(self) -> list[StaffAccount]:
        statement = select(StaffAccount).order_by(StaffAccount.email)
        return list((await self._session.execute(statement)).scalars().all())

    async def remove(self, account: StaffAccount) -> None:
        """Remove an account and end its sessions."""
        await self.end_sessions(account.id)
        await self._session.delete(account)
        await self._session.flush()

    async def end_sessions(self, account_id: int) -> None:
        """End every session of an account (a new password, a removed account)."""
        await self._session.execute(
            delete(StaffSession).where(StaffSession.account_id == account_id)
        )

    async def end_other_sessions(self, account_id: int, keep_token_hash: str) -> None:
        """End an account's sessions but the one in use (after its own new password)."""
        await self._session.execute(
            delete(StaffSession).where(
                StaffSession.account_id == account_id, StaffSession.token_hash != keep_token_hash
            )
        )

    async def add_session(self, session: StaffSession) -> None:
        self._session.add(session)
        await self._session.flush()

    async def session_by_token_hash(self, token_hash: str) -> StaffSession | None:
        statement = select(StaffSession).where(StaffSession.token_hash == token_hash)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def end_session(self, session: StaffSession) -> None:
        await self._session.delete(session)
        await self._session.flush()

    async def add_attempt(self, address_hash: str, at: datetime) -> None:
        """Count one login attempt from an address."""
        self._session.add(StaffLoginAttempt(address_hash=address_hash, at=at))
        await self._session.flush()

    async def forget_attempt(self, address_hash: str, at: datetime) -> None:
        """Take one counted attempt off an address (its login succeeded)."""
        found = await self._session.execute(
            select(StaffLoginAttempt.id)
            .where(StaffLoginAttempt.address_hash == address_hash, StaffLoginAttempt.at == at)
            .limit(1)
        )
        attempt_id = found.scalar_one_or_none()
        if attempt_id is not None:
            await self._session.execute(
                delete(StaffLoginAttempt).where(StaffLoginAttempt.id == attempt_id)
            )

    async def attempts_since(self, address_hash: str, since: datetime) -> int:
        statement = select(func.count(StaffLoginAttempt.id)).where(
            StaffLoginAttempt.address_hash == address_hash, StaffLoginAttempt.at >= since
        )
        return int((await self._session.execute(statement)).scalar_one())

    async def forget_attempts_before(self, before: datetime) -> None:
        """Drop attempts too old to count: the table holds only the current window."""
        await self._session.execute(delete(StaffLoginAttempt).where(StaffLoginAttempt.at < before))

    async def end_expired_sessions(self, idle_before: datetime, created_before: datetime) -> int:
        """Drop sessions past their idle or absolute timeout; how many went."""
        done = await self._session.execute(
            delete(StaffSession).where(
                (StaffSession.last_seen_at < idle_before)
                | (StaffSession.created_at < created_before)
            )
        )
        return int(getattr(done, "rowcount", 0) or 0)
