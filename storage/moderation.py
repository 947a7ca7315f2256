"""The moderation queue and its audit trail. Like every repository, it never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import run_core
from storage.models import (
    Answer,
    ItemStatus,
    ModerationItem,
    ModerationLogEntry,
    ModerationReport,
    Participation,
    Question,
    Statement,
    Visibility,
)


def _report_target(contribution: Answer | Statement) -> ColumnElement[bool]:
    if isinstance(contribution, Answer):
        return ModerationReport.answer_id == contribution.id
    return ModerationReport.statement_id == contribution.id


# The trail's entry for a consultation's deletion; a link to it then says it ended.
CONSULTATION_DELETED = "consultation_deleted"
# The trail's entry for each consultation the staff chat was asked to delete.
DELETE_REMINDED = "delete_reminded"


# Screening counts on the path of every free-text answer: built once (building a statement cost
# more than SQLite needs to count).
_ANSWER_COPIES = (
    select(func.count())
    .select_from(Answer)
    .join(Question, Question.id == Answer.question_id)
    .where(
        Question.consultation_id == bindparam("b_consultation_id"),
        Answer.fingerprint == bindparam("b_fingerprint"),
    )
)
_RECENT_ANSWERS = (
    select(func.count())
    .select_from(Answer)
    .where(
        Answer.participation_id == bindparam("b_participation_id"),
        Answer.fingerprint.is_not(None),
        Answer.answered_at >= bindparam("b_since"),
    )
)


class ModerationRepository:
    """Moderation items, decisions on them, and the log of both."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, item: ModerationItem) -> ModerationItem:
        """Queue an item."""
        self._session.add(item)
        await self._session.flush()
        return item

    async def get(self, item_id: int) -> ModerationItem | None:
        """Return an item by id."""
        return await self._session.get(ModerationItem, item_id)

    async def decide(
        self, item_id: int, status: str, *, by: str, at: datetime, reason: str | None = None
    ) -> bool:
        """Record a decision if the item still waits; False if someone decided first.

        The check and the change are one UPDATE, so two moderators (or two processes) racing
        cannot both win.
        """
        result = await self._session.execute(
            update(ModerationItem)
            .where(ModerationItem.id == item_id, ModerationItem.status == ItemStatus.WAITING)
            .values(status=status, decided_by=by, decided_at=at, reason=reason)
            .execution_options(synchronize_session="fetch")
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def reload(self, item: ModerationItem) -> None:
        """Read an item again (another process may have decided it)."""
        await self._session.refresh(item)

    async def waiting(self, limit: int = 100) -> list[ModerationItem]:
        """Items that wait for a decision, oldest first."""
        statement = (
            select(ModerationItem)
            .where(ModerationItem.status == ItemStatus.WAITING)
            .order_by(ModerationItem.created_at, ModerationItem.id)
            .limit(limit)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def queue_size(self) -> tuple[int, datetime | None]:
        """How many items wait for a decision, and since when the oldest has waited."""
        statement = select(func.count(), func.min(ModerationItem.created_at)).where(
            ModerationItem.status == ItemStatus.WAITING
        )
        count, oldest = (await self._session.execute(statement)).one()
        return int(count), oldest

    async def due_for_digest(self, waited_since: datetime) -> list[ModerationItem]:
        """Waiting items older than a moment and not put in a digest since then."""
        statement = (
            select(ModerationItem)
            .where(
                ModerationItem.status == ItemStatus.WAITING,
                ModerationItem.created_at <= waited_since,
                or_(
                    ModerationItem.digested_at.is_(None),
                    ModerationItem.digested_at <= waited_since,
                ),
            )
            .order_by(ModerationItem.created_at)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def of_answer(self, answer_id: int) -> list[ModerationItem]:
        """The items about an answer, oldest first."""
        statement = (
            select(ModerationItem)
            .where(ModerationItem.answer_id == answer_id)
            .order_by(ModerationItem.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def of_statement(self, statement_id: int) -> list[ModerationItem]:
        """The items about a statement, oldest first."""
        statement = (
            select(ModerationItem)
            .where(ModerationItem.statement_id == statement_id)
            .order_by(ModerationItem.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def carded_of_consultation(self, consultation_id: int) -> list[ModerationItem]:
        """A consultation's items that had a card posted to the moderators' chat."""
        statement = (
            select(ModerationItem)
            .where(
                ModerationItem.consultation_id == consultation_id,
                ModerationItem.card_message_id.is_not(None),
            )
            .order_by(ModerationItem.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def of_participation(self, participation_id: int) -> list[ModerationItem]:
        """A participation's items, oldest first (the author's moderation history)."""
        statement = (
            select(ModerationItem)
            .where(ModerationItem.participation_id == participation_id)
            .order_by(ModerationItem.id)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def count_copies(self, consultation_id: int, fingerprint: str) -> int:
        """How many free-text answers in a consultation have this fingerprint (stored ones: the
        unit's own changes are not flushed first)."""
        parameters = {"b_consultation_id": consultation_id, "b_fingerprint": fingerprint}
        return int((await run_core(self._session, _ANSWER_COPIES, parameters)).scalar_one())

    async def count_recent(self, participation_id: int, since: datetime) -> int:
        """How many free-text answers a participation gave since a moment (stored ones)."""
        parameters = {"b_participation_id": participation_id, "b_since": since}
        return int((await run_core(self._session, _RECENT_ANSWERS, parameters)).scalar_one())

    async def contributions(self, participation_id: int) -> int:
        """How many free-text answers and statements a participation has."""
        answers = (
            select(func.count())
            .select_from(Answer)
            .where(Answer.participation_id == participation_id, Answer.fingerprint.is_not(None))
        )
        statements = (
            select(func.count())
            .select_from(Statement)
            .where(Statement.participation_id == participation_id)
        )
        return int((await self._session.execute(answers)).scalar_one()) + int(
            (await self._session.execute(statements)).scalar_one()
        )

    async def set_visibility(self, answer_id: int, visibility: str) -> None:
        """Show, hold or hide an answer."""
        await self._session.execute(
            update(Answer)
            .where(Answer.id == answer_id)
            .values(visibility=visibility)
            .execution_options(synchronize_session="fetch")
        )

    async def block(self, participation_id: int, at: datetime) -> None:
        """Stop a participation from contributing, and hide what still waits."""
        await self._session.execute(
            update(Participation)
            .where(Participation.id == participation_id)
            .values(blocked_at=at)
            .execution_options(synchronize_session="fetch")
        )
        waiting = select(ModerationItem.answer_id).where(
            ModerationItem.participation_id == participation_id,
            ModerationItem.status == ItemStatus.WAITING,
        )
        await self._session.execute(
            update(Answer)
            .where(Answer.id.in_(waiting))
            .values(visibility=Visibility.HIDDEN)
            .execution_options(synchronize_session="fetch")
        )
        waiting_statements = select(ModerationItem.statement_id).where(
            ModerationItem.participation_id == participation_id,
            ModerationItem.status == ItemStatus.WAITING,
        )
        await self._session.execute(
            update(Statement)
            .where(Statement.id.in_(waiting_statements))
            .values(visibility=Visibility.HIDDEN)
            .execution_options(synchronize_session="fetch")
        )

    async def add_report(
        self, contribution: Answer | Statement, reporter_id: int, reason: str, at: datetime
    ) -> bool:
        """Record a report; False if this participant already reported this contribution."""
        about = _report_target(contribution)
        existing = await self._session.execute(
            select(ModerationReport.id).where(
                about, ModerationReport.participation_id == reporter_id
            )
        )
        if existing.first() is not None:
            return False
        self._session.add(
            ModerationReport(
                answer_id=contribution.id if isinstance(contribution, Answer) else None,
                statement_id=contribution.id if isinstance(contribution, Statement) else None,
                participation_id=reporter_id,
                reason=reason,
                created_at=at,
            )
        )
        await self._session.flush()
        return True

    async def reports_by(
        self, participation_id: int
    ) -> list[tuple[ModerationReport, Statement | None]]:
        """The reports a participant made, oldest first, each with the statement it is about
        (None for a report of a free-text answer)."""
        statement = (
            select(ModerationReport, Statement)
            .outerjoin(Statement, Statement.id == ModerationReport.statement_id)
            .where(ModerationReport.participation_id == participation_id)
            .order_by(ModerationReport.id)
        )
        rows = await self._session.execute(statement)
        return [(report, reported) for report, reported in rows]

    async def report_reasons(self, contribution: Answer | Statement) -> dict[str, int]:
        """How many participants reported a contribution, by the reason they chose."""
        statement = (
            select(ModerationReport.reason, func.count())
            .where(_report_target(contribution))
            .group_by(ModerationReport.reason)
            .order_by(ModerationReport.reason)
        )
        return {reason: int(count) for reason, count in (await self._session.execute(statement))}

    async def decision_entry(self, item: ModerationItem) -> ModerationLogEntry | None:
        """The audit trail's entry of the decision on an item: who decided, by pseudonym."""
        statement = (
            select(ModerationLogEntry)
            .where(ModerationLogEntry.item_id == item.id, ModerationLogEntry.event == item.status)
            .order_by(ModerationLogEntry.id.desc())
            .limit(1)
        )
        return (await self._session.execute(statement)).scalars().first()

    async def count_reports(self, contribution: Answer | Statement) -> int:
        """How many participants reported a contribution."""
        statement = (
            select(func.count()).select_from(ModerationReport).where(_report_target(contribution))
        )
        return int((await self._session.execute(statement)).scalar_one())

    async def log(
        self,
        *,
        item_id: int | None,
        consultation: str,
        event: str,
        actor: str,
        author: str,
        at: datetime,
        before: str | None = None,
        after: str | None = None,
        reason: str | None = None,
        flags: Sequence[str] = (),
    ) -> None:
        """Add an entry to the audit trail."""
        self._session.add(
            ModerationLogEntry(
                item_id=item_id,
                consultation=consultation,
                event=event,
                actor=actor,
                author=author,
                before=before,
                after=after,
                reason=reason,
                flags=list(flags),
                at=at,
            )
        )
        await self._session.flush()

    async def log_page(
        self,
        *,
        event: str | None = None,
        actor: str | None = None,
        not_actor: str | None = None,
        consultation: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int | None = None,
    ) -> list[ModerationLogEntry]:
        """The audit trail newest first, filtered; ``actor`` matches a part of the actor,
        ``not_actor`` leaves one actor out."""
        statement = select(ModerationLogEntry).order_by(ModerationLogEntry.id.desc())
        if event:
            statement = statement.where(ModerationLogEntry.event == event)
        if actor:
            statement = statement.where(ModerationLogEntry.actor.contains(actor, autoescape=True))
        if not_actor:
            statement = statement.where(ModerationLogEntry.actor != not_actor)
        if consultation:
            statement = statement.where(ModerationLogEntry.consultation == consultation)
        if since is not None:
            statement = statement.where(ModerationLogEntry.at >= since)
        if until is not None:
            statement = statement.where(ModerationLogEntry.at < until)
        if before_id is not None:
            statement = statement.where(ModerationLogEntry.id < before_id)
        if limit is not None:
            statement = statement.limit(limit)
        return list((await self._session.execute(statement)).scalars().all())

    async def logged_since(self, event: str, since: datetime) -> bool:
        """Whether the trail has an entry of this kind at or after ``since``."""
        statement = select(ModerationLogEntry.id).where(
            ModerationLogEntry.event == event, ModerationLogEntry.at >= since
        )
        return (await self._session.execute(statement.limit(1))).first() is not None

    async def was_deleted(self, slug: str) -> bool:
        """Whether a consultation of this slug was deleted (the trail keeps its deletion)."""
        statement = select(ModerationLogEntry.id).where(
            ModerationLogEntry.event == CONSULTATION_DELETED,
            ModerationLogEntry.consultation == slug,
        )
        return (await self._session.execute(statement.limit(1))).first() is not None

    async def log_events(self) -> list[str]:
        """The kinds of entry the trail holds, for a filter's choices."""
        statement = select(ModerationLogEntry.event).distinct().order_by(ModerationLogEntry.event)
        return list((await self._session.execute(statement)).scalars().all())

    async def log_entries(self, since: datetime | None = None) -> list[ModerationLogEntry]:
        """The audit trail, oldest first."""
        statement = select(ModerationLogEntry).order_by(ModerationLogEntry.id)
        if since is not None:
            statement = statement.where(ModerationLogEntry.at >= since)
        return list((await self._session.execute(statement)).scalars().all())
