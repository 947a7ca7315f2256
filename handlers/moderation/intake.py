"""Screening a contribution as it arrives, and queueing it for moderators when it needs them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from handlers.context import FlowContext
from handlers.events import ChatAddress, Outcome, Reply
from handlers.moderation.cards import card_text, decision_buttons, load_view
from handlers.screening.rules import (
    ALLOW,
    HIDE,
    HOLD,
    History,
    Screening,
    decide,
    fingerprint,
)
from storage.models import (
    Answer,
    Consultation,
    ItemStatus,
    ModerationItem,
    Participation,
    Statement,
    StatementOrigin,
    Visibility,
)
from storage.uow import UnitOfWork

VISIBILITY = {ALLOW: Visibility.VISIBLE, "review": Visibility.VISIBLE, HOLD: Visibility.HELD}
# The action of an item that waits only because the consultation pre-moderates statements.
PREMODERATION = "pre"

Contribution = Answer | Statement


async def screen_answer(
    ctx: FlowContext, consultation: Consultation, participation: Participation, answer: Answer
) -> Screening:
    """Screen a free-text answer before it is stored; set its fingerprint and visibility."""
    text = str(answer.value)
    key = fingerprint(text)
    window = timedelta(minutes=ctx.screener.limits.flood_minutes)
    history = History(
        same_text_before=await ctx.uow.moderation.count_copies(consultation.id, key),
        author_recent=await ctx.uow.moderation.count_recent(participation.id, ctx.now - window),
    )
    result = ctx.screener.screen(
        text, languages=consultation.languages, history=history, policy=consultation.moderation
    )
    answer.fingerprint = key
    answer.visibility = VISIBILITY.get(result.action, Visibility.HIDDEN)
    return result


async def screen_statement(
    ctx: FlowContext, consultation: Consultation, participation: Participation, text: str
) -> tuple[Screening, str]:
    """Screen a statement before it is stored; return the result and the text's fingerprint."""
    key = fingerprint(text)
    window = timedelta(minutes=ctx.screener.limits.flood_minutes)
    since = ctx.now - window
    history = History(
        same_text_before=await ctx.uow.ideas.count_copies(consultation.id, key),
        author_recent=await ctx.uow.moderation.count_recent(participation.id, since)
        + await ctx.uow.ideas.count_recent(participation.id, since),
    )
    result = ctx.screener.screen(
        text, languages=consultation.languages, history=history, policy=consultation.moderation
    )
    return result, key


async def queue_for_review(
    ctx: FlowContext,
    outcome: Outcome,
    consultation: Consultation,
    participation: Participation,
    contribution: Contribution,
    result: Screening,
    action: str | None = None,
) -> None:
    """Record a flagged (or pre-moderated) contribution, show it to moderators, tell the author.

    ``action`` overrides screening's action: a pre-moderated statement waits even when clean.
    """
    item = await ctx.uow.moderation.add(
        ModerationItem(
            consultation_id=consultation.id,
            answer_id=contribution.id if isinstance(contribution, Answer) else None,
            statement_id=contribution.id if isinstance(contribution, Statement) else None,
            participation_id=participation.id,
            pseudonym=participation.pseudonym,
            flags=[asdict(flag) for flag in result.flags],
            action=action or result.action,
            status=ItemStatus.WAITING,
            reports=0,
            created_at=ctx.now,
        )
    )
    await ctx.uow.moderation.log(
        item_id=item.id,
        consultation=consultation.slug,
        event="screened",
        actor="screening",
        author=participation.pseudonym,
        after=contribution.visibility,
        reason=item.action,
        flags=result.kinds,
        at=ctx.now,
    )
    await post_card(ctx, outcome, item)
    if result.action in (HOLD, HIDE):
        # The reason is a flag that called for this action: a health detail merely reviewed
        # does not explain why a phone number is held.
        deciding = [
            f for f in result.flags if decide([f], consultation.moderation) == result.action
        ]
        category = deciding[0].category if deciding else "spam"
        why = ctx.t(f"moderation.why.{category}")
        if isinstance(contribution, Statement):
            outcome.say(ctx.t("moderation.held_statement", why=why))
        else:
            outcome.say(ctx.t("moderation.held", why=why))


