"""Texts from gettext catalogs, and the choice of language for each event."""

from __future__ import annotations

import functools
import gettext
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

from bot.dialogue.i18n.languages import language_detector
from handlers.common import SUPPORTED_LANGUAGES

LOCALES_DIR = Path(__file__).parent / "locales"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plurals:
    """A language's texts that depend on a number: their forms, and which form a number takes."""

    forms: Mapping[str, tuple[str, ...]]
    form_of: Callable[[int], int]


def _read(language: str) -> object:
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def load_catalog(language: str) -> dict[str, str]:
    """Read one language's .po catalog into a key → text mapping (untranslated keys left out).

    A text with plural forms (msgid_plural) appears with its last form, so every key is here.
    """
    texts: dict[str, str] = {}
    for message in _read(language):  # type: ignore[attr-defined]
        if isinstance(message.id, tuple) and isinstance(message.string, tuple):
            if all(message.string):
                texts[str(message.id[0])] = str(message.string[-1])
        elif message.id and isinstance(message.string, str) and message.string:
            texts[str(message.id)] = str(message.string)
    return texts


def load_plurals(language: str) -> Plurals:
    """Read the texts with plural forms, and the language's rule for choosing among them."""
    catalog = _read(language)
    forms = {
        str(message.id[0]): tuple(str(form) for form in message.string)
        for message in catalog  # type: ignore[attr-defined]
        if isinstance(message.id, tuple) and isinstance(message.string, tuple)
    }
    # The rule as gettext writes it in the catalog header, e.g. "(n != 1)" for da and en.
    rule = gettext.c2py(catalog.plural_expr)  # type: ignore[attr-defined]
    return Plurals(forms, rule)


@dataclass(frozen=True)
class BoundTexts:
    """The texts of one language, with the default language as a safety net."""

    language: str
    _texts: Mapping[str, str]
    _fallback: Mapping[str, str]
    _plurals: Plurals | None = None

    def __call__(self, key: str, /, **params: object) -> str:
        template = self._texts.get(key) or self._fallback.get(key)
        if template is None:
            # A missing key is a bug the catalog test catches; the citizen still gets something.
            logger.error("missing text %s for language %s", key, self.language)
            return key
        if params:
            return template.format(**params)
        # Every text is a format string, so a brace meant as a brace is doubled ("{{offensive:
        # hold}}"); with nothing to fill in only that is undone (a placeholder left unfilled by
        # a mistake shows as written instead of failing the reply).
        return template.replace("{{", "{").replace("}}", "}")

    def n(self, key: str, count: int, /, **params: object) -> str:
        """The text for a number (``count``, also passed as a parameter) in the right form."""
        forms = self._plurals.forms.get(key) if self._plurals is not None else None
        if not forms:
            return self(key, count=count, **params)
        assert self._plurals is not None
        form = forms[min(self._plurals.form_of(count), len(forms) - 1)]
        return form.format(count=count, **params)


class Catalogs:
    """All catalogs, loaded once at start."""

    def __init__(self, default_language: str) -> None:
        self.default_language = default_language
        self._catalogs = {language: load_catalog(language) for language in SUPPORTED_LANGUAGES}
        self._plurals = {language: load_plurals(language) for language in SUPPORTED_LANGUAGES}

    def texts(self, language: str) -> BoundTexts:
        """Return the texts of a supported language."""
        if language not in self._catalogs:
            language = self.default_language
        return BoundTexts(
            language,
            self._catalogs[language],
            self._catalogs[self.default_language],
            self._plurals[language],
        )

    def keys(self, language: str) -> set[str]:
        """Return the keys a catalog translates."""
        return set(self._catalogs[language])


@functools.cache
def english_texts() -> BoundTexts:
    """The English texts: the command line's language, and the logs'."""
    return Catalogs("en").texts("en")


def supported_language(tag: str | None) -> str | None:
    """Map a language tag such as 'da-DK' or 'en' to a supported language, or None."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return primary if primary in SUPPORTED_LANGUAGES else None


def make_language_detector(
    priors: Mapping[str, float] | None = None,
) -> Callable[[str], str | None]:
    """Build the reply-language detector: a supported language, or None.

    It reads the text among all candidate languages (``languages``) and answers only with a
    supported one. Norwegian and Swedish get Danish: Scandinavians read Danish, and it is
    closer to them than English. Any other language gets None, so the platform's language or
    the default decides. Fewer than two words get None.
    """
    detector = language_detector(priors)

    def detect_language(text: str) -> str | None:
        language = detector.identify(text)
        return supported_language(READ_AS_SUPPORTED.get(language or "", language))

    return detect_language


# Languages whose readers get the replies in a supported one they read well.
READ_AS_SUPPORTED = {"nb": "da", "sv": "da"}


def make_language_identifier(
    priors: Mapping[str, float] | None = None,
) -> Callable[[str], str | None]:
    """Build a detector for any candidate language, for screening; None under two words.

    ``priors`` are the candidate languages with their priors (``Settings.language_priors``);
    by default the languages Danish municipalities meet most.
    """
    return language_detector(priors).identify


def resolve_language(
    *,
    stored: str | None,
    platform_hint: str | None,
    text: str,
    default: str,
    detect: Callable[[str], str | None],
) -> str:
    """Choose the language: stored preference, platform language, the text's language, default."""
    return (
        supported_language(stored)
        or supported_language(platform_hint)
        or (detect(text) if text else None)
        or default
    )
