"""Every user-facing text exists in Danish and English, with the same placeholders."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from bot.dialogue.i18n import Catalogs, load_catalog, make_language_detector, resolve_language
from handlers.moderation.cards import REASONS
from handlers.moderation.intake import REPORT_REASONS
from handlers.screening.rules import CATEGORIES, KINDS
from storage.models import Decision, PostKind

DECIDED = ("approved", "hidden", "rephrase", "blocked", "resubmitted")

ROOT = Path(__file__).resolve().parent.parent
KEY = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".txt", ".yaml", ".png")
# Keys built at run time from a fixed set of names.
DYNAMIC_KEYS = (
    {f"language.{kind}.{lang}" for kind in ("set", "name") for lang in ("da", "en")}
    | {
        f"command.{name}"
        for name in ("start", "help", "privacy", "mydata", "forget", "language", "stop")
    }
    | {f"status.{s}" for s in ("invited", "declined", "answering", "completed")}
    | {f"flag.{kind}" for kind in KINDS}
    | {f"moderation.why.{category}" for category in CATEGORIES}
    | {f"moderation.action.{action}" for action in ("review", "hold", "hide", "reported", "pre")}
    | {
        f"moderation.author.{kind}.{what}"
        for what in ("approved", "hidden", "rephrase", "rewrite")
        for kind in ("answer", "statement")
    }
    | {f"ideas.vote.{name}" for name in ("agree", "disagree", "pass")}
    | {f"ideas.report_reason.{reason}" for reason in REPORT_REASONS}
    | {f"ideas.reported.{result}" for result in ("own", "again", "counted", "held")}
    | {f"ideas.decision.{decision}" for decision in Decision.ALL}
    | {f"moderation.{part}.{reason}" for part in ("reason", "reason_button") for reason in REASONS}
    | {f"moderation.decided.{status}" for status in DECIDED}
    | {f"moderation.done.{status}" for status in DECIDED if status != "resubmitted"}
    | {f"plan.kind.{kind}" for kind in ("message", *PostKind.AUTOMATIC)}
    | {
        f"plan.state.{state}"
        for state in ("planned", "sending", "sent", "cancelled", "failed", "skipped")
    }
    | {f"plan.audience.{name}" for name in ("channel", "everyone", "participants", "unfinished")}
)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# The names a text lookup is called by: `ctx.t("key")`, `t("key")`, `ctx.t.n("key", count)` for a
# text with plural forms; `catalogs.texts(lang)` is not one (its argument is a language), but
# `texts("key")` on a bound lookup is. `Phrase("key", ...)` is a lookup put off until the reader's
# language is known (a mistake in a file staff give).
LOOKUP_NAMES = frozenset({"t", "texts", "n", "Phrase"})


def keys_called_in(path: Path) -> set[str]:
    """Return the literal keys passed first to a text lookup call in one source file."""
    keys: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        function = node.func
        name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)
        key = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
        # Only calls count: `texts["en"] = ...` is a dict being filled, not a lookup (a
        # tokenising extractor such as Babel's took it for one).
        # `catalogs.texts("en")` picks a language's texts: a language code is no key.
        if name in LOOKUP_NAMES and isinstance(key, str) and key not in ("da", "en"):
            keys.add(key)
    return keys


# The dashboard's templates look texts up as `t("key")` or `t.n("key", count)` too.
TEMPLATE_LOOKUP = re.compile(r"""\bt(?:\.n)?\(\s*["']([a-z_]+(?:\.[a-z_]+)+)["']""")


def keys_in_templates(root: Path = ROOT) -> set[str]:
    return {
        key
        # Templates may sit in a folder per part of the dashboard (templates/plan/week.html).
        for path in sorted((root / "bot").rglob("*.html"))
        if "templates" in path.relative_to(root).parts
        for key in TEMPLATE_LOOKUP.findall(path.read_text())
    }


def keys_used_in_code(root: Path = ROOT) -> set[str]:
    keys: set[str] = keys_in_templates(root)
    for package in ("bot", "handlers", "scheduler"):
        for path in sorted((root / package).rglob("*.py")):
            keys |= keys_called_in(path)
    return keys


def untranslated(used: set[str]) -> dict[str, set[str]]:
    return {language: used - set(load_catalog(language)) for language in ("da", "en")}


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    danish, english = load_catalog("da"), load_catalog("en")
    assert set(danish) == set(english)
    for key in danish:
        assert placeholders(danish[key]) == placeholders(english[key]), key


def key_literals_in_code() -> set[str]:
    """String constants shaped like keys: keys handed around before they reach t()."""
    found: set[str] = set()
    for package in ("bot", "handlers"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
                # A file name such as "summary.csv" is shaped like a key but is none.
                is_file_name = is_text and node.value.endswith(FILE_SUFFIXES)
                if is_text and KEY.match(node.value) and not is_file_name:
                    found.add(node.value)
    return found


def test_every_key_the_code_uses_is_translated() -> None:
    used = keys_used_in_code() | DYNAMIC_KEYS
    assert "start.greeting" in used, "extraction found nothing: the test would be blind"
    assert "admin.skip" in keys_in_templates(), "templates were not read: the test would be blind"
    assert untranslated(used) == {"da": set(), "en": set()}


def test_a_planted_unknown_key_is_caught(tmp_path: Path) -> None:
    flow = tmp_path / "handlers" / "planted.py"
    flow.parent.mkdir()
    flow.write_text(
        "def draft(text_da, text_en):\n"
        "    texts = {'da': text_da}\n"
        "    texts['en'] = text_en\n"
        "    return texts\n"
        "def reply(ctx, texts):\n"
        "    return ctx.t('planted.not_in_any_catalog') + texts('start.greeting')\n"
    )
    used = keys_used_in_code(tmp_path)
    assert used == {"planted.not_in_any_catalog", "start.greeting"}
    assert untranslated(used) == {
        "da": {"planted.not_in_any_catalog"},
        "en": {"planted.not_in_any_catalog"},
    }


def test_catalogs_hold_no_unused_keys() -> None:
    used = keys_used_in_code() | DYNAMIC_KEYS | key_literals_in_code()
    assert set(load_catalog("da")) - used == set()


def test_every_key_literal_that_names_a_text_exists() -> None:
    catalog = set(load_catalog("da"))
    prefixes = {key.split(".")[0] for key in catalog}
    literals = {k for k in key_literals_in_code() if k.split(".")[0] in prefixes}
    assert literals - catalog == set()


def test_language_resolution_order() -> None:
    detect = make_language_detector()
    english_text = "Could you tell me when the new playground will open in our area?"
    danish_text = "Hvornår åbner den nye legeplads i vores område, og hvem bestemmer det?"

    def resolve(stored: str | None, hint: str | None, text: str) -> str:
        return resolve_language(
            stored=stored, platform_hint=hint, text=text, default="da", detect=detect
        )

    assert resolve("en", "da", danish_text) == "en"  # a stored choice wins
    assert resolve(None, "en-US", danish_text) == "en"  # then the platform's language
    assert resolve(None, "de", english_text) == "en"  # then the text's language
    assert resolve(None, None, danish_text) == "da"
    assert resolve(None, None, "ok") == "da"  # too short to guess: the default


def test_a_missing_key_falls_back_without_crashing() -> None:
    texts = Catalogs("da").texts("en")
    assert texts("no.such.key") == "no.such.key"
    assert texts("help.body").startswith("What you can do here")


def test_texts_with_a_number_take_its_plural_form() -> None:
    danish, english = Catalogs("da").texts("da"), Catalogs("da").texts("en")
    assert danish.n("forget.ideas_anonymised", 1).startswith("1 idé står")
    assert danish.n("forget.ideas_anonymised", 4).startswith("4 idéer står")
    assert english.n("forget.ideas_anonymised", 1).startswith("1 idea remains")
    assert english.n("forget.ideas_anonymised", 0).startswith("0 ideas remain")
    assert danish.n("ideas.notice", 1, title="T") == "💡 Der er 1 nyt udsagn at stemme om i »T«."


def test_a_phrase_kept_in_a_json_column_reads_as_before_in_each_language() -> None:
    """A post's note is stored as phrases and read later by staff of either language."""
    import json

    from handlers.events import Phrase

    phrase = Phrase(
        "plan.change.cancelled", post=4, reason=Phrase("mistake.plan.no_round", round=2)
    )
    stored = json.loads(json.dumps(phrase.to_document()))
    assert Phrase.from_document(stored) == phrase
    danish = Catalogs("da").texts("da")
    assert (
        Phrase.from_document(stored).read(danish)
        == "opslag 4 er aflyst: høringen har ingen runde 2"
    )
