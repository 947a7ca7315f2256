"""How well the language detector reads the labelled texts in tests/data/languages/.

    python -m tests.language_eval

prints, per language and for Danish two-word phrases, the share read correctly (no answer counts
as wrong), on the tuning part and on the held-out part. The detector was tuned looking at the
tuning part only; the held-out part is what the figures in README and the test quote.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.dialogue.i18n.languages import language_detector

DATA = Path(__file__).parent / "data" / "languages"
PARTS = ("tuning", "heldout")
TWO_WORD = "da two-word"
WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True)
class LanguageScore:
    """One language's (or kind of text's) accuracy on one part of the labelled texts."""

    language: str
    part: str
    texts: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.texts if self.texts else 0.0


def labelled_sentences() -> list[tuple[str, str, str]]:
    """(language, part, text) for every labelled sentence."""
    with (DATA / "sentences.tsv").open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        return [(row["language"], row["part"], row["text"]) for row in rows]


def danish_two_word_phrases() -> list[tuple[str, str]]:
    """(part, phrase): the hand-written phrases, then adjacent word pairs of Danish sentences.

    A pair keeps its sentence's part, so held-out pairs come from held-out sentences only.
    """
    written = (DATA / "danish_phrases.txt").read_text(encoding="utf-8").split("\n")
    phrases = [(PARTS[i % 2], p) for i, p in enumerate(line for line in written if line.strip())]
    rng = random.Random(2)
    for language, part, text in labelled_sentences():
        words = WORD.findall(text)
        if language == "da" and len(words) >= 2:
            start = rng.randrange(len(words) - 1)
            phrases.append((part, f"{words[start]} {words[start + 1]}"))
    return phrases


def evaluate_languages(
    identify: Callable[[str], str | None] | None = None,
    *,
    only_part: str | None = None,
) -> list[LanguageScore]:
    """Accuracy per language and part, then for Danish two-word phrases per part (of one part
    only, given ``only_part``: the tests read the held-out part alone, in half the time)."""
    identify = identify or language_detector().identify
    counts: dict[tuple[str, str], list[int]] = {}
    for language, part, text in labelled_sentences():
        if only_part not in (None, part):
            continue
        tally = counts.setdefault((language, part), [0, 0])
        tally[0] += 1
        tally[1] += identify(text) == language
    for part, phrase in danish_two_word_phrases():
        if only_part not in (None, part):
            continue
        tally = counts.setdefault((TWO_WORD, part), [0, 0])
        tally[0] += 1
        tally[1] += identify(phrase) == "da"
    return [
        LanguageScore(language, part, texts, correct)
        for (language, part), (texts, correct) in sorted(counts.items())
    ]


def mistakes(part: str = "tuning") -> list[tuple[str, str | None, str]]:
    """(expected, answer, text) for the texts of one part read wrongly: to look at when tuning."""
    identify = language_detector().identify
    wrong = []
    for language, text_part, text in labelled_sentences():
        if text_part == part and (answer := identify(text)) != language:
            wrong.append((language, answer, text))
    for text_part, phrase in danish_two_word_phrases():
        if text_part == part and (answer := identify(phrase)) != "da":
            wrong.append(("da", answer, phrase))
    return wrong


def print_table() -> None:
    """Accuracy per language on the tuning and the held-out part, as README quotes it."""
    scores = evaluate_languages()
    by_key = {(score.language, score.part): score for score in scores}
    print(f"{'language':<12} {'tuning':>16} {'held out':>16}")
    for language in sorted({score.language for score in scores}):
        cells = []
        for part in PARTS:
            score = by_key.get((language, part))
            cells.append(f"{score.accuracy:.3f} ({score.texts:>3})" if score else "-")
        print(f"{language:<12} {cells[0]:>16} {cells[1]:>16}")


if __name__ == "__main__":
    print_table()
