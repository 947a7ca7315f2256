"""Voting: one statement per card, agree/disagree/pass, reports, volunteering, changing a vote."""

from __future__ import annotations

import random

from handlers.consultation.sheet import stale, title
from handlers.context import FlowContext, Texts
from handlers.events import Button, Outcome, Reply
from handlers.ideas.common import (
    CONSENTED,
    ideas_button,
    ideas_participation,
    say_unless_open,
)
from handlers.ideas.entry import current_consultation
from handlers.ideas.rules import (
    STANDING_AFTER_VOTES,
    CardChoice,
    choose_next,
    short,
    statement_text,
)
from handlers.moderation.intake import REPORT_REASONS, report
from handlers.payloads import (
    CancelReport,
    CardAction,
    CardButton,
    IdeasAction,
    ReportStatement,
    StatementButton,
)
from storage.models import Consultation, Participation, Statement, Visibility, VoteValue

Buttons = tuple[tuple[Button, ...], ...]
VOTES = {
    CardAction.AGREE: VoteValue.AGREE,
    CardAction.DISAGREE: VoteValue.DISAGREE,
    CardAction.PASS: VoteValue.PASS,
}
# What a statement no longer shown can't take: a vote, being opened, an offer of help.
NEEDS_VISIBLE = {*VOTES, CardAction.OPEN, CardAction.HELP, CardAction.HELP_YES}
VOTE_NAMES = {VoteValue.AGREE: "agree", VoteValue.DISAGREE: "disagree", VoteValue.PASS: "pass"}
VOTE_MARKS = {VoteValue.AGREE: "👍", VoteValue.DISAGREE: "👎", VoteValue.PASS: "🤷"}
# Statements listed in "my votes" at once; the most recent first.
HISTORY_PAGE = 20


async def start_voting(ctx: FlowContext, outcome: Outcome, participation_id: int) -> None:
    """The "vote" button: the next card."""
    resolved = await ideas_participation(ctx, outcome, participation_id)
    if resolved is None:
        return
    outcome.ack(ctx.event.button_ack_ref)
    await next_card(ctx, outcome, *resolved)


async def next_card(
    ctx: FlowContext, outcome: Outcome, participation: Participation, consultation: Consultation
) -> None:
    """Show the statement to vote on next, or say plainly that there is none for now."""
    candidates = await ctx.uow.ideas.candidates(consultation.id, participation.id)
    by_id = {c.statement.id: c.statement for c in candidates}
    # Seeded by who and how far they are, so a redelivered event picks the same card.
    rng = random.Random(f"{participation.id}:{participation.updated_at.isoformat()}")
    chosen = choose_next([CardChoice(c.statement.id, c.votes) for c in candidates], rng)
    if chosen is None:
        pid = participation.id
        outcome.say(
            ctx.t("ideas.no_more"),
            buttons=(
                (ideas_button(ctx.t("ideas.button.notify"), IdeasAction.NOTIFY, pid),),
                (
                    ideas_button(ctx.t("ideas.button.standing"), IdeasAction.STANDING, pid),
                    ideas_button(ctx.t("ideas.button.write"), IdeasAction.WRITE, pid),
                ),
            ),
        )
        return
    statement = by_id[chosen]
    outcome.say(card_text(ctx, consultation, statement), buttons=card_buttons(ctx, statement))


def card_text(ctx: FlowContext, consultation: Consultation, statement: Statement) -> str:
    """A statement as a card: the consultation, the statement, and a call for helpers."""
    text = ctx.t(
        "ideas.card",
        title=title(ctx, consultation),
        number=statement.number,
        text=statement_text(statement, ctx.t.language),
    )
    if statement.wants_volunteers:
        text += "\n\n" + ctx.t("ideas.card_volunteers")
    return text


def card_buttons(ctx: FlowContext, statement: Statement, *, changing_vote: bool = False) -> Buttons:
    """Agree, disagree, pass; report; help (when wanted); stop (on fresh cards)."""
    sid = statement.id

    def vote(action: CardAction) -> str:
        return CardButton(sid, action, changing_vote=changing_vote).wire

    rows: list[tuple[Button, ...]] = [
        (
            Button(ctx.t("ideas.button.agree"), payload=vote(CardAction.AGREE)),
            Button(ctx.t("ideas.button.disagree"), payload=vote(CardAction.DISAGREE)),
            Button(ctx.t("ideas.button.pass"), payload=vote(CardAction.PASS)),
        )
    ]
    if statement.wants_volunteers:
        rows.append(
            (Button(ctx.t("ideas.button.help"), payload=CardButton(sid, CardAction.HELP).wire),)
        )
    last = [Button(ctx.t("ideas.button.report"), payload=CardButton(sid, CardAction.REPORT).wire)]
    if not changing_vote:
        last.append(
            Button(ctx.t("ideas.button.stop"), payload=CardButton(sid, CardAction.STOP).wire)
        )
    rows.append(tuple(last))
    return tuple(rows)


