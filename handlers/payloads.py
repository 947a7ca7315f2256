"""Every button payload the bot makes: one named value per meaning, and one parser for them all.

Wire format: a namespace and its parts joined by ":" (``i:v:12``), letter for letter the strings
earlier versions of the bot made. Buttons already sitting in citizens' and staff's chats keep
working after an upgrade, so a wire form is never changed and a code never reused: a new meaning
gets a new code or namespace. Telegram carries at most 64 bytes (``MAX_BUTTON_PAYLOAD_BYTES``);
the web chat carries the same strings.

A pressed payload comes from a client, so it is read as hostile: ``parse`` returns the typed value
only for the exact string the bot would have built for it, and None for anything else (unknown,
truncated, forged, a leading zero, an id no row can have). A code from a vocabulary a flow owns (a
language, a reason, an audience) is checked here for shape; the flow that owns the vocabulary
checks its meaning, as it must for a button made before a code was retired.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

from handlers.events import MAX_RECORD_ID, record_id, well_formed_payload

# Option buttons carry the option's position: two digits hold every option a question may have.
MAX_OPTION_INDEX = 99
# What a consultation file allows in a slug, less its length (the whole payload is measured).
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
# A language, a reason or an audience: lower-case words, as the flows' vocabularies are.
_CODE = re.compile(r"[a-z][a-z_]{0,31}")
_YES, _NO = "y", "n"
# The staff draft's "no consultation": a slug cannot start with a hyphen.
_NO_CONSULTATION = "-"
# The report dialog's "never mind", where a reason would be.
_CANCEL_REPORT = "x"


class IdeasAction(StrEnum):
    """What an ideas-phase button does with the citizen's participation."""

    MENU = "m"
    WRITE = "w"
    SEND_DRAFT = "x"
    EDIT_DRAFT = "e"
    CANCEL_DRAFT = "c"
    VOTE = "v"
    HISTORY = "h"
    NOTIFY = "n"
    STANDING = "s"


class CardAction(StrEnum):
    """What a button on a statement's card does."""

    AGREE = "a"
    DISAGREE = "d"
    PASS = "p"  # noqa: S105 - a vote, not a password
    OPEN = "o"
    STOP = "s"
    REPORT = "r"
    HELP = "h"
    HELP_YES = "hy"
    HELP_NO = "hn"


class ModerationAction(StrEnum):
    """What a button on a moderation card does; the decisions are moderation's decision codes."""

    APPROVE = "a"
    HIDE = "h"
    HIDE_WITH_REASON = "w"  # only ever with a reason: see HideWithReason
    REPHRASE = "p"
    BLOCK = "B"
    CHOOSE_REASON = "r"
    ASK_BLOCK = "b"
    SHOW_PERSONAL_DATA = "s"
    BACK = "x"


class CancelStep(StrEnum):
    """The staff chat's cancelling of a planned post: ask, then confirm or keep."""

    ASK = "ask"
    CONFIRM = "y"
    KEEP = "n"


def _check_id(value: int) -> None:
    if not 0 < value <= MAX_RECORD_ID:
        raise ValueError(f"record id out of range: {value}")


def _check_option(value: int) -> None:
    if not 0 <= value <= MAX_OPTION_INDEX:
        raise ValueError(f"option index out of range: {value}")


def _check(pattern: re.Pattern[str], value: str) -> None:
    if pattern.fullmatch(value) is None:
        raise ValueError(f"not allowed in a payload: {value!r}")


def _yes_no(flag: bool) -> str:
    return _YES if flag else _NO


class _Payload(ABC):
    """A payload value: its wire form is checked once, when the value is made."""

    @property
    @abstractmethod
    def wire(self) -> str:
        """The string the button carries."""

    def _check_wire(self) -> None:
        if not well_formed_payload(self.wire):
            raise ValueError(f"not a well-formed payload: {self.wire!r}")


