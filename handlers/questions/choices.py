"""Choices: a citizen taps one option, ticks several, taps their district, or says yes or no."""

from __future__ import annotations

from handlers.context import Texts
from handlers.questions.kind import (
    Answering,
    DefinitionFields,
    KindFields,
    OptionDefinition,
    QuestionKind,
)
from storage.models import Question


class _OptionsFromFile(QuestionKind):
    """Options the consultation file lists, each with an id and a label."""

    fields = ("options",)
    charted = True

    def parse(self, fields: DefinitionFields) -> KindFields:
        return KindFields(options=fields.options("options", fields.get("options")))


class Single(_OptionsFromFile):
    name = "single"
    answering = Answering.TAP
    label_key = "export.kind.single"


class Multiple(_OptionsFromFile):
    name = "multiple"
    answering = Answering.TICK
    label_key = "export.kind.multiple"
    hint_key = "question.hint_multiple"


class District(Single):
    """Like single, for the areas of the municipality."""

    name = "district"
    label_key = "export.kind.district"


class YesNo(QuestionKind):
    """Yes or no: the options are fixed (``yes``, ``no``, for conditions), their labels texts."""

    name = "yesno"
    answering = Answering.TAP
    label_key = "export.kind.yesno"
    buttons_in_one_row = True
    charted = True

    def parse(self, fields: DefinitionFields) -> KindFields:
        return KindFields(options=[OptionDefinition(key, {}) for key in ("yes", "no")])

    def option_label(self, question: Question, key: str, t: Texts) -> str:
        return t("answer.yes") if key == "yes" else t("answer.no")


KINDS = (Single(), Multiple(), District(), YesNo())
