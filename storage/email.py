"""E-mail addresses for hearing back: given, confirmed by a link, used, and erased.

Like every repository, it never commits. An address is a recipient only once confirmed; erasing
one also drops the messages still queued for it, so nothing goes out after an unsubscribe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import EmailAddress, OutboxMessage, OutboxStatus, Participant, WebMessage
from storage.plan import Recipient, _language

# The channel name e-mail messages are queued under; their chat id is the address's row id.
EMAIL_CHANNEL = "email"
# Chats looked up per query when matching a broadcast's web recipients.
_CHUNK = 500


class EmailRepository:
    """Web participants' e-mail addresses."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of_participant(self, participant_id: int) -> EmailAddress | None:
        """The address a participant gave, confirmed or not."""
        query = select(EmailAddress).where(EmailAddress.participant_id == participant_id)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def get(self, address_id: int) -> EmailAddress | None:
        """One address by id."""
        return await self._session.get(EmailAddress, address_id)

    async def give(
        self,
        participant_id: int,
        address: str,
        token_hash: str,
        expires_at: datetime,
        now: datetime,
    ) -> EmailAddress:
        """Store an address waiting for confirmation; it replaces one given before."""
        await self.erase_participant(participant_id)
        row = EmailAddress(
            participant_id=participant_id,
            address=address,
            token_hash=token_hash,
            token_expires_at=expires_at,
            confirmed_at=None,
            created_at=now,
        )
        self._session.add(row)
        await self._session.flush()
        return row

    async def confirm(self, token_hash: str, now: datetime) -> bool:
        """Confirm the address a link's token belongs to, once and before it expires."""
        result = await self._session.execute(
            update(EmailAddress)
            .where(
                EmailAddress.token_hash == token_hash,
                EmailAddress.token_expires_at > now,
                EmailAddress.confirmed_at.is_(None),
            )
            .values(confirmed_at=now, token_hash=None, token_expires_at=None)
        )
        return bool(getattr(result, "rowcount", 0))

    async def purge_unconfirmed(self, now: datetime) -> int:
        """Erase addresses whose confirmation link expired unused; return how many."""
        result = await self._session.execute(
            delete(EmailAddress).where(
                EmailAddress.confirmed_at.is_(None), EmailAddress.token_expires_at <= now
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def erase(self, address_id: int) -> bool:
        """Delete an address and what is still queued for it; False if it was gone already."""
        await self._drop_queued([address_id])
        result = await self._session.execute(
            delete(EmailAddress).where(EmailAddress.id == address_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def erase_participant(self, participant_id: int) -> None:
        """Delete a participant's address and what is still queued for it (/forget)."""
        ids = list(
            (
                await self._session.execute(
                    select(EmailAddress.id).where(EmailAddress.participant_id == participant_id)
                )
            ).scalars()
        )
        if not ids:
            return
        await self._drop_queued(ids)
        await self._session.execute(delete(EmailAddress).where(EmailAddress.id.in_(ids)))
        await self._session.flush()

    async def _drop_queued(self, ids: Sequence[int]) -> None:
        await self._session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.channel == EMAIL_CHANNEL,
                OutboxMessage.chat_id.in_([str(i) for i in ids]),
                OutboxMessage.status == OutboxStatus.PENDING,
            )
        )

    async def confirmed_for_web(self, chat_ids: Sequence[str]) -> list[Recipient]:
        """The confirmed addresses of web participants among these chats, as e-mail recipients."""
        recipients: list[Recipient] = []
        for start in range(0, len(chat_ids), _CHUNK):
            query = (
                select(EmailAddress.id, Participant.language, Participant.state)
                .join(Participant, Participant.id == EmailAddress.participant_id)
                .where(
                    Participant.channel == "web",
                    Participant.chat_id.in_(list(chat_ids[start : start + _CHUNK])),
                    EmailAddress.confirmed_at.is_not(None),
                )
                .order_by(EmailAddress.id)
            )
            recipients.extend(
                Recipient(EMAIL_CHANNEL, str(address_id), _language(language, state))
                for address_id, language, state in (await self._session.execute(query)).all()
            )
        return recipients

    async def hide_typed(self, chat_id: str, typed: str, shown_instead: str) -> None:
        """Replace the address in the web transcript where the participant typed it.

        The address belongs in its table only; the page keeps showing the conversation.
        """
        await self._session.execute(
            update(WebMessage)
            .where(
                WebMessage.chat_id == chat_id,
                WebMessage.author == "citizen",
                WebMessage.text == typed,
            )
            .values(text=shown_instead)
        )
