"""Button payloads: every kind fits 64 bytes at its longest and reads back as it was built.

Anything the bot did not make reads as None, the wire forms are pinned to the strings earlier
versions sent (buttons in citizens' chats outlive an upgrade), and no flow builds or splits a
payload by hand. No HTTP, no database.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest
from sqlalchemy import Integer

from bot.consultations.definition import MAX_OPTIONS, SLUG_PATTERN
from handlers import payloads
from handlers.common import SUPPORTED_LANGUAGES
from handlers.events import MAX_BUTTON_PAYLOAD_BYTES, MAX_RECORD_ID, Button
from handlers.moderation.cards import REASONS
from handlers.moderation.intake import REPORT_REASONS
from handlers.payloads import (
    CancelPost,
    CancelReport,
    CancelStep,
    CardAction,
    CardButton,
    ChangeAnswer,
    ChooseConsultation,
    ChooseLanguage,
    ConfirmDraft,
    Consent,
    DraftAudience,
    DraftConsultation,
    DropDraft,
    ForgetAnswer,
    GoBack,
    HearBack,
    HideWithReason,
    IdeasAction,
    IdeasButton,
    ModerationAction,
    ModerationButton,
    NoTemplate,
    Payload,
    PickOption,
    ReportStatement,
    ReviewAnswers,
    RewriteContribution,
    SkipEmail,
    SkipEnglish,
    SkipQuestion,
    TickingDone,
    TickOption,
    parse,
)
from handlers.plan.staff import AUDIENCES
from storage.models import (
    Consultation,
    ModerationItem,
    Participation,
    PlannedPost,
    Question,
    Statement,
)

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_MODULE = ROOT / "handlers" / "payloads.py"

# The rows a payload names by id; their ids are 32-bit columns, so MAX_RECORD_ID is the largest.
NAMED_ROWS = (Participation, Question, Statement, ModerationItem, PlannedPost)
LONGEST_SLUG = "s" * Consultation.__table__.c.slug.type.length
BIGGEST = MAX_RECORD_ID
LAST_OPTION = MAX_OPTIONS - 1


def _longest(words: tuple[str, ...] | list[str]) -> str:
    return max(words, key=len)


def longest_payloads() -> list[Payload]:
    """Every kind of payload, each with its longest legal arguments, and every action it has."""
    values: list[Payload] = [
        ChooseLanguage(_longest(SUPPORTED_LANGUAGES)),
        ChooseConsultation(LONGEST_SLUG),
        Consent(BIGGEST, given=True),
        Consent(BIGGEST, given=False),
        HearBack(BIGGEST, wanted=True),
        HearBack(BIGGEST, wanted=False),
        ReviewAnswers(BIGGEST),
        ChangeAnswer(BIGGEST, BIGGEST),
        PickOption(BIGGEST, BIGGEST, LAST_OPTION),
        TickOption(BIGGEST, BIGGEST, LAST_OPTION),
        TickingDone(BIGGEST, BIGGEST),
        SkipQuestion(BIGGEST, BIGGEST),
        GoBack(BIGGEST, BIGGEST),
        ReportStatement(BIGGEST, _longest(REPORT_REASONS)),
        CancelReport(BIGGEST),
        RewriteContribution(BIGGEST),
        SkipEmail(),
        ForgetAnswer(erase=True),
        ForgetAnswer(erase=False),
        HideWithReason(BIGGEST, _longest(REASONS)),
        DropDraft(),
        DraftConsultation(LONGEST_SLUG),
        DraftConsultation(None),
        DraftAudience(_longest(AUDIENCES)),
        SkipEnglish(),
        NoTemplate(),
        ConfirmDraft(),
    ]
    values += [IdeasButton(action, BIGGEST) for action in IdeasAction]
    values += [
        CardButton(BIGGEST, action, changing_vote=changing)
        for action in CardAction
        for changing in (False, True)
    ]
    values += [
        ModerationButton(action, BIGGEST)
        for action in ModerationAction
        if action != ModerationAction.HIDE_WITH_REASON
    ]
    values += [CancelPost(BIGGEST, step) for step in CancelStep]
    return values


def every_vocabulary_word() -> list[Payload]:
    """Each word a flow's vocabulary puts on a button, so none is refused by the payload rules."""
    return [
        *(ChooseLanguage(language) for language in SUPPORTED_LANGUAGES),
        *(ReportStatement(1, reason) for reason in REPORT_REASONS),
        *(HideWithReason(1, reason) for reason in REASONS),
        *(DraftAudience(audience) for audience in AUDIENCES),
    ]


