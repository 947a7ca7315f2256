"""Free text: a citizen types an answer, or an idea kept with the answers and shown to others."""

from __future__ import annotations

from handlers.events import Phrase, without_invisible
from handlers.questions.kind import (
    Answering,
    DefinitionFields,
    KindFields,
    QuestionKind,
    TypedAnswer,
)
from storage.models import Question

MIN_LENGTH = 10
MAX_TEXT_ANSWER = 2000
DEFAULT_TEXT_ANSWER = 500
# An idea is as long as a statement of the ideas phase may be by default (a short paragraph).
DEFAULT_IDEA_LENGTH = 280


class _FreeText(QuestionKind):
    """Typed text up to ``max_length`` characters, screened before others may see it."""

    answering = Answering.TYPE
    fields = ("max_length",)
    free_text = True
    default_length: int

    def parse(self, fields: DefinitionFields) -> KindFields:
        length = fields.get("max_length", self.default_length)
        if not isinstance(length, int) or not MIN_LENGTH <= length <= MAX_TEXT_ANSWER:
            fields.error(
                "max_length",
                Phrase(
                    "mistake.consultation.whole_number_from", low=MIN_LENGTH, high=MAX_TEXT_ANSWER
                ),
            )
            length = self.default_length
        return KindFields(settings={"max_length": length})

    def hint_params(self, question: Question, language: str) -> dict[str, object]:
        return {"max": question.settings["max_length"]}

    def read(self, question: Question, text: str) -> TypedAnswer:
        limit = int(question.settings.get("max_length", self.default_length))
        if not without_invisible(text).strip():
            return TypedAnswer(error="answer.text_empty")
        if len(text) > limit:
            return TypedAnswer(
                error="answer.text_too_long", params={"max": limit, "length": len(text)}
            )
        return TypedAnswer(text)


class Text(_FreeText):
    name = "text"
    label_key = "export.kind.text"
    hint_key = "question.hint_text"
    default_length = DEFAULT_TEXT_ANSWER


class Idea(_FreeText):
    name = "idea"
    label_key = "export.kind.idea"
    hint_key = "question.hint_idea"
    default_length = DEFAULT_IDEA_LENGTH
    published = True


KINDS = (Text(), Idea())
