"""What the author of a moderated contribution hears, and how they write it anew."""

from __future__ import annotations

from collections.abc import Callable

from handlers import questionnaire as rules
from handlers.consultation.asking import ask
from handlers.consultation.sheet import (
    load_sheet,
    own_participation,
    round_is_open,
    set_active,
    stale,
)
from handlers.context import FlowContext, Texts, language_of
from handlers.events import Button, ChatAddress, Outcome, Reply
from handlers.ideas.writing import start_writing
from handlers.moderation.cards import ItemView
from handlers.moderation.intake import PREMODERATION
from handlers.payloads import RewriteContribution
from handlers.screening.rules import HIDE, HOLD
from storage.models import ItemStatus
from storage.uow import UnitOfWork


async def message_for_author(
    uow: UnitOfWork, texts_in: Callable[[str | None], Texts], view: ItemView, status: str
) -> tuple[ChatAddress, Reply] | None:
    """The message telling an author a decision on their contribution; None if none is due.

    In their language, in the chat where they took part.
    """
    item = view.item
    if item.participation_id is None:
        return None  # the author used /forget
    participation = await uow.participations.get(item.participation_id)
    if participation is None:
        return None
    participant = await uow.participants.by_id(participation.participant_id)
    if participant is None or participant.unreachable_at is not None:
        return None
    if status == ItemStatus.APPROVED and item.action not in (HOLD, HIDE, PREMODERATION):
        # The contribution was in use all along; nobody told the author it waited.
        return None
    t = texts_in(language_of(participant))
    question = rules.pick(view.question.text, t.language) if view.question else ""
    title = rules.pick(view.consultation.title, t.language)
    params = {"question": rules.shorten(question, 80), "title": title}
    # A statement is named by its own words; an answer by the question it answers.
    kind = "answer"
    if view.statement is not None:
        kind = "statement"
        params["statement"] = rules.shorten(view.text or "", 80)
    rewrite = (
        (
            Button(
                t(f"moderation.author.{kind}.rewrite"), payload=RewriteContribution(item.id).wire
            ),
        ),
    )
    buttons: tuple[tuple[Button, ...], ...] = ()
    if status == ItemStatus.APPROVED:
        text = t(f"moderation.author.{kind}.approved", **params)
    elif status == ItemStatus.HIDDEN:
        reason = (
            t(f"moderation.reason.{item.reason}")
            if item.reason
            else t("moderation.reason.guidelines")
        )
        text = t(f"moderation.author.{kind}.hidden", reason=reason, **params)
        buttons = rewrite
    elif status == ItemStatus.REPHRASE:
        text = t(f"moderation.author.{kind}.rephrase", **params)
        buttons = rewrite
    else:
        text = t("moderation.author.blocked", **params)
    return ChatAddress(participant.channel, participant.chat_id), Reply(text, buttons=buttons)


async def rewrite(ctx: FlowContext, outcome: Outcome, item_id: int) -> None:
    """The author asked to write a hidden or returned contribution anew: ask its question again."""
    item = await ctx.uow.moderation.get(item_id)
    participation = (
        await own_participation(ctx, item.participation_id)
        if item is not None and item.participation_id is not None
        else None
    )
    if (
        item is None
        or participation is None
        or item.status not in (ItemStatus.HIDDEN, ItemStatus.REPHRASE)
        or (item.answer_id is None and item.statement_id is None)
    ):
        stale(ctx, outcome)
        return
    outcome.ack(ctx.event.button_ack_ref)
    if participation.blocked_at is not None:
        outcome.say(ctx.t("moderation.blocked_here"))
        return
    if item.statement_id is not None:
        await start_writing(ctx, outcome, participation)
        return
    assert item.answer_id is not None
    sheet = await load_sheet(ctx, participation)
    if not await round_is_open(ctx, outcome, sheet.consultation):
        return
    answer = await ctx.uow.participations.answer(item.answer_id)
    question = sheet.question(answer.question_id) if answer is not None else None
    if question is None:
        stale(ctx, outcome)
        return
    await set_active(ctx, participation)
    ask(ctx, outcome, sheet, question)
