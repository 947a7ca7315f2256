"""The content plan and its broadcasts: planned posts, their audiences, and bulk outbox rows.

Like every repository, it never commits. Claims are single UPDATE statements with the expected
old state in their WHERE clause, so two processes racing for one post or one message cannot both
win: the database decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Answer,
    Lane,
    OutboxMessage,
    OutboxStatus,
    Participant,
    Participation,
    ParticipationStatus,
    PlannedPost,
    PostState,
    Statement,
    Vote,
)


@dataclass(frozen=True)
class Recipient:
    """A chat a broadcast goes to, with what is needed to write in the right language."""

    channel: str
    chat_id: str
    language: str | None
    # When they last wrote: WhatsApp takes free-form messages only within 24 hours of it.
    last_seen_at: datetime | None = None


@dataclass(frozen=True)
class BulkResult:
    """What became of one bulk message's delivery attempt."""

    message_id: int
    status: str  # an OutboxStatus, or PENDING to try again at next_attempt_at
    error: str | None = None
    external_id: str | None = None
    next_attempt_at: datetime | None = None


# What a broadcast needs of a participant: the chat, and the language to write in.
_WHO = (
    Participant.channel,
    Participant.chat_id,
    Participant.language,
    Participant.state,
    Participant.last_seen_at,
)


def _reachable() -> Any:
    return and_(Participant.unreachable_at.is_(None), Participant.stopped_at.is_(None))


# Keys asked for in one statement: well below any database's limit on bound values.
KEYS_PER_QUERY = 500


