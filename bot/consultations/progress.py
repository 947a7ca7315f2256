"""How a consultation is going: who took part on which day, and whether the target group's
quotas are reached. The command line (``consultation show``) and the dashboard both say it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from storage.models import Consultation, Question
from storage.uow import UnitOfWork

# A chart and a table of more days than this would help nobody; the last ones are kept.
MAX_DAYS = 366


@dataclass(frozen=True)
class QuotaCoverage:
    """One quota of a consultation's target group: how many answered the option, and how
    many the organiser wanted at least. ``question`` is None if the question is gone."""

    question_key: str
    option: str
    minimum: int
    reached: int
    question: Question | None

    @property
    def met(self) -> bool:
        return self.reached >= self.minimum


async def quota_coverage(uow: UnitOfWork, consultation: Consultation) -> list[QuotaCoverage]:
    """Each quota of the consultation's target group with the answers that count towards it:
    given (not skipped) by a participant still there, with the quota's option among them."""
    questions = {
        q.key: q for q in await uow.consultations.questions(consultation.id, include_archived=True)
    }
    quotas = consultation.target_group.get("quotas", [])
    answers = await uow.participations.answers_of_consultation(consultation.id) if quotas else []
    coverage = []
    for quota in quotas:
        question = questions.get(str(quota["question"]))
        option = str(quota["option"])
        reached = sum(
            1
            for answer in answers
            if question is not None
            and answer.question_id == question.id
            and answer.participation_id is not None
            and not answer.skipped
            and option in (answer.value if isinstance(answer.value, list) else [str(answer.value)])
        )
        coverage.append(
            QuotaCoverage(str(quota["question"]), option, int(quota["minimum"]), reached, question)
        )
    return coverage


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day a moment falls on where the consultation is held."""
    return moment.astimezone(zone).date()


def participation_by_day(
    consents: Iterable[datetime], first: date, last: date, zone: ZoneInfo
) -> list[tuple[date, int]]:
    """How many said yes to taking part on each day from ``first`` to ``last`` (days without
    anyone included, so a chart's gaps are real), at most the last MAX_DAYS days."""
    if last < first:
        return []
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    counted = Counter(local_day(moment, zone) for moment in consents)
    return [
        (first + timedelta(days=offset), counted[first + timedelta(days=offset)])
        for offset in range((last - first).days + 1)
    ]
