"""A learned offensive-language score beside the word lists: small, explainable, no downloads.

A logistic regression over the words, word pairs and letter groups of a text, plus whether the
word lists matched. It was trained on the DKHate training split (Danish comments from Reddit,
Facebook and Ekstra Bladet, labelled by Sigurbergsson & Derczynski, LREC 2020, CC BY 4.0) by
``python -m handlers.screening.build_offensive_model``, which writes
``data/offensive_model.json.gz``.

The score is the model's probability that the text is offensive. Two thresholds, chosen on
cross-validated scores when the model was built, turn it into a band:

- ``clear``: offensive beyond reasonable doubt, held for a moderator like a word-list insult;
- ``borderline``: rude or sweary, shown at once and reviewed afterwards;
- ``none``: nothing to see.

The corpus labels everyday swearing ("det er fandme for dårligt") offensive, and the model learned
that. We want swearing reviewed, not held, so the clear band is judged on the score without the
swearing list's feature: swearing can make a text borderline, never clear on its own.

Everything here is plain Python over a dictionary of weights, so the running bot needs neither
scikit-learn nor numpy for it, and a moderator can be shown which words weighed most.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handlers.screening.rules import (
    DATA_DIR,
    OFFENSIVE,
    Flag,
    WordLists,
    normalise,
)

MODEL_FILE = DATA_DIR / "offensive_model.json.gz"
# How many reasons an explanation gives, and the least a reason adds to the log-odds to be named.
REASONS_SHOWN = 6
MIN_REASON = 0.15

CLEAR = "clear"
BORDERLINE = "borderline"
NONE = "none"

# Letter groups of three to five letters inside words (with the word's edges marked by spaces):
# they carry inflections and compounds ("lortekommune", "møgunger") the words alone miss.
LETTER_GROUPS = (3, 5)
# Mentions as the corpus wrote them ("@USER") and links are not language.
NOT_WORDS = re.compile(r"@\w+|https?://\S+|www\.\S+")
# A text shouted in capitals: at least this many letters, this share of them capitals.
SHOUTED_LETTERS = 6
SHOUTED_SHARE = 0.6
YOU_ARE = re.compile(r"\b(?:du|i|you) (?:er|are)\b")


def features(text: str, lists: WordLists) -> dict[str, float]:
    """The features of one text, the same for building the model and for scoring with it.

    Each word ("w:"), pair of neighbouring words ("b:") and letter group ("c:") counts once, with
    a value that makes the vector's length 1, so a long text does not score higher for being
    long. The word lists and a few signs of anger ("x:") are added on top at full weight.
    """
    normalised, words = _words(text)
    found: set[str] = set()
    for word in words:
        found |= _features_of_word(word)
    found.update(f"b:{first} {second}" for first, second in itertools.pairwise(words))
    if not found:
        return {}
    value = 1.0 / math.sqrt(len(found))
    vector = dict.fromkeys(found, value)
    for name, pattern in _list_features(lists):
        if pattern is not None and pattern.search(normalised):
            vector[name] = 1.0
    letters = [ch for ch in text if ch.isalpha()]
    capitals = sum(ch.isupper() for ch in letters)
    if len(letters) >= SHOUTED_LETTERS and capitals >= SHOUTED_SHARE * len(letters):
        vector["x:shouted"] = 1.0
    if "!!" in text:
        vector["x:exclamations"] = 1.0
    if YOU_ARE.search(normalised):
        vector["x:you_are"] = 1.0
    return vector


def _words(text: str) -> tuple[str, list[str]]:
    normalised, _ = normalise(NOT_WORDS.sub(" ", text))
    return normalised, re.findall(r"\w+", normalised)


def _features_of_word(word: str) -> set[str]:
    edged = f" {word} "
    found = {"w:" + word}
    for size in range(LETTER_GROUPS[0], LETTER_GROUPS[1] + 1):
        found.update("c:" + edged[i : i + size] for i in range(len(edged) - size + 1))
    return found


def _list_features(lists: WordLists) -> tuple[tuple[str, re.Pattern[str] | None], ...]:
    return (
        ("x:insult", lists.offensive),
        ("x:swearing", lists.swearing),
        ("x:signal", lists.offensive_signals),
    )


def sworn_features(text: str, lists: WordLists) -> frozenset[str]:
    """The features that come from swearing: the list's own feature, and the words, pairs and
    letter groups of every sworn word ("lorteidé"). They may make a text borderline but do not
    count towards holding it."""
    if lists.swearing is None:
        return frozenset()
    normalised, words = _words(text)
    sworn_words = {
        word
        for match in lists.swearing.finditer(normalised)
        for word in re.findall(r"\w+", match.group())
    }
    if not sworn_words:
        return frozenset()
    # A sworn word's letter groups ("lort" in "lorteidé") belong to the word it stands in.
    sworn_words |= {word for word in words if any(sworn in word for sworn in sworn_words)}
    found = {"x:swearing"}
    for word in sworn_words:
        found |= _features_of_word(word)
    found.update(
        f"b:{first} {second}"
        for first, second in itertools.pairwise(words)
        if first in sworn_words or second in sworn_words
    )
    return frozenset(found)


@dataclass(frozen=True)
class OffensiveScore:
    """The model's reading of one text."""

    probability: float
    # The probability without the mild features, which decides the clear band.
    probability_unsworn: float
    band: str
    # With an explanation asked for: what weighed, strongest first, with what it added to the
    # log-odds. Words sum their own features and letter groups; lists and signs of anger
    # ("x:swearing", "x:shouted") come with what matched.
    reasons: tuple[tuple[str, float], ...] = ()

    def detail(self) -> str:
        """For a moderator's card: the score and the words that pushed it up most."""
        # Only the quoted words: the card is read in the moderators' language.
        pushing = list(
            dict.fromkeys(
                name[name.index("«") :]
                for name, weight in self.reasons
                if weight >= MIN_REASON and "«" in name
            )
        )
        score = f"{self.probability:.2f}"
        return f"{score}: {', '.join(pushing[:3])}" if pushing else score