@dataclass(frozen=True)
class ChooseLanguage(_Payload):
    """lang:<language>: speak this language from now on."""

    language: str

    def __post_init__(self) -> None:
        _check(_CODE, self.language)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"lang:{self.language}"


@dataclass(frozen=True)
class ChooseConsultation(_Payload):
    """c:<slug>: a consultation from the /start list."""

    slug: str

    def __post_init__(self) -> None:
        _check(_SLUG, self.slug)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"c:{self.slug}"


@dataclass(frozen=True)
class _OfParticipation(_Payload):
    participation_id: int

    def __post_init__(self) -> None:
        _check_id(self.participation_id)
        self._check_wire()


@dataclass(frozen=True)
class Consent(_OfParticipation):
    """ok:<participation>:<y|n>: consent given or refused."""

    given: bool

    @property
    def wire(self) -> str:
        return f"ok:{self.participation_id}:{_yes_no(self.given)}"


@dataclass(frozen=True)
class HearBack(_OfParticipation):
    """h:<participation>:<y|n>: whether the citizen wants to hear what came of it."""

    wanted: bool

    @property
    def wire(self) -> str:
        return f"h:{self.participation_id}:{_yes_no(self.wanted)}"


@dataclass(frozen=True)
class ReviewAnswers(_OfParticipation):
    """r:<participation>: list the answers, to change one."""

    @property
    def wire(self) -> str:
        return f"r:{self.participation_id}"


@dataclass(frozen=True)
class _OfQuestion(_OfParticipation):
    question_id: int

    def __post_init__(self) -> None:
        _check_id(self.question_id)
        super().__post_init__()


@dataclass(frozen=True)
class ChangeAnswer(_OfQuestion):
    """e:<participation>:<question>: ask an answered question again."""

    @property
    def wire(self) -> str:
        return f"e:{self.participation_id}:{self.question_id}"


@dataclass(frozen=True)
class TickingDone(_OfQuestion):
    """d:<participation>:<question>: the ticked options are the answer."""

    @property
    def wire(self) -> str:
        return f"d:{self.participation_id}:{self.question_id}"


@dataclass(frozen=True)
class SkipQuestion(_OfQuestion):
    """s:<participation>:<question>: leave an optional question unanswered."""

    @property
    def wire(self) -> str:
        return f"s:{self.participation_id}:{self.question_id}"


@dataclass(frozen=True)
class GoBack(_OfQuestion):
    """b:<participation>:<question>: ask the question before this one again."""

    @property
    def wire(self) -> str:
        return f"b:{self.participation_id}:{self.question_id}"


@dataclass(frozen=True)
class _OfOption(_OfQuestion):
    option: int  # the option's position among the question's options

    def __post_init__(self) -> None:
        _check_option(self.option)
        super().__post_init__()


@dataclass(frozen=True)
class PickOption(_OfOption):
    """a:<participation>:<question>:<option>: this option is the answer."""

    @property
    def wire(self) -> str:
        return f"a:{self.participation_id}:{self.question_id}:{self.option}"


@dataclass(frozen=True)
class TickOption(_OfOption):
    """t:<participation>:<question>:<option>: tick or untick one option of several."""

    @property
    def wire(self) -> str:
        return f"t:{self.participation_id}:{self.question_id}:{self.option}"


@dataclass(frozen=True)
class IdeasButton(_Payload):
    """i:<action>:<participation>: the ideas menu and the statement being written."""

    action: IdeasAction
    participation_id: int

    def __post_init__(self) -> None:
        _check_id(self.participation_id)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"i:{self.action.value}:{self.participation_id}"


@dataclass(frozen=True)
class _OnStatement(_Payload):
    statement_id: int

    def __post_init__(self) -> None:
        _check_id(self.statement_id)
        self._check_wire()


@dataclass(frozen=True)
class CardButton(_OnStatement):
    """v:<statement>:<action> on a fresh card; V:… on a card reopened to change a vote."""

    action: CardAction
    changing_vote: bool = False

    @property
    def wire(self) -> str:
        return f"{'V' if self.changing_vote else 'v'}:{self.statement_id}:{self.action.value}"