async def _card_statement(
    ctx: FlowContext, outcome: Outcome, statement_id: int, *, must_be_open: bool = True
) -> tuple[Statement, Participation, Consultation] | None:
    """Resolve a card's statement and the presser's participation in its consultation."""
    statement = await ctx.uow.ideas.statement(statement_id)
    if statement is None:
        stale(ctx, outcome)
        return None
    participation = await ctx.uow.participations.find(statement.consultation_id, ctx.participant.id)
    if participation is None or participation.status not in CONSENTED:
        stale(ctx, outcome)
        return None
    resolved = await ideas_participation(ctx, outcome, participation.id, must_be_open=must_be_open)
    if resolved is None:
        return None
    return statement, *resolved


async def press(ctx: FlowContext, outcome: Outcome, button: StatementButton) -> None:
    """A button on a statement's card, or in the report dialog it opens."""
    resolved = await _card_statement(ctx, outcome, button.statement_id)
    if resolved is None:
        return
    statement, participation, consultation = resolved
    if isinstance(button, CancelReport):
        # Changed their mind: nothing is reported, and the card above still takes a vote.
        outcome.ack(ctx.event.button_ack_ref)
        if ctx.event.button_message_ref is not None:
            outcome.edit(ctx.event.button_message_ref, ctx.t("ideas.report_cancelled"))
        return
    if isinstance(button, ReportStatement):
        await _report(ctx, outcome, statement, participation, consultation, button.reason)
        return
    action = button.action
    own = statement.participation_id == participation.id
    if statement.visibility != Visibility.VISIBLE and action in NEEDS_VISIBLE:
        outcome.ack(ctx.event.button_ack_ref, ctx.t("ideas.not_shown"), alert=True)
        return
    if action in VOTES:
        if own:
            outcome.ack(ctx.event.button_ack_ref, ctx.t("ideas.own"), alert=True)
            return
        await vote(ctx, outcome, statement, participation, consultation, button)
    elif action == CardAction.OPEN:
        outcome.ack(ctx.event.button_ack_ref)
        current = await ctx.uow.ideas.vote_of(statement.id, participation.id)
        text = card_text(ctx, consultation, statement)
        if current is not None:
            text += "\n\n" + ctx.t(
                "ideas.your_vote", vote=ctx.t(f"ideas.vote.{VOTE_NAMES[current.value]}")
            )
        if own:
            outcome.say(text + "\n\n" + ctx.t("ideas.own"))
            return
        outcome.say(text, buttons=card_buttons(ctx, statement, changing_vote=current is not None))
    elif action == CardAction.STOP:
        outcome.ack(ctx.event.button_ack_ref)
        _close_card(ctx, outcome, consultation, statement, ctx.t("ideas.stopped_card"))
        outcome.say(ctx.t("ideas.stopped"))
    elif action == CardAction.REPORT:
        await _report(ctx, outcome, statement, participation, consultation, None)
    elif action in (CardAction.HELP, CardAction.HELP_YES, CardAction.HELP_NO):
        await _volunteer(ctx, outcome, statement, participation, consultation, action)
    else:
        stale(ctx, outcome)


async def vote(
    ctx: FlowContext,
    outcome: Outcome,
    statement: Statement,
    participation: Participation,
    consultation: Consultation,
    button: CardButton,
) -> None:
    """Record a vote on the pressed card; on a fresh card, show the next one."""
    value = VOTES[button.action]
    earlier = await ctx.uow.ideas.vote(statement.id, participation.id, value, ctx.now)
    participation.updated_at = ctx.now
    name = ctx.t(f"ideas.vote.{VOTE_NAMES[value]}")
    outcome.ack(ctx.event.button_ack_ref)
    footer = (
        ctx.t("ideas.voted", vote=name) if earlier is None else ctx.t("ideas.changed", vote=name)
    )
    _close_card(ctx, outcome, consultation, statement, footer)
    if button.changing_vote:
        return
    if earlier is None:
        votes = await ctx.uow.ideas.count_votes(participation.id)
        if votes == STANDING_AFTER_VOTES:
            outcome.say(
                ctx.t("ideas.standing_offer", count=votes),
                buttons=(
                    (
                        ideas_button(
                            ctx.t("ideas.button.standing"), IdeasAction.STANDING, participation.id
                        ),
                    ),
                ),
            )
    await next_card(ctx, outcome, participation, consultation)


def _close_card(
    ctx: FlowContext,
    outcome: Outcome,
    consultation: Consultation,
    statement: Statement,
    footer: str,
) -> None:
    """Redraw the pressed card with a last line and no buttons, so it cannot vote twice."""
    if ctx.event.button_message_ref is not None:
        outcome.edit(
            ctx.event.button_message_ref, f"{card_text(ctx, consultation, statement)}\n\n{footer}"
        )


