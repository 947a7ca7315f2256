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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from handlers.screening.rules import DATA_DIR, _alternation, _entries, normalise

MODEL_FILE = DATA_DIR / "offensive_model.json.gz"

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


@dataclass(frozen=True)
class Lexicon:
    """The word lists the model looks at: insults, everyday swearing, and mere signals.

    Insults (``offensive.txt``) and swearing (``swearing.txt``) also raise flags of their own;
    signals (``offensive_signals.txt``) are words such as "latterlig" that only tell the model to
    look closer. A municipality's own files of the same names add to them.
    """

    insults: re.Pattern[str] | None
    swearing: re.Pattern[str] | None
    signals: re.Pattern[str] | None

    @classmethod
    def load(cls, extra_dir: Path | None = None) -> Lexicon:
        def read(name: str) -> list[str]:
            found = _entries(DATA_DIR / name)
            if extra_dir is not None:
                found += _entries(extra_dir / name)
            return found

        return cls(
            insults=_alternation(read("offensive.txt")),
            swearing=_alternation(read("swearing.txt")),
            signals=_alternation(read("offensive_signals.txt")),
        )


def features(text: str, lexicon: Lexicon) -> dict[str, float]:
    """The features of one text, the same for building the model and for scoring with it.

    Each word ("w:"), pair of neighbouring words ("b:") and letter group ("c:") counts once, with
    a value that makes the vector's length 1, so a long text does not score higher for being
    long. The word lists and a few signs of anger ("x:") are added on top at full weight.
    """
    normalised, _ = normalise(NOT_WORDS.sub(" ", text))
    words = re.findall(r"\w+", normalised)
    found: set[str] = set()
    for word in words:
        found.add("w:" + word)
        edged = f" {word} "
        for size in range(LETTER_GROUPS[0], LETTER_GROUPS[1] + 1):
            found.update("c:" + edged[i : i + size] for i in range(len(edged) - size + 1))
    found.update(f"b:{first} {second}" for first, second in itertools.pairwise(words))
    if not found:
        return {}
    value = 1.0 / math.sqrt(len(found))
    vector = dict.fromkeys(found, value)
    for name, pattern in (
        ("x:insult", lexicon.insults),
        ("x:swearing", lexicon.swearing),
        ("x:signal", lexicon.signals),
    ):
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


# Features that may make a text borderline but do not count towards holding it.
MILD_FEATURES = frozenset({"x:swearing"})


@dataclass(frozen=True)
class OffensiveScore:
    """The model's reading of one text."""

    probability: float
    # The probability without the mild features, which decides the clear band.
    probability_unsworn: float
    band: str
    # The features that pushed the score most, strongest first, with their share of the sum.
    reasons: tuple[tuple[str, float], ...] = ()


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

    def score(self, text: str, lexicon: Lexicon, *, reasons: int = 0) -> OffensiveScore:
        """Score a text; with ``reasons``, also name that many features that weighed most."""
        return self.score_vector(features(text, lexicon), reasons=reasons)

    def score_vector(self, vector: Mapping[str, float], *, reasons: int = 0) -> OffensiveScore:
        """Score a feature vector already made (building the model scores many)."""
        contributions = self._contributions(vector)
        probability = self._probability(contributions)
        unsworn = self._probability(
            {name: value for name, value in contributions.items() if name not in MILD_FEATURES}
        )
        return OffensiveScore(
            probability,
            unsworn,
            self.band(probability, unsworn),
            _strongest(contributions, reasons),
        )

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


def _strongest(contributions: Mapping[str, float], count: int) -> tuple[tuple[str, float], ...]:
    if count <= 0:
        return ()
    ranked = sorted(contributions.items(), key=lambda item: -abs(item[1]))
    return tuple((name, round(weight, 3)) for name, weight in ranked[:count])


def describe_feature(name: str) -> str:
    """A feature's name as a moderator reads it: the words or letters, quoted."""
    kind, _, what = name.partition(":")
    if kind == "c":
        return f"letters «{what.strip()}»" if what.strip() == what else f"letters «{what}»"
    if kind in ("w", "b"):
        return f"«{what}»"
    return what.replace("_", " ")
