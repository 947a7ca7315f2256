"""How well screening does, on the project's own examples and on data it was not written for.

Run it with ``python -m tests.screening_eval [--dkhate FOLDER]``; the README's tables come from
this output. Three parts, each saying what it can and cannot claim:

1. The project's own labelled examples in tests/data: the rules were tuned while looking at them.
   They are read in order, as ``borgerdialog screen`` reads its input: a text seen before counts
   as repeated, and an author's earlier lines count towards a flood.
2. The offensive-language model's cross-validated figures on the DKHate training split, as
   stored in the model file when it was built (every comment scored by a model that did not see
   it; the thresholds were chosen on those same scores).
3. The language detector on labelled texts in many languages, on the part it was tuned on and
   on the held-out part (``tests.language_eval``).
4. With ``--dkhate``: the personal-data rules run over those public comments, which nobody tuned
   the rules on. Every comment that gets a personal-data flag is printed, so a reader can judge
   which are real and which false.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bot.dialogue.i18n import make_language_identifier
from handlers.screening.build_offensive_model import read_corpus
from handlers.screening.offensive_model import OffensiveModel
from handlers.screening.rules import (
    KINDS,
    PERSONAL_DATA,
    Screener,
    WordLists,
    personal_data_flags,
    screen_in_order,
)
from tests.language_eval import print_table as print_language_table

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
    screener = screener or Screener(
        WordLists.load(), make_language_identifier(), offensive_model=OffensiveModel.load()
    )
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


def print_cross_validated(model: OffensiveModel) -> None:
    about = model.about
    measured = about.get("cross_validated", {})
    alone = about.get("word_lists_alone", {})
    assert isinstance(measured, dict)
    assert isinstance(alone, dict)
    print(
        f"DKHate training split ({about.get('comments')} comments, "
        f"{about.get('offensive_comments')} offensive), {about.get('cross_validation')}:"
    )
    print("| | offensive flagged | offensive held | clean flagged | clean held |")
    print("|---|---:|---:|---:|---:|")
    for name, figures in (("model and word lists", measured), ("word lists alone", alone)):
        print(
            f"| {name} | {figures.get('offensive_flagged')} | {figures.get('offensive_held')} "
            f"| {figures.get('clean_flagged')} | {figures.get('clean_held')} |"
        )
    print(f"thresholds: borderline from {model.borderline_from}, clear from {model.clear_from}")


def print_personal_data_on(folder: Path) -> None:
    lists = WordLists.load()
    comments = read_corpus(folder)
    flagged = []
    for comment in comments:
        flags = [f for f in personal_data_flags(comment.text, lists) if f.category == PERSONAL_DATA]
        if flags:
            flagged.append((comment.text, flags))
    share = len(flagged) / len(comments)
    print(f"personal-data flags on {len(comments)} DKHate comments: {len(flagged)} ({share:.3f})")
    for text, flags in flagged:
        found = ", ".join(f"{f.kind} «{text[f.start : f.end]}»" for f in flags)
        print(f"  {found:<50} {text[:70]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description="How well screening does.")
    parser.add_argument("--dkhate", type=Path, help="the dkhate-train folder, for part 3")
    options = parser.parse_args()
    examples = load_examples()
    scores, mistakes = evaluate()
    print("## 1. The project's own examples (the rules were tuned on them)")
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
    print()
    print("## 2. Offensive language, cross-validated on data the model was trained on")
    print_cross_validated(OffensiveModel.load())
    print()
    print("## 3. Language, on labelled texts (see tests/data/languages/README.md)")
    print_language_table()
    if options.dkhate is not None:
        print()
        print("## 4. Personal data on public comments the rules were not tuned on")
        print_personal_data_on(options.dkhate)


if __name__ == "__main__":
    main()
