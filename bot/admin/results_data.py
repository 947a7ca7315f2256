"""A consultation's results as the dashboard shows them, counted by the rules the results post,
the exports and ``borgerdialog ideas groups`` count by.

Per question: how many chose each option (``count_options``, as the results post counts), the
distribution of typed numbers, or the free texts with their screening state, personal data
masked as the moderator chat masks it. Per statement: the votes, the opinion groups' shares,
consensus and divisive ones; and the groups as points in the two dimensions the groups were
found in (``GroupModel.position``, as the groups were computed).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal

from bot.consultations.export import LANGUAGE_KEYS
from bot.dialogue.i18n import BoundTexts
from handlers.ideas.groups import GroupModel
from handlers.ideas.rules import group_letter, statement_text
from handlers.ideas.standing import group_marks, percent
from handlers.moderation.cards import moment_text, reasons
from handlers.plan.results import count_options
from handlers.questionnaire import pick
from handlers.questions import kind_of
from handlers.screening.rules import MASK, PERSONAL_DATA, Flag, mask
from scheduler.jobs import votes_for_groups
from storage.ideas import Tally
from storage.models import (
    Answer,
    Consultation,
    Decision,
    ModerationItem,
    Question,
    Statement,
    StatementOrigin,
    Visibility,
)
from storage.uow import UnitOfWork

# A question with many free texts shows this many on the page; the export holds them all.
FREE_TEXTS_SHOWN = 300
# Typed numbers fall into at most this many bins of whole numbers.
MAX_BINS = 10
STATE_KEYS = {
    Visibility.VISIBLE: "admin.results.state.visible",
    Visibility.HELD: "admin.results.state.held",
    Visibility.HIDDEN: "admin.results.state.hidden",
}
DECISION_KEYS = {
    Decision.ACCEPTED: "export.decision.accepted",
    Decision.REJECTED: "export.decision.rejected",
    Decision.CONSIDERING: "export.decision.considering",
    Decision.MERGED: "export.decision.merged",
}


@dataclass(frozen=True)
class Bar:
    """One option (or typed value, or bin) and how many answers chose it."""

    label: str
    count: int
    share: int  # a whole percentage of those who answered


@dataclass(frozen=True)
class NumberSummary:
    """Typed numbers: how many, the middle and the ends, and the bins the chart draws."""

    count: int
    lowest: int
    highest: int
    mean: str
    median: str
    edges: list[int]
    values: list[int]


@dataclass(frozen=True)
class FreeText:
    """A free-text answer as staff may read it: masked, with its screening state."""

    author: str
    text: str
    language: str
    state: str
    flags: list[str]
    answered_at: str


@dataclass
class QuestionResult:
    """One question's results; ``chart`` says which chart (if any) draws them."""

    question: Question
    number: int
    text: str
    kind: str
    hint: str | None
    answered: int = 0
    skipped: int = 0
    chart: str = ""  # "bars", "histogram" or ""
    bars: list[Bar] = field(default_factory=list)
    numbers: NumberSummary | None = None
    free_texts: list[FreeText] = field(default_factory=list)
    more_free_texts: int = 0

    @property
    def chart_title(self) -> str:
        return self.text if len(self.text) <= 70 else self.text[:69].rstrip() + "…"


@dataclass(frozen=True)
class StatementRow:
    """A statement with its votes, state, decision and each opinion group's agreement."""

    statement: Statement
    text: str
    author: str
    state: str
    tally: Tally
    agree: int
    disagree: int
    passed: int
    decision: str
    group_agree: list[int]
    consensus: bool
    divisive: bool


@dataclass(frozen=True)
class GroupSummary:
    """An opinion group: its letter, size and what marks it against the others."""

    letter: str
    size: int
    agrees: StatementRow | None
    disagrees: StatementRow | None


@dataclass(frozen=True)
class Member:
    """A participant placed in a group, by pseudonym and position."""

    pseudonym: str
    letter: str
    x: float
    y: float


@dataclass
class StatementResults:
    """The ideas phase's results: every statement, and the opinion groups when there are any."""

    rows: list[StatementRow] = field(default_factory=list)
    votes: int = 0
    groups: list[GroupSummary] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    consensus: list[StatementRow] = field(default_factory=list)
    divisive: list[StatementRow] = field(default_factory=list)
    silhouette: float = 0.0


