"""Opinion groups from the vote matrix, the way Pol.is finds them, as plain functions.

1. Participants with enough votes form the rows of a participant × statement matrix: agree 1,
   disagree -1, pass 0. A statement someone has not seen gets the statement's average vote, so
   it neither pulls them toward a side nor away.
2. Principal component analysis turns each row into two numbers: the two directions in which
   people's votes differ most. Someone who voted on few statements would sit near the middle only
   for lack of votes, so their position is stretched by √(statements / their votes).
3. k-means splits these points into 2 to 5 groups; the number with the best silhouette (how much
   closer each point is to its own group than to the next) wins.
4. A statement is *consensus* when most people in every group agree with it, and *divisive* when
   groups' agreement differs most. Shares are smoothed as (agree + 1) / (votes + 2), so one vote
   never makes a 100 % group.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float64]

# numpy is imported by the functions that compute (about 11 MB of a process's memory): a bot
# whose consultations have no opinion groups yet, or no statements at all, never loads it.

# Pol.is places a participant from their seventh vote (or all statements, when there are fewer).
MIN_VOTES = 7
MIN_PARTICIPANTS = 10
MAX_GROUPS = 5
# Consensus: in every group at least this smoothed share agrees.
CONSENSUS_SHARE = 0.6
# Divisive: the groups' smoothed agree shares lie at least this far apart.
DIVISIVE_GAP = 0.3
# Silhouette on at most this many points: enough to choose k, and O(n²) stays small.
SILHOUETTE_SAMPLE = 1500
KMEANS_RESTARTS = 4
KMEANS_ITERATIONS = 50


@dataclass
class GroupTally:
    """One group's votes on one statement."""

    agree: int = 0
    disagree: int = 0
    passed: int = 0

    @property
    def seen(self) -> int:
        """How many in the group voted on it at all."""
        return self.agree + self.disagree + self.passed

    @property
    def agree_share(self) -> float:
        """The smoothed share who agree."""
        return (self.agree + 1) / (self.seen + 2)

    @property
    def disagree_share(self) -> float:
        """The smoothed share who disagree."""
        return (self.disagree + 1) / (self.seen + 2)


@dataclass
class GroupModel:
    """Opinion groups, and what is needed to place a newcomer among them."""

    # The statements (columns) in order, their average votes, and the two components.
    statements: list[int]
    means: list[float]
    components: list[list[float]]
    centers: list[list[float]]
    # participation id -> group index, for those placed when computed.
    members: dict[int, int]
    # Per group: statement id -> [agree, disagree, pass].
    tallies: list[dict[int, list[int]]]
    consensus: list[int] = field(default_factory=list)
    divisive: list[int] = field(default_factory=list)
    silhouette: float = 0.0

    @property
    def sizes(self) -> list[int]:
        """How many participants each group has."""
        sizes = [0] * len(self.centers)
        for group in self.members.values():
            sizes[group] += 1
        return sizes

    def tally(self, group: int, statement_id: int) -> GroupTally:
        """A group's votes on a statement."""
        agree, disagree, passed = self.tallies[group].get(statement_id, [0, 0, 0])
        return GroupTally(agree, disagree, passed)

    def to_document(self) -> dict[str, Any]:
        """A JSON document for storage (keys become strings)."""
        document = asdict(self)
        document["members"] = {str(k): v for k, v in self.members.items()}
        document["tallies"] = [{str(k): v for k, v in t.items()} for t in self.tallies]
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> GroupModel:
        """Read a stored model."""
        return cls(
            statements=[int(s) for s in document["statements"]],
            means=[float(m) for m in document["means"]],
            components=document["components"],
            centers=document["centers"],
            members={int(k): int(v) for k, v in document["members"].items()},
            tallies=[{int(k): list(v) for k, v in t.items()} for t in document["tallies"]],
            consensus=[int(s) for s in document.get("consensus", [])],
            divisive=[int(s) for s in document.get("divisive", [])],
            silhouette=float(document.get("silhouette", 0.0)),
        )

    def place(self, votes: dict[int, int]) -> int | None:
        """The group a participant's votes are closest to; None with too few votes to tell."""
        point = self.position(votes)
        if point is None or not self.centers:
            return None
        x, y = point
        distances = [(cx - x) ** 2 + (cy - y) ** 2 for cx, cy in self.centers]
        return distances.index(min(distances))

    def position(self, votes: dict[int, int]) -> tuple[float, float] | None:
        """Where a participant's votes put them in the two dimensions (as ``compute_groups``
        placed its rows); None with too few votes to tell.

        Plain Python, not numpy: it runs in a citizen's update, on the event loop, where the
        first numpy import alone would hold every other citizen up; and the sum runs over the
        participant's own votes only (a statement not voted on counts as its average, which
        adds nothing once centred).
        """
        columns = self._columns
        known = {columns[s]: v for s, v in votes.items() if s in columns}
        if not known or len(known) < min(MIN_VOTES, len(self.statements)):
            return None
        scale = math.sqrt(len(self.statements) / len(known))
        first, second = (
            scale * sum(component[c] * (v - self.means[c]) for c, v in known.items())
            for component in self.components[:2]
        )
        return first, second

    @property
    def _columns(self) -> dict[int, int]:
        return {statement_id: index for index, statement_id in enumerate(self.statements)}


