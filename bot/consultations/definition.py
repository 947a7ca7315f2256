"""Read and validate a consultation file (YAML); report every mistake with its line and field."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.consultations.files import MAX_DEFINITION_BYTES, FileProblem, decode_text, read_limited
from bot.dialogue.i18n import english_texts
from handlers.events import Phrase
from handlers.plan.rules import YEARS, PlanError, local_to_utc
from handlers.questions import OptionDefinition, all_kinds, find_kind
from handlers.questions.free_text import DEFAULT_IDEA_LENGTH
from handlers.questions.kind import MAX_OPTION_LABEL
from handlers.screening.rules import ACTIONS, CATEGORIES

LANGUAGES = ("da", "en")
CITIZEN_ROLES = ("co-design", "co-implementation", "co-evaluation")
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
KEY_PATTERN = re.compile(r"^[a-z0-9_]{1,24}$")
MAX_OPTIONS = 12
# More questions than anyone answers in a chat; also keeps the export's columns (a question can
# take one per option) far inside a spreadsheet's 16,384.
MAX_QUESTIONS = 100
TIME_FORMAT = "%Y-%m-%d %H:%M"
MIN_STATEMENT_LENGTH = 20
MAX_STATEMENT_LENGTH = 1000
IDEAS_MODERATION = ("post", "pre")
# The ideas section's name, for the field paths of its mistakes.
IDEAS = "ideas"
# A consultation file is a page or two of YAML. Aliases (*name) and nesting are bounded because
# a few lines of them can expand to billions of values ("billion laughs").
MAX_ALIASES = 100
MAX_DEPTH = 30
MAX_VALUES = 100_000

Texts = dict[str, str]
# The field of a mistake in the file as a whole, or in its top level.
WHOLE_FILE = ("(file)", "(top)")


@dataclass(frozen=True)
class FileError:
    """One mistake in a consultation file."""

    line: int | None
    field: str
    reason: Phrase

    def read(self, t: Callable[..., str]) -> str:
        """The mistake in ``t``'s language: "line 17: rounds[0].closes: must be after opens"."""
        where = (
            t("mistake.where.line", line=self.line)
            if self.line is not None
            else t("mistake.where.file")
        )
        field = t("mistake.where.whole_file") if self.field in WHOLE_FILE else self.field
        return f"{where}: {field}: {self.reason.read(t)}"

    def __str__(self) -> str:
        # The command line's language, and the logs'.
        return self.read(english_texts())


class DefinitionError(Exception):
    """A consultation file has mistakes; all of them are listed."""

    def __init__(self, errors: list[FileError]) -> None:
        super().__init__(f"{len(errors)} mistakes")
        self.errors = errors


@dataclass(frozen=True)
class QuestionDefinition:
    key: str
    kind: str
    text: Texts
    options: list[OptionDefinition] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    optional: bool = False
    condition: dict[str, Any] | None = None


@dataclass(frozen=True)
class RoundDefinition:
    name: Texts
    opens_at: datetime
    closes_at: datetime


@dataclass(frozen=True)
class IdeasDefinition:
    """The ideas phase: when citizens write statements and vote on each other's."""

    opens_at: datetime
    closes_at: datetime
    prompt: Texts
    max_length: int = DEFAULT_IDEA_LENGTH
    # Pre-moderation shows a statement to others only after a moderator approved it.
    premoderation: bool = False
    # Statements staff seed, so the first citizens have something to vote on.
    statements: list[Texts] = field(default_factory=list)