async def _report(
    ctx: FlowContext,
    outcome: Outcome,
    statement: Statement,
    participation: Participation,
    consultation: Consultation,
    reason: str | None,
) -> None:
    """Ask why (no reason yet), then report with the reason to moderation."""
    sid = statement.id
    if reason is None:
        outcome.ack(ctx.event.button_ack_ref)
        buttons = tuple(
            (Button(ctx.t(f"ideas.report_reason.{code}"), payload=ReportStatement(sid, code).wire),)
            for code in REPORT_REASONS
        )
        cancel = Button(ctx.t("ideas.report_cancel"), payload=CancelReport(sid).wire)
        outcome.say(ctx.t("ideas.report_why"), buttons=(*buttons, (cancel,)))
        return
    if reason not in REPORT_REASONS:
        stale(ctx, outcome)
        return
    result = await report(ctx, outcome, consultation, participation, statement, reason)
    outcome.ack(ctx.event.button_ack_ref)
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, ctx.t(f"ideas.reported.{result}"))
    else:
        outcome.say(ctx.t(f"ideas.reported.{result}"))
    if result in ("counted", "held"):
        await next_card(ctx, outcome, participation, consultation)


async def _volunteer(
    ctx: FlowContext,
    outcome: Outcome,
    statement: Statement,
    participation: Participation,
    consultation: Consultation,
    action: CardAction,
) -> None:
    """Offer to help: ask for consent to be contacted, then record it or not."""
    sid = statement.id
    outcome.ack(ctx.event.button_ack_ref)
    if not statement.wants_volunteers:
        outcome.say(ctx.t("ideas.volunteers_closed"))
        return
    words = short(statement_text(statement, ctx.t.language), 80)
    if action == CardAction.HELP:
        outcome.say(
            ctx.t("ideas.volunteer_ask", text=words, title=title(ctx, consultation)),
            buttons=(
                (
                    Button(
                        ctx.t("ideas.button.volunteer_yes"),
                        payload=CardButton(sid, CardAction.HELP_YES).wire,
                    ),
                ),
                (
                    Button(
                        ctx.t("ideas.button.volunteer_no"),
                        payload=CardButton(sid, CardAction.HELP_NO).wire,
                    ),
                ),
            ),
        )
        return
    if action == CardAction.HELP_NO:
        answer = ctx.t("ideas.volunteer_no")
    elif await ctx.uow.ideas.add_volunteer(sid, participation.id, ctx.now):
        answer = ctx.t("ideas.volunteer_yes")
    else:
        answer = ctx.t("ideas.volunteer_again")
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, answer)
    else:
        outcome.say(answer)


async def history(ctx: FlowContext, outcome: Outcome, participation_id: int) -> None:
    """My votes: each as a button that opens the card again, to change the vote."""
    resolved = await ideas_participation(ctx, outcome, participation_id)
    if resolved is None:
        return
    participation, consultation = resolved
    outcome.ack(ctx.event.button_ack_ref)
    votes = await ctx.uow.ideas.votes_of(participation.id)
    if not votes:
        outcome.say(
            ctx.t("ideas.history_empty"),
            buttons=(
                (ideas_button(ctx.t("ideas.button.vote"), IdeasAction.VOTE, participation.id),),
            ),
        )
        return
    buttons = tuple(
        (
            Button(
                f"{VOTE_MARKS[vote.value]} {short(statement_text(statement, ctx.t.language))}",
                payload=CardButton(statement.id, CardAction.OPEN, changing_vote=True).wire,
            ),
        )
        for vote, statement in votes[:HISTORY_PAGE]
    )
    outcome.say(
        ctx.t("ideas.history", title=title(ctx, consultation), count=len(votes)), buttons=buttons
    )


async def notify_me(ctx: FlowContext, outcome: Outcome, participation_id: int) -> None:
    """Remember to tell the citizen when statements they can vote on arrive."""
    resolved = await ideas_participation(ctx, outcome, participation_id)
    if resolved is None:
        return
    participation, _ = resolved
    participation.notify_statements_at = ctx.now
    outcome.ack(ctx.event.button_ack_ref)
    outcome.say(ctx.t("ideas.notify_set"))


async def vote_command(ctx: FlowContext, outcome: Outcome) -> None:
    """/vote: the next card in the consultation the citizen is in."""
    found = await current_consultation(ctx, outcome)
    if found is None:
        return
    participation, consultation = found
    if say_unless_open(ctx, outcome, consultation):
        await next_card(ctx, outcome, participation, consultation)


def new_statements_notice(t: Texts, participation_id: int, title_text: str, count: int) -> Reply:
    """The one message a citizen asked for: there are new statements to vote on."""
    return Reply(
        t.n("ideas.notice", count, title=title_text),
        buttons=((ideas_button(t("ideas.button.vote"), IdeasAction.VOTE, participation_id),),),
    )
