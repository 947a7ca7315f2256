"""A synthetic electorate (two camps and a consensus) for the opinion-group tests and benchmark."""

from __future__ import annotations

import random

CAMP_A = range(1, 11)  # camp A agrees, camp B disagrees
CAMP_B = range(11, 21)  # the other way round
CONSENSUS = (21, 22, 23)  # everyone agrees


def electorate(
    people: int, seed: int, missing: float = 0.3, noise: float = 0.1
) -> tuple[list[tuple[int, int, int]], dict[int, int]]:
    """Two camps of equal size; each person skips some statements and votes at random on some."""
    rng = random.Random(seed)
    votes: list[tuple[int, int, int]] = []
    camps: dict[int, int] = {}
    for person in range(people):
        camp = person % 2
        camps[person] = camp
        for statement in range(1, 24):
            if rng.random() < missing:
                continue
            if statement in CAMP_A:
                vote = 1 if camp == 0 else -1
            elif statement in CAMP_B:
                vote = -1 if camp == 0 else 1
            else:
                vote = 1
            if rng.random() < noise:
                vote = rng.choice([1, -1, 0])
            votes.append((person, statement, vote))
    return votes, camps