class PlanRepository:
    """Planned posts and the recipients their audiences name."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, post: PlannedPost, *, at_once: bool = True) -> PlannedPost:
        """Store a new post: at once, or (``at_once=False``) with the unit's next flush, as a
        sheet's many posts are stored together (``store_added``)."""
        self._session.add(post)
        if at_once:
            await self._session.flush()
        return post

    async def store_added(self) -> None:
        """Store the posts added for later, all together; they have their ids from here on."""
        await self._session.flush()

    async def get(self, post_id: int) -> PlannedPost | None:
        """One post by id."""
        return await self._session.get(PlannedPost, post_id)

    async def get_for_update(self, post_id: int) -> PlannedPost | None:
        """One post to change, locked until commit: the publisher's claim waits for the change
        (and then sees it) instead of the change undoing a claim (PostgreSQL; SQLite has one
        writer at a time anyway)."""
        query = (
            select(PlannedPost)
            .where(PlannedPost.id == post_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self._session.execute(query)).scalar_one_or_none()

    async def between(self, start: datetime, end: datetime) -> list[PlannedPost]:
        """Every post due from ``start`` up to ``end`` (a calendar's week), by time."""
        query = (
            select(PlannedPost)
            .where(PlannedPost.due_at >= start, PlannedPost.due_at < end)
            .order_by(PlannedPost.due_at, PlannedPost.id)
        )
        return list((await self._session.execute(query)).scalars())

    async def by_key(self, key: str) -> PlannedPost | None:
        """The post a sheet row (or an automatic post) made, by its key."""
        query = select(PlannedPost).where(PlannedPost.key == key)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def by_keys(self, keys: Iterable[str]) -> dict[str, PlannedPost]:
        """The posts of many keys (a sheet's rows), by key; a key without a post is absent."""
        wanted = sorted(set(keys))
        found: dict[str, PlannedPost] = {}
        for start in range(0, len(wanted), KEYS_PER_QUERY):
            query = select(PlannedPost).where(
                PlannedPost.key.in_(wanted[start : start + KEYS_PER_QUERY])
            )
            for post in (await self._session.execute(query)).scalars():
                if post.key is not None:
                    found[post.key] = post
        return found

    async def listing(
        self, *, states: Iterable[str] | None = None, limit: int = 200
    ) -> list[PlannedPost]:
        """Posts by due time; only some states if asked."""
        query = select(PlannedPost).order_by(PlannedPost.due_at, PlannedPost.id).limit(limit)
        if states is not None:
            query = query.where(PlannedPost.state.in_(list(states)))
        return list((await self._session.execute(query)).scalars())

    async def of_consultation(
        self, consultation_id: int, states: Iterable[str]
    ) -> list[PlannedPost]:
        """A consultation's posts in some states."""
        query = (
            select(PlannedPost)
            .where(
                PlannedPost.consultation_id == consultation_id,
                PlannedPost.state.in_(list(states)),
            )
            .order_by(PlannedPost.id)
        )
        return list((await self._session.execute(query)).scalars())

    async def due(self, now: datetime, limit: int = 20) -> list[int]:
        """Ids of planned posts whose time has come, oldest first."""
        query = (
            select(PlannedPost.id)
            .where(PlannedPost.state == PostState.PLANNED, PlannedPost.due_at <= now)
            .order_by(PlannedPost.due_at, PlannedPost.id)
            .limit(limit)
        )
        return list((await self._session.execute(query)).scalars())

    async def claim(self, post_id: int, now: datetime) -> bool:
        """Take a due post for publishing; False if another run (or process) already did."""
        result = await self._session.execute(
            update(PlannedPost)
            .where(
                PlannedPost.id == post_id,
                PlannedPost.state == PostState.PLANNED,
                PlannedPost.due_at <= now,
            )
            .values(state=PostState.SENDING, started_at=now, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def cancel(self, post_id: int, now: datetime) -> bool:
        """Cancel a post that has not started; False if it already went out or was cancelled."""
        result = await self._session.execute(
            update(PlannedPost)
            .where(PlannedPost.id == post_id, PlannedPost.state == PostState.PLANNED)
            .values(state=PostState.CANCELLED, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def sending(self) -> list[PlannedPost]:
        """Posts going out now."""
        query = select(PlannedPost).where(PlannedPost.state == PostState.SENDING)
        return list((await self._session.execute(query.order_by(PlannedPost.id))).scalars())

    # -- audiences ------------------------------------------------------------------------------

    async def subscribers(self, consultation_id: int | None = None) -> list[Recipient]:
        """Reachable citizens who said yes to hearing back (in one consultation, or any)."""
        query = (
            select(*_WHO)
            .join(Participation, Participation.participant_id == Participant.id)
            .where(Participation.hear_back.is_(True), _reachable())
            .distinct()
        )
        if consultation_id is not None:
            query = query.where(Participation.consultation_id == consultation_id)
        return await self._recipients(query)

    async def unfinished(self, consultation_id: int) -> list[Recipient]:
        """Reachable citizens who gave consent and started, but did not finish or say stop."""
        query = (
            select(*_WHO)
            .join(Participation, Participation.participant_id == Participant.id)
            .where(
                Participation.consultation_id == consultation_id,
                Participation.status == ParticipationStatus.ANSWERING,
                Participation.consent_at.is_not(None),
                Participation.blocked_at.is_(None),
                _reachable(),
            )
        )
        return await self._recipients(query)

    async def segment(
        self, consultation_id: int, question_id: int, options: set[str]
    ) -> list[Recipient]:
        """Citizens who asked to hear back and answered a question with one of the options."""
        query = (
            select(*_WHO, Answer.value)
            .join(Participation, Participation.participant_id == Participant.id)
            .join(Answer, Answer.participation_id == Participation.id)
            .where(
                Participation.consultation_id == consultation_id,
                Participation.hear_back.is_(True),
                Answer.question_id == question_id,
                _reachable(),
            )
        )
        chosen: list[Recipient] = []
        rows = (await self._session.execute(query)).all()
        for channel, chat_id, language, state, seen, value in rows:
            values = value if isinstance(value, list) else [value]
            if options & {str(v) for v in values}:
                chosen.append(Recipient(channel, chat_id, _language(language, state), seen))
        return chosen

    async def concerned_by(self, statement: Statement) -> list[Recipient]:
        """Who hears of a statement's decision: its author unless they said no, and the voters
        who said yes to hearing back."""
        author = Participation.id == statement.participation_id
        voter = Participation.id.in_(
            select(Vote.participation_id).where(Vote.statement_id == statement.id)
        )
        query = (
            select(*_WHO)
            .join(Participation, Participation.participant_id == Participant.id)
            .where(
                or_(
                    and_(author, Participation.hear_back.is_not(False)),
                    and_(voter, Participation.hear_back.is_(True)),
                ),
                _reachable(),
            )
            .distinct()
        )
        return await self._recipients(query)

    async def _recipients(self, query: Any) -> list[Recipient]:
        rows = (await self._session.execute(query)).all()
        return [
            Recipient(channel, chat_id, _language(language, state), seen)
            for channel, chat_id, language, state, seen in rows
        ]

    # -- bulk outbox ----------------------------------------------------------------------------

    async def queue_bulk(
        self, post_id: int, messages: list[tuple[str, str, dict[str, Any]]], now: datetime
    ) -> None:
        """Queue one bulk message per (channel, chat id, payload), all tied to the post."""
        rows = [
            {
                "channel": channel,
                "chat_id": chat_id,
                "lane": Lane.BULK,
                "payload": payload,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "created_at": now,
                "post_id": post_id,
            }
            for channel, chat_id, payload in messages
        ]
        for start in range(0, len(rows), 1000):
            await self._session.execute(insert(OutboxMessage), rows[start : start + 1000])

    async def claim_bulk(
        self, channels: list[str], now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` bulk messages to send, holding them until the lease runs out.

        On PostgreSQL, rows another sender is claiming at this instant are skipped, not waited
        for; the UPDATE checks the claim again, so a row is never held by two senders.
        """
        free = or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now)
        ready = or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now)
        candidates = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.lane == Lane.BULK,
                OutboxMessage.channel.in_(channels),
                free,
                ready,
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await self._session.execute(candidates)).scalars())
        if not ids:
            return []
        until = now + lease
        await self._session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.PENDING, free)
            .values(claimed_until=until)
        )
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_until == until)
            .order_by(OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
        return list((await self._session.execute(query)).scalars())

    async def settle_bulk(self, results: list[BulkResult], now: datetime) -> None:
        """Record what became of bulk deliveries; a message to try again is released."""
        for result in results:
            values: dict[str, Any] = {"claimed_until": None, "attempts": OutboxMessage.attempts + 1}
            if result.status == OutboxStatus.PENDING:
                values["next_attempt_at"] = result.next_attempt_at
                values["error"] = (result.error or "")[:200] or None
            else:
                values.update(
                    status=result.status,
                    sent_at=now,
                    external_message_id=result.external_id,
                    error=(result.error or "")[:200] or None,
                )
                if result.status != OutboxStatus.FAILED:
                    # Delivered or undeliverable: the text is the post's, kept there.
                    values["payload"] = {"cleared": True}
            await self._session.execute(
                update(OutboxMessage).where(OutboxMessage.id == result.message_id).values(**values)
            )

    async def give_up_chat(self, channel: str, chat_id: str, now: datetime) -> None:
        """A chat refused us: settle its other pending bulk messages as unreachable."""
        await self._session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.lane == Lane.BULK,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .values(
                status=OutboxStatus.UNREACHABLE,
                sent_at=now,
                claimed_until=None,
                error="recipient unreachable",
                payload={"cleared": True},
            )
        )

    async def delivery_counts(self, post_id: int) -> dict[str, int]:
        """How many of a post's messages are pending, sent, unreachable, failed."""
        query = (
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.post_id == post_id)
            .group_by(OutboxMessage.status)
        )
        return {status: int(count) for status, count in (await self._session.execute(query)).all()}

    async def failure_reasons(self, post_id: int, limit: int = 3) -> list[tuple[str, int]]:
        """The most common reasons a post's messages failed, with how many each."""
        query = (
            select(OutboxMessage.error, func.count())
            .where(OutboxMessage.post_id == post_id, OutboxMessage.status == OutboxStatus.FAILED)
            .group_by(OutboxMessage.error)
            .order_by(func.count().desc())
            .limit(limit)
        )
        return [(error or "?", int(n)) for error, n in (await self._session.execute(query)).all()]


def _language(chosen: str | None, state: dict[str, Any] | None) -> str | None:
    """The language chosen, else the one last written in (handlers.context.language_of)."""
    return chosen or (state or {}).get("last_language")
