"""Import a validated consultation definition: create it, or update it without losing answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.consultations.definition import ConsultationDefinition, QuestionDefinition
from bot.dialogue.i18n import english_texts
from handlers.events import Phrase
from handlers.ideas.staff import add_staff_statement
from handlers.plan.planning import follow_phases, plan_automatic_posts
from storage.models import Consultation, Question, Round, StatementOrigin
from storage.uow import UnitOfWork

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class RoundMove:
    """A round's times before and after an import (None: the round is new, or gone)."""

    number: int
    before: Window | None
    after: Window | None


@dataclass(frozen=True)
class IdeasMove:
    """The ideas phase's times before and after an import (None: new, or gone)."""

    before: Window | None
    after: Window | None


@dataclass
class ImportReport:
    """What an import did."""

    created: bool

    @property
    def changes_nothing(self) -> bool:
        """An update that leaves the consultation as it was (the same file again)."""
        return not (
            self.created
            or self.added
            or self.archived
            or self.removed
            or self.changed
            or self.reworded
            or self.seeded
            or self.plan_changes
            or self.automatic_posts
        )

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: dict[str, int] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    # An update's changes by the file's own names: its fields ("title", "rounds") and the
    # questions whose text, options or settings changed (by id); nothing for a new consultation.
    changed: list[str] = field(default_factory=list)
    reworded: list[str] = field(default_factory=list)
    # Rounds whose times changed, by number: (opens, closes) before and after; None for a
    # round added or dropped.
    rounds_moved: list[RoundMove] = field(default_factory=list)
    ideas_moved: IdeasMove | None = None
    seeded: int = 0
    # Planned posts tied to the rounds that moved or were cancelled, and automatic posts added.
    plan_changes: list[Phrase] = field(default_factory=list)
    automatic_posts: int = 0


class QuestionsWithAnswers(Exception):
    """Removing these questions would hide answers; needs --force."""

    def __init__(self, counts: dict[str, int]) -> None:
        super().__init__(", ".join(f"{key} ({count} answers)" for key, count in counts.items()))
        self.counts = counts


# What a consultation's fields are called in its file, and the stored attributes behind each.
FILE_FIELDS = {
    "languages": ("languages",),
    "title": ("title",),
    "purpose": ("purpose",),
    "basis": ("basis",),
    "target_group": ("target_group",),
    "citizen_role": ("citizen_role",),
    "organiser": ("organiser",),
    "results": ("results",),
    "moderation": ("moderation",),
    "ideas": ("ideas", "ideas_opens_at", "ideas_closes_at"),
}


def _fields(consultation: Consultation) -> dict[str, tuple[Any, ...]]:
    return {
        name: tuple(getattr(consultation, attribute) for attribute in attributes)
        for name, attributes in FILE_FIELDS.items()
    }


def _window(opens: datetime | None, closes: datetime | None) -> Window | None:
    return (opens, closes) if opens is not None and closes is not None else None


def _question_content(question: Question) -> tuple[Any, ...]:
    """What a citizen meets of a question (its place in the order aside)."""
    return (
        question.kind,
        question.text,
        question.options,
        question.settings,
        question.optional,
        question.condition,
        question.archived_at is None,
    )


def _apply_question(question: Question, definition: QuestionDefinition, position: int) -> None:
    question.position = position
    question.kind = definition.kind
    question.text = definition.text
    question.options = [{"key": o.key, "label": o.label} for o in definition.options]
    question.settings = definition.settings
    question.optional = definition.optional
    question.condition = definition.condition
    question.archived_at = None


