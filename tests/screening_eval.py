"""Precision and recall of the screening rules on the labelled examples in tests/data.

Run it with ``python -m tests.screening_eval``; the README's table comes from this output. The
examples are read in order, as ``borgerdialog screen`` reads its input: a text seen before counts
as repeated, and an author's earlier lines count towards a flood.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bot.i18n import make_language_identifier
from handlers.screening.rules import KINDS, Screener, WordLists, screen_in_order

EXAMPLES = Path(__file__).parent / "data" / "screening_examples.jsonl"
LANGUAGES = ("da", "en")


@dataclass(frozen=True)
class Score:
    """Counts for one flag kind."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        labelled = self.true_positives + self.false_negatives
        return self.true_positives / labelled if labelled else 1.0


def load_examples() -> list[dict]:
    return [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines()]


def evaluate(screener: Screener | None = None) -> tuple[dict[str, Score], list[str]]:
    """Score every kind; also return a line for each example the rules got wrong."""
    screener = screener or Screener(WordLists.load(), make_language_identifier())
    counts = {kind: Counter[str]() for kind in KINDS}
    mistakes: list[str] = []
    examples = load_examples()
    results = screen_in_order(
        screener, [(e["text"], e.get("author")) for e in examples], languages=LANGUAGES
    )
    for example, result in zip(examples, results, strict=True):
        text = example["text"]
        found = set(result.kinds)
        labelled = set(example["kinds"])
        for kind in KINDS:
            if kind in found and kind in labelled:
                counts[kind]["tp"] += 1
            elif kind in found:
                counts[kind]["fp"] += 1
            elif kind in labelled:
                counts[kind]["fn"] += 1
        if found != labelled:
            missed = ",".join(sorted(labelled - found)) or "-"
            extra = ",".join(sorted(found - labelled)) or "-"
            mistakes.append(f"missed {missed:<12} extra {extra:<12} {text[:70]}")
    scores = {k: Score(c["tp"], c["fp"], c["fn"]) for k, c in counts.items()}
    return scores, mistakes


def main() -> None:
    examples = load_examples()
    scores, mistakes = evaluate()
    print(f"{len(examples)} examples, {sum(1 for e in examples if not e['kinds'])} without flags")
    print("| kind | labelled | found | correct | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, score in scores.items():
        labelled = score.true_positives + score.false_negatives
        found = score.true_positives + score.false_positives
        print(
            f"| {kind} | {labelled} | {found} | {score.true_positives} "
            f"| {score.precision:.2f} | {score.recall:.2f} |"
        )
    print()
    for line in mistakes:
        print(line)


if __name__ == "__main__":
    main()
