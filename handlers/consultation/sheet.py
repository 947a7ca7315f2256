"""What every consultation flow shares: the participant's sheet, and how things are shown."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from handlers import questionnaire as rules
from handlers.context import FlowContext
from handlers.events import Outcome, record_id
from handlers.moderation.cards import moment_text
from handlers.questions import kind_of
from storage.models import Answer, Consultation, Participation, Question


@dataclass(frozen=True)
class Sheet:
    """One participant's part in one consultation: the questions and the answers so far."""

    participation: Participation
    consultation: Consultation
    questions: list[Question]
    answers: dict[int, Answer]

    def question(self, question_id: int | None) -> Question | None:
        """Return one of the consultation's (current) questions by id."""
        return next((q for q in self.questions if q.id == question_id), None)

    def with_answer(self, answer: Answer) -> Sheet:
        """The same sheet with one answer added or replaced."""
        return replace(self, answers={**self.answers, answer.question_id: answer})

    def without_answer(self, answer: Answer) -> Sheet:
        """The same sheet without an answer (deleted)."""
        answers = {key: kept for key, kept in self.answers.items() if kept is not answer}
        return replace(self, answers=answers)


async def load_sheet(ctx: FlowContext, participation: Participation) -> Sheet:
    """Load a participation's consultation, questions and answers."""
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    questions = await ctx.uow.consultations.questions(consultation.id)
    answers = rules.answers_by_question(await ctx.uow.participations.answers(participation.id))
    return Sheet(participation, consultation, questions, answers)


def when(ctx: FlowContext, moment: datetime) -> str:
    """A time as citizens read it, in their language and the local time zone."""
    return moment_text(ctx.t, moment, ctx.zone)


def title(ctx: FlowContext, consultation: Consultation) -> str:
    """The consultation's title in the participant's language."""
    return rules.pick(consultation.title, ctx.t.language)


def show_answer(ctx: FlowContext, question: Question, answer: Answer) -> str:
    """An answer as the participant reads it."""
    if answer.skipped:
        return ctx.t("answer.skipped")
    return kind_of(question).show(question, answer.value, ctx.t)


async def own_participation(ctx: FlowContext, participation_id: int) -> Participation | None:
    """Return a participation named by a button, if it belongs to whoever pressed it."""
    participation = await ctx.uow.participations.get(participation_id)
    if participation is None or participation.participant_id != ctx.participant.id:
        return None
    return participation


# The participant-state key of the participation the conversation is in.
ACTIVE = "participation"


async def active_participation(ctx: FlowContext) -> Participation | None:
    """The participation the participant's conversation is currently in, if any."""
    # Read like a payload's id: the stored state is trusted no more than a button.
    participation_id = record_id(str(ctx.participant.state.get(ACTIVE)))
    if participation_id is None:
        return None
    return await own_participation(ctx, participation_id)


async def set_active(ctx: FlowContext, participation: Participation | None) -> None:
    """Make a participation the one the conversation is in (None: no consultation)."""
    state = dict(ctx.participant.state)
    if participation is None:
        state.pop(ACTIVE, None)
    else:
        state[ACTIVE] = participation.id
    if state == ctx.participant.state:
        # Every answer comes here, nearly always in the participation already active: a write
        # of the same value would be a statement (a round trip on PostgreSQL) for nothing.
        return
    # A new dict, so the JSON column is seen as changed.
    await ctx.uow.participants.set_state(ctx.participant, state)


async def round_is_open(ctx: FlowContext, outcome: Outcome, consultation: Consultation) -> bool:
    """Say so and return False when the consultation takes no answers now."""
    state = rules.round_state(await ctx.uow.consultations.rounds(consultation.id), ctx.now)
    if state.status == "open":
        return True
    say_not_open(ctx, outcome, consultation, state)
    return False


def say_not_open(
    ctx: FlowContext, outcome: Outcome, consultation: Consultation, state: rules.RoundState
) -> None:
    """Tell when a consultation opens, or that it has closed and where results come."""
    if state.status == "upcoming" and state.round is not None:
        outcome.say(
            ctx.t(
                "consultation.not_yet_open",
                title=title(ctx, consultation),
                opens=when(ctx, state.round.opens_at),
            )
        )
    else:
        outcome.say(
            ctx.t(
                "consultation.closed",
                title=title(ctx, consultation),
                results=rules.pick(consultation.results, ctx.t.language),
            )
        )


def blocked(ctx: FlowContext, outcome: Outcome, participation: Participation) -> bool:
    """Say so and return True when a moderator blocked the participant from contributing."""
    if participation.blocked_at is None:
        return False
    outcome.ack(ctx.event.button_ack_ref)
    outcome.say(ctx.t("moderation.blocked_here"))
    return True


def stale(ctx: FlowContext, outcome: Outcome) -> None:
    """Answer a button that is old, forged or someone else's, and do nothing else."""
    outcome.ack(ctx.event.button_ack_ref, ctx.t("button.stale"), alert=True)
