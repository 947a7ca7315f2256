"""The moderator chat: one-tap decisions, the queue, and the digest of items that wait too long."""

from __future__ import annotations

from datetime import datetime, timedelta

from handlers import common
from handlers import questionnaire as rules
from handlers.context import FlowContext, ModerationDesk, Texts
from handlers.events import Button, ChatAddress, Outcome, Reply
from handlers.moderation.cards import (
    REASONS,
    ItemView,
    block_buttons,
    card_text,
    decided_footer,
    decision_buttons,
    load_view,
    reason_buttons,
)
from handlers.moderation.decision import DECISIONS, TAKEN, WITHDRAWN, decide_item
from handlers.moderation.intake import post_card
from handlers.payloads import (
    HideWithReason,
    ModerationAction,
    ModerationButton,
    ModeratorButton,
    parse,
)
from storage.models import ItemStatus, ModerationItem
from storage.uow import UnitOfWork

# Telegram shows at most 200 characters in an alert.
ALERT_LIMIT = 200
# Cards /queue shows at once; the rest follow when these are decided.
QUEUE_PAGE = 10
QUEUE_COMMANDS = {"queue", "koe", "kø"}


def is_moderator_chat(ctx: FlowContext) -> bool:
    """Whether the event comes from the moderator chat."""
    chat = ctx.moderation.chat
    return chat is not None and ChatAddress(ctx.event.channel, ctx.event.chat_id) == chat


async def handle(ctx: FlowContext, outcome: Outcome) -> None:
    """Handle a command or a button press in the moderator chat; other talk is not for us."""
    event = ctx.event
    if not (event.is_command or event.is_button):
        return
    if common.refuse_unverified(ctx, outcome, "moderation.unverified", "moderation.refused"):
        return
    if event.is_command:
        if event.command in QUEUE_COMMANDS:
            await show_queue(ctx, outcome)
        else:
            outcome.say(ctx.t("moderation.help"))
        return
    assert event.button is not None
    pressed = parse(event.button)
    if isinstance(pressed, ModeratorButton):
        await press(ctx, outcome, pressed)
    else:
        outcome.ack(event.button_ack_ref, ctx.t("button.stale"), alert=True)


async def show_queue(ctx: FlowContext, outcome: Outcome) -> None:
    """List what waits, oldest first, each as a card to decide on."""
    waiting = await ctx.uow.moderation.waiting(limit=1000)
    if not waiting:
        outcome.say(ctx.t("moderation.queue_empty"))
        return
    oldest = waited(ctx.t, ctx.now - waiting[0].created_at)
    outcome.say(ctx.t.n("moderation.queue_head", len(waiting), oldest=oldest))
    for item in waiting[:QUEUE_PAGE]:
        # A card posted here: the moderator chat is this chat.
        await post_card(ctx, outcome, item)


async def press(ctx: FlowContext, outcome: Outcome, button: ModeratorButton) -> None:
    """A card's button; a stale one (or a reason no longer offered) gets a polite no."""
    event = ctx.event
    reason = button.reason if isinstance(button, HideWithReason) else None
    known = reason is None or reason in REASONS
    item = await ctx.uow.moderation.get(button.item_id) if known else None
    if item is None:
        outcome.ack(event.button_ack_ref, ctx.t("button.stale"), alert=True)
        return
    view = await load_view(ctx.uow, item)
    action = (
        button.action if isinstance(button, ModerationButton) else ModerationAction.HIDE_WITH_REASON
    )
    if item.status != ItemStatus.WAITING:
        # Someone decided first: say who, and show the card as decided. Nothing happens twice.
        outcome.ack(event.button_ack_ref, _decided(ctx, item), alert=True)
        _show(ctx, outcome, view, footer=_decided(ctx, item))
        return
    if action == ModerationAction.SHOW_PERSONAL_DATA:
        await _reveal(ctx, outcome, view)
    elif action == ModerationAction.CHOOSE_REASON:
        outcome.ack(event.button_ack_ref)
        _show(ctx, outcome, view, buttons=reason_buttons(ctx.t, item.id))
    elif action == ModerationAction.ASK_BLOCK:
        outcome.ack(event.button_ack_ref)
        _show(
            ctx,
            outcome,
            view,
            buttons=block_buttons(ctx.t, item.id),
            footer=ctx.t("moderation.block_question"),
        )
    elif action == ModerationAction.BACK:
        outcome.ack(event.button_ack_ref)
        _show(ctx, outcome, view, buttons=decision_buttons(ctx.t, view))
    elif action in DECISIONS:
        await decide(ctx, outcome, view, action, reason)
    else:
        outcome.ack(event.button_ack_ref, ctx.t("button.stale"), alert=True)


