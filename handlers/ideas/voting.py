"""Voting: one statement per card, agree/disagree/pass, reports, volunteering, changing a vote."""

from __future__ import annotations

import random

from handlers.consultation.sheet import stale, title
from handlers.context import FlowContext, Texts
from handlers.events import Button, Outcome, Reply, record_id
from handlers.ideas.common import (
    CONSENTED,
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
from storage.models import Consultation, Participation, Statement, Visibility, VoteValue

Buttons = tuple[tuple[Button, ...], ...]
VOTES = {"a": VoteValue.AGREE, "d": VoteValue.DISAGREE, "p": VoteValue.PASS}
VOTE_NAMES = {VoteValue.AGREE: "agree", VoteValue.DISAGREE: "disagree", VoteValue.PASS: "pass"}
VOTE_MARKS = {VoteValue.AGREE: "👍", VoteValue.DISAGREE: "👎", VoteValue.PASS: "🤷"}
# Statements listed in "my votes" at once; the most recent first.
HISTORY_PAGE = 20
# The report dialog's "never mind" (no reason is called this).
CANCEL_REPORT = "x"


async def start_voting(ctx: FlowContext, outcome: Outcome, participation_id: str) -> None:
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
                (Button(ctx.t("ideas.button.notify"), payload=f"i:n:{pid}"),),
                (
                    Button(ctx.t("ideas.button.standing"), payload=f"i:s:{pid}"),
                    Button(ctx.t("ideas.button.write"), payload=f"i:w:{pid}"),
                ),
            ),
        )
        return
    statement = by_id[chosen]
    outcome.say(card_text(ctx, consultation, statement), buttons=card_buttons(ctx, statement, "v"))


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


def card_buttons(ctx: FlowContext, statement: Statement, namespace: str) -> Buttons:
    """Agree, disagree, pass; report; help (when wanted); stop (on fresh cards)."""
    sid = statement.id
    rows: list[tuple[Button, ...]] = [
        (
            Button(ctx.t("ideas.button.agree"), payload=f"{namespace}:{sid}:a"),
            Button(ctx.t("ideas.button.disagree"), payload=f"{namespace}:{sid}:d"),
            Button(ctx.t("ideas.button.pass"), payload=f"{namespace}:{sid}:p"),
        )
    ]
    if statement.wants_volunteers:
        rows.append((Button(ctx.t("ideas.button.help"), payload=f"v:{sid}:h"),))
    last = [Button(ctx.t("ideas.button.report"), payload=f"v:{sid}:r")]
    if namespace == "v":
        last.append(Button(ctx.t("ideas.button.stop"), payload=f"v:{sid}:s"))
    rows.append(tuple(last))
    return tuple(rows)


async def _card_statement(
    ctx: FlowContext, outcome: Outcome, statement_id: str, *, must_be_open: bool = True
) -> tuple[Statement, Participation, Consultation] | None:
    """Resolve a card's statement and the presser's participation in its consultation."""
    number = record_id(statement_id)
    statement = await ctx.uow.ideas.statement(number) if number is not None else None
    if statement is None:
        stale(ctx, outcome)
        return None
    participation = await ctx.uow.participations.find(statement.consultation_id, ctx.participant.id)
    if participation is None or participation.status not in CONSENTED:
        stale(ctx, outcome)
        return None
    resolved = await ideas_participation(
        ctx, outcome, str(participation.id), must_be_open=must_be_open
    )
    if resolved is None:
        return None
    return statement, *resolved


async def press(ctx: FlowContext, outcome: Outcome, namespace: str, parts: list[str]) -> None:
    """v:<statement>:<a|d|p|o|r|s|h|hy|hn>[:reason] on fresh cards, V:<statement>:<…> in history."""
    if len(parts) not in (2, 3):
        stale(ctx, outcome)
        return
    resolved = await _card_statement(ctx, outcome, parts[0])
    if resolved is None:
        return
    statement, participation, consultation = resolved
    action = parts[1]
    own = statement.participation_id == participation.id
    if statement.visibility != Visibility.VISIBLE and action in (*VOTES, "o", "h", "hy"):
        outcome.ack(ctx.event.button_ack_ref, ctx.t("ideas.not_shown"), alert=True)
        return
    if action in VOTES and len(parts) == 2:
        if own:
            outcome.ack(ctx.event.button_ack_ref, ctx.t("ideas.own"), alert=True)
            return
        await vote(ctx, outcome, statement, participation, consultation, action, namespace)
    elif action == "o" and len(parts) == 2:
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
        outcome.say(text, buttons=card_buttons(ctx, statement, "V" if current else "v"))
    elif action == "s" and len(parts) == 2:
        outcome.ack(ctx.event.button_ack_ref)
        _close_card(ctx, outcome, consultation, statement, ctx.t("ideas.stopped_card"))
        outcome.say(ctx.t("ideas.stopped"))
    elif action == "r":
        await _report(ctx, outcome, statement, participation, consultation, parts[2:])
    elif action in ("h", "hy", "hn") and len(parts) == 2:
        await _volunteer(ctx, outcome, statement, participation, consultation, action)
    else:
        stale(ctx, outcome)


