"""Into the ideas phase: /ideas, the menu button, and the way in after the questions."""

from __future__ import annotations

from handlers.consultation.entry import list_open
from handlers.consultation.sheet import active_participation
from handlers.context import FlowContext
from handlers.events import Outcome
from handlers.ideas.common import (
    CONSENTED,
    ideas_participation,
    say_unless_open,
    show_menu,
    stop_writing,
)
from storage.models import Consultation, Participation


async def current_consultation(
    ctx: FlowContext, outcome: Outcome
) -> tuple[Participation, Consultation] | None:
    """The consultation the citizen is in, with consent given; else show the way in."""
    participation = await active_participation(ctx)
    if participation is None or participation.status not in CONSENTED:
        await list_open(ctx, outcome)
        return None
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    return participation, consultation


async def ideas_command(ctx: FlowContext, outcome: Outcome) -> None:
    """/ideas: the ideas menu of the consultation the citizen is in."""
    found = await current_consultation(ctx, outcome)
    if found is None:
        return
    participation, consultation = found
    stop_writing(ctx)
    if say_unless_open(ctx, outcome, consultation):
        await show_menu(ctx, outcome, participation, consultation)


async def menu(ctx: FlowContext, outcome: Outcome, participation_id: int) -> None:
    """The "ideas" button."""
    resolved = await ideas_participation(ctx, outcome, participation_id)
    if resolved is None:
        return
    outcome.ack(ctx.event.button_ack_ref)
    stop_writing(ctx)
    await show_menu(ctx, outcome, *resolved)