async def post_card(ctx: FlowContext, outcome: Outcome, item: ModerationItem) -> None:
    """Send an item's card to the moderator chat (if there is one) and remember the message."""
    chat = ctx.moderation.chat
    if chat is None:
        return
    t = ctx.texts_in(None)
    view = await load_view(ctx.uow, item)

    async def remember(outbox_id: int) -> None:
        item.card_message_id = outbox_id

    outcome.send_to(
        chat,
        Reply(card_text(t, view), buttons=decision_buttons(t, view), on_queued=remember),
    )


async def withdraw(ctx: FlowContext, outcome: Outcome, answer: Answer) -> None:
    """The author replaces an answer: close what waits on it, note a rewrite of what was decided.

    The card in the moderator chat says which, so nobody decides on a text that is gone.
    """
    t = ctx.texts_in(None)
    for item in await ctx.uow.moderation.of_answer(answer.id):
        if item.status == ItemStatus.WAITING:
            await close_withdrawn(ctx, item, answer.visibility)
            footer = t("moderation.card.replaced")
        elif item.status in (ItemStatus.HIDDEN, ItemStatus.REPHRASE):
            await _log_by_author(ctx, item, "resubmitted", answer.visibility)
            footer = t("moderation.card.rewritten")
        else:
            continue
        await edit_card(ctx, outcome, item, footer)


async def close_withdrawn(ctx: FlowContext, item: ModerationItem, before: str) -> None:
    """Close an item that waits for a decision on a text its author took back (changed, no
    longer asked for, or erased with /forget): nobody is to decide on a text that is gone,
    and the queue, its oldest age and the reminders count only what still waits."""
    await ctx.uow.moderation.decide(item.id, ItemStatus.RESUBMITTED, by=item.pseudonym, at=ctx.now)
    await _log_by_author(ctx, item, "withdrawn", before)


async def _log_by_author(ctx: FlowContext, item: ModerationItem, event: str, before: str) -> None:
    await ctx.uow.moderation.log(
        item_id=item.id,
        consultation=await _slug(ctx, item.consultation_id),
        event=event,
        actor=f"citizen {item.pseudonym}",
        author=item.pseudonym,
        before=before,
        at=ctx.now,
    )


async def posted_card(uow: UnitOfWork, item: ModerationItem) -> tuple[ChatAddress, str] | None:
    """Where an item's card was posted and delivered: its chat and the card's message there."""
    if item.card_message_id is None:
        return None
    card = await uow.outbox.card(item.card_message_id)
    if card is None or card.external_message_id is None:
        return None
    return ChatAddress(card.channel, card.chat_id), card.external_message_id


async def _posted_card(ctx: FlowContext, item: ModerationItem) -> tuple[ChatAddress, str] | None:
    """Where an item's card was posted, while there is a moderator chat to edit it in."""
    if ctx.moderation.chat is None:
        return None
    return await posted_card(ctx.uow, item)


async def erase_card(ctx: FlowContext, outcome: Outcome, item: ModerationItem) -> None:
    """Replace an item's card with a note that its author erased it: the text leaves the chat.

    A card not yet delivered (the moderators' chat was being rate-limited) is rewritten where
    it waits, so the text is never sent at all.
    """
    erased = ctx.texts_in(None)("moderation.card.erased", id=item.id)
    if item.card_message_id is not None and await ctx.uow.outbox.rewrite_unsent(
        item.card_message_id, Reply(erased).to_payload(), card=True
    ):
        return
    posted = await _posted_card(ctx, item)
    if posted is not None:
        outcome.send_to(posted[0], Reply(erased, edit_ref=posted[1]))


