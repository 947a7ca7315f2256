"""One decision on a moderation item, with the same rules wherever it is made.

The moderator chat's buttons, the command line and the dashboard all call ``decide_item``: the
first decision wins, the contribution is shown or hidden, the audit trail gets its entry and the
author gets their message. Callers only differ in how they show the result; a decision made
outside the moderator chat (``decide_elsewhere``) also redraws the item's card there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.context import Texts
from handlers.events import ChatAddress, Reply
from handlers.moderation.author import message_for_author
from handlers.moderation.cards import ItemView, card_text, decided_footer, load_view
from handlers.moderation.intake import posted_card
from storage.models import ItemStatus, ModerationItem, Visibility
from storage.uow import UnitOfWork

# What a decision does to the contribution's visibility, by the action of the card's buttons:
# approve, hide, hide with a reason, ask to rephrase, block the author.
DECISIONS = {
    "a": (ItemStatus.APPROVED, Visibility.VISIBLE),
    "h": (ItemStatus.HIDDEN, Visibility.HIDDEN),
    "w": (ItemStatus.HIDDEN, Visibility.HIDDEN),
    "p": (ItemStatus.REPHRASE, Visibility.HELD),
    "B": (ItemStatus.BLOCKED, Visibility.HIDDEN),
}

# How a decision went.
DONE = "done"
TAKEN = "taken"  # someone decided first; nothing changed
WITHDRAWN = "withdrawn"  # the author withdrew or erased the text; nothing is left to decide

Message = tuple[ChatAddress, Reply]


@dataclass(frozen=True)
class Decided:
    """The result of a decision: how it went, and the messages for the author to send."""

    outcome: str
    view: ItemView
    messages: list[Message] = field(default_factory=list)


async def decide_item(
    uow: UnitOfWork,
    view: ItemView,
    action: str,
    reason: str | None,
    *,
    by: str,
    actor: str,
    now: datetime,
    texts_in: Callable[[str | None], Texts],
) -> Decided:
    """Apply a decision once; ``by`` is the name the card shows, ``actor`` the audit trail's."""
    item = view.item
    if item.status != ItemStatus.WAITING:
        return Decided(TAKEN, view)
    if view.text is None:
        await uow.moderation.decide(item.id, ItemStatus.RESUBMITTED, by=by, at=now)
        return Decided(WITHDRAWN, view)
    status, visibility = DECISIONS[action]
    contribution = view.contribution
    before = contribution.visibility if contribution is not None else None
    if not await uow.moderation.decide(item.id, status, by=by, at=now, reason=reason):
        # Another moderator or process decided between our read and our update.
        await uow.moderation.reload(item)
        return Decided(TAKEN, view)
    if view.answer is not None:
        await uow.moderation.set_visibility(view.answer.id, visibility)
    if view.statement is not None:
        view.statement.visibility = visibility
    if status == ItemStatus.BLOCKED and item.participation_id is not None:
        await uow.moderation.block(item.participation_id, now)
    await uow.moderation.log(
        item_id=item.id,
        consultation=view.consultation.slug,
        event=status,
        actor=actor,
        author=item.pseudonym,
        before=before,
        after=visibility,
        reason=reason,
        at=now,
    )
    message = await message_for_author(uow, texts_in, view, status)
    return Decided(DONE, view, [message] if message is not None else [])


async def card_update(
    uow: UnitOfWork, decided: Decided, texts_in: Callable[[str | None], Texts], zone: ZoneInfo
) -> Message | None:
    """The item's card as decided, replacing the one posted in the moderator chat (if any).

    The moderator chat redraws the card that was pressed; a decision made elsewhere needs this.
    A card not delivered yet (the moderators' chat was being rate-limited) is rewritten where it
    waits, so it goes out decided, without buttons.
    """
    item = decided.view.item
    t = texts_in(None)
    footer = (
        t("moderation.card.withdrawn")
        if decided.outcome == WITHDRAWN
        else decided_footer(t, item, zone)
    )
    text = f"{card_text(t, decided.view)}\n\n{footer}"
    if item.card_message_id is not None and await uow.outbox.rewrite_unsent(
        item.card_message_id, Reply(text).to_payload(), card=True
    ):
        return None
    posted = await posted_card(uow, item)
    if posted is None:
        return None
    address, reference = posted
    return address, Reply(text, edit_ref=reference)


async def decide_elsewhere(
    uow: UnitOfWork,
    item: ModerationItem,
    action: str,
    reason: str | None,
    *,
    by: str,
    actor: str,
    now: datetime,
    texts_in: Callable[[str | None], Texts],
    zone: ZoneInfo,
) -> Decided:
    """A decision made outside the moderator chat (command line, dashboard).

    Its messages are the author's news and, when the card was posted, the card redrawn as
    decided: the moderator chat sees it decided and nobody there decides it again.
    """
    decided = await decide_item(
        uow,
        await load_view(uow, item),
        action,
        reason,
        by=by,
        actor=actor,
        now=now,
        texts_in=texts_in,
    )
    if decided.outcome == TAKEN:
        return decided
    card = await card_update(uow, decided, texts_in, zone)
    return Decided(decided.outcome, decided.view, decided.messages + ([card] if card else []))
