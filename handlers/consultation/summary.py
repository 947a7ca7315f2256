"""The end of a consultation: thanks, a summary of the answers, and hearing back."""

from __future__ import annotations

from handlers import email
from handlers import questionnaire as rules
from handlers.consultation.sheet import Sheet, show_answer, title
from handlers.context import FlowContext
from handlers.events import Button, Outcome
from handlers.ideas.common import offer_if_open
from handlers.payloads import HearBack, ReviewAnswers
from storage.models import Participation, ParticipationStatus

# Room left in a message for the summary's closing lines.
SUMMARY_LIMIT = 4000


async def finish(ctx: FlowContext, outcome: Outcome, sheet: Sheet) -> None:
    """Thank the participant, sum up, and ask whether they want to hear back (first time)."""
    participation = sheet.participation
    participation.current_question_id = None
    if participation.status == ParticipationStatus.COMPLETED:
        # A change after finishing: the first completion stays the one that counts.
        await show_summary(ctx, outcome, sheet, heading="summary.updated")
        return
    participation.status = ParticipationStatus.COMPLETED
    participation.completed_at = ctx.now
    await show_summary(ctx, outcome, sheet, heading="summary.thanks")
    outcome.say(
        ctx.t("summary.hear_back"),
        buttons=(
            (
                Button(ctx.t("answer.yes"), payload=HearBack(participation.id, wanted=True).wire),
                Button(ctx.t("answer.no"), payload=HearBack(participation.id, wanted=False).wire),
            ),
        ),
    )


async def show_summary(ctx: FlowContext, outcome: Outcome, sheet: Sheet, heading: str) -> None:
    """List the participant's answers, with a button to change one while the round is open."""
    consultation, answers = sheet.consultation, sheet.answers
    lines = [
        f"• {rules.pick(q.text, ctx.t.language)}\n  {show_answer(ctx, q, answers[q.id])}"
        for q in rules.applicable(sheet.questions, answers)
        if q.id in answers
    ]
    text = ctx.t(heading, title=title(ctx, consultation)) + "\n\n" + "\n".join(lines)
    text += "\n\n" + ctx.t(
        "summary.results", results=rules.pick(consultation.results, ctx.t.language)
    )
    rounds = await ctx.uow.consultations.rounds(consultation.id)
    buttons: tuple[tuple[Button, ...], ...] = ()
    if rules.round_state(rounds, ctx.now).status == "open":
        buttons = (
            (Button(ctx.t("summary.change"), payload=ReviewAnswers(sheet.participation.id).wire),),
        )
    outcome.say(rules.shorten(text, SUMMARY_LIMIT), buttons=buttons)


async def hear_back(
    ctx: FlowContext, outcome: Outcome, participation: Participation, wanted: bool
) -> None:
    """Record whether the participant wants to hear what happens with the consultation."""
    outcome.ack(ctx.event.button_ack_ref)
    participation.hear_back = wanted
    participation.updated_at = ctx.now
    answer = ctx.t("summary.hear_back_yes") if wanted else ctx.t("summary.hear_back_no")
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, f"{ctx.t('summary.hear_back')}\n\n✅ {answer}")
    else:
        outcome.say(answer)
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    await offer_if_open(ctx, outcome, participation, consultation)
    if wanted:
        # Last, so the page puts the cursor in the text field for the address.
        await email.offer(ctx, outcome)
