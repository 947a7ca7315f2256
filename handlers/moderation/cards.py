"""How an item looks in the moderator chat: the card, its buttons, and the decided state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from handlers import questionnaire as rules
from handlers.context import Texts
from handlers.events import Button
from handlers.payloads import HideWithReason, ModerationAction, ModerationButton
from handlers.screening.rules import PERSONAL_DATA, Flag, mask
from storage.models import Answer, Consultation, ModerationItem, Question, Statement
from storage.uow import UnitOfWork

Buttons = tuple[tuple[Button, ...], ...]
# Reasons a moderator can give the author when hiding a contribution.
REASONS = (
    "personal_data",
    "special_category",
    "offensive",
    "threat",
    "spam",
    "off_topic",
    "off_language",
)
# Room for the contribution in a card; the rest of the card is short.
CARD_TEXT_LIMIT = 3000


@dataclass(frozen=True)
class ItemView:
    """Everything a card shows about an item, loaded in one place."""

    item: ModerationItem
    consultation: Consultation
    question: Question | None
    answer: Answer | None
    # Set instead of the answer when the contribution is a statement of the ideas phase.
    statement: Statement | None
    # The author's free-text contributions, and how many of them went to moderation before.
    contributions: int
    moderated_before: int

    @property
    def flags(self) -> list[Flag]:
        """The item's flags as screening found them."""
        return [Flag(**flag) for flag in self.item.flags]

    @property
    def text(self) -> str | None:
        """The contribution as written; None once its author withdrew or erased it."""
        if self.statement is not None:
            return self.statement.text.get(self.statement.language) or next(
                iter(self.statement.text.values()), None
            )
        if self.answer is None or self.answer.value is None:
            return None
        return str(self.answer.value)

    @property
    def contribution(self) -> Answer | Statement | None:
        """The answer or statement the item is about, if it still exists."""
        return self.statement if self.statement is not None else self.answer

    def personal_data(self) -> list[str]:
        """The personal-data stretches of the text, as written."""
        text = self.text or ""
        return [text[f.start : f.end] for f in self.flags if f.category == PERSONAL_DATA]


async def load_view(uow: UnitOfWork, item: ModerationItem) -> ItemView:
    """Load what a card shows about an item."""
    consultation = await uow.consultations.get(item.consultation_id)
    assert consultation is not None
    answer = await uow.participations.answer(item.answer_id) if item.answer_id else None
    statement = await uow.ideas.statement(item.statement_id) if item.statement_id else None
    question = None
    if answer is not None:
        questions = await uow.consultations.questions(consultation.id, include_archived=True)
        question = next((q for q in questions if q.id == answer.question_id), None)
    contributions = moderated = 0
    if item.participation_id is not None:
        contributions = await uow.moderation.contributions(item.participation_id)
        history = await uow.moderation.of_participation(item.participation_id)
        moderated = sum(1 for other in history if other.id < item.id)
    return ItemView(item, consultation, question, answer, statement, contributions, moderated)


def moment_text(t: Texts, moment: datetime, zone: ZoneInfo) -> str:
    """A moment as people read it, in their language and local time."""
    return _formatted(moment, t("format.datetime"), zone, t.language)


@lru_cache(maxsize=512)
def _formatted(moment: datetime, pattern: str, zone: ZoneInfo, language: str) -> str:
    # The same few times are shown again and again (when a round closes, to every citizen who
    # starts); Babel took more CPU to format one than the rest of the /start that shows it.
    return str(format_datetime(moment, pattern, tzinfo=zone, locale=language))