def compute_groups(
    votes: Iterable[tuple[int, int, int]], *, seed: int = 0, min_votes: int = MIN_VOTES
) -> GroupModel | None:
    """Find opinion groups in (participation id, statement id, vote) rows; None if too few."""
    by_participant: dict[int, dict[int, int]] = {}
    for participant, statement, value in votes:
        by_participant.setdefault(participant, {})[statement] = value
    statements = sorted({s for row in by_participant.values() for s in row})
    if not statements:
        return None
    needed = min(min_votes, len(statements))
    placed = sorted(p for p, row in by_participant.items() if len(row) >= needed)
    if len(placed) < MIN_PARTICIPANTS:
        return None
    import numpy as np

    column = {statement: index for index, statement in enumerate(statements)}
    matrix = np.full((len(placed), len(statements)), np.nan)
    for row_index, participant in enumerate(placed):
        for statement, value in by_participant[participant].items():
            matrix[row_index, column[statement]] = value
    seen = ~np.isnan(matrix)
    counts = seen.sum(axis=0)
    means = np.where(counts > 0, np.nansum(matrix, axis=0) / np.maximum(counts, 1), 0.0)
    filled = np.where(seen, matrix, means)
    centred = filled - means
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])[:2]
    points = centred @ components.T
    points *= np.sqrt(len(statements) / seen.sum(axis=1))[:, None]

    rng = np.random.default_rng(seed)
    best: tuple[float, npt.NDArray[np.int64], Matrix] | None = None
    for k in range(2, min(MAX_GROUPS, len(placed) - 1) + 1):
        labels, centers = _kmeans(points, k, rng)
        if len(set(labels.tolist())) < k:
            continue
        score = _silhouette(points, labels, rng)
        if best is None or score > best[0]:
            best = (score, labels, centers)
    if best is None:
        return None
    score, labels, centers = best
    tallies: list[dict[int, list[int]]] = [{} for _ in range(len(centers))]
    for participant, group in zip(placed, labels.tolist(), strict=True):
        for statement, value in by_participant[participant].items():
            counts = tallies[group].setdefault(statement, [0, 0, 0])
            counts[{1: 0, -1: 1}.get(value, 2)] += 1
    model = GroupModel(
        statements=statements,
        means=means.tolist(),
        components=components.tolist(),
        centers=centers.tolist(),
        members={p: int(g) for p, g in zip(placed, labels.tolist(), strict=True)},
        tallies=tallies,
        silhouette=float(score),
    )
    model.consensus, model.divisive = consensus_and_divisive(model)
    return model


def consensus_and_divisive(model: GroupModel) -> tuple[list[int], list[int]]:
    """Statements most agree on in every group, and the ones that split the groups, best first."""
    groups = range(len(model.centers))
    consensus: list[tuple[float, int]] = []
    divisive: list[tuple[float, int]] = []
    for statement in model.statements:
        shares = [model.tally(g, statement).agree_share for g in groups]
        if min(shares) >= CONSENSUS_SHARE:
            consensus.append((math.prod(shares), statement))
        gap = max(shares) - min(shares)
        if gap >= DIVISIVE_GAP:
            divisive.append((gap, statement))
    return (
        [s for _, s in sorted(consensus, key=lambda x: (-x[0], x[1]))],
        [s for _, s in sorted(divisive, key=lambda x: (-x[0], x[1]))],
    )


def _kmeans(
    points: Matrix, k: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], Matrix]:
    """k-means with k-means++ starts; the best of a few restarts."""
    import numpy as np

    best: tuple[float, npt.NDArray[np.int64], Matrix] | None = None
    for _ in range(KMEANS_RESTARTS):
        centers = _plus_plus(points, k, rng)
        labels = np.zeros(len(points), dtype=np.int64)
        for _ in range(KMEANS_ITERATIONS):
            distances = np.linalg.norm(points[:, None, :] - centers[None, :, :], axis=2)
            labels = np.argmin(distances, axis=1)
            moved = np.array(
                [
                    points[labels == g].mean(axis=0) if np.any(labels == g) else centers[g]
                    for g in range(k)
                ]
            )
            if np.allclose(moved, centers):
                break
            centers = moved
        inertia = float(((points - centers[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centers)
    assert best is not None
    return best[1], best[2]


def _plus_plus(points: Matrix, k: int, rng: np.random.Generator) -> Matrix:
    import numpy as np

    centers = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        nearest = np.min(
            np.linalg.norm(points[:, None, :] - np.array(centers)[None, :, :], axis=2) ** 2,
            axis=1,
        )
        total = nearest.sum()
        if total == 0:
            centers.append(points[rng.integers(len(points))])
        else:
            centers.append(points[rng.choice(len(points), p=nearest / total)])
    return np.array(centers)


def _silhouette(points: Matrix, labels: npt.NDArray[np.int64], rng: np.random.Generator) -> float:
    """The mean silhouette: near 1 when groups are tight and far apart, near 0 when they blur."""
    import numpy as np

    if len(points) > SILHOUETTE_SAMPLE:
        chosen = rng.choice(len(points), SILHOUETTE_SAMPLE, replace=False)
        points, labels = points[chosen], labels[chosen]
    distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    groups = np.unique(labels)
    scores = np.zeros(len(points))
    for index in range(len(points)):
        own = labels == labels[index]
        if own.sum() <= 1:
            continue
        inside = distances[index, own].sum() / (own.sum() - 1)
        outside = min(distances[index, labels == g].mean() for g in groups if g != labels[index])
        scores[index] = (outside - inside) / max(inside, outside, 1e-12)
    return float(scores.mean())