@dataclass(frozen=True)
class ReportStatement(_OnStatement):
    """v:<statement>:r:<reason>: report a statement to the moderators."""

    reason: str

    def __post_init__(self) -> None:
        _check(_CODE, self.reason)
        if self.reason == _CANCEL_REPORT:
            raise ValueError("a report's reason cannot be the cancel code")
        super().__post_init__()

    @property
    def wire(self) -> str:
        return f"v:{self.statement_id}:r:{self.reason}"


@dataclass(frozen=True)
class CancelReport(_OnStatement):
    """v:<statement>:r:x: the citizen changed their mind about reporting."""

    @property
    def wire(self) -> str:
        return f"v:{self.statement_id}:r:{_CANCEL_REPORT}"


@dataclass(frozen=True)
class RewriteContribution(_Payload):
    """rw:<item>: the author writes a hidden or returned contribution anew."""

    item_id: int

    def __post_init__(self) -> None:
        _check_id(self.item_id)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"rw:{self.item_id}"


@dataclass(frozen=True)
class SkipEmail(_Payload):
    """mail:n: no e-mail address, thanks."""

    @property
    def wire(self) -> str:
        return "mail:n"


@dataclass(frozen=True)
class ForgetAnswer(_Payload):
    """f:<y|n>: erase everything about me, or keep it after all."""

    erase: bool

    @property
    def wire(self) -> str:
        return f"f:{_yes_no(self.erase)}"


@dataclass(frozen=True)
class ModerationButton(_Payload):
    """m:<action>:<item>: a button on a moderation card."""

    action: ModerationAction
    item_id: int

    def __post_init__(self) -> None:
        if self.action == ModerationAction.HIDE_WITH_REASON:
            raise ValueError("hiding with a reason is a HideWithReason")
        _check_id(self.item_id)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"m:{self.action.value}:{self.item_id}"


@dataclass(frozen=True)
class HideWithReason(_Payload):
    """m:w:<item>:<reason>: hide a contribution and tell the author why."""

    item_id: int
    reason: str

    def __post_init__(self) -> None:
        _check_id(self.item_id)
        _check(_CODE, self.reason)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"m:{ModerationAction.HIDE_WITH_REASON.value}:{self.item_id}:{self.reason}"


@dataclass(frozen=True)
class CancelPost(_Payload):
    """pc:<post>:<ask|y|n>: cancel a planned post, asked first."""

    post_id: int
    step: CancelStep

    def __post_init__(self) -> None:
        _check_id(self.post_id)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"pc:{self.post_id}:{self.step.value}"


@dataclass(frozen=True)
class DropDraft(_Payload):
    """pa:x: throw the staff member's draft post away."""

    @property
    def wire(self) -> str:
        return "pa:x"


@dataclass(frozen=True)
class DraftConsultation(_Payload):
    """pa:c:<slug>, or pa:c:- for none: the consultation a draft post is about."""

    slug: str | None

    def __post_init__(self) -> None:
        if self.slug is not None:
            _check(_SLUG, self.slug)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"pa:c:{self.slug or _NO_CONSULTATION}"


@dataclass(frozen=True)
class DraftAudience(_Payload):
    """pa:a:<audience>: whom a draft post goes to."""

    audience: str

    def __post_init__(self) -> None:
        _check(_CODE, self.audience)
        self._check_wire()

    @property
    def wire(self) -> str:
        return f"pa:a:{self.audience}"


@dataclass(frozen=True)
class SkipEnglish(_Payload):
    """pa:s: the draft post has no English text."""

    @property
    def wire(self) -> str:
        return "pa:s"


@dataclass(frozen=True)
class NoTemplate(_Payload):
    """pa:nt: the draft post names no WhatsApp template."""

    @property
    def wire(self) -> str:
        return "pa:nt"


@dataclass(frozen=True)
class ConfirmDraft(_Payload):
    """pa:ok: plan (or send) the previewed draft post."""

    @property
    def wire(self) -> str:
        return "pa:ok"