def author_name(t: BoundTexts, pseudonyms: dict[int, str], participation_id: int | None) -> str:
    """Who wrote a contribution, by pseudonym; "anonymised" after /forget."""
    if participation_id is None or participation_id not in pseudonyms:
        return t("export.anonymised")
    return pseudonyms[participation_id]


def flags_of(items: Sequence[ModerationItem]) -> list[Flag]:
    """The flags screening (and reports) put on a contribution, each once."""
    return list(dict.fromkeys(Flag(**flag) for item in items for flag in item.flags))


def described(t: BoundTexts, flags: Sequence[Flag]) -> list[str]:
    """Flags as moderators read them, without what a personal-data flag matched."""
    return reasons(
        t, [Flag(f.kind, f.start, f.end, MASK) if f.category == PERSONAL_DATA else f for f in flags]
    )


def decimal(value: float, language: str) -> str:
    """A number as the reader writes it: "21,5" in Danish, "21.5" in English."""
    return str(format_decimal(value, format="#,##0.#", locale=language))


def number_bins(values: Sequence[int]) -> list[int]:
    """Edges of at most ``MAX_BINS`` bins of whole numbers of one width, covering the values."""
    lowest, highest = min(values), max(values)
    width = max(1, math.ceil((highest - lowest + 1) / MAX_BINS))
    count = math.ceil((highest - lowest + 1) / width)
    return [lowest + index * width for index in range(count + 1)]


def bin_label(low: int, high: int) -> str:
    """A bin of whole numbers [low, high) as people read it: "7", or "10–19"."""
    return str(low) if high - low == 1 else f"{low}–{high - 1}"


def bin_bars(values: Sequence[int], edges: list[int]) -> list[Bar]:
    """How many values fall in each bin (numpy's histogram: the chart draws the same)."""
    # Imported here: the bot serving citizens need not carry numpy for the dashboard's sake.
    import numpy as np

    counts, _ = np.histogram(values, bins=edges)
    return [
        Bar(bin_label(low, high), int(count), percent(int(count), len(values)))
        for low, high, count in zip(edges, edges[1:], counts, strict=False)
    ]


async def question_results(
    uow: UnitOfWork,
    consultation: Consultation,
    t: BoundTexts,
    zone: ZoneInfo,
    *,
    only: str | None = None,
) -> list[QuestionResult]:
    """Every question's results (archived ones too, as the export has them); ``only`` one."""
    questions = await uow.consultations.questions(consultation.id, include_archived=True)
    answers = await uow.participations.answers_of_consultation(consultation.id)
    pseudonyms = {
        p.id: p.pseudonym for p in await uow.participations.of_consultation(consultation.id)
    }
    results = []
    for number, question in enumerate(questions, 1):
        if only is not None and question.key != only:
            continue
        given = [a for a in answers if a.question_id == question.id]
        results.append(await _question(uow, question, number, given, pseudonyms, t, zone))
    return results


async def _question(
    uow: UnitOfWork,
    question: Question,
    number: int,
    given: list[Answer],
    pseudonyms: dict[int, str],
    t: BoundTexts,
    zone: ZoneInfo,
) -> QuestionResult:
    kind = kind_of(question)
    result = QuestionResult(
        question=question,
        number=number,
        text=pick(question.text, t.language),
        kind=t(kind.label_key),
        hint=kind.hint(question, t),
    )
    answered = [a for a in given if not a.skipped]
    result.answered, result.skipped = len(answered), len(given) - len(answered)
    if kind.has_options:
        result.chart = "bars"
        result.bars = [
            Bar(kind.option_label(question, key, t), count, percent(count, len(answered)))
            for key, count in count_options(question, answered).items()
        ]
    elif kind.free_text:
        newest = sorted(answered, key=lambda a: a.answered_at, reverse=True)
        for answer in newest[:FREE_TEXTS_SHOWN]:
            result.free_texts.append(await _free_text(uow, answer, pseudonyms, t, zone))
        result.more_free_texts = max(0, len(newest) - FREE_TEXTS_SHOWN)
    elif answered and all(type(a.value) is int for a in answered):
        values = [int(a.value) for a in answered]
        edges = number_bins(values)
        result.chart = "histogram"
        result.numbers = NumberSummary(
            len(values),
            min(values),
            max(values),
            decimal(statistics.fmean(values), t.language),
            decimal(statistics.median(values), t.language),
            edges,
            values,
        )
        result.bars = bin_bars(values, edges)
    elif answered:
        # Other typed answers (a postcode) are counted by value, the most common first.
        counted: dict[str, int] = {}
        for answer in answered:
            counted[str(answer.value)] = counted.get(str(answer.value), 0) + 1
        result.chart = "bars"
        result.bars = [
            Bar(value, count, percent(count, len(answered)))
            for value, count in sorted(counted.items(), key=lambda item: (-item[1], item[0]))
        ]
    return result


