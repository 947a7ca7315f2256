"""What staff do with statements outside the chat (the CLI now, a dashboard later).

Each function changes state in the caller's unit of work and returns the messages to send;
the caller queues them, commits, and the running bot delivers them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.context import Texts
from handlers.events import ChatAddress, Reply
from handlers.ideas.decisions import decision_messages
from handlers.moderation.cards import load_view
from handlers.moderation.decision import DONE, card_update, decide_item
from handlers.screening.rules import HIDE, HOLD, REVIEW, fingerprint
from storage.models import (
    Consultation,
    Decision,
    ItemStatus,
    ModerationItem,
    Statement,
    StatementOrigin,
    Visibility,
)
from storage.uow import UnitOfWork

Messages = list[tuple[ChatAddress, Reply]]
UTC_ZONE = ZoneInfo("UTC")


class StaffError(Exception):
    """A staff request that cannot be done as asked; the message says why."""


class NotShown(StaffError):
    """A statement moderation hid or holds: no decision is told about it."""

    def __init__(self, statement: Statement) -> None:
        super().__init__(
            f"statement {statement.number} is {statement.visibility} by moderation; "
            "a decision can be recorded once it is shown"
        )
        self.statement = statement


class AlreadyDecided(StaffError):
    """Someone decided on the item first (in the moderator chat, or another command)."""

    def __init__(self, item: ModerationItem) -> None:
        super().__init__(f"item {item.id} was decided first by {item.decided_by}")
        self.item = item


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
    zone: ZoneInfo = UTC_ZONE,
) -> Messages:
    """Approve or hide a statement as a moderator would; return the author's news and the card.

    What waits on the statement is decided; a statement nothing waits on (one in use, or one
    decided before) gets an item of its own, so its author hears it the same way.
    """
    waiting = [
        i for i in await uow.moderation.of_statement(statement.id) if i.status == ItemStatus.WAITING
    ]
    # A statement shown at once may still wait for a look afterwards: approving it settles that.
    visibility = Visibility.VISIBLE if approve else Visibility.HIDDEN
    if not waiting and statement.visibility == visibility:
        raise StaffError(
            f"statement {statement.number} is already {'shown' if approve else 'hidden'}"
        )
    item = waiting[0] if waiting else await _staff_item(uow, statement, now)
    decided = await decide_item(
        uow,
        await load_view(uow, item),
        "a" if approve else "h",
        None,
        by=by,
        actor=by,
        now=now,
        texts_in=texts_in,
    )
    if decided.outcome != DONE:
        raise AlreadyDecided(item)
    card = await card_update(uow, decided, texts_in, zone)
    return decided.messages + ([card] if card is not None else [])


async def _staff_item(uow: UnitOfWork, statement: Statement, now: datetime) -> ModerationItem:
    """An item for staff's decision on a statement that nothing waits on."""
    action = {Visibility.HELD: HOLD, Visibility.HIDDEN: HIDE}.get(statement.visibility, REVIEW)
    return await uow.moderation.add(
        ModerationItem(
            consultation_id=statement.consultation_id,
            statement_id=statement.id,
            participation_id=statement.participation_id,
            pseudonym=await _author(uow, statement),
            flags=[],
            action=action,
            status=ItemStatus.WAITING,
            reports=0,
            created_at=now,
        )
    )


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
    for decided in (statement, merged_into):
        # The news quotes the statement to its author and voters: a text moderation took down
        # (personal data, an insult) or has not yet let through is not sent out again.
        if decided is not None and decided.visibility != Visibility.VISIBLE:
            raise NotShown(decided)
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
