"""What a question kind provides: every facet a place in the bot asks of it.

A kind is read from a consultation file, asked, answered, shown back, exported and counted
in results. Each of those places asks the kind (``handlers.questions.kind_of``) rather than
testing the kind's name, so a new kind is one module that subclasses ``QuestionKind``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from handlers.context import Texts
from handlers.events import Phrase
from handlers.questionnaire import pick, shorten
from storage.models import Question

# Longest option label that fits an inline button comfortably on a phone.
MAX_OPTION_LABEL = 40


class Answering(Enum):
    """How a citizen gives an answer, which decides the buttons and what a message means."""

    TAP = "tap"  # one tap on an option answers; the value is the option's key
    TICK = "tick"  # options are ticked, then Done; the value is a list of keys
    TYPE = "type"  # a typed message answers; the kind reads and checks it


@dataclass(frozen=True)
class OptionDefinition:
    """An option as a consultation file defines it: its key and its label per language."""

    key: str
    label: dict[str, str]


@dataclass(frozen=True)
class KindFields:
    """What a kind read from its question's fields in a consultation file."""

    options: list[OptionDefinition] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


class DefinitionFields(Protocol):
    """One question's mapping in a consultation file, with the file reader's checks.

    Field names are relative to the question ("min", "labels.low"); a mistake is reported with
    its line and full path ("line 30: questions[2].min: must be a whole number").
    """

    def get(self, name: str, default: Any = None) -> Any:
        """The value of a field of the question; the default if it is not there."""
        ...

    def error(self, name: str, reason: Phrase) -> None:
        """Report a mistake in a field of the question."""
        ...

    def texts(self, name: str, value: Any, *, limit: int) -> dict[str, str]:
        """Read a text given in every language of the consultation."""
        ...

    def options(self, name: str, value: Any) -> list[OptionDefinition]:
        """Read a list of options ({id, label}), two to twelve."""
        ...


@dataclass(frozen=True)
class TypedAnswer:
    """The outcome of reading a typed answer: a value, or the text key of what is wrong."""

    value: Any = None
    error: str | None = None
    params: dict[str, object] | None = None


class QuestionKind:
    """A question kind. Subclasses set the class attributes and override what differs."""

    # The name consultation files use in ``kind:`` and the database stores.
    name: str
    answering: Answering
    # The text key of the kind's name as staff read it (the export's questions sheet).
    label_key: str
    # The fields of a question this kind reads, beyond id, kind, text, optional and when.
    fields: tuple[str, ...] = ()
    # The text key of the hint under the question, and whether all options fit one row.
    hint_key: str | None = None
    buttons_in_one_row: bool = False
    # A free text is screened for moderation, its language detected and exported.
    free_text: bool = False
    # Answers are published ideas: after /forget they stay, without a link to their author.
    published: bool = False
    # Whether the results post may chart it as its main question (counts per option).
    charted: bool = False

    @property
    def has_options(self) -> bool:
        """Whether answers are option keys, so a condition or a quota can name them."""
        return self.answering is not Answering.TYPE

    def parse(self, fields: DefinitionFields) -> KindFields:
        """Read and check the kind's own fields of a question in a consultation file."""
        return KindFields()

    def hint_params(self, question: Question, language: str) -> dict[str, object]:
        """The values the hint's text is filled with."""
        return {}

    def hint(self, question: Question, t: Texts) -> str | None:
        """The hint on how to answer, shown under the question; None if it needs none."""
        if self.hint_key is None:
            return None
        return t(self.hint_key, **self.hint_params(question, t.language))

    def read(self, question: Question, text: str) -> TypedAnswer:
        """Read a typed answer (stripped of spaces around it), or say what is wrong with it."""
        # Only a kind answered by typing is asked to read text; anything else is a bug.
        raise TypeError(f"a {self.name} question is not answered by typing")

    def option_label(self, question: Question, key: str, t: Texts) -> str:
        """The label citizens see for one of the question's options."""
        for option in question.options:
            if option["key"] == key:
                return pick(option["label"], t.language)
        return key

    def show(self, question: Question, value: Any, t: Texts) -> str:
        """An answer given, as the participant reads it back."""
        if self.answering is Answering.TICK:
            return "; ".join(self.option_label(question, key, t) for key in value)
        if self.answering is Answering.TAP:
            return self.option_label(question, str(value), t)
        return shorten(str(value))

    def cell(self, question: Question, value: Any, t: Texts, *, spreadsheet: bool) -> object:
        """An answer as an export's cell; a spreadsheet keeps numbers as numbers."""
        if self.answering is Answering.TYPE:
            return str(value)
        if self.answering is Answering.TICK:
            return "; ".join(self.option_label(question, key, t) for key in value)
        return self.option_label(question, str(value), t)

    def describe_options(self, question: Question, t: Texts) -> str:
        """The options as "key: label" pairs, so an export's questions sheet explains the keys."""
        return "; ".join(
            f"{option['key']}: {self.option_label(question, str(option['key']), t)}"
            for option in question.options
        )
