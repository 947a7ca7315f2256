"""Where you stand: what most agree on, what divides, how your votes compare, your group."""

from __future__ import annotations

from collections.abc import Callable

from handlers import questionnaire
from handlers.consultation.sheet import title
from handlers.context import FlowContext
from handlers.events import Outcome
from handlers.ideas.common import ideas_button, ideas_participation
from handlers.ideas.groups import GroupModel
from handlers.ideas.rules import compare_with_majority, group_letter, short, statement_text
from handlers.payloads import IdeasAction
from storage.ideas import Tally
from storage.models import Consultation, Participation, Statement

# Statements listed under each heading.
LISTED = 3
# Without opinion groups: a statement "most agree with" needs this share and this many votes.
AGREED_SHARE = 0.6
MIN_VOTES_LISTED = 3
# Without opinion groups: "divided" means agree and disagree lie this close (as a share).
DIVIDED_GAP = 0.3
STANDING_LIMIT = 4000


def percent(part: int, whole: int) -> int:
    """A share as a whole percentage."""
    return round(100 * part / whole) if whole else 0


async def standing(ctx: FlowContext, outcome: Outcome, participation_id: int) -> None:
    """The "where I stand" button; it works after the ideas phase closed, too."""
    resolved = await ideas_participation(ctx, outcome, participation_id, must_be_open=False)
    if resolved is None:
        return
    outcome.ack(ctx.event.button_ack_ref)
    participation, consultation = resolved
    outcome.say(
        questionnaire.shorten(
            await standing_text(ctx, participation, consultation), STANDING_LIMIT
        ),
        buttons=((ideas_button(ctx.t("ideas.button.vote"), IdeasAction.VOTE, participation.id),),),
    )


async def standing_text(
    ctx: FlowContext, participation: Participation, consultation: Consultation
) -> str:
    """The whole "where you stand" message."""
    statements = {
        s.id: s for s in await ctx.uow.ideas.statements(consultation.id, visible_only=True)
    }
    tallies = {
        k: v for k, v in (await ctx.uow.ideas.tallies(consultation.id)).items() if k in statements
    }
    own = {
        vote.statement_id: vote.value for vote, _ in await ctx.uow.ideas.votes_of(participation.id)
    }
    # What they can vote on: not what they wrote themselves.
    written = {
        s for s, statement in statements.items() if statement.participation_id == participation.id
    }
    votable = set(statements) - written
    stored = await ctx.uow.ideas.groups(consultation.id)
    model = GroupModel.from_document(stored.model) if stored is not None and stored.model else None
    parts = [
        ctx.t(
            "ideas.standing.head",
            title=title(ctx, consultation),
            voted=len([s for s in own if s in votable]),
            total=len(votable),
        )
    ]
    if not tallies:
        parts.append(ctx.t("ideas.standing.nothing"))
        return "\n\n".join(parts)

    def quote(statement_id: int) -> str:
        return short(statement_text(statements[statement_id], ctx.t.language), 120)

    agreed = _most_agreed(tallies, model)
    if agreed:
        lines = [
            ctx.t(
                "ideas.standing.agreed_line",
                text=quote(s),
                agree=percent(tallies[s].agree, tallies[s].total),
            )
            for s in agreed
        ]
        parts.append(ctx.t("ideas.standing.agreed") + "\n" + "\n".join(lines))
    divided = _most_divisive(tallies, model, exclude=set(agreed))
    if divided:
        lines = [
            ctx.t(
                "ideas.standing.divided_line",
                text=quote(s),
                agree=percent(tallies[s].agree, tallies[s].total),
                disagree=percent(tallies[s].disagree, tallies[s].total),
            )
            for s in divided
        ]
        parts.append(ctx.t("ideas.standing.divided") + "\n" + "\n".join(lines))
    others = {
        s: (t.agree - (own.get(s) == 1), t.disagree - (own.get(s) == -1))
        for s, t in tallies.items()
    }
    comparison = compare_with_majority(own, others)
    if comparison.compared:
        parts.append(
            ctx.t(
                "ideas.standing.majority",
                same=comparison.with_majority,
                compared=comparison.compared,
            )
        )
    # Placed by their votes and by agreeing with what they wrote (see with_own_statements).
    stands = {**dict.fromkeys(written, 1), **own}
    done = votable <= set(own)
    parts.append(_group_part(ctx, model, stands, statements, quote, voted_on_all=done))
    return "\n\n".join(parts)