@dataclass(frozen=True)
class OffensiveModel:
    """Weights and thresholds of the trained model, and how it was measured when built."""

    weights: Mapping[str, float]
    intercept: float
    borderline_from: float
    clear_from: float
    about: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> OffensiveModel:
        with gzip.open(path, "rt", encoding="utf-8") as file:
            stored = json.load(file)
        return cls(
            weights=stored["weights"],
            intercept=float(stored["intercept"]),
            borderline_from=float(stored["thresholds"]["borderline"]),
            clear_from=float(stored["thresholds"]["clear"]),
            about=stored.get("about", {}),
        )

    def save(self, path: Path) -> None:
        stored = {
            "about": dict(self.about),
            "intercept": self.intercept,
            "thresholds": {"borderline": self.borderline_from, "clear": self.clear_from},
            # Sorted and rounded, so a rebuild from the same data gives the same bytes.
            "weights": {k: round(w, 5) for k, w in sorted(self.weights.items())},
        }
        with gzip.GzipFile(path, "wb", mtime=0) as raw:
            raw.write(json.dumps(stored, ensure_ascii=False, indent=0).encode("utf-8"))

    def score(self, text: str, lists: WordLists, *, reasons: int = 0) -> OffensiveScore:
        """Score a text; with ``reasons``, also name that many things that weighed most."""
        vector = features(text, lists)
        reading = self.score_vector(vector, sworn_features(text, lists))
        if reasons <= 0:
            return reading
        explained = self._explain(text, lists, self._contributions(vector))
        return OffensiveScore(
            reading.probability, reading.probability_unsworn, reading.band, explained[:reasons]
        )

    def _explain(
        self, text: str, lists: WordLists, contributions: Mapping[str, float]
    ) -> tuple[tuple[str, float], ...]:
        normalised, words = _words(text)
        weighed: dict[str, float] = {}
        for word in dict.fromkeys(words):
            own = sum(contributions.get(name, 0.0) for name in _features_of_word(word))
            weighed[f"«{word}»"] = own
        for name, pattern in _list_features(lists):
            match = pattern.search(normalised) if pattern is not None else None
            if match is not None and name in contributions:
                weighed[f"{name[2:]} «{match.group()}»"] = contributions[name]
        for name in ("x:shouted", "x:exclamations", "x:you_are"):
            if name in contributions:
                weighed[name[2:]] = contributions[name]
        ranked = sorted(weighed.items(), key=lambda item: -abs(item[1]))
        return tuple((name, round(weight, 3)) for name, weight in ranked)

    def flags(self, text: str, lists: WordLists, found: Sequence[Flag]) -> list[Flag]:
        """The flags the score adds to those the word lists ``found`` already.

        A clear score is an ``offensive`` flag unless an insult or a threat is already flagged;
        a borderline one is ``rude`` unless anything offensive is. The flag covers the whole
        text, and its detail names the words that weighed most, for the moderator.
        """
        kinds = {flag.kind for flag in found if flag.category == OFFENSIVE}
        band = self.score(text, lists).band
        if band == CLEAR and not kinds & {"offensive", "threat"}:
            kind = "offensive"
        elif band == BORDERLINE and not kinds:
            kind = "rude"
        else:
            return []
        # Only a flagged text is explained: most texts pass, and the reasons cost a second pass.
        explained = self.score(text, lists, reasons=REASONS_SHOWN)
        return [Flag(kind, 0, len(text), explained.detail())]

    def score_vector(
        self, vector: Mapping[str, float], sworn: frozenset[str] = frozenset()
    ) -> OffensiveScore:
        """Score a feature vector already made (building the model scores many)."""
        contributions = self._contributions(vector)
        probability = self._probability(contributions)
        unsworn = self._probability(
            {name: value for name, value in contributions.items() if name not in sworn}
        )
        return OffensiveScore(probability, unsworn, self.band(probability, unsworn))

    def _contributions(self, vector: Mapping[str, float]) -> dict[str, float]:
        weights = self.weights
        return {name: value * weights[name] for name, value in vector.items() if name in weights}

    def _probability(self, contributions: Mapping[str, float]) -> float:
        logit = self.intercept + sum(contributions.values())
        # Written so a very negative logit cannot overflow exp().
        if logit >= 0:
            return 1.0 / (1.0 + math.exp(-logit))
        odds = math.exp(logit)
        return odds / (1.0 + odds)

    def band(self, probability: float, unsworn: float) -> str:
        if unsworn >= self.clear_from:
            return CLEAR
        if probability >= self.borderline_from:
            return BORDERLINE
        return NONE
