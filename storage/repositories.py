"""Repositories: every query the application runs. They flush when they must, never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    InboxEvent,
    InboxStatus,
    Lane,
    OutboxMessage,
    OutboxStatus,
    Participant,
)


class ParticipantRepository:
    """Participants, keyed by channel and chat."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, channel: str, chat_id: str) -> Participant | None:
        """Return the participant of a chat, if known."""
        statement = select(Participant).where(
            Participant.channel == channel, Participant.chat_id == chat_id
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def get_or_create(self, channel: str, chat_id: str, now: datetime) -> Participant:
        """Return the participant of a chat, creating it on first contact."""
        participant = await self.get(channel, chat_id)
        if participant is None:
            participant = Participant(
                channel=channel,
                chat_id=chat_id,
                state={},
                events_applied=0,
                created_at=now,
                last_seen_at=now,
            )
            self._session.add(participant)
            await self._session.flush()
        return participant

    async def mark_unreachable(self, channel: str, chat_id: str, now: datetime) -> None:
        """Remember that a chat refuses messages (the citizen blocked the bot)."""
        await self._session.execute(
            update(Participant)
            .where(Participant.channel == channel, Participant.chat_id == chat_id)
            .values(unreachable_at=now)
        )


class InboxRepository:
    """The durable inbox of inbound events."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_new(
        self, channel: str, events: Sequence[tuple[str, str | None, dict[str, Any]]], now: datetime
    ) -> set[str]:
        """Store events given as (external id, chat id, payload); return external ids of new ones.

        An event already stored (Telegram delivers again what it had no confirmation for) is
        ignored, so every event is applied at most once.
        """
        if not events:
            return set()
        rows = [
            {
                "channel": channel,
                "external_id": external_id,
                "chat_id": chat_id,
                "payload": payload,
                "status": InboxStatus.PENDING,
                "attempts": 0,
                "received_at": now,
            }
            for external_id, chat_id, payload in events
        ]
        dialect = self._session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(InboxEvent)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
            .returning(InboxEvent.external_id)
        )
        result = await self._session.execute(statement)
        return set(result.scalars().all())

    async def get(self, event_id: int) -> InboxEvent | None:
        """Return one event by id."""
        return await self._session.get(InboxEvent, event_id)

    async def find(self, channel: str, external_id: str) -> InboxEvent | None:
        """Return the event a channel knows by its own id."""
        statement = select(InboxEvent).where(
            InboxEvent.channel == channel, InboxEvent.external_id == external_id
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def pending(self, channel: str) -> list[InboxEvent]:
        """Return the events of a channel not yet handled, oldest first."""
        statement = (
            select(InboxEvent)
            .where(InboxEvent.channel == channel, InboxEvent.status == InboxStatus.PENDING)
            .order_by(InboxEvent.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def mark_done(self, event: InboxEvent, now: datetime, applied_sequence: int) -> None:
        """Record that an event was applied, and drop its raw copy."""
        event.status = InboxStatus.DONE
        event.handled_at = now
        event.applied_sequence = applied_sequence
        event.payload = None
        event.attempts += 1

    async def mark_failed(self, event_id: int, now: datetime, error: str) -> None:
        """Record a handling failure; the raw event stays for a retry or an inspection."""
        await self._session.execute(
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(
                status=InboxStatus.FAILED,
                handled_at=now,
                error=error[:200],
                attempts=InboxEvent.attempts + 1,
            )
        )

    async def count_by_status(self) -> dict[str, int]:
        """Count events per status."""
        statement = select(InboxEvent.status, func.count()).group_by(InboxEvent.status)
        rows = (await self._session.execute(statement)).all()
        return {status: count for status, count in rows}

    async def purge_handled_before(self, cutoff: datetime) -> int:
        """Delete handled events older than the cutoff; return how many."""
        result = await self._session.execute(
            delete(InboxEvent).where(
                InboxEvent.status == InboxStatus.DONE, InboxEvent.handled_at < cutoff
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


class OutboxRepository:
    """Messages waiting to be delivered, and what became of them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        channel: str,
        chat_id: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        lane: str = Lane.REPLY,
        inbox_event_id: int | None = None,
    ) -> OutboxMessage:
        """Queue one message."""
        message = OutboxMessage(
            channel=channel,
            chat_id=chat_id,
            lane=lane,
            inbox_event_id=inbox_event_id,
            payload=payload,
            status=OutboxStatus.PENDING,
            attempts=0,
            created_at=now,
        )
        self._session.add(message)
        await self._session.flush()
        return message

    async def pending_for_chat(self, channel: str, chat_id: str, lane: str) -> list[OutboxMessage]:
        """Return a chat's undelivered messages in one lane, in the order they were queued."""
        statement = (
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.lane == lane,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .order_by(OutboxMessage.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def chats_with_pending(self, channel: str, lane: str) -> list[str]:
        """Return the chats that have undelivered messages in one lane."""
        statement = (
            select(OutboxMessage.chat_id)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.lane == lane,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .group_by(OutboxMessage.chat_id)
            .order_by(func.min(OutboxMessage.id))
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def settle(
        self,
        message_id: int,
        status: str,
        now: datetime,
        *,
        external_message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of one delivery attempt that will not be repeated."""
        await self._session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(
                status=status,
                sent_at=now,
                external_message_id=external_message_id,
                error=error[:200] if error else None,
                attempts=OutboxMessage.attempts + 1,
            )
        )

    async def count_by_status(self) -> dict[str, int]:
        """Count messages per status."""
        statement = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        rows = (await self._session.execute(statement)).all()
        return {status: count for status, count in rows}

    async def purge_settled_before(self, cutoff: datetime) -> int:
        """Delete delivered or given-up messages older than the cutoff; return how many."""
        result = await self._session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.status != OutboxStatus.PENDING, OutboxMessage.sent_at < cutoff
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
