"""Pure rules of a questionnaire: which question comes next, what an answer means, round times."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.models import Answer, Question, Round

POSTCODE = re.compile(r"^[0-9]{4}$")
# Danish postcodes run from 1000 (Copenhagen) to 9990 (Skagen).
POSTCODE_RANGE = (1000, 9990)
SUMMARY_ANSWER_LENGTH = 120


def pick(texts: dict[str, str], language: str) -> str:
    """Return a text in the language, falling back to Danish, then to any text there is."""
    return texts.get(language) or texts.get("da") or next(iter(texts.values()), "")


@dataclass(frozen=True)
class RoundState:
    """Whether a consultation takes answers now, and the round that says when."""

    status: str  # "open", "upcoming" or "closed"
    round: Round | None


def round_state(rounds: list[Round], now: datetime) -> RoundState:
    """Find the open round, else the next one, else the last one that closed."""
    for round_ in rounds:
        if round_.opens_at <= now < round_.closes_at:
            return RoundState("open", round_)
    upcoming = [r for r in rounds if r.opens_at > now]
    if upcoming:
        return RoundState("upcoming", min(upcoming, key=lambda r: r.opens_at))
    return RoundState("closed", max(rounds, key=lambda r: r.closes_at) if rounds else None)


def answers_by_question(answers: list[Answer]) -> dict[int, Answer]:
    """Index answers by question id."""
    return {answer.question_id: answer for answer in answers}


def applies(question: Question, questions: list[Question], answers: dict[int, Answer]) -> bool:
    """Tell whether a conditional question applies, given the answers so far."""
    condition = question.condition
    if not condition:
        return True
    target = next((q for q in questions if q.key == condition["question"]), None)
    if target is None:
        return True
    answer = answers.get(target.id)
    if answer is None or answer.skipped:
        return False
    chosen = answer.value if isinstance(answer.value, list) else [answer.value]
    return any(str(value) in condition["in"] for value in chosen)


def applicable(questions: list[Question], answers: dict[int, Answer]) -> list[Question]:
    """The questions this participant is asked, in order."""
    return [q for q in questions if applies(q, questions, answers)]


def next_unanswered(questions: list[Question], answers: dict[int, Answer]) -> Question | None:
    """The first applicable question without an answer (a skip counts as one)."""
    return next((q for q in applicable(questions, answers) if q.id not in answers), None)


def previous(
    questions: list[Question], answers: dict[int, Answer], current: Question
) -> Question | None:
    """The applicable question before the current one, if any."""
    path = applicable(questions, answers)
    if current not in path:
        return path[-1] if path else None
    index = path.index(current)
    return path[index - 1] if index > 0 else None


def progress(
    questions: list[Question], answers: dict[int, Answer], current: Question
) -> tuple[int, int]:
    """Position of the current question and how many questions apply (3, 7)."""
    path = applicable(questions, answers)
    position = path.index(current) + 1 if current in path else len(path)
    return position, len(path)


def no_longer_applicable(questions: list[Question], answers: dict[int, Answer]) -> list[Answer]:
    """Answers to questions that a changed answer made irrelevant."""
    path = {q.id for q in applicable(questions, answers)}
    return [answer for qid, answer in answers.items() if qid not in path]


@dataclass(frozen=True)
class TypedAnswer:
    """The outcome of reading a typed answer: a value, or the text key of what is wrong."""

    value: Any = None
    error: str | None = None
    params: dict[str, object] | None = None


def read_typed(question: Question, text: str) -> TypedAnswer:
    """Read and check a typed answer to a number, postcode, text or idea question."""
    cleaned = text.strip()
    if question.kind == "number":
        low, high = question.settings["min"], question.settings["max"]
        candidate = cleaned.replace(" ", "")
        if not re.fullmatch(r"-?[0-9]{1,15}", candidate) or not low <= int(candidate) <= high:
            return TypedAnswer(error="answer.number_invalid", params={"min": low, "max": high})
        return TypedAnswer(int(candidate))
    if question.kind == "postcode":
        if not POSTCODE.match(cleaned) or not (
            POSTCODE_RANGE[0] <= int(cleaned) <= POSTCODE_RANGE[1]
        ):
            return TypedAnswer(error="answer.postcode_invalid")
        return TypedAnswer(cleaned)
    limit = int(question.settings.get("max_length", 500))
    if not cleaned:
        return TypedAnswer(error="answer.text_empty")
    if len(cleaned) > limit:
        return TypedAnswer(
            error="answer.text_too_long", params={"max": limit, "length": len(cleaned)}
        )
    return TypedAnswer(cleaned)


def option_keys(question: Question) -> list[str]:
    """The keys of a question's options, in order."""
    return [str(option["key"]) for option in question.options]


def option_label(question: Question, key: str, language: str, yes: str, no: str) -> str:
    """The label citizens see for an option."""
    if question.kind == "yesno":
        return yes if key == "yes" else no
    if question.kind == "scale":
        return key
    for option in question.options:
        if option["key"] == key:
            return pick(option["label"], language)
    return key


def shorten(text: str, limit: int = SUMMARY_ANSWER_LENGTH) -> str:
    """Cut a long text for a summary line."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