async def vote(
    ctx: FlowContext,
    outcome: Outcome,
    statement: Statement,
    participation: Participation,
    consultation: Consultation,
    action: str,
    namespace: str,
) -> None:
    """Record a vote on the pressed card; on a fresh card, show the next one."""
    value = VOTES[action]
    earlier = await ctx.uow.ideas.vote(statement.id, participation.id, value, ctx.now)
    participation.updated_at = ctx.now
    name = ctx.t(f"ideas.vote.{VOTE_NAMES[value]}")
    outcome.ack(ctx.event.button_ack_ref)
    footer = (
        ctx.t("ideas.voted", vote=name) if earlier is None else ctx.t("ideas.changed", vote=name)
    )
    _close_card(ctx, outcome, consultation, statement, footer)
    if namespace == "V":
        return
    if earlier is None:
        votes = await ctx.uow.ideas.count_votes(participation.id)
        if votes == STANDING_AFTER_VOTES:
            outcome.say(
                ctx.t("ideas.standing_offer", count=votes),
                buttons=(
                    (Button(ctx.t("ideas.button.standing"), payload=f"i:s:{participation.id}"),),
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
    reason: list[str],
) -> None:
    """Ask why (r), then report with the reason (r:<reason>) to moderation."""
    sid = statement.id
    if not reason:
        outcome.ack(ctx.event.button_ack_ref)
        reasons = [(f"ideas.report_reason.{r}", r) for r in REPORT_REASONS]
        buttons = tuple(
            (Button(ctx.t(key), payload=f"v:{sid}:r:{code}"),)
            for key, code in [*reasons, ("ideas.report_cancel", CANCEL_REPORT)]
        )
        outcome.say(ctx.t("ideas.report_why"), buttons=buttons)
        return
    if reason == [CANCEL_REPORT]:
        # Changed their mind: nothing is reported, and the card above still takes a vote.
        outcome.ack(ctx.event.button_ack_ref)
        if ctx.event.button_message_ref is not None:
            outcome.edit(ctx.event.button_message_ref, ctx.t("ideas.report_cancelled"))
        return
    if reason[0] not in REPORT_REASONS:
        stale(ctx, outcome)
        return
    result = await report(ctx, outcome, consultation, participation, statement, reason[0])
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
    action: str,
) -> None:
    """Offer to help: ask for consent to be contacted (h), then record it (hy) or not (hn)."""
    sid = statement.id
    outcome.ack(ctx.event.button_ack_ref)
    if not statement.wants_volunteers:
        outcome.say(ctx.t("ideas.volunteers_closed"))
        return
    words = short(statement_text(statement, ctx.t.language), 80)
    if action == "h":
        outcome.say(
            ctx.t("ideas.volunteer_ask", text=words, title=title(ctx, consultation)),
            buttons=(
                (Button(ctx.t("ideas.button.volunteer_yes"), payload=f"v:{sid}:hy"),),
                (Button(ctx.t("ideas.button.volunteer_no"), payload=f"v:{sid}:hn"),),
            ),
        )
        return
    if action == "hn":
        answer = ctx.t("ideas.volunteer_no")
    elif await ctx.uow.ideas.add_volunteer(sid, participation.id, ctx.now):
        answer = ctx.t("ideas.volunteer_yes")
    else:
        answer = ctx.t("ideas.volunteer_again")
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, answer)
    else:
        outcome.say(answer)


async def history(ctx: FlowContext, outcome: Outcome, participation_id: str) -> None:
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
            buttons=((Button(ctx.t("ideas.button.vote"), payload=f"i:v:{participation.id}"),),),
        )
        return
    buttons = tuple(
        (
            Button(
                f"{VOTE_MARKS[vote.value]} {short(statement_text(statement, ctx.t.language))}",
                payload=f"V:{statement.id}:o",
            ),
        )
        for vote, statement in votes[:HISTORY_PAGE]
    )
    outcome.say(
        ctx.t("ideas.history", title=title(ctx, consultation), count=len(votes)), buttons=buttons
    )


async def notify_me(ctx: FlowContext, outcome: Outcome, participation_id: str) -> None:
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
        buttons=((Button(t("ideas.button.vote"), payload=f"i:v:{participation_id}"),),),
    )