def test_the_longest_arguments_are_the_real_limits() -> None:
    assert SLUG_PATTERN.match(LONGEST_SLUG)
    assert not SLUG_PATTERN.match(LONGEST_SLUG + "s")
    for model in NAMED_ROWS:
        assert type(model.__table__.c.id.type) is Integer, model
    assert BIGGEST == 2**31 - 1
    assert LAST_OPTION <= payloads.MAX_OPTION_INDEX


def test_every_kind_of_payload_is_covered() -> None:
    assert {type(value) for value in longest_payloads()} == set(get_args(Payload))


@pytest.mark.parametrize("value", longest_payloads() + every_vocabulary_word(), ids=repr)
def test_a_payload_fits_and_reads_back_as_built(value: Payload) -> None:
    assert len(value.wire.encode("utf-8")) <= MAX_BUTTON_PAYLOAD_BYTES
    assert Button("label", payload=value.wire).payload == value.wire
    assert parse(value.wire) == value


# The strings the bot sent before payloads had names; a change here strands old buttons.
WIRE_FORMS = {
    "lang:da": ChooseLanguage("da"),
    "c:friluftsliv": ChooseConsultation("friluftsliv"),
    "ok:12:y": Consent(12, given=True),
    "ok:12:n": Consent(12, given=False),
    "h:12:y": HearBack(12, wanted=True),
    "h:12:n": HearBack(12, wanted=False),
    "r:12": ReviewAnswers(12),
    "e:12:34": ChangeAnswer(12, 34),
    "a:12:34:0": PickOption(12, 34, 0),
    "t:12:34:11": TickOption(12, 34, 11),
    "d:12:34": TickingDone(12, 34),
    "s:12:34": SkipQuestion(12, 34),
    "b:12:34": GoBack(12, 34),
    "i:m:12": IdeasButton(IdeasAction.MENU, 12),
    "i:w:12": IdeasButton(IdeasAction.WRITE, 12),
    "i:x:12": IdeasButton(IdeasAction.SEND_DRAFT, 12),
    "i:e:12": IdeasButton(IdeasAction.EDIT_DRAFT, 12),
    "i:c:12": IdeasButton(IdeasAction.CANCEL_DRAFT, 12),
    "i:v:12": IdeasButton(IdeasAction.VOTE, 12),
    "i:h:12": IdeasButton(IdeasAction.HISTORY, 12),
    "i:n:12": IdeasButton(IdeasAction.NOTIFY, 12),
    "i:s:12": IdeasButton(IdeasAction.STANDING, 12),
    "v:7:a": CardButton(7, CardAction.AGREE),
    "v:7:d": CardButton(7, CardAction.DISAGREE),
    "v:7:p": CardButton(7, CardAction.PASS),
    "v:7:o": CardButton(7, CardAction.OPEN),
    "v:7:s": CardButton(7, CardAction.STOP),
    "v:7:r": CardButton(7, CardAction.REPORT),
    "v:7:h": CardButton(7, CardAction.HELP),
    "v:7:hy": CardButton(7, CardAction.HELP_YES),
    "v:7:hn": CardButton(7, CardAction.HELP_NO),
    "V:7:a": CardButton(7, CardAction.AGREE, changing_vote=True),
    "V:7:o": CardButton(7, CardAction.OPEN, changing_vote=True),
    "v:7:r:spam": ReportStatement(7, "spam"),
    "v:7:r:x": CancelReport(7),
    "rw:5": RewriteContribution(5),
    "mail:n": SkipEmail(),
    "f:y": ForgetAnswer(erase=True),
    "f:n": ForgetAnswer(erase=False),
    "m:a:5": ModerationButton(ModerationAction.APPROVE, 5),
    "m:h:5": ModerationButton(ModerationAction.HIDE, 5),
    "m:r:5": ModerationButton(ModerationAction.CHOOSE_REASON, 5),
    "m:p:5": ModerationButton(ModerationAction.REPHRASE, 5),
    "m:b:5": ModerationButton(ModerationAction.ASK_BLOCK, 5),
    "m:B:5": ModerationButton(ModerationAction.BLOCK, 5),
    "m:s:5": ModerationButton(ModerationAction.SHOW_PERSONAL_DATA, 5),
    "m:x:5": ModerationButton(ModerationAction.BACK, 5),
    "m:w:5:off_topic": HideWithReason(5, "off_topic"),
    "pc:3:ask": CancelPost(3, CancelStep.ASK),
    "pc:3:y": CancelPost(3, CancelStep.CONFIRM),
    "pc:3:n": CancelPost(3, CancelStep.KEEP),
    "pa:x": DropDraft(),
    "pa:c:friluftsliv": DraftConsultation("friluftsliv"),
    "pa:c:-": DraftConsultation(None),
    "pa:a:everyone": DraftAudience("everyone"),
    "pa:s": SkipEnglish(),
    "pa:nt": NoTemplate(),
    "pa:ok": ConfirmDraft(),
}


