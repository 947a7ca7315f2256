"""The results a closing round reports: numbers, the main question's answers as a chart, and the
statements most agreed on."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from handlers import questionnaire
from handlers.context import Texts
from handlers.ideas.groups import GroupModel
from handlers.ideas.rules import short
from handlers.ideas.standing import percent
from handlers.questions import kind_of
from storage.models import (
    Answer,
    Consultation,
    ParticipationStatus,
    Question,
    Visibility,
)
from storage.uow import UnitOfWork

TOP_STATEMENTS = 3
MIN_VOTES_FOR_TOP = 3
# The chart: wide enough for a phone held upright to show it without zooming.
CHART_WIDTH = 1000
BAR_HEIGHT = 56
BAR_COLOUR = (31, 94, 168)
TEXT_COLOUR = (33, 37, 41)


@dataclass
class Results:
    """What a consultation's results post says."""

    title: dict[str, str]
    participants: int = 0
    completed: int = 0
    statements: int = 0
    votes: int = 0
    # The main question (the first with options): its text and (option label, answers) bars.
    question: dict[str, str] = field(default_factory=dict)
    bars: list[tuple[dict[str, str], int]] = field(default_factory=list)
    # The most agreed statements: (text, agree %), and those every opinion group agrees on.
    top: list[tuple[dict[str, str], int]] = field(default_factory=list)
    consensus: list[dict[str, str]] = field(default_factory=list)


async def gather_results(
    uow: UnitOfWork,
    consultation: Consultation,
    texts_in: Callable[[str | None], Texts],
    languages: Sequence[str],
) -> Results:
    """Count what a consultation collected; the main question's options named in each language."""
    results = Results(title=consultation.title)
    participations = await uow.participations.of_consultation(consultation.id)
    consented = [p for p in participations if p.consent_at is not None]
    results.participants = len(consented)
    results.completed = sum(p.status == ParticipationStatus.COMPLETED for p in consented)
    questions = await uow.consultations.questions(consultation.id)
    main = next((q for q in questions if kind_of(q).charted), None)
    if main is not None:
        counts = count_options(
            main, await uow.participations.answers_of_consultation(consultation.id)
        )
        # The kind names its options: a yes/no question stores none, its texts say "Ja"/"Yes".
        kind = kind_of(main)
        results.question = main.text
        results.bars = [
            (
                {
                    language: kind.option_label(main, key, texts_in(language))
                    for language in languages
                },
                count,
            )
            for key, count in counts.items()
        ]
    statements = {
        s.id: s
        for s in await uow.ideas.statements(consultation.id)
        if s.visibility == Visibility.VISIBLE
    }
    if statements:
        tallies = await uow.ideas.tallies(consultation.id)
        results.statements = len(statements)
        results.votes = sum(t.total for t in tallies.values())
        ranked = sorted(
            (
                (percent(t.agree, t.total), -t.total, sid)
                for sid, t in tallies.items()
                if sid in statements and t.total >= MIN_VOTES_FOR_TOP
            ),
            reverse=True,
        )
        results.top = [(statements[sid].text, share) for share, _, sid in ranked[:TOP_STATEMENTS]]
        stored = await uow.ideas.groups(consultation.id)
        if stored is not None and stored.model:
            model = GroupModel.from_document(stored.model)
            results.consensus = [
                statements[sid].text
                for sid in model.consensus[:TOP_STATEMENTS]
                if sid in statements
            ]
    return results


def count_options(question: Question, answers: Iterable[Answer]) -> dict[str, int]:
    """How many answers to a question chose each of its options (a ticked list counts each)."""
    counts: dict[str, int] = {str(option["key"]): 0 for option in question.options}
    for answer in answers:
        if answer.question_id != question.id or answer.skipped:
            continue
        values = answer.value if isinstance(answer.value, list) else [answer.value]
        for value in values:
            if str(value) in counts:
                counts[str(value)] += 1
    return counts


def results_text(results: Results, t: Texts, *, public: bool, limit: int) -> str:
    """The results in a language, for those who took part or for the public channel."""
    language = t.language
    title = questionnaire.pick(results.title, language)
    head_key = "plan.results.public" if public else "plan.results.thanks"
    head = t(head_key, title=title)
    lines = [
        head,
        t(
            "plan.results.numbers",
            participants=results.participants,
            completed=results.completed,
        ),
    ]
    if results.bars and any(count for _, count in results.bars):
        total = sum(count for _, count in results.bars)
        most = max(count for _, count in results.bars)
        first = [
            questionnaire.pick(label, language) for label, count in results.bars if count == most
        ]
        question = short(questionnaire.pick(results.question, language), 120)
        share = percent(most, total)
        if len(first) == 1:
            line = t("plan.results.main_question", question=question, option=first[0], share=share)
        else:
            # A tie is said as one: "most answered Under 25 (33 %)" named one of three.
            options = t("plan.results.and", first=", ".join(first[:-1]), last=first[-1])
            line = t(
                "plan.results.main_question_tie", question=question, options=options, share=share
            )
        lines.append(line)
    if results.statements:
        # "Most agreed on:" only over a list: statements with too few votes to rank have none.
        key = "plan.results.ideas" if results.top else "plan.results.ideas_unranked"
        lines.append(t(key, statements=results.statements, votes=results.votes))
        for statement, share in results.top:
            lines.append(f"👍 {share} % · {short(questionnaire.pick(statement, language), 140)}")
        if results.consensus:
            lines.append(t("plan.results.consensus"))
            lines.extend(
                f"🤝 {short(questionnaire.pick(s, language), 140)}" for s in results.consensus
            )
    lines.append(t("plan.results.next"))
    written = "\n\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:])
    return written if len(written) <= limit else written[: limit - 1].rstrip() + "…"


def chart_png(results: Results, language: str) -> bytes | None:
    """A bar chart of the main question's answers, as PNG; None when nobody answered it."""
    total = sum(count for _, count in results.bars)
    if not results.bars or not total:
        return None
    # Imported here: only a results post draws, and the bot need not carry Pillow until then.
    from PIL import Image, ImageDraw, ImageFont

    title_font = ImageFont.load_default(size=30)
    font = ImageFont.load_default(size=24)
    margin, label_width = 30, 330
    height = margin * 2 + 60 + BAR_HEIGHT * len(results.bars)
    image = Image.new("RGB", (CHART_WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    question = short(questionnaire.pick(results.question, language), 60)
    draw.text((margin, margin), question, fill=TEXT_COLOUR, font=title_font)
    widest = CHART_WIDTH - label_width - margin * 2 - 110
    most = max(count for _, count in results.bars)
    for row, (label, count) in enumerate(results.bars):
        top = margin + 60 + row * BAR_HEIGHT
        name = short(questionnaire.pick(label, language), 24)
        draw.text((margin, top + 12), name, fill=TEXT_COLOUR, font=font)
        length = max(2, round(widest * count / most)) if count else 2
        left = margin + label_width
        draw.rectangle((left, top + 8, left + length, top + BAR_HEIGHT - 8), fill=BAR_COLOUR)
        draw.text(
            (left + length + 10, top + 12),
            f"{percent(count, total)} %",
            fill=TEXT_COLOUR,
            font=font,
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
