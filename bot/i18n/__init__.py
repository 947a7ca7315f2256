"""Texts from gettext catalogs, and the choice of language for each event."""

from __future__ import annotations

import gettext
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

from bot.config import SUPPORTED_LANGUAGES

LOCALES_DIR = Path(__file__).parent / "locales"
# Below this many characters a language guess is noise ("ok", "ja tak").
MIN_TEXT_FOR_DETECTION = 20

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
        return template.format(**params) if params else template

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


def supported_language(tag: str | None) -> str | None:
    """Map a language tag such as 'da-DK' or 'en' to a supported language, or None."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return primary if primary in SUPPORTED_LANGUAGES else None


def make_language_detector() -> Callable[[str], str | None]:
    """Build a detector that only chooses between the supported languages, deterministically.

    Left free, langdetect often calls short Danish text Norwegian; a prior of zero for every
    language we do not support keeps it to plausible answers. The fixed seed makes the same text
    always get the same answer.
    """
    from langdetect import DetectorFactory, LangDetectException, detector_factory

    DetectorFactory.seed = 0
    detector_factory.init_factory()
    factory = detector_factory._factory
    assert factory is not None
    prior = {language: 1.0 / len(SUPPORTED_LANGUAGES) for language in SUPPORTED_LANGUAGES}

    def detect_language(text: str) -> str | None:
        if len(text.strip()) < MIN_TEXT_FOR_DETECTION:
            return None
        detector = factory.create()
        detector.set_prior_map(prior)
        detector.append(text)
        try:
            return supported_language(detector.detect())
        except LangDetectException:
            return None

    return detect_language


# Below this many letters, or under this certainty, a text's language is not called foreign.
MIN_LETTERS_TO_IDENTIFY = 30
MIN_CERTAINTY = 0.9
# langdetect calls most short Danish texts Norwegian (Bokmål): written the two are too close for
# it to tell apart, so a Norwegian reading counts as Danish.
READ_AS = {"no": "da"}
# Addresses and links are no language; left in, they make langdetect guess wildly.
NOT_LANGUAGE = re.compile(r"\S+@\S+|https?://\S+|www\.\S+|\S+\.(?:dk|com|org|net)\S*")


def make_language_identifier() -> Callable[[str], str | None]:
    """Build a detector for any language, for screening; None unless it is quite sure."""
    from langdetect import DetectorFactory, LangDetectException, detector_factory

    DetectorFactory.seed = 0
    detector_factory.init_factory()
    factory = detector_factory._factory
    assert factory is not None

    def identify(text: str) -> str | None:
        words = NOT_LANGUAGE.sub(" ", text)
        if sum(ch.isalpha() for ch in words) < MIN_LETTERS_TO_IDENTIFY:
            return None
        detector = factory.create()
        detector.append(words)
        try:
            best = detector.get_probabilities()[0]
        except (LangDetectException, IndexError):
            return None
        if best.prob < MIN_CERTAINTY:
            return None
        return READ_AS.get(best.lang, str(best.lang))

    return identify


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
