"""Writing a statement: the prompt, the citizen's text shown back, near-duplicates, sending."""

from __future__ import annotations

from handlers import questionnaire
from handlers.consultation.sheet import active_participation, blocked
from handlers.context import FlowContext
from handlers.events import Button, Outcome, without_invisible
from handlers.ideas.common import (
    COMPOSING,
    DRAFT,
    ideas_button,
    ideas_participation,
    say_unless_open,
    stop_writing,
)
from handlers.ideas.rules import near_duplicates, short, statement_text
from handlers.moderation.intake import PREMODERATION, queue_for_review, screen_statement
from handlers.payloads import CardAction, CardButton, IdeasAction
from handlers.screening.rules import ALLOW, HIDE, HOLD
from storage.models import (
    Consultation,
    Participation,
    Statement,
    StatementOrigin,
    Visibility,
)

# Shorter than this is rarely a statement others can vote on ("ok", "nej tak").
MIN_STATEMENT_CHARS = 10
DEFAULT_MAX_LENGTH = 280


def max_length(consultation: Consultation) -> int:
    """The consultation's limit on a statement's length."""
    return int(consultation.ideas.get("max_length", DEFAULT_MAX_LENGTH))


async def start_writing(ctx: FlowContext, outcome: Outcome, participation: Participation) -> None:
    """Ask for a statement; the next text the citizen types is it."""
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    if not say_unless_open(ctx, outcome, consultation):
        return
    ctx.participant.state = {
        **{k: v for k, v in ctx.participant.state.items() if k != DRAFT},
        COMPOSING: participation.id,
        "participation": participation.id,
    }
    prompt = questionnaire.pick(consultation.ideas.get("prompt", {}), ctx.t.language)
    outcome.say(
        ctx.t("ideas.write", prompt=prompt, max=max_length(consultation)),
        buttons=(
            (
                ideas_button(
                    ctx.t("ideas.button.cancel"), IdeasAction.CANCEL_DRAFT, participation.id
                ),
            ),
        ),
        expects_text=True,
    )


async def write(ctx: FlowContext, outcome: Outcome, participation_id: int) -> None:
    """The "write a statement" button."""
    resolved = await ideas_participation(ctx, outcome, participation_id)
    if resolved is None:
        return
    outcome.ack(ctx.event.button_ack_ref)
    await start_writing(ctx, outcome, resolved[0])


async def typed(ctx: FlowContext, outcome: Outcome) -> bool:
    """Take typed text as the statement being written; False when none is being written."""
    composing = ctx.participant.state.get(COMPOSING)
    if composing is None:
        return False
    participation = await active_participation(ctx)
    if participation is None or participation.id != composing:
        stop_writing(ctx)
        return False
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    if blocked(ctx, outcome, participation) or not say_unless_open(ctx, outcome, consultation):
        stop_writing(ctx)
        return True
    text = " ".join(ctx.event.text.split())
    limit = max_length(consultation)
    if len(text) > limit:
        outcome.say(ctx.t("ideas.too_long", length=len(text), max=limit), expects_text=True)
        return True
    if len(without_invisible(text).strip()) < MIN_STATEMENT_CHARS:
        outcome.say(ctx.t("ideas.too_short"), expects_text=True)
        return True
    ctx.participant.state = {**ctx.participant.state, DRAFT: text}
    pid = participation.id
    outcome.say(
        ctx.t("ideas.preview", text=text),
        buttons=(
            (
                ideas_button(ctx.t("ideas.button.send"), IdeasAction.SEND_DRAFT, pid),
                ideas_button(ctx.t("ideas.button.edit"), IdeasAction.EDIT_DRAFT, pid),
            ),
            (ideas_button(ctx.t("ideas.button.cancel"), IdeasAction.CANCEL_DRAFT, pid),),
        ),
    )
    visible = await ctx.uow.ideas.statements(consultation.id, visible_only=True)
    alike = near_duplicates(text, [(s, statement_text(s, ctx.t.language)) for s in visible])
    if alike:
        quoted = "\n".join(ctx.t("ideas.list_line", text=words) for _, words in alike)
        outcome.say(
            ctx.t("ideas.similar", statements=quoted),
            buttons=tuple(
                (
                    Button(
                        ctx.t("ideas.button.vote_on", text=short(words, 30)),
                        payload=CardButton(s.id, CardAction.OPEN).wire,
                    ),
                )
                for s, words in alike
            ),
        )
    return True


