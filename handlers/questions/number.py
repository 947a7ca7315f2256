"""A number: a citizen types a whole number between the question's min and max."""

from __future__ import annotations

import re
from typing import Any

from handlers.context import Texts
from handlers.events import Phrase
from handlers.questions.kind import (
    Answering,
    DefinitionFields,
    KindFields,
    QuestionKind,
    TypedAnswer,
)
from storage.models import Question

# A whole number as people write it: "12", "-3", "1.000" or "1 000" (thousands), "ca. 10".
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,3}(?:[. ][0-9]{3})+|-?[0-9]{1,15}")
# What may stand around the number: a unit or a hedge ("10 gange", "ca. 10", "omkring 10 km").
NUMBER_WORDS = re.compile(r"[^\W\d_]+\.?")
# Answers have at most 15 digits (WHOLE_NUMBER), so the bounds have too.
MAX_NUMBER = 10**15 - 1


class Number(QuestionKind):
    name = "number"
    answering = Answering.TYPE
    label_key = "export.kind.number"
    fields = ("min", "max")
    hint_key = "question.hint_number"

    def parse(self, fields: DefinitionFields) -> KindFields:
        low, high = fields.get("min"), fields.get("max")
        for name, bound in (("min", low), ("max", high)):
            if not isinstance(bound, int) or isinstance(bound, bool):
                fields.error(name, Phrase("mistake.question.whole_number"))
            elif abs(bound) > MAX_NUMBER:
                fields.error(name, Phrase("mistake.question.digits", limit=15))
        if isinstance(low, int) and isinstance(high, int) and low >= high:
            fields.error("max", Phrase("mistake.question.above_min", low=low))
        return KindFields(settings={"min": low, "max": high})

    def hint_params(self, question: Question, language: str) -> dict[str, object]:
        return {"min": question.settings["min"], "max": question.settings["max"]}

    def read(self, question: Question, text: str) -> TypedAnswer:
        low, high = question.settings["min"], question.settings["max"]
        bounds: dict[str, object] = {"min": low, "max": high}
        number = read_whole_number(text)
        if number is None:
            return TypedAnswer(error="answer.number_invalid", params=bounds)
        if not low <= number <= high:
            return TypedAnswer(error="answer.number_out_of_range", params=bounds)
        return TypedAnswer(number)

    def cell(self, question: Question, value: Any, t: Texts, *, spreadsheet: bool) -> object:
        # A number stays a number, so staff can sum it; -3 is no formula.
        return value if type(value) is int else str(value)


def read_whole_number(text: str) -> int | None:
    """The one whole number in a typed answer, or None if there is none or more than one.

    Words around it are allowed ("10 gange", "ca. 10"); "mellem 5 og 10" and "2,5" are not a
    whole number, and are asked again rather than guessed.
    """
    numbers = list(WHOLE_NUMBER.finditer(text))
    if len(numbers) != 1:
        return None
    start, end = numbers[0].span()
    if (start and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()):
        return None  # "12abc", "a12": not a number someone meant
    rest = (text[: numbers[0].start()] + " " + text[numbers[0].end() :]).split()
    if any(NUMBER_WORDS.fullmatch(word) is None for word in rest):
        return None  # "2,5", "10/12" or other digits and signs around it
    return int(re.sub(r"[. ]", "", numbers[0].group()))


KINDS = (Number(),)