async def edit_card(ctx: FlowContext, outcome: Outcome, item: ModerationItem, footer: str) -> None:
    """Replace an item's card with its text and a last line, without buttons."""
    posted = await _posted_card(ctx, item)
    if posted is not None:
        view = await load_view(ctx.uow, item)
        text = f"{card_text(ctx.texts_in(None), view)}\n\n{footer}"
        outcome.send_to(posted[0], Reply(text, edit_ref=posted[1]))


def _no_author(contribution: Answer | Statement) -> str:
    """Who the audit trail names for a contribution no participation holds: the staff's seeded
    statements and imported ones had no citizen author; a citizen's was anonymised by /forget."""
    if isinstance(contribution, Statement) and contribution.origin != StatementOrigin.CITIZEN:
        return str(contribution.origin)
    return "anonymised"


async def _slug(ctx: FlowContext, consultation_id: int) -> str:
    consultation = await ctx.uow.consultations.get(consultation_id)
    return consultation.slug if consultation is not None else "?"


REPORT_REASONS = ("offensive", "personal_data", "spam", "off_topic")
DEFAULT_REPORTS_TO_HOLD = 3
# The action recorded for an item that citizens' reports, not screening, put on hold.
REPORTED = "reported"


async def report(
    ctx: FlowContext,
    outcome: Outcome,
    consultation: Consultation,
    reporter: Participation,
    contribution: Contribution,
    reason: str,
) -> str:
    """A citizen reports someone else's contribution; enough reports hold it for a moderator.

    Returns what happened: "own" (nobody reports themselves), "again" (one report per citizen
    and contribution), "counted", or "held" (this report reached the consultation's limit).
    """
    if contribution.participation_id == reporter.id:
        return "own"
    if not await ctx.uow.moderation.add_report(contribution, reporter.id, reason, ctx.now):
        return "again"
    count = await ctx.uow.moderation.count_reports(contribution)
    author = (
        await ctx.uow.participations.get(contribution.participation_id)
        if contribution.participation_id is not None
        else None
    )
    pseudonym = author.pseudonym if author is not None else _no_author(contribution)
    actor = f"citizen {reporter.pseudonym}"
    items = (
        await ctx.uow.moderation.of_answer(contribution.id)
        if isinstance(contribution, Answer)
        else await ctx.uow.moderation.of_statement(contribution.id)
    )
    waiting = next((item for item in items if item.status == ItemStatus.WAITING), None)
    if waiting is not None:
        waiting.reports = count
    await ctx.uow.moderation.log(
        item_id=waiting.id if waiting else None,
        event="reported",
        before=contribution.visibility,
        after=contribution.visibility,
        reason=reason,
        consultation=consultation.slug,
        actor=actor,
        author=pseudonym,
        at=ctx.now,
    )
    limit = int(consultation.moderation.get("reports_to_hold", DEFAULT_REPORTS_TO_HOLD))
    # Held once, when the limit is reached: a moderator who then approves it has the last word.
    if waiting is not None or count != limit or contribution.visibility != Visibility.VISIBLE:
        return "counted"
    contribution.visibility = Visibility.HELD
    item = await ctx.uow.moderation.add(
        ModerationItem(
            consultation_id=consultation.id,
            answer_id=contribution.id if isinstance(contribution, Answer) else None,
            statement_id=contribution.id if isinstance(contribution, Statement) else None,
            participation_id=contribution.participation_id,
            pseudonym=pseudonym,
            action=REPORTED,
            status=ItemStatus.WAITING,
            reports=count,
            created_at=ctx.now,
        )
    )
    await ctx.uow.moderation.log(
        item_id=item.id,
        event="held_by_reports",
        before=Visibility.VISIBLE,
        after=Visibility.HELD,
        reason=f"{count} reports",
        consultation=consultation.slug,
        actor=actor,
        author=pseudonym,
        at=ctx.now,
    )
    await post_card(ctx, outcome, item)
    return "held"