async def draft_action(
    ctx: FlowContext, outcome: Outcome, action: IdeasAction, participation_id: int
) -> None:
    """Send, edit or cancel the statement being written."""
    resolved = await ideas_participation(ctx, outcome, participation_id)
    if resolved is None:
        return
    participation, consultation = resolved
    draft = ctx.participant.state.get(DRAFT)
    cancel = action == IdeasAction.CANCEL_DRAFT
    if ctx.participant.state.get(COMPOSING) != participation.id or (not cancel and not draft):
        if cancel:
            outcome.ack(ctx.event.button_ack_ref)
            return
        outcome.ack(ctx.event.button_ack_ref, ctx.t("button.stale"), alert=True)
        return
    outcome.ack(ctx.event.button_ack_ref)
    message = ctx.event.button_message_ref
    if cancel:
        stop_writing(ctx)
        if message is not None:
            outcome.edit(message, ctx.t("ideas.cancelled"))
        else:
            outcome.say(ctx.t("ideas.cancelled"))
        return
    if action == IdeasAction.EDIT_DRAFT:
        if message is not None:
            outcome.edit(message, ctx.t("ideas.preview_edited", text=str(draft)))
        await start_writing(ctx, outcome, participation)
        return
    if message is not None:
        outcome.edit(message, ctx.t("ideas.preview_sent", text=str(draft)))
    await submit(ctx, outcome, participation, consultation, str(draft))


async def submit(
    ctx: FlowContext,
    outcome: Outcome,
    participation: Participation,
    consultation: Consultation,
    text: str,
) -> None:
    """Store a statement: screened, shown at once or held for a moderator, as policy says."""
    stop_writing(ctx)
    result, key = await screen_statement(ctx, consultation, participation, text)
    premoderated = bool(consultation.ideas.get("premoderation"))
    waits = result.action in (HOLD, HIDE)
    action = PREMODERATION if premoderated and not waits else result.action
    visibility = {HIDE: Visibility.HIDDEN, HOLD: Visibility.HELD}.get(
        result.action, Visibility.HELD if premoderated else Visibility.VISIBLE
    )
    language = ctx.detect_language(text) or ctx.t.language
    statement = await ctx.uow.ideas.add_statement(
        Statement(
            consultation_id=consultation.id,
            number=await ctx.uow.ideas.next_number(consultation.id, "statement"),
            participation_id=participation.id,
            origin=StatementOrigin.CITIZEN,
            text={language: text},
            language=language,
            fingerprint=key,
            visibility=visibility,
            wants_volunteers=False,
            created_at=ctx.now,
        )
    )
    participation.updated_at = ctx.now
    if action != ALLOW:
        await queue_for_review(
            ctx, outcome, consultation, participation, statement, result, action=action
        )
    buttons = _after_sending(ctx, participation)
    if visibility == Visibility.VISIBLE:
        outcome.say(ctx.t("ideas.sent"), buttons=buttons)
    elif not waits:
        outcome.say(ctx.t("ideas.sent_premoderated"), buttons=buttons)
    else:
        # queue_for_review has told them why it waits.
        outcome.say(ctx.t("ideas.what_next"), buttons=buttons)


def _after_sending(
    ctx: FlowContext, participation: Participation
) -> tuple[tuple[Button, ...], ...]:
    pid = participation.id
    return (
        (
            ideas_button(ctx.t("ideas.button.write_another"), IdeasAction.WRITE, pid),
            ideas_button(ctx.t("ideas.button.vote"), IdeasAction.VOTE, pid),
        ),
    )