QuestionButton = PickOption | TickOption | TickingDone | SkipQuestion | GoBack
StatementButton = CardButton | ReportStatement | CancelReport
ModeratorButton = ModerationButton | HideWithReason
StaffButton = (
    CancelPost
    | DropDraft
    | DraftConsultation
    | DraftAudience
    | SkipEnglish
    | NoTemplate
    | ConfirmDraft
)
Payload = (
    ChooseLanguage
    | ChooseConsultation
    | Consent
    | HearBack
    | ReviewAnswers
    | ChangeAnswer
    | QuestionButton
    | IdeasButton
    | StatementButton
    | RewriteContribution
    | SkipEmail
    | ForgetAnswer
    | ModeratorButton
    | StaffButton
)


def parse(payload: str) -> Payload | None:
    """Read a pressed button's payload; None unless the bot could have made exactly this one."""
    if not well_formed_payload(payload):
        return None
    try:
        value = _read(payload.split(":"))
    except ValueError:  # an id, option, code or action out of range: no button of ours
        return None
    # One value, one string: "i:v:007" names participation 7 but is not what the bot sends.
    return value if value is not None and value.wire == payload else None


def _id(text: str) -> int:
    number = record_id(text)
    if number is None:
        raise ValueError(f"not a record id: {text!r}")
    return number


def _option(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not an option index: {text!r}")
    return int(text)


def _flag(text: str) -> bool:
    if text not in (_YES, _NO):
        raise ValueError(f"not y or n: {text!r}")
    return text == _YES


def _read(parts: list[str]) -> Payload | None:
    """The value a payload's parts name, or None; ValueError for a part out of range."""
    match parts:
        case ["lang", language]:
            return ChooseLanguage(language)
        case ["c", slug]:
            return ChooseConsultation(slug)
        case ["ok", participation, given]:
            return Consent(_id(participation), _flag(given))
        case ["h", participation, wanted]:
            return HearBack(_id(participation), _flag(wanted))
        case ["r", participation]:
            return ReviewAnswers(_id(participation))
        case ["e", participation, question]:
            return ChangeAnswer(_id(participation), _id(question))
        case ["a", participation, question, option]:
            return PickOption(_id(participation), _id(question), _option(option))
        case ["t", participation, question, option]:
            return TickOption(_id(participation), _id(question), _option(option))
        case ["d", participation, question]:
            return TickingDone(_id(participation), _id(question))
        case ["s", participation, question]:
            return SkipQuestion(_id(participation), _id(question))
        case ["b", participation, question]:
            return GoBack(_id(participation), _id(question))
        case ["i", action, participation]:
            return IdeasButton(IdeasAction(action), _id(participation))
        case ["v", statement, "r", reason]:
            if reason == _CANCEL_REPORT:
                return CancelReport(_id(statement))
            return ReportStatement(_id(statement), reason)
        case ["v" | "V" as card, statement, action]:
            return CardButton(_id(statement), CardAction(action), changing_vote=card == "V")
        case ["rw", item]:
            return RewriteContribution(_id(item))
        case ["mail", "n"]:
            return SkipEmail()
        case ["f", erase]:
            return ForgetAnswer(_flag(erase))
        case ["m", "w", item, reason]:
            return HideWithReason(_id(item), reason)
        case ["m", action, item]:
            return ModerationButton(ModerationAction(action), _id(item))
        case ["pc", post, step]:
            return CancelPost(_id(post), CancelStep(step))
        case ["pa", "x"]:
            return DropDraft()
        case ["pa", "c", slug]:
            return DraftConsultation(None if slug == _NO_CONSULTATION else slug)
        case ["pa", "a", audience]:
            return DraftAudience(audience)
        case ["pa", "s"]:
            return SkipEnglish()
        case ["pa", "nt"]:
            return NoTemplate()
        case ["pa", "ok"]:
            return ConfirmDraft()
    return None