def card_text(t: Texts, view: ItemView) -> str:
    """The card: consultation, question, author, what screening found, the masked text."""
    item = view.item
    lines = [
        t(
            "moderation.card.heading",
            id=item.id,
            title=rules.pick(view.consultation.title, t.language),
        ),
    ]
    if view.question is not None:
        question = rules.shorten(rules.pick(view.question.text, t.language), 120)
        lines.append(t("moderation.card.question", question=question))
    if view.statement is not None:
        lines.append(t("moderation.card.statement", number=view.statement.number))
    lines.append(
        t(
            "moderation.card.author",
            pseudonym=item.pseudonym,
            contributions=view.contributions,
            moderated=view.moderated_before,
        )
    )
    lines.append(t("moderation.card.action", action=t(f"moderation.action.{item.action}")))
    if item.reports:
        lines.append(t("moderation.card.reports", reports=item.reports))
    masked = masked_text(view)
    shown = t("moderation.card.withdrawn") if masked is None else f"«{masked}»"
    lines += ["", shown, ""]
    lines += [f"• {reason}" for reason in reasons(t, view.flags)]
    return "\n".join(lines)


def masked_text(view: ItemView) -> str | None:
    """The contribution as staff may read it: personal data masked, shortened to fit a card."""
    text = view.text
    return None if text is None else rules.shorten(mask(text, view.flags), CARD_TEXT_LIMIT)


def describe(t: Texts, flag: Flag) -> str:
    """One flag as a reason a moderator understands."""
    return t(f"flag.{flag.kind}", detail=flag.detail)


def reasons(t: Texts, flags: Iterable[Flag]) -> list[str]:
    """The flags as reasons, each reason once: two threats in one text are one line."""
    return list(dict.fromkeys(describe(t, flag) for flag in flags))


def decision_buttons(t: Texts, view: ItemView) -> Buttons:
    """The one-tap decisions on a waiting item."""
    item_id = view.item.id

    def button(label: str, action: ModerationAction) -> Button:
        return Button(label, payload=ModerationButton(action, item_id).wire)

    rows: list[tuple[Button, ...]] = [
        (
            button(t("moderation.button.approve"), ModerationAction.APPROVE),
            button(t("moderation.button.hide"), ModerationAction.HIDE),
        ),
        (
            button(t("moderation.button.hide_why"), ModerationAction.CHOOSE_REASON),
            button(t("moderation.button.rephrase"), ModerationAction.REPHRASE),
        ),
    ]
    last = [button(t("moderation.button.block"), ModerationAction.ASK_BLOCK)]
    if view.personal_data():
        last.insert(0, button(t("moderation.button.show"), ModerationAction.SHOW_PERSONAL_DATA))
    rows.append(tuple(last))
    return tuple(rows)


def reason_buttons(t: Texts, item_id: int) -> Buttons:
    """The reason templates to hide with, and a way back."""
    rows = [
        (
            Button(
                t(f"moderation.reason_button.{reason}"),
                payload=HideWithReason(item_id, reason).wire,
            ),
        )
        for reason in REASONS
    ]
    rows.append((_back_button(t, item_id),))
    return tuple(rows)


def block_buttons(t: Texts, item_id: int) -> Buttons:
    """Confirm or cancel blocking the author."""
    return (
        (
            Button(
                t("moderation.button.block_confirm"),
                payload=ModerationButton(ModerationAction.BLOCK, item_id).wire,
            ),
            _back_button(t, item_id),
        ),
    )


def _back_button(t: Texts, item_id: int) -> Button:
    """Back to the card's decisions."""
    return Button(
        t("moderation.button.back"), payload=ModerationButton(ModerationAction.BACK, item_id).wire
    )


def decided_footer(t: Texts, item: ModerationItem, zone: ZoneInfo) -> str:
    """Who decided what, and when in local time, for the card's last line."""
    moment = moment_text(t, item.decided_at, zone) if item.decided_at else "?"
    return decided_line(t, item, moment)


def decided_line(t: Texts, item: ModerationItem, moment: str, who: str | None = None) -> str:
    """Who decided what, and when, for the card's last line; ``who`` instead of the name the
    card shows (the dashboard names moderators by their audit-trail pseudonym)."""
    reason = f" ({t(f'moderation.reason_button.{item.reason}')})" if item.reason else ""
    return t(
        f"moderation.decided.{item.status}",
        who=who or item.decided_by or "?",
        when=moment,
        reason=reason,
    )
