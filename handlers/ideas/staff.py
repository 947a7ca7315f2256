"""What staff do with statements outside the chat (the CLI now, a dashboard later).

Each function changes state in the caller's unit of work and returns the messages to send;
the caller queues them, commits, and the running bot delivers them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from handlers.context import Texts
from handlers.events import ChatAddress, Reply
from handlers.ideas.decisions import decision_messages
from handlers.moderation.author import message_for_author
from handlers.moderation.cards import load_view
from handlers.screening.rules import fingerprint
from storage.models import (
    Consultation,
    Decision,
    ItemStatus,
    Statement,
    StatementOrigin,
    Visibility,
)
from storage.uow import UnitOfWork

Messages = list[tuple[ChatAddress, Reply]]


class StaffError(Exception):
    """A staff request that cannot be done as asked; the message says why."""


async def add_staff_statement(
    uow: UnitOfWork, consultation: Consultation, text: dict[str, str], now: datetime
) -> Statement:
    """Seed a statement in staff's name; it is shown at once."""
    return await uow.ideas.add_statement(
        Statement(
            consultation_id=consultation.id,
            number=await uow.ideas.next_number(consultation.id, "statement"),
            participation_id=None,
            origin=StatementOrigin.STAFF,
            text=dict(text),
            language="da" if "da" in text else next(iter(text)),
            fingerprint=fingerprint(next(iter(text.values()))),
            visibility=Visibility.VISIBLE,
            wants_volunteers=False,
            created_at=now,
        )
    )


async def moderate(
    uow: UnitOfWork,
    statement: Statement,
    approve: bool,
    by: str,
    now: datetime,
    texts_in: Callable[[str | None], Texts],
) -> Messages:
    """Approve or hide a statement; decide what waits on it and tell its author."""
    consultation = await uow.consultations.get(statement.consultation_id)
    assert consultation is not None
    status = ItemStatus.APPROVED if approve else ItemStatus.HIDDEN
    visibility = Visibility.VISIBLE if approve else Visibility.HIDDEN
    before = statement.visibility
    messages: Messages = []
    waiting = [
        i for i in await uow.moderation.of_statement(statement.id) if i.status == ItemStatus.WAITING
    ]
    statement.visibility = visibility
    for item in waiting:
        if not await uow.moderation.decide(item.id, status, by=by, at=now):
            continue
        await uow.moderation.reload(item)
        message = await message_for_author(uow, texts_in, await load_view(uow, item), status)
        if message is not None:
            messages.append(message)
    await uow.moderation.log(
        item_id=waiting[0].id if waiting else None,
        consultation=consultation.slug,
        event=status,
        actor=by,
        author=await _author(uow, statement),
        before=before,
        after=visibility,
        at=now,
    )
    return messages


async def decide(
    uow: UnitOfWork,
    statement: Statement,
    decision: str,
    reason: str | None,
    merged_into: Statement | None,
    now: datetime,
    texts_in: Callable[[str | None], Texts],
) -> Messages:
    """Record staff's decision on a statement; return the news for its author and voters."""
    if decision not in Decision.ALL:
        raise StaffError(f"the decision must be one of {', '.join(Decision.ALL)}")
    if (decision == Decision.MERGED) != (merged_into is not None):
        raise StaffError("a merged statement needs --into NUMBER, and only a merged one")
    if merged_into is not None and merged_into.id == statement.id:
        raise StaffError("a statement cannot be merged into itself")
    if reason is not None and len(reason) > 500:
        raise StaffError(f"the reason is {len(reason)} characters; 500 allowed")
    statement.decision = decision
    statement.decision_reason = reason
    statement.merged_into_id = merged_into.id if merged_into is not None else None
    statement.decided_at = now
    return await decision_messages(uow, statement, texts_in)


async def _author(uow: UnitOfWork, statement: Statement) -> str:
    if statement.participation_id is None:
        return "staff" if statement.origin == StatementOrigin.STAFF else "anonymised"
    participation = await uow.participations.get(statement.participation_id)
    return participation.pseudonym if participation is not None else "anonymised"