async def _free_text(
    uow: UnitOfWork, answer: Answer, pseudonyms: dict[int, str], t: BoundTexts, zone: ZoneInfo
) -> FreeText:
    flags = flags_of(await uow.moderation.of_answer(answer.id))
    return FreeText(
        author=author_name(t, pseudonyms, answer.participation_id),
        text=mask(str(answer.value), flags),
        language=t(LANGUAGE_KEYS[answer.language])
        if answer.language in LANGUAGE_KEYS
        else answer.language or "",
        state=t(STATE_KEYS.get(answer.visibility, STATE_KEYS[Visibility.VISIBLE])),
        flags=described(t, flags),
        answered_at=moment_text(t, answer.answered_at, zone),
    )


async def statement_results(
    uow: UnitOfWork, consultation: Consultation, t: BoundTexts
) -> StatementResults:
    """The statements with their votes and, when there are groups, the groups and their map."""
    results = StatementResults()
    statements = await uow.ideas.statements(consultation.id)
    if not statements:
        return results
    tallies = await uow.ideas.tallies(consultation.id)
    pseudonyms = {
        p.id: p.pseudonym for p in await uow.participations.of_consultation(consultation.id)
    }
    stored = await uow.ideas.groups(consultation.id)
    model = GroupModel.from_document(stored.model) if stored is not None and stored.model else None
    groups = range(len(model.centers)) if model is not None else range(0)
    by_id: dict[int, StatementRow] = {}
    for statement in statements:
        tally = tallies.get(statement.id) or Tally()
        flags = flags_of(await uow.moderation.of_statement(statement.id))
        written = statement.text.get(statement.language) or statement_text(statement, t.language)
        row = StatementRow(
            statement=statement,
            text=mask(written, flags) if flags else statement_text(statement, t.language),
            author=(
                t("admin.results.staff_author")
                if statement.origin == StatementOrigin.STAFF
                else author_name(t, pseudonyms, statement.participation_id)
            ),
            state=t(STATE_KEYS.get(statement.visibility, STATE_KEYS[Visibility.VISIBLE])),
            tally=tally,
            agree=percent(tally.agree, tally.total),
            disagree=percent(tally.disagree, tally.total),
            passed=percent(tally.passed, tally.total),
            decision=t(DECISION_KEYS[statement.decision]) if statement.decision else "",
            group_agree=[
                round(100 * model.tally(g, statement.id).agree_share)
                for g in groups
                if model is not None
            ],
            consensus=model is not None and statement.id in model.consensus,
            divisive=model is not None and statement.id in model.divisive,
        )
        by_id[statement.id] = row
        results.rows.append(row)
    results.votes = sum(tally.total for tally in tallies.values())
    if model is None:
        return results
    results.silhouette = model.silhouette
    results.consensus = [by_id[s] for s in model.consensus if s in by_id]
    results.divisive = [by_id[s] for s in model.divisive if s in by_id]
    shown = {s.id for s in statements if s.visibility == Visibility.VISIBLE}
    for group, size in enumerate(model.sizes):
        agrees, disagrees = group_marks(model, group, shown)
        results.groups.append(
            GroupSummary(
                group_letter(group),
                size,
                by_id[agrees] if agrees is not None else None,
                by_id[disagrees] if disagrees is not None else None,
            )
        )
    results.members = await members(uow, consultation, model, pseudonyms)
    return results


async def members(
    uow: UnitOfWork, consultation: Consultation, model: GroupModel, pseudonyms: dict[int, str]
) -> list[Member]:
    """The participants in the groups, each where their votes place them."""
    votes: dict[int, dict[int, int]] = {}
    for participation, statement, value in await votes_for_groups(uow, consultation.id):
        votes.setdefault(participation, {})[statement] = value
    placed = []
    for participation, group in sorted(model.members.items()):
        point = model.position(votes.get(participation, {}))
        if point is None or participation not in pseudonyms:
            continue  # votes taken back (or /forget) since the groups were computed
        placed.append(Member(pseudonyms[participation], group_letter(group), *point))
    return sorted(placed, key=lambda m: (m.letter, m.pseudonym))
