"""A postcode: a citizen types a Danish four-digit postcode, with or without the town."""

from __future__ import annotations

import re

from handlers.questions.kind import Answering, QuestionKind, TypedAnswer
from storage.models import Question

# Four digits, alone or followed by the town as people write it ("8000 Aarhus C").
POSTCODE = re.compile(r"([0-9]{4})(?:[ ,]+[^\W\d][\w .-]*)?")
# Danish postcodes run from 1000 (Copenhagen) to 9990 (Skagen).
POSTCODE_RANGE = (1000, 9990)


class Postcode(QuestionKind):
    name = "postcode"
    answering = Answering.TYPE
    label_key = "export.kind.postcode"
    hint_key = "question.hint_postcode"

    def read(self, question: Question, text: str) -> TypedAnswer:
        match = POSTCODE.fullmatch(text)
        if match is None:
            return TypedAnswer(error="answer.postcode_invalid")
        code = match.group(1)
        if not POSTCODE_RANGE[0] <= int(code) <= POSTCODE_RANGE[1]:
            return TypedAnswer(error="answer.postcode_unknown", params={"code": code})
        return TypedAnswer(code)


KINDS = (Postcode(),)
