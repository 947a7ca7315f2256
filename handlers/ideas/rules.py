"""The ideas phase's rules as plain functions: its state, near-duplicates, the next card."""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from handlers.questionnaire import shorten
from storage.models import Consultation, Statement

# Trigram overlap from which two statements say "the same" (measured on reworded Danish pairs:
# rewordings score 0.5-0.8, different ideas on the same topic below 0.35).
NEAR_DUPLICATE = 0.5
# The next card comes from the statements within this many votes of the least-voted one.
VOTE_SPREAD_SLACK = 2
# After this many votes, the citizen is offered where they stand.
STANDING_AFTER_VOTES = 5
# A majority that counts when comparing a citizen with others: this share of agree+disagree.
CLEAR_MAJORITY = 0.6
MIN_VOTES_FOR_MAJORITY = 3

T = TypeVar("T")


def ideas_state(consultation: Consultation, now: datetime) -> str:
    """none (no ideas phase), upcoming, open or closed."""
    opens, closes = consultation.ideas_opens_at, consultation.ideas_closes_at
    if opens is None or closes is None:
        return "none"
    if now < opens:
        return "upcoming"
    return "open" if now < closes else "closed"


def _trigrams(text: str) -> set[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = re.findall(r"\w+", folded)
    joined = f" {' '.join(words)} "
    return {joined[i : i + 3] for i in range(len(joined) - 2)}


def similarity(first: str, second: str) -> float:
    """How alike two statements are, 0 to 1: the overlap of their letter trigrams."""
    a, b = _trigrams(first), _trigrams(second)
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def near_duplicates(
    text: str, others: Sequence[tuple[T, str]], limit: int = 2
) -> list[tuple[T, str]]:
    """The existing statements most like a new one, if any are alike enough."""
    scored = [(similarity(text, other), key, other) for key, other in others]
    alike = sorted((s for s in scored if s[0] >= NEAR_DUPLICATE), key=lambda s: -s[0])
    return [(key, other) for _, key, other in alike[:limit]]


@dataclass(frozen=True)
class CardChoice:
    """A statement offered for voting, and how many votes it had."""

    key: int
    votes: int


def choose_next(candidates: Sequence[CardChoice], rng: random.Random) -> int | None:
    """Pick the next card so votes spread: the fewest votes first, at random among near-equals.

    New statements have few votes, so they are seen soon; the randomness keeps citizens from all
    seeing the same order (which would favour the first statements).
    """
    if not candidates:
        return None
    fewest = min(c.votes for c in candidates)
    pool = [c.key for c in candidates if c.votes <= fewest + VOTE_SPREAD_SLACK]
    return rng.choice(sorted(pool))


@dataclass(frozen=True)
class Comparison:
    """How a citizen's votes compare with the majority where there is a clear one."""

    compared: int
    with_majority: int


def compare_with_majority(own: dict[int, int], tallies: dict[int, tuple[int, int]]) -> Comparison:
    """Count the statements with a clear majority the citizen voted with.

    ``own`` maps statement to the citizen's vote; ``tallies`` to (agree, disagree) of everyone
    else. Passes and statements without a clear majority are left out.
    """
    compared = same = 0
    for statement, vote in own.items():
        if vote == 0 or statement not in tallies:
            continue
        agree, disagree = tallies[statement]
        decided = agree + disagree
        if decided < MIN_VOTES_FOR_MAJORITY:
            continue
        if agree / decided >= CLEAR_MAJORITY:
            majority = 1
        elif disagree / decided >= CLEAR_MAJORITY:
            majority = -1
        else:
            continue
        compared += 1
        same += vote == majority
    return Comparison(compared, same)


def group_letter(index: int) -> str:
    """Groups are called A, B, C… in texts."""
    return chr(ord("A") + index)


def statement_text(statement: Statement, language: str) -> str:
    """A statement in the reader's language when staff gave one, else as written."""
    return (
        statement.text.get(language)
        or statement.text.get(statement.language)
        or next(iter(statement.text.values()), "")
    )


def short(text: str, limit: int = 38) -> str:
    """A statement shortened for a button."""
    return shorten(text, limit)


def with_own_statements(
    votes: list[tuple[int, int, int]], authored: list[tuple[int, int]]
) -> list[tuple[int, int, int]]:
    """Votes (participation, statement, value) with each author agreeing with their statements.

    Authors cannot vote on what they wrote, yet it says where they stand; counting it as
    agreement (as Pol.is does) lets a citizen who wrote some of the statements and voted on the
    rest be placed in an opinion group like anyone who voted on all.
    """
    cast = {(participation, statement) for participation, statement, _ in votes}
    extra = [(p, s, 1) for p, s in authored if (p, s) not in cast]
    return sorted([*votes, *extra])