@pytest.mark.parametrize(("wire", "value"), WIRE_FORMS.items(), ids=list(WIRE_FORMS))
def test_the_wire_form_is_what_earlier_versions_sent(wire: str, value: Payload) -> None:
    assert value.wire == wire
    assert parse(wire) == value


def test_every_kind_has_a_pinned_wire_form() -> None:
    assert {type(value) for value in WIRE_FORMS.values()} == set(get_args(Payload))


FORGED = [
    "",
    "x",
    ":",
    "::::",
    "c:",
    "c:Friluftsliv",
    "c:-friluftsliv",
    "c:" + "a" * 63,
    "lang:",
    "lang:DA",
    "lang:da:en",
    "ok:1:maybe",
    "ok:1:Y",
    "ok:²:y",
    "ok:0:y",
    "ok:01:y",
    "ok:+1:y",
    "ok:-1:y",
    f"ok:{MAX_RECORD_ID + 1}:y",
    "ok:99999999999999999999:y",
    "r:1:2:3",
    "e:1",
    "e:1:2:3",
    "a:1:2",
    "a:1:2:01",
    "a:1:2:100",
    "a:1:2:-1",
    "a:1:2:٣",
    "a:1:1:1:1:1:1",
    "t:1:1:²",
    "d:1",
    "s:1",
    "b:",
    "i:zz:1",
    "i:V:1",
    "i:v:",
    "i:v:-5",
    "i:v:007",
    "i:m:2147483648",
    "v:1:agree",
    "v:1:A",
    "v:1:r:",
    "v:1:r:Spam",
    "v:1:r:spam:x",
    "V:1:r:spam",
    "V:1:r:x",
    "v:1:hy:x",
    "V:²:a",
    "rw:",
    "rw:²",
    "mail:y",
    "mail:n:n",
    "f:",
    "f:maybe",
    "f:y:y",
    "m:w:1",
    "m:w:1:",
    "m:w:1:spam:x",
    "m:W:1",
    "m:z:1",
    "m:a:1:spam",
    "pc:1",
    "pc:1:yes",
    "pc:1:ask:x",
    "pa:",
    "pa:o",
    "pa:ok:1",
    "pa:c",
    "pa:c:",
    "pa:c:-:x",
    "pa:a:",
    "pa:a:Everyone",
    "vote:12:agree",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'; DROP TABLE participants; --",
    "%00",
    "🙂",
    "c:friluftsliv\u202e",
    "c:friluft\u0000sliv",
    " c:friluftsliv",
    "c:friluftsliv\n",
]


