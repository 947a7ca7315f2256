"""A scale: a citizen taps 1 to 5, between two end labels the consultation file gives."""

from __future__ import annotations

from typing import Any

from handlers.context import Texts
from handlers.events import Phrase
from handlers.questionnaire import pick
from handlers.questions.kind import (
    MAX_OPTION_LABEL,
    Answering,
    DefinitionFields,
    KindFields,
    OptionDefinition,
    QuestionKind,
)
from storage.models import Question

STEPS = ("1", "2", "3", "4", "5")


class Scale(QuestionKind):
    name = "scale"
    answering = Answering.TAP
    label_key = "export.kind.scale"
    fields = ("labels",)
    hint_key = "question.hint_scale"
    buttons_in_one_row = True

    def parse(self, fields: DefinitionFields) -> KindFields:
        labels = fields.get("labels") or {}
        if not isinstance(labels, dict):
            fields.error("labels", Phrase("mistake.question.labels"))
            labels = {}
        return KindFields(
            options=[OptionDefinition(step, {}) for step in STEPS],
            settings={
                end: fields.texts(f"labels.{end}", labels.get(end), limit=MAX_OPTION_LABEL)
                for end in ("low", "high")
            },
        )

    def hint_params(self, question: Question, language: str) -> dict[str, object]:
        return {end: pick(question.settings[end], language) for end in ("low", "high")}

    def option_label(self, question: Question, key: str, t: Texts) -> str:
        return key

    def cell(self, question: Question, value: Any, t: Texts, *, spreadsheet: bool) -> object:
        # A point on the scale is a number in every format (JSON too), like a number answer.
        return int(value) if str(value).isdigit() else str(value)

    def describe_options(self, question: Question, t: Texts) -> str:
        low, high = (pick(question.settings.get(end) or {}, t.language) for end in ("low", "high"))
        return f"1: {low}; 5: {high}" if low or high else "1–5"


KINDS = (Scale(),)
