"""Opinion groups recover planted camps and the statements everyone agrees on."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

from handlers.ideas.groups import GroupModel, compute_groups
from handlers.ideas.rules import CardChoice, choose_next, compare_with_majority, near_duplicates
from tests.opinions import CAMP_A, CAMP_B, CONSENSUS, electorate

PROJECT = Path(__file__).resolve().parent.parent


def test_two_planted_camps_are_recovered_with_their_consensus() -> None:
    votes, camps = electorate(300, seed=7)
    model = compute_groups(votes)
    assert model is not None
    assert len(model.centers) == 2
    # Each group is (nearly) one camp.
    pairs = Counter((camps[p], g) for p, g in model.members.items())
    for group in range(2):
        members = [camp for (camp, g), n in pairs.items() if g == group for _ in range(n)]
        majority = Counter(members).most_common(1)[0][1]
        assert majority / len(members) >= 0.95
    assert set(model.consensus[:3]) == set(CONSENSUS)
    assert set(model.consensus) == set(CONSENSUS)
    assert set(model.divisive) == set(CAMP_A) | set(CAMP_B)
    # A newcomer from camp A lands in the group camp A is in.
    camp_a_group = Counter(g for p, g in model.members.items() if camps[p] == 0).most_common(1)
    newcomer = {s: 1 for s in CAMP_A} | {s: -1 for s in CAMP_B}
    restored = GroupModel.from_document(model.to_document())
    assert restored.place(newcomer) == camp_a_group[0][0]
    assert restored.place({1: 1}) is None  # one vote tells nothing


def test_each_member_is_placed_again_where_the_computation_put_them_without_numpy() -> None:
    """Placing a citizen (in their update, on the event loop) is plain Python: it must agree
    with the computation's own placing, and it must not load numpy."""
    votes, _ = electorate(200, seed=11, missing=0.3)
    model = compute_groups(votes)
    assert model is not None
    by_participant: dict[int, dict[int, int]] = {}
    for participant, statement, value in votes:
        by_participant.setdefault(participant, {})[statement] = value
    placed = {p: model.place(by_participant[p]) for p in model.members}
    assert placed == model.members
    document = json.dumps(model.to_document())
    stands = json.dumps({str(s): v for s, v in by_participant[next(iter(model.members))].items()})
    code = (
        "import json, sys\n"
        "from handlers.ideas.groups import GroupModel\n"
        f"model = GroupModel.from_document(json.loads({document!r}))\n"
        f"votes = {{int(s): v for s, v in json.loads({stands!r}).items()}}\n"
        "print(model.place(votes), 'numpy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT
    )
    assert done.stdout.split() == [str(model.members[next(iter(model.members))]), "False"]


def test_groups_need_enough_people_with_enough_votes() -> None:
    votes, _ = electorate(9, seed=1, missing=0.0)
    assert compute_groups(votes) is None
    sparse, _ = electorate(100, seed=2, missing=0.9)
    model = compute_groups(sparse)
    # Only people with at least 7 votes are placed.
    counts = Counter(p for p, _, _ in sparse)
    assert model is None or all(counts[p] >= 7 for p in model.members)


def test_the_next_card_spreads_votes_and_comes_from_the_least_voted() -> None:
    rng = random.Random(3)
    candidates = [CardChoice(1, 10), CardChoice(2, 0), CardChoice(3, 1), CardChoice(4, 2)]
    chosen = Counter(choose_next(candidates, rng) for _ in range(400))
    assert set(chosen) == {2, 3, 4}  # within two votes of the least voted; never the busy one
    assert min(chosen.values()) > 80  # at random among them
    assert choose_next([], rng) is None


def test_near_duplicates_and_majorities() -> None:
    others = [(1, "Der skal være flere cykelstier ved skolen"), (2, "Lavere fart i byen")]
    assert near_duplicates("Flere cykelstier ved skolen!", others) == [others[0]]
    assert near_duplicates("Byg en svømmehal", others) == []
    comparison = compare_with_majority(
        {1: 1, 2: -1, 3: 1, 4: 0}, {1: (8, 1), 2: (9, 1), 3: (2, 2), 4: (5, 0)}
    )
    assert (comparison.compared, comparison.with_majority) == (2, 1)
