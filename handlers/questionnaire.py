"""Pure rules of a questionnaire: which question comes next, what an answer means, round times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.models import Answer, Consultation, Question, Round
from storage.uow import UnitOfWork

SUMMARY_ANSWER_LENGTH = 120


def pick(texts: dict[str, str], language: str) -> str:
    """Return a text in the language, falling back to Danish, then to any text there is."""
    return texts.get(language) or texts.get("da") or next(iter(texts.values()), "")


@dataclass(frozen=True)
class RoundState:
    """Whether a consultation takes answers now, and the round that says when."""

    status: str  # "open", "upcoming" or "closed"
    round: Round | None


def round_state(rounds: list[Round], now: datetime) -> RoundState:
    """Find the open round, else the next one, else the last one that closed."""
    for round_ in rounds:
        if round_.opens_at <= now < round_.closes_at:
            return RoundState("open", round_)
    upcoming = [r for r in rounds if r.opens_at > now]
    if upcoming:
        return RoundState("upcoming", min(upcoming, key=lambda r: r.opens_at))
    return RoundState("closed", max(rounds, key=lambda r: r.closes_at) if rounds else None)


def phase_state(opens_at: datetime, closes_at: datetime, now: datetime) -> str:
    """upcoming, open or closed: where a stretch of time (a round, the ideas phase) stands."""
    if now < opens_at:
        return "upcoming"
    return "open" if now < closes_at else "closed"


@dataclass(frozen=True)
class Span:
    """Where a consultation stands, over its rounds and its ideas phase together: open while
    any of them takes part (until the last of those closes), else upcoming (the next to
    open), else closed (the last to close). None: it has neither (a Pol.is summary)."""

    status: str  # "open", "upcoming" or "closed"
    phase: tuple[datetime, datetime] | None


def span_of(consultation: Consultation, rounds: Sequence[Round], now: datetime) -> Span:
    """A consultation's state: its ideas phase counts as much as its rounds (citizens write and
    vote in it after the last round has closed)."""
    phases = [(r.opens_at, r.closes_at) for r in rounds]
    if consultation.ideas_opens_at and consultation.ideas_closes_at:
        phases.append((consultation.ideas_opens_at, consultation.ideas_closes_at))
    running = [p for p in phases if phase_state(*p, now) == "open"]
    if running:
        return Span("open", (min(o for o, _ in running), max(c for _, c in running)))
    upcoming = [p for p in phases if phase_state(*p, now) == "upcoming"]
    if upcoming:
        return Span("upcoming", min(upcoming))
    return Span("closed", max(phases, key=lambda p: p[1]) if phases else None)


def delete_due(
    consultation: Consultation, span: Span, participations: int, now: datetime, after_days: int
) -> bool:
    """Whether staff should be reminded to delete a consultation: it closed more than
    ``after_days`` ago (BORGERDIALOG_DELETE_REMINDER_DAYS) and still holds data about citizens
    (participations, of whoever opened it). One without rounds or ideas phase (a Pol.is
    summary) counts from its import.

    Nothing deletes a consultation by itself: when its purpose is served is the authority's
    call (the results published, the decision made), so the dashboard, the command line and
    the staff chat ask, and keep asking.
    """
    closed_at = span.phase[1] if span.phase is not None else consultation.created_at
    return (
        participations > 0
        and span.status == "closed"
        and closed_at <= now - timedelta(days=after_days)
    )


async def due_for_deletion(uow: UnitOfWork, now: datetime, after_days: int) -> list[Consultation]:
    """The consultations staff should be reminded to delete (``delete_due``), by slug."""
    due = []
    for consultation in await uow.consultations.all():
        span = span_of(consultation, await uow.consultations.rounds(consultation.id), now)
        if span.status != "closed":
            continue
        participations, _ = await uow.participations.count_in(consultation.id)
        if delete_due(consultation, span, participations, now, after_days):
            due.append(consultation)
    return sorted(due, key=lambda consultation: consultation.slug)


def answers_by_question(answers: list[Answer]) -> dict[int, Answer]:
    """Index answers by question id."""
    return {answer.question_id: answer for answer in answers}


def applies(question: Question, questions: list[Question], answers: dict[int, Answer]) -> bool:
    """Tell whether a conditional question applies, given the answers so far."""
    condition = question.condition
    if not condition:
        return True
    target = next((q for q in questions if q.key == condition["question"]), None)
    if target is None:
        return True
    answer = answers.get(target.id)
    if answer is None or answer.skipped:
        return False
    chosen = answer.value if isinstance(answer.value, list) else [answer.value]
    return any(str(value) in condition["in"] for value in chosen)


def applicable(questions: list[Question], answers: dict[int, Answer]) -> list[Question]:
    """The questions this participant is asked, in order."""
    return [q for q in questions if applies(q, questions, answers)]


def next_unanswered(questions: list[Question], answers: dict[int, Answer]) -> Question | None:
    """The first applicable question without an answer (a skip counts as one)."""
    return next((q for q in applicable(questions, answers) if q.id not in answers), None)


def previous(
    questions: list[Question], answers: dict[int, Answer], current: Question
) -> Question | None:
    """The applicable question before the current one, if any."""
    path = applicable(questions, answers)
    if current not in path:
        return path[-1] if path else None
    index = path.index(current)
    return path[index - 1] if index > 0 else None


def progress(
    questions: list[Question], answers: dict[int, Answer], current: Question
) -> tuple[int, int]:
    """Position of the current question and how many questions apply or may still (3, 7).

    A conditional question counts until the answer it depends on rules it out, so the total
    only ever shrinks on the way: 5/9 then 6/8, never 5/8 then 6/9.
    """
    path = applicable(questions, answers)
    position = path.index(current) + 1 if current in path else len(path)
    return position, how_many(questions, answers, path)


def how_many(
    questions: list[Question], answers: dict[int, Answer], path: list[Question] | None = None
) -> int:
    """How many questions apply or may still: the total of ``progress`` (the introduction's
    "8 questions" and the first question's "1/8" must agree)."""
    path = applicable(questions, answers) if path is None else path
    undecided = [q for q in questions if q not in path and _undecided(q, questions, answers)]
    return len(path) + len(undecided)


def _undecided(question: Question, questions: list[Question], answers: dict[int, Answer]) -> bool:
    """Whether a conditional question's condition waits for an answer not given yet."""
    condition = question.condition
    target = (
        next((q for q in questions if q.key == condition["question"]), None) if condition else None
    )
    return target is not None and target.id not in answers


def no_longer_applicable(questions: list[Question], answers: dict[int, Answer]) -> list[Answer]:
    """Answers to questions that a changed answer made irrelevant.

    Answers to questions no longer among ``questions`` (archived by an import) are not among
    them: the export keeps those.
    """
    current = {q.id for q in questions}
    path = {q.id for q in applicable(questions, answers)}
    return [answer for qid, answer in answers.items() if qid in current and qid not in path]


def option_keys(question: Question) -> list[str]:
    """The keys of a question's options, in order."""
    return [str(option["key"]) for option in question.options]


def shorten(text: str, limit: int = SUMMARY_ANSWER_LENGTH) -> str:
    """Cut a long text for a summary line."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
