"""The question kinds the bot knows, by name: the one place every other module asks."""

from __future__ import annotations

from handlers.questions import choices, free_text, number, postcode, scale
from handlers.questions.kind import QuestionKind, TypedAnswer
from storage.models import Question

# In the order a consultation file's mistakes list them ("must be one of single, multiple, …").
BUILT_IN = (*choices.KINDS, *scale.KINDS, *number.KINDS, *postcode.KINDS, *free_text.KINDS)

_by_name: dict[str, QuestionKind] = {kind.name: kind for kind in BUILT_IN}


def register(kind: QuestionKind) -> None:
    """Add a kind, after those there are; its name must be new."""
    if kind.name in _by_name:
        raise ValueError(f"a question kind named {kind.name!r} is registered already")
    _by_name[kind.name] = kind


def unregister(name: str) -> None:
    """Remove a kind added with ``register``."""
    if any(kind.name == name for kind in BUILT_IN):
        raise ValueError(f"{name!r} is a built-in question kind")
    del _by_name[name]


def all_kinds() -> tuple[QuestionKind, ...]:
    """Every kind, built-in ones first, in the order they were registered."""
    return tuple(_by_name.values())


def find_kind(name: object) -> QuestionKind | None:
    """The kind of that name, None if there is none (a typo in a consultation file)."""
    return _by_name.get(name) if isinstance(name, str) else None


def kind_of(question: Question) -> QuestionKind:
    """The kind of a stored question (the consultation file was checked on import)."""
    return _by_name[question.kind]


def read_typed(question: Question, text: str) -> TypedAnswer:
    """Read and check a typed answer to a question answered by typing."""
    return kind_of(question).read(question, text.strip())