async def decide(
    ctx: FlowContext, outcome: Outcome, view: ItemView, action: str, reason: str | None
) -> None:
    """Apply a decision once: the first moderator wins, the card and the author are told."""
    event = ctx.event
    decided = await decide_item(
        ctx.uow,
        view,
        action,
        reason,
        by=_name(ctx),
        actor=_moderator(ctx),
        now=ctx.now,
        texts_in=ctx.texts_in,
    )
    if decided.outcome == WITHDRAWN:
        outcome.ack(event.button_ack_ref, ctx.t("moderation.card.withdrawn"), alert=True)
        _show(ctx, outcome, view, footer=ctx.t("moderation.card.withdrawn"))
        return
    if decided.outcome == TAKEN:
        outcome.ack(event.button_ack_ref, _decided(ctx, view.item), alert=True)
        _show(ctx, outcome, view, footer=_decided(ctx, view.item))
        return
    status = view.item.status
    outcome.ack(event.button_ack_ref, ctx.t(f"moderation.done.{status}"))
    _show(ctx, outcome, view, footer=_decided(ctx, view.item))
    for address, reply in decided.messages:
        outcome.send_to(address, reply)


async def _reveal(ctx: FlowContext, outcome: Outcome, view: ItemView) -> None:
    """Show the masked personal data to the moderator who asked, and to nobody else."""
    event = ctx.event
    shown = " · ".join(view.personal_data())
    outcome.ack(event.button_ack_ref, rules.shorten(shown, ALERT_LIMIT), alert=True)
    await ctx.uow.moderation.log(
        item_id=view.item.id,
        consultation=view.consultation.slug,
        event="revealed",
        actor=_moderator(ctx),
        author=view.item.pseudonym,
        at=ctx.now,
    )


def _show(
    ctx: FlowContext,
    outcome: Outcome,
    view: ItemView,
    buttons: tuple[tuple[Button, ...], ...] = (),
    footer: str | None = None,
) -> None:
    """Redraw the pressed card with other buttons or a last line."""
    reference = ctx.event.button_message_ref
    if reference is None:
        return
    text = card_text(ctx.t, view) + (f"\n\n{footer}" if footer else "")
    outcome.edit(reference, text, buttons)


def _name(ctx: FlowContext) -> str:
    return (ctx.event.sender_name or "?")[:64]


def _decided(ctx: FlowContext, item: ModerationItem) -> str:
    return decided_footer(ctx.t, item, ctx.zone)


def _moderator(ctx: FlowContext) -> str:
    """The deciding moderator as the audit trail names them: a pseudonym."""
    return f"moderator {ctx.staff_pseudonym()}"


def waited(t: Texts, span: timedelta) -> str:
    """How long an item has waited, in minutes or hours and minutes."""
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 60:
        return t("moderation.age_minutes", minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    return t("moderation.age_hours", hours=hours, minutes=minutes)


async def digest(uow: UnitOfWork, t: Texts, desk: ModerationDesk, now: datetime) -> Reply | None:
    """A reminder for moderators (the chat, the dashboard's by e-mail) when items wait longer
    than the desk allows; the items it names are not named again until they wait that long."""
    overdue = await uow.moderation.due_for_digest(
        now - timedelta(minutes=desk.digest_after_minutes)
    )
    if not overdue:
        return None
    waiting = await uow.moderation.waiting(limit=1000)
    for item in overdue:
        item.digested_at = now
    oldest = waited(t, now - waiting[0].created_at) if waiting else waited(t, timedelta())
    return Reply(t("moderation.digest", count=len(waiting), overdue=len(overdue), oldest=oldest))