async def import_definition(
    uow: UnitOfWork, definition: ConsultationDefinition, now: datetime, *, force: bool = False
) -> ImportReport:
    """Create or update a consultation from its definition (the caller commits)."""
    # Before the first read: what this unit changes must be read from the database.
    await uow.consultations.begin_change()
    consultation = await uow.consultations.by_slug(definition.slug)
    report = ImportReport(created=consultation is None)
    before = _fields(consultation) if consultation is not None else {}
    rounds_before = (
        [(r.name, r.opens_at, r.closes_at) for r in await uow.consultations.rounds(consultation.id)]
        if consultation is not None
        else []
    )
    if consultation is None:
        consultation = await uow.consultations.add(
            Consultation(
                slug=definition.slug,
                created_at=now,
                updated_at=now,
                languages=[],
                title={},
                purpose={},
                basis={},
                target_group={},
                citizen_role="",
                organiser={},
                results={},
            )
        )
    consultation.languages = definition.languages
    consultation.title = definition.title
    consultation.purpose = definition.purpose
    consultation.basis = definition.basis
    consultation.target_group = definition.target_group
    consultation.citizen_role = definition.citizen_role
    consultation.organiser = definition.organiser
    consultation.results = definition.results
    consultation.moderation = definition.moderation
    consultation.updated_at = now
    ideas = definition.ideas
    consultation.ideas_opens_at = ideas.opens_at if ideas else None
    consultation.ideas_closes_at = ideas.closes_at if ideas else None
    consultation.ideas = (
        {
            "prompt": ideas.prompt,
            "max_length": ideas.max_length,
            "premoderation": ideas.premoderation,
        }
        if ideas
        else {}
    )
    if ideas:
        report.seeded = await _seed_statements(uow, consultation, ideas.statements, now)
    if not report.created:
        after = _fields(consultation)
        report.changed = [name for name in FILE_FIELDS if after[name] != before[name]]
        rounds_after = [(r.name, r.opens_at, r.closes_at) for r in definition.rounds]
        if rounds_after != rounds_before:
            report.changed.append("rounds")
        for index in range(max(len(rounds_before), len(rounds_after))):
            was = rounds_before[index][1:] if index < len(rounds_before) else None
            now_ = rounds_after[index][1:] if index < len(rounds_after) else None
            if was != now_:
                report.rounds_moved.append(RoundMove(index + 1, was, now_))
        ideas_before, ideas_after = _window(*before["ideas"][1:]), _window(*after["ideas"][1:])
        if ideas_before != ideas_after:
            report.ideas_moved = IdeasMove(ideas_before, ideas_after)

    await uow.consultations.replace_rounds(
        consultation.id,
        [
            Round(
                consultation_id=consultation.id,
                position=index,
                name=r.name,
                opens_at=r.opens_at,
                closes_at=r.closes_at,
            )
            for index, r in enumerate(definition.rounds)
        ],
    )

    existing = {
        q.key: q for q in await uow.consultations.questions(consultation.id, include_archived=True)
    }
    # The order citizens are asked in, as it was: a file that only reorders changes it.
    asked_before = [
        q.key for q in sorted(existing.values(), key=lambda q: q.position) if q.archived_at is None
    ]
    wanted = {q.key for q in definition.questions}
    counts = await uow.consultations.answer_counts(consultation.id)
    dropped = {key: q for key, q in existing.items() if key not in wanted and q.archived_at is None}
    with_answers = {key: counts[q.id] for key, q in dropped.items() if counts.get(q.id)}
    if with_answers and not force:
        raise QuestionsWithAnswers(with_answers)
    for key, question in dropped.items():
        # Archived, not deleted: the answers stay in the export, the question is not asked.
        question.archived_at = now
        if key in with_answers:
            report.archived[key] = with_answers[key]
        else:
            report.removed.append(key)
    for position, definition_question in enumerate(definition.questions):
        stored = existing.get(definition_question.key)
        if stored is None:
            added = Question(consultation_id=consultation.id, key=definition_question.key)
            _apply_question(added, definition_question, position)
            await uow.consultations.add_question(added)
            if not report.created:
                report.added.append(definition_question.key)
        else:
            content = _question_content(stored)
            _apply_question(stored, definition_question, position)
            report.updated.append(definition_question.key)
            if _question_content(stored) != content:
                report.reworded.append(definition_question.key)
    asked_now = [q.key for q in definition.questions]
    if (
        not report.created
        and asked_now != asked_before
        and sorted(asked_now) == sorted(asked_before)
    ):
        report.changed.append("questions")
    if definition.source:
        await uow.consultations.keep_file(consultation.id, definition.source, now)
    # Posts tied to the rounds follow them; new rounds get their own automatic posts.
    zone = definition.zone
    report.plan_changes = await follow_phases(uow, consultation, now, english_texts(), zone)
    report.automatic_posts = await plan_automatic_posts(uow, consultation, now, zone)
    return report


async def _seed_statements(
    uow: UnitOfWork, consultation: Consultation, seeds: list[dict[str, str]], now: datetime
) -> int:
    """Add staff statements not there yet; a re-import never repeats or removes one.

    A seed is recognised by its Danish text, so fixing an English translation updates it.
    """
    existing = {
        s.text.get("da"): s
        for s in await uow.ideas.statements(consultation.id)
        if s.origin == StatementOrigin.STAFF
    }
    added = 0
    for seed in seeds:
        stored = existing.get(seed["da"])
        if stored is not None:
            stored.text = dict(seed)
            continue
        await add_staff_statement(uow, consultation, seed, now)
        added += 1
    return added
