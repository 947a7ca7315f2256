"""What the ideas flows share: the checks before any of them, statement texts, and the menu."""

from __future__ import annotations

from handlers import questionnaire
from handlers.consultation.sheet import blocked, own_participation, stale, title, when
from handlers.context import FlowContext
from handlers.events import Button, Outcome
from handlers.ideas.rules import ideas_state
from handlers.payloads import IdeasAction, IdeasButton
from storage.models import CONSENTED_STATUSES, Consultation, Participation

# The participant-state keys of the statement being written: its participation and draft.
COMPOSING = "composing"
DRAFT = "draft"
CONSENTED = CONSENTED_STATUSES


async def ideas_participation(
    ctx: FlowContext, outcome: Outcome, participation_id: int, *, must_be_open: bool = True
) -> tuple[Participation, Consultation] | None:
    """Resolve a button's participation for an ideas action; None after saying why not.

    It must be the presser's, with consent given, not blocked, and (unless reading results)
    in a consultation whose ideas phase is open.
    """
    participation = await own_participation(ctx, participation_id)
    if participation is None or participation.status not in CONSENTED:
        stale(ctx, outcome)
        return None
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    if must_be_open and blocked(ctx, outcome, participation):
        return None
    if must_be_open and not say_unless_open(ctx, outcome, consultation):
        outcome.ack(ctx.event.button_ack_ref)
        return None
    return participation, consultation


def say_unless_open(ctx: FlowContext, outcome: Outcome, consultation: Consultation) -> bool:
    """True when the ideas phase is open; otherwise say when it opens or that it closed."""
    state = ideas_state(consultation, ctx.now)
    if state == "open":
        return True
    name = title(ctx, consultation)
    if state == "upcoming" and consultation.ideas_opens_at is not None:
        outcome.say(
            ctx.t("ideas.upcoming", title=name, opens=when(ctx, consultation.ideas_opens_at))
        )
    elif state == "closed" and consultation.ideas_closes_at is not None:
        outcome.say(
            ctx.t("ideas.closed", title=name, closes=when(ctx, consultation.ideas_closes_at))
        )
    else:
        outcome.say(ctx.t("ideas.none", title=name))
    return False


def stop_writing(ctx: FlowContext) -> None:
    """Forget a statement being written (sent, cancelled, or the citizen moved on)."""
    state = {k: v for k, v in ctx.participant.state.items() if k not in (COMPOSING, DRAFT)}
    ctx.participant.state = state


async def show_menu(
    ctx: FlowContext, outcome: Outcome, participation: Participation, consultation: Consultation
) -> None:
    """The ideas phase in one message: what to write about, how far it is, what one can do."""
    statements = await ctx.uow.ideas.statements(consultation.id, visible_only=True)
    voted = await ctx.uow.ideas.count_votes(participation.id)
    assert consultation.ideas_closes_at is not None
    prompt = questionnaire.pick(consultation.ideas.get("prompt", {}), ctx.t.language)
    outcome.say(
        ctx.t(
            "ideas.menu",
            title=title(ctx, consultation),
            prompt=prompt,
            count=len(statements),
            voted=voted,
            max=consultation.ideas.get("max_length", 280),
            closes=when(ctx, consultation.ideas_closes_at),
        ),
        buttons=menu_buttons(ctx, participation),
    )


def ideas_button(label: str, action: IdeasAction, participation_id: int) -> Button:
    """A button that does an ideas action for the citizen's participation."""
    return Button(label, payload=IdeasButton(action, participation_id).wire)


def menu_buttons(ctx: FlowContext, participation: Participation) -> tuple[tuple[Button, ...], ...]:
    """Write, vote, where I stand, my votes."""
    pid = participation.id
    return (
        (
            ideas_button(ctx.t("ideas.button.write"), IdeasAction.WRITE, pid),
            ideas_button(ctx.t("ideas.button.vote"), IdeasAction.VOTE, pid),
        ),
        (
            ideas_button(ctx.t("ideas.button.standing"), IdeasAction.STANDING, pid),
            ideas_button(ctx.t("ideas.button.history"), IdeasAction.HISTORY, pid),
        ),
    )


async def offer_if_open(
    ctx: FlowContext, outcome: Outcome, participation: Participation, consultation: Consultation
) -> None:
    """After the questions (or on return), show the ideas menu when the phase is open."""
    if ideas_state(consultation, ctx.now) == "open" and participation.blocked_at is None:
        await show_menu(ctx, outcome, participation, consultation)