@dataclass(frozen=True)
class ConsultationDefinition:
    slug: str
    languages: list[str]
    title: Texts
    purpose: Texts
    basis: dict[str, Texts]
    target_group: dict[str, Any]
    citizen_role: str
    organiser: dict[str, str]
    results: Texts
    rounds: list[RoundDefinition]
    questions: list[QuestionDefinition]
    # {category: action, "reports_to_hold": n}; categories left out use the defaults.
    moderation: dict[str, Any] = field(default_factory=dict)
    ideas: IdeasDefinition | None = None
    # The file's text as read, kept with the consultation at its import (ConsultationFile).
    source: str = field(default="", repr=False)
    # The zone its times were read in: the automatic posts keep out of its night hours.
    zone: ZoneInfo | None = None


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing many aliases and deep nesting while it builds the nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise DefinitionError(
                    [
                        FileError(
                            line,
                            "(file)",
                            Phrase("mistake.consultation.aliases", limit=MAX_ALIASES),
                        )
                    ]
                )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise DefinitionError(
                    [
                        FileError(
                            line, "(file)", Phrase("mistake.consultation.nesting", limit=MAX_DEPTH)
                        )
                    ]
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Reader:
    """Turn YAML nodes into values while remembering the line of every field."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.errors: list[FileError] = []
        self.values = 0
        # Builds each plain value as yaml.safe_load would, without writing and parsing it again.
        self._constructor = yaml.SafeLoader("")

    def value(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        # Aliases make one node appear many times: count what is read, not what is written.
        self.values += 1
        if self.values > MAX_VALUES:
            raise DefinitionError(
                [FileError(None, "(file)", Phrase("mistake.consultation.values", limit=MAX_VALUES))]
            )
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in result:
                    # YAML keeps the last of two equal keys without a word: a second "slug:"
                    # pasted below would quietly make another consultation.
                    first = self.lines[child]
                    self.lines[child] = key_node.start_mark.line + 1
                    self.error(child, Phrase("mistake.consultation.twice", line=first))
                    continue
                result[key] = self.value(value_node, child)
                # A field's line is where its name stands, not where its value starts.
                self.lines[child] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as error:
            # A number of 5,000 digits, a date like 2027-02-30 10:00:00.
            self.error(
                path or "(file)",
                Phrase("mistake.consultation.unreadable_value", problem=str(error)),
            )
            return None

    def error(self, path: str, reason: Phrase) -> None:
        """Record a mistake at the line of the field, or of its nearest parent that is there."""
        line = self.lines.get(path)
        probe = path
        while line is None and probe:
            # "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" -> "" (the whole file, line 1).
            parent = re.sub(r"(\.[^.\[\]]+|\[\d+\]|^[^.\[\]]+)$", "", probe)
            probe = parent if parent != probe else ""
            line = self.lines.get(probe)
        self.errors.append(FileError(line, path or "(top)", reason))


def _texts(
    reader: _Reader,
    data: Any,
    path: str,
    languages: list[str],
    *,
    required: bool = True,
    limit: int = 4000,
) -> Texts:
    """A text is a plain string (Danish) or a mapping with one entry per language."""
    if data is None:
        if required:
            reader.error(path, Phrase("mistake.consultation.missing"))
        return {}
    if isinstance(data, str):
        data = {"da": data}
    if not isinstance(data, dict):
        reader.error(path, Phrase("mistake.consultation.texts_shape"))
        return {}
    texts: Texts = {}
    for language, text in data.items():
        if language not in LANGUAGES:
            reader.error(
                f"{path}.{language}",
                Phrase("mistake.consultation.unknown_language", languages=", ".join(LANGUAGES)),
            )
        elif not isinstance(text, str) or not text.strip():
            reader.error(f"{path}.{language}", Phrase("mistake.consultation.empty_text"))
        elif len(text) > limit:
            reader.error(
                f"{path}.{language}",
                Phrase("mistake.consultation.text_length", length=len(text), limit=limit),
            )
        else:
            texts[language] = text.strip()
    for language in languages:
        if language not in data and (required or data):
            reader.error(f"{path}.{language}", Phrase("mistake.consultation.missing"))
    return texts


def _time(reader: _Reader, data: Any, path: str, zone: ZoneInfo) -> datetime | None:
    if isinstance(data, datetime):
        moment = data
    elif isinstance(data, str):
        try:
            moment = datetime.strptime(data.strip(), TIME_FORMAT)
        except ValueError:
            reader.error(path, Phrase("mistake.consultation.time_got", value=repr(data)))
            return None
    else:
        reader.error(
            path,
            Phrase(
                "mistake.consultation.time" if data is not None else "mistake.consultation.missing"
            ),
        )
        return None
    if not YEARS[0] <= moment.year <= YEARS[1]:
        reader.error(
            path,
            Phrase("mistake.consultation.years", first=YEARS[0], last=YEARS[1], year=moment.year),
        )
        return None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    try:
        # As the content plan reads a time: one the clocks skip when they go forward is refused.
        return local_to_utc(moment, zone)
    except PlanError as error:
        reader.error(path, error.phrase)
        return None


def _options(reader: _Reader, data: Any, path: str, languages: list[str]) -> list[OptionDefinition]:
    if not isinstance(data, list) or not data:
        reader.error(
            path,
            Phrase(
                "mistake.consultation.two_options"
                if data is None or data == []
                else "mistake.consultation.options_shape"
            ),
        )
        return []
    if len(data) > MAX_OPTIONS:
        reader.error(
            path,
            Phrase("mistake.consultation.too_many_options", count=len(data), limit=MAX_OPTIONS),
        )
    options: list[OptionDefinition] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict):
            reader.error(item_path, Phrase("mistake.consultation.option_shape"))
            continue
        key = str(item.get("id", ""))
        if not KEY_PATTERN.match(key):
            reader.error(f"{item_path}.id", Phrase("mistake.consultation.id_shape"))
        elif key in seen:
            reader.error(
                f"{item_path}.id", Phrase("mistake.consultation.repeated_option", id=repr(key))
            )
        seen.add(key)
        label = _texts(
            reader, item.get("label"), f"{item_path}.label", languages, limit=MAX_OPTION_LABEL
        )
        options.append(OptionDefinition(key, label))
    if len(options) == 1:
        reader.error(path, Phrase("mistake.consultation.two_options"))
    return options


def _question(
    reader: _Reader,
    data: Any,
    path: str,
    languages: list[str],
    earlier: dict[str, QuestionDefinition],
) -> QuestionDefinition | None:
    if not isinstance(data, dict):
        reader.error(path, Phrase("mistake.consultation.mapping"))
        return None
    key = str(data.get("id", ""))
    if not KEY_PATTERN.match(key):
        reader.error(f"{path}.id", Phrase("mistake.consultation.id_shape"))
    elif key in earlier:
        reader.error(f"{path}.id", Phrase("mistake.consultation.repeated_question", id=repr(key)))
    kind = find_kind(data.get("kind"))
    if kind is None:
        names = ", ".join(known.name for known in all_kinds())
        reader.error(
            f"{path}.kind",
            Phrase("mistake.consultation.one_of", choices=names, value=repr(data.get("kind"))),
        )
        return None
    text = _texts(reader, data.get("text"), f"{path}.text", languages, limit=1000)
    optional = data.get("optional", False)
    if not isinstance(optional, bool):
        reader.error(f"{path}.optional", Phrase("mistake.consultation.true_false"))
        optional = False
    if "options" in data and "options" not in kind.fields:
        reader.error(f"{path}.options", Phrase("mistake.consultation.no_options", kind=kind.name))
    own = kind.parse(_QuestionFields(reader, data, path, languages))
    condition = _condition(reader, data.get("when"), f"{path}.when", earlier)
    return QuestionDefinition(key, kind.name, text, own.options, own.settings, optional, condition)


@dataclass(frozen=True)
class _QuestionFields:
    """One question's mapping, as its kind reads it (``handlers.questions.DefinitionFields``)."""

    reader: _Reader
    data: dict[str, Any]
    path: str
    languages: list[str]

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def error(self, name: str, reason: Phrase) -> None:
        self.reader.error(f"{self.path}.{name}", reason)

    def texts(self, name: str, value: Any, *, limit: int) -> Texts:
        return _texts(self.reader, value, f"{self.path}.{name}", self.languages, limit=limit)

    def options(self, name: str, value: Any) -> list[OptionDefinition]:
        return _options(self.reader, value, f"{self.path}.{name}", self.languages)


def _condition(
    reader: _Reader, data: Any, path: str, earlier: dict[str, QuestionDefinition]
) -> dict[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data, dict) or "question" not in data:
        reader.error(path, Phrase("mistake.consultation.condition_shape"))
        return None
    target = earlier.get(str(data["question"]))
    if target is None:
        reader.error(
            f"{path}.question",
            Phrase("mistake.consultation.not_earlier", value=repr(data["question"])),
        )
        return None
    target_kind = find_kind(target.kind)
    if target_kind is None or not target_kind.has_options:
        reader.error(
            f"{path}.question", Phrase("mistake.consultation.condition_kind", kind=target.kind)
        )
        return None
    wanted = data.get("in", [data["equals"]] if "equals" in data else None)
    if not isinstance(wanted, list) or not wanted:
        reader.error(f"{path}.in", Phrase("mistake.consultation.condition_answers"))
        return None
    known = {option.key for option in target.options}
    for value in wanted:
        if str(value) not in known:
            reader.error(
                f"{path}.in",
                Phrase(
                    "mistake.consultation.not_an_answer",
                    value=repr(value),
                    question=repr(target.key),
                    answers=", ".join(sorted(known)),
                ),
            )
    return {"question": target.key, "in": [str(value) for value in wanted]}


def yaml_problem(error: yaml.YAMLError) -> Phrase | str:
    """What is wrong with a file PyYAML cannot read, in the reader's language where known.

    PyYAML says it in English, in its parser's words ("mapping values are not allowed here");
    the mistakes people make by hand (a tab, a colon in a text, an unclosed quote, a line
    indented wrongly) are said plainly, with what to do. Others keep PyYAML's words.
    """
    context = str(getattr(error, "context", None) or "")
    problem = str(getattr(error, "problem", None) or error)
    if "found character '\\t'" in problem:
        return Phrase("mistake.yaml.tab")
    if problem.startswith("found character"):
        character = problem.split("'")[1] if problem.count("'") >= 2 else "?"
        return Phrase("mistake.yaml.reserved_character", character=character)
    if problem.startswith("mapping values are not allowed"):
        return Phrase("mistake.yaml.colon")
    if problem.startswith("could not find expected ':'"):
        return Phrase("mistake.yaml.missing_colon")
    if context.startswith("while scanning a quoted scalar"):
        return Phrase("mistake.yaml.unclosed_quote")
    if context.startswith("while parsing a flow"):
        return Phrase("mistake.yaml.unclosed_bracket")
    if problem.startswith("expected <block end>"):
        return Phrase("mistake.yaml.indentation")
    if "alias" in problem or context.startswith(
        ("while scanning an alias", "while scanning an anchor", "found duplicate anchor")
    ):
        return Phrase("mistake.yaml.alias")
    return problem


# A value that opens a quote ("key: \"text" or "- 'text") and does not close it on its line.
QUOTE_OPENED = re.compile(r"""^\s*(?:-\s+)?(?:[^#'"\s][^#:]*:\s+)?(?P<q>["'])(?P<rest>.*)$""")


def _unclosed_quote(source: str, context: Any, line: int | None) -> int | None:
    """The line where a quoted text opens and is not closed, between where PyYAML's context
    began and where it stumbled (1-based), if there is one."""
    if context is None or line is None:
        return None
    lines = source.splitlines()
    for number in range(context.line + 1, min(line, len(lines)) + 1):
        found = QUOTE_OPENED.match(lines[number - 1])
        if found is None:
            continue
        quote, rest = found["q"], found["rest"]
        if quote == '"':
            closed = re.search(r'(?<!\\)(?:\\\\)*"', rest)
        else:
            closed = re.search(r"'(?!')", rest.replace("''", ""))
        if closed is None:
            return number
    return None


def parse_definition(source: str, zone: ZoneInfo) -> ConsultationDefinition:
    """Parse a consultation file; raise DefinitionError listing every mistake."""
    reader = _Reader()
    try:
        node = yaml.compose(source, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = yaml_problem(exc)
        # An unclosed quote reads on over the next lines as one text, and PyYAML stumbles
        # where that text ends, often far below ("line 55: indented unevenly" for a quote left
        # open on line 11): name the line where the quote opened.
        opened = _unclosed_quote(source, getattr(exc, "context_mark", None), line)
        if opened is not None:
            line, problem = opened, Phrase("mistake.yaml.unclosed_quote")
        raise DefinitionError(
            [FileError(line, "(file)", Phrase("mistake.consultation.not_yaml", problem=problem))]
        ) from None
    if not isinstance(node, yaml.MappingNode):
        raise DefinitionError([FileError(1, "(file)", Phrase("mistake.consultation.top_mapping"))])
    data = reader.value(node, "")

    known = {
        "slug",
        "languages",
        "title",
        "purpose",
        "basis",
        "target_group",
        "citizen_role",
        "organiser",
        "results",
        "rounds",
        "questions",
        "moderation",
        "ideas",
    }
    for unknown in sorted(set(data) - known):
        reader.error(unknown, Phrase("mistake.consultation.unknown_field"))
    slug = str(data.get("slug", ""))
    if not SLUG_PATTERN.fullmatch(slug):
        reader.error("slug", Phrase("mistake.consultation.slug"))
    languages = data.get("languages", ["da"])
    if (
        not isinstance(languages, list)
        or "da" not in languages
        or any(language not in LANGUAGES for language in languages)
    ):
        reader.error("languages", Phrase("mistake.consultation.languages"))
        languages = ["da"]
    title = _texts(reader, data.get("title"), "title", languages, limit=100)
    purpose = _texts(reader, data.get("purpose"), "purpose", languages, limit=600)
    basis_data = data.get("basis") or {}
    if not isinstance(basis_data, dict):
        reader.error("basis", Phrase("mistake.consultation.basis"))
        basis_data = {}
    basis = {
        part: _texts(reader, basis_data.get(part), f"basis.{part}", languages, limit=800)
        for part in ("decided", "influence", "decides")
    }
    target = data.get("target_group") or {}
    if not isinstance(target, dict):
        reader.error("target_group", Phrase("mistake.consultation.target_group"))
        target = {}
    target_group = {
        "description": _texts(
            reader, target.get("description"), "target_group.description", languages
        ),
        "quotas": target.get("quotas") or [],
    }
    role = data.get("citizen_role")
    if role not in CITIZEN_ROLES:
        reader.error(
            "citizen_role",
            Phrase(
                "mistake.consultation.one_of", choices=", ".join(CITIZEN_ROLES), value=repr(role)
            ),
        )
    organiser = data.get("organiser") or {}
    if not isinstance(organiser, dict) or not organiser.get("name") or not organiser.get("contact"):
        reader.error("organiser", Phrase("mistake.consultation.organiser"))
        organiser = {}
    results = _texts(reader, data.get("results"), "results", languages, limit=500)

    rounds: list[RoundDefinition] = []
    rounds_data = data.get("rounds")
    if not isinstance(rounds_data, list) or not rounds_data:
        reader.error("rounds", Phrase("mistake.consultation.rounds"))
        rounds_data = []
    zone_name = zone
    for index, item in enumerate(rounds_data):
        path = f"rounds[{index}]"
        if not isinstance(item, dict):
            reader.error(path, Phrase("mistake.consultation.round_shape"))
            continue
        opens = _time(reader, item.get("opens"), f"{path}.opens", zone_name)
        closes = _time(reader, item.get("closes"), f"{path}.closes", zone_name)
        name = _texts(
            reader, item.get("name"), f"{path}.name", languages, required=False, limit=100
        )
        if opens and closes:
            if closes <= opens:
                reader.error(f"{path}.closes", Phrase("mistake.consultation.after_opens"))
            elif rounds and opens < rounds[-1].closes_at:
                reader.error(f"{path}.opens", Phrase("mistake.consultation.overlap"))
            else:
                rounds.append(RoundDefinition(name, opens, closes))

    questions: list[QuestionDefinition] = []
    questions_data = data.get("questions")
    if not isinstance(questions_data, list) or not questions_data:
        reader.error("questions", Phrase("mistake.consultation.questions"))
        questions_data = []
    elif len(questions_data) > MAX_QUESTIONS:
        reader.error(
            "questions",
            Phrase(
                "mistake.consultation.too_many_questions",
                count=len(questions_data),
                limit=MAX_QUESTIONS,
            ),
        )
        questions_data = None  # not each of thousands checked and named
    earlier: dict[str, QuestionDefinition] = {}
    for index, item in enumerate(questions_data or []):
        question = _question(reader, item, f"questions[{index}]", languages, earlier)
        if question is not None:
            questions.append(question)
            earlier.setdefault(question.key, question)
    # Quotas name questions: with the questions unread (too many), that is not judged either.
    for index, quota in enumerate(target_group["quotas"] if questions_data is not None else []):
        path = f"target_group.quotas[{index}]"
        if not isinstance(quota, dict) or str(quota.get("question")) not in earlier:
            reader.error(path, Phrase("mistake.consultation.quota"))
        elif str(quota.get("option")) not in {o.key for o in earlier[quota["question"]].options}:
            reader.error(
                f"{path}.option",
                Phrase(
                    "mistake.consultation.not_an_option",
                    value=repr(quota.get("option")),
                    question=repr(quota["question"]),
                ),
            )
        elif not isinstance(quota.get("minimum"), int) or quota["minimum"] < 1:
            reader.error(f"{path}.minimum", Phrase("mistake.consultation.at_least_one"))

    moderation = _moderation(reader, data.get("moderation"))
    ideas = _ideas(reader, data.get("ideas"), languages, zone)

    if reader.errors:
        raise DefinitionError(sorted(reader.errors, key=lambda e: (e.line or 0, e.field)))
    return ConsultationDefinition(
        slug=slug,
        languages=list(languages),
        title=title,
        purpose=purpose,
        basis=basis,
        target_group=target_group,
        citizen_role=str(role),
        organiser=dict(organiser),
        results=results,
        rounds=rounds,
        questions=questions,
        moderation=moderation,
        ideas=ideas,
        source=source,
        zone=zone,
    )


def _ideas(
    reader: _Reader, data: Any, languages: list[str], zone: ZoneInfo
) -> IdeasDefinition | None:
    """The ideas phase: its dates, what to write about, the length limit, seeded statements."""
    if data is None:
        return None
    if not isinstance(data, dict):
        reader.error(IDEAS, Phrase("mistake.consultation.ideas_shape"))
        return None
    for unknown in sorted(
        set(data) - {"opens", "closes", "prompt", "max_length", "moderation", "statements"}
    ):
        reader.error(f"{IDEAS}.{unknown}", Phrase("mistake.consultation.unknown_field"))
    opens = _time(reader, data.get("opens"), f"{IDEAS}.opens", zone)
    closes = _time(reader, data.get("closes"), f"{IDEAS}.closes", zone)
    if opens and closes and closes <= opens:
        reader.error(f"{IDEAS}.closes", Phrase("mistake.consultation.after_opens"))
    prompt = _texts(reader, data.get("prompt"), f"{IDEAS}.prompt", languages, limit=500)
    length = data.get("max_length", DEFAULT_IDEA_LENGTH)
    if (
        isinstance(length, bool)
        or not isinstance(length, int)
        or not MIN_STATEMENT_LENGTH <= length <= MAX_STATEMENT_LENGTH
    ):
        reader.error(
            f"{IDEAS}.max_length",
            Phrase(
                "mistake.consultation.whole_number_from",
                low=MIN_STATEMENT_LENGTH,
                high=MAX_STATEMENT_LENGTH,
            ),
        )
        length = DEFAULT_IDEA_LENGTH
    mode = data.get("moderation", "post")
    if mode not in IDEAS_MODERATION:
        reader.error(
            f"{IDEAS}.moderation",
            Phrase("mistake.consultation.ideas_moderation", value=repr(mode)),
        )
    seeded: list[Texts] = []
    items = data.get("statements") or []
    if not isinstance(items, list):
        reader.error(f"{IDEAS}.statements", Phrase("mistake.consultation.statements"))
        items = []
    for index, item in enumerate(items):
        path = f"{IDEAS}.statements[{index}]"
        # A seeded statement needs Danish; English is welcome but not required.
        text = _texts(reader, item, path, ["da"], limit=length)
        if text:
            seeded.append(text)
    if opens is None or closes is None or closes <= opens:
        return None
    return IdeasDefinition(opens, closes, prompt, length, mode == "pre", seeded)


def _moderation(reader: _Reader, data: Any) -> dict[str, Any]:
    """How screening findings are acted on: an action per category, and the report limit."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        reader.error("moderation", Phrase("mistake.consultation.moderation_shape"))
        return {}
    settings: dict[str, Any] = {}
    for key, value in data.items():
        path = f"moderation.{key}"
        if key == "reports_to_hold":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                reader.error(path, Phrase("mistake.consultation.at_least_one"))
            else:
                settings[key] = value
        elif key in CATEGORIES:
            if value not in ACTIONS:
                reader.error(
                    path,
                    Phrase(
                        "mistake.consultation.one_of", choices=", ".join(ACTIONS), value=repr(value)
                    ),
                )
            else:
                settings[key] = value
        else:
            reader.error(
                path,
                Phrase("mistake.consultation.moderation_unknown", categories=", ".join(CATEGORIES)),
            )
    return settings


def read_definition(path: Path, zone: ZoneInfo) -> ConsultationDefinition:
    """Read a consultation file from disk, refusing one too large to be a consultation."""
    try:
        data = read_limited(path, MAX_DEFINITION_BYTES)
    except FileProblem as problem:
        raise DefinitionError([FileError(problem.row, "(file)", problem.reason)]) from None
    return definition_from_bytes(data, zone)


def definition_from_bytes(data: bytes, zone: ZoneInfo) -> ConsultationDefinition:
    """Parse a consultation file's bytes (read within MAX_DEFINITION_BYTES by the caller: from
    disk by the command line, from an upload by the dashboard); DefinitionError if wrong."""
    try:
        source = decode_text(data)
    except FileProblem as problem:
        raise DefinitionError([FileError(problem.row, "(file)", problem.reason)]) from None
    return parse_definition(source, zone)
