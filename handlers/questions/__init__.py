"""Question kinds: one module per family of kinds, and the registry every place asks.

``kind_of(question)`` gives a stored question's kind; ``find_kind(name)`` looks a name up;
``register`` adds a kind. What a kind provides is ``kind.QuestionKind``.
"""

from handlers.questions.kind import (
    Answering,
    DefinitionFields,
    KindFields,
    OptionDefinition,
    QuestionKind,
    TypedAnswer,
)
from handlers.questions.registry import (
    all_kinds,
    find_kind,
    kind_of,
    read_typed,
    register,
    unregister,
)

__all__ = [
    "Answering",
    "DefinitionFields",
    "KindFields",
    "OptionDefinition",
    "QuestionKind",
    "TypedAnswer",
    "all_kinds",
    "find_kind",
    "kind_of",
    "read_typed",
    "register",
    "unregister",
]