@pytest.mark.parametrize("payload", FORGED)
def test_anything_the_bot_did_not_make_reads_as_none(payload: str) -> None:
    assert parse(payload) is None


def test_a_truncated_payload_reads_as_none() -> None:
    for value in longest_payloads():
        wire = value.wire
        for cut in range(1, len(wire)):
            prefix = wire[:cut]
            if prefix.endswith(":"):
                assert parse(prefix) is None, prefix
            elif wire[cut] == ":":
                # A whole part gone: only the report dialog's "why?" is a payload of its own.
                shorter = parse(prefix)
                assert shorter is None or shorter == CardButton(BIGGEST, CardAction.REPORT), prefix
        assert parse(wire + ":1") is None, wire


@pytest.mark.parametrize(
    "build",
    [
        lambda: ChooseLanguage(""),
        lambda: ChooseConsultation("Friluftsliv"),
        lambda: ChooseConsultation("a" * 63),
        lambda: Consent(0, given=True),
        lambda: IdeasButton(IdeasAction.VOTE, MAX_RECORD_ID + 1),
        lambda: PickOption(1, 1, payloads.MAX_OPTION_INDEX + 1),
        lambda: PickOption(1, 1, -1),
        lambda: ReportStatement(1, "x"),
        lambda: ReportStatement(1, "Spam"),
        lambda: ModerationButton(ModerationAction.HIDE_WITH_REASON, 1),
        lambda: HideWithReason(1, "no reason"),
        lambda: DraftConsultation("-"),
        lambda: DraftAudience("every one"),
    ],
)
def test_a_payload_the_parser_would_refuse_cannot_be_built(build: Callable[[], Payload]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each refusal has its own message
        build()


def _flow_modules() -> list[Path]:
    return [p for p in sorted((ROOT / "handlers").rglob("*.py")) if p != PAYLOAD_MODULE]


def _payload_argument(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "payload":
            return keyword.value
    return call.args[1] if len(call.args) > 1 else None


def _put_together(expression: ast.expr) -> bool:
    """Whether an expression makes text itself: a literal, an f-string, a sum, a join, a format."""
    if isinstance(expression, ast.Constant | ast.JoinedStr | ast.BinOp):
        return True
    if isinstance(expression, ast.IfExp):
        return _put_together(expression.body) or _put_together(expression.orelse)
    return (
        isinstance(expression, ast.Call)
        and isinstance(expression.func, ast.Attribute)
        and expression.func.attr in {"join", "format", "replace"}
    )


def test_no_flow_builds_a_payload_by_hand() -> None:
    namespaces = sorted({value.wire.split(":")[0] for value in longest_payloads()}, key=len)
    looks_like_payload = re.compile(rf"({'|'.join(map(re.escape, namespaces[::-1]))}):")
    found: set[str] = set()
    for path in _flow_modules():
        where, source = path.relative_to(ROOT), path.read_text()
        # Text that only looks like a payload where nothing touches a button (the screening
        # model's "c:"/"b:" feature names) is not one.
        about_buttons = "button" in source.lower()
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Button":
                argument = _payload_argument(node)
                # A payload is a named value's .wire, never text put together here.
                if argument is not None and _put_together(argument):
                    found.add(f"{where}:{node.lineno}: {ast.unparse(argument)}")
            elif not about_buttons:
                continue
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if isinstance(first, ast.Constant) and looks_like_payload.match(str(first.value)):
                    found.add(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and looks_like_payload.match(node.value)
            ):
                found.add(f"{where}:{node.lineno}: {node.value!r}")
    assert sorted(found) == [], "build these with handlers/payloads.py"


def test_no_flow_takes_a_payload_apart_by_hand() -> None:
    """A pressed button is read with payloads.parse, never split or matched on its prefix."""
    found = []
    for path in _flow_modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, subject = node.func.attr, node.func.value
            named = getattr(subject, "attr", None) or getattr(subject, "id", None)
            if method in {"split", "rsplit", "partition", "rpartition", "startswith"} and (
                named in {"button", "payload"}
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