def _most_agreed(tallies: dict[int, Tally], model: GroupModel | None) -> list[int]:
    """Consensus across groups when there are groups, else the broadest agreement."""
    if model is not None and model.consensus:
        return [s for s in model.consensus if s in tallies][:LISTED]
    ranked = sorted(
        (
            (t.agree / t.total, s)
            for s, t in tallies.items()
            if t.total >= MIN_VOTES_LISTED and t.agree / t.total >= AGREED_SHARE
        ),
        key=lambda x: (-x[0], x[1]),
    )
    return [s for _, s in ranked[:LISTED]]


def _most_divisive(
    tallies: dict[int, Tally], model: GroupModel | None, exclude: set[int]
) -> list[int]:
    """What splits the groups when there are groups, else the closest to an even split."""
    if model is not None and model.divisive:
        return [s for s in model.divisive if s in tallies and s not in exclude][:LISTED]
    ranked = sorted(
        (abs(t.agree - t.disagree) / (t.agree + t.disagree), -t.total, s)
        for s, t in tallies.items()
        if s not in exclude and t.agree + t.disagree >= MIN_VOTES_LISTED and t.agree and t.disagree
    )
    return [s for gap, _, s in ranked if gap <= DIVIDED_GAP][:LISTED]


def _group_part(
    ctx: FlowContext,
    model: GroupModel | None,
    stands: dict[int, int],
    statements: dict[int, Statement],
    quote: Callable[[int], str],
    *,
    voted_on_all: bool,
) -> str:
    """Which opinion group the citizen is closest to, and what marks that group."""
    if model is None:
        return ctx.t("ideas.standing.no_groups")
    group = model.place(stands)
    if group is None:
        # Asking for more votes only makes sense while there is something left to vote on.
        return ctx.t("ideas.standing.no_group_yet" if voted_on_all else "ideas.standing.vote_more")
    sizes = model.sizes
    text = ctx.t(
        "ideas.standing.group",
        groups=len(sizes),
        letter=group_letter(group),
        size=sizes[group],
    )
    marks = group_marks(model, group, set(statements))
    if marks[0] is not None:
        text += "\n" + ctx.t("ideas.standing.group_agrees", text=quote(marks[0]))
    if marks[1] is not None:
        text += "\n" + ctx.t("ideas.standing.group_disagrees", text=quote(marks[1]))
    return text


def group_marks(model: GroupModel, group: int, shown: set[int]) -> tuple[int | None, int | None]:
    """The statements this group agrees and disagrees with more than the other groups do."""
    others = [g for g in range(len(model.centers)) if g != group]
    best_agree: tuple[float, int] | None = None
    best_disagree: tuple[float, int] | None = None
    for statement in model.statements:
        if statement not in shown:
            continue
        mine = model.tally(group, statement)
        if mine.seen == 0:
            continue
        rest = [model.tally(g, statement) for g in others]
        rest_agree = sum(t.agree_share for t in rest) / max(1, len(rest))
        rest_disagree = sum(t.disagree_share for t in rest) / max(1, len(rest))
        lead_agree = mine.agree_share - rest_agree
        lead_disagree = mine.disagree_share - rest_disagree
        if mine.agree_share > 0.5 and (best_agree is None or lead_agree > best_agree[0]):
            best_agree = (lead_agree, statement)
        if mine.disagree_share > 0.5 and (
            best_disagree is None or lead_disagree > best_disagree[0]
        ):
            best_disagree = (lead_disagree, statement)
    return (
        best_agree[1] if best_agree else None,
        best_disagree[1] if best_disagree else None,
    )
