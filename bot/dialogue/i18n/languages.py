"""The language of a citizen's text: langdetect, made to work on short chat text.

langdetect alone, with all its 55 profiles, calls short Danish text Norwegian or English, gives up
on two words, and reads a text in capitals as English. Here it

- chooses only among a configured set of candidate languages, with priors (a Danish municipality
  meets Danish far more often than Urdu), and loads only their profiles;
- reads the text case-folded (langdetect skips the letter n-grams of words in capitals);
- is helped by word lists: Danish, Norwegian Bokmål and Swedish are told apart by their words
  (written, they share most letter sequences), and short texts are read by their words too, where
  langdetect has too few letters to go on (two words by their words alone);
- tells a Nordic word no list knows by its letter sequences ("endringshistorikk" is Norwegian),
  with a small model trained on wordfreq's Danish, Norwegian and Swedish words;
- weighs, within the Nordic three, a sentence model's reading of the whole text (a logistic
  regression over its letter sequences and words, trained on running Danish, Norwegian and
  Swedish text: manuals and program translations, Danish comments; ``build_nordic``), with a say
  that grows from nothing at two words to its full say at four;
- answers for any text of two or more words; ``None`` only when there are fewer than two words
  (numbers, emoji, links and addresses are no words).

Non-Latin scripts decide by their letters: Arabic script is Arabic, Persian or Urdu, Cyrillic
with і, ї, є or ґ is Ukrainian. Language codes are ISO 639-1 as the outside world uses them:
``nb`` for Norwegian Bokmål (langdetect's ``no``).
"""

from __future__ import annotations

import gzip
import math
import re
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

# The languages a citizen's text is read as, with relative weights: those Danish municipalities
# meet most, Danish far the most often. The setting BORGERDIALOG_LANGUAGE_CANDIDATES replaces it.
DEFAULT_LANGUAGE_CANDIDATES = "da:60,en:10,de:3,sv:3,nb:3,pl:3,ro:2,uk:3,ar:3,tr:3,so:2,fa:2,ur:2"
WORDS_FILE = Path(__file__).parent / "data" / "words.tsv.gz"
NGRAMS_FILE = Path(__file__).parent / "data" / "nordic_ngrams.tsv.gz"
SENTENCES_FILE = Path(__file__).parent / "data" / "nordic_sentences.tsv.gz"
NORDIC = ("da", "nb", "sv")
# Our code → langdetect's profile name, where they differ.
PROFILE_NAME = {"nb": "no"}
LANGDETECT_SEED = 0

# Addresses and links are no language; left in, they make langdetect guess wildly.
NOT_LANGUAGE = re.compile(r"\S+@\S+|https?://\S+|www\.\S+|\S+\.(?:dk|com|org|net)\S*")
# A word: letters, perhaps joined by an apostrophe or hyphen ("p-pladser", "su'aal").
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
ARABIC_LETTER = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
CYRILLIC_LETTER = re.compile(r"[\u0400-\u04ff]")
# Letters Persian and Urdu write that Arabic does not; Urdu's own come first.
URDU_LETTERS = re.compile(r"[ٹڈڑںےۓھہ]")
# Persian also writes its own yeh and kaf (ی, ک) where Arabic writes ي and ك.
PERSIAN_LETTERS = re.compile(r"[پچژگیک]")
UKRAINIAN_LETTERS = re.compile(r"[іїєґ]")
# A word a language's list does not hold costs this (-log10 of a frequency): rarer than the
# rarest listed word, so an unknown word says little and a known one a lot.
UNKNOWN_WORD_COST = 6.5
# What a word costs a language without a word list, above its cost in the best listed language.
UNLISTED_TOLL = 0.5
# How much langdetect's reading counts against the words' (in log10 units per log10 unit).
LANGDETECT_WEIGHT = 2.0
# langdetect's say grows with the words, from none at NO_SAY_WORDS (two words are too few
# letters: it reads "ja tak" as Polish with certainty) to its full say at FULL_SAY_WORDS.
FULL_SAY_WORDS = 10
NO_SAY_WORDS = 2
# Within the Nordic three, langdetect's letters count this much: tuned to nothing, as they cost
# Danish more than they gained Norwegian.
NORDIC_LETTERS_WEIGHT = 0.0
# langdetect's probabilities are floored here: a certain "no" from letters is not infinite.
LANGDETECT_FLOOR = 1e-4
# Letter sequences of a word, up to this long: what tells a Nordic word no list knows.
NGRAM_LONGEST = 4
# How much a word no Nordic list knows counts by its letter sequences (-log10 of its
# probability in each Nordic language), and the most one such word can say for or against one.
NGRAM_WEIGHT = 1.0
NGRAM_CLIP = 0.7
NGRAM_MARKED_CLIP = 1.5
# Spellings of Norwegian that Danish does not write: "opp-" (op-), "likn" (lign), "-sjon" (-tion),
# a final "kk" (takk, gikk; Danish tak, gik), "øy" (høy, støy; Danish høj, støj).
NORWEGIAN_SPELLING = re.compile(r"^opp|likn|sjon|kk$|øy")
# Norwegian grammar Danish does not have: a demonstrative before a noun in its definite form
# ("denne siden", "dette feltet", "disse filene"; Danish "denne side", "dette felt"). Nouns whose
# own form ends so ("denne aften", "dette budget") are Danish and do not count.
DOUBLE_DEFINITE = re.compile(r"\b(?:denne|dette|disse) (\w{2,}(?:en|et|ene|ens|ets))\b")
DANISH_BASE_FORMS = frozenset(
    {
        "aften",
        "morgen",
        "eksamen",
        "fenomen",
        "budget",
        "planet",
        "internet",
        "kabinet",
        "ballet",
        "billet",
        "raket",
        "magnet",
        "tablet",
        "toilet",
        "buffet",
        "kvartet",
        "duet",
        "alfabet",
        "banket",
        "etiket",
        "omelet",
        "parket",
        "tapet",
    }
)
# What one such pair costs Danish, in log10 units: more than a doubtful sentence's lean.
DOUBLE_DEFINITE_COST = 1.5
# Within the Nordic three, the words' say against the priors.
NORDIC_WORDS_WEIGHT = 1.2
# The sentence model's say within the Nordic three (per log10 unit of its odds, at most
# SENTENCE_CLIP units against a language), growing with the words as langdetect's does.
SENTENCE_WEIGHT = 1.0
SENTENCE_CLIP = 4.0
SENTENCE_NO_SAY_WORDS = 2
SENTENCE_FULL_SAY_WORDS = 4
# Words of one letter in Danish, Norwegian or Swedish; any other letter alone is no word there.
ONE_LETTER_WORDS = frozenset({"i", "å", "ø"})


@dataclass(frozen=True)
class LanguageReading:
    """The language of a text (or None), the scores that chose it, and why, in a few words.

    ``scores`` are the candidates' shares of the final decision, highest first, summing to 1
    (empty when no detection ran). ``reason`` names the step that decided, e.g. ``"letters"``
    (langdetect), ``"words"`` (the word lists), ``"nordic words"``, ``"arabic script"`` or
    ``"fewer than two words"``.
    """

    language: str | None
    scores: tuple[tuple[str, float], ...]
    reason: str


def parse_candidates(spec: str) -> dict[str, float]:
    """Read ``"da:60,en:10,de"`` into normalised priors (a language without a weight gets 1).

    Raises ValueError on an unknown language or a weight that is not a positive number.
    """
    weights: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        code, _, weight = part.strip().partition(":")
        code = code.strip().lower()
        if code not in known_languages():
            raise ValueError(f"unknown language {code!r}")
        value = float(weight) if weight.strip() else 1.0
        if not value > 0 or math.isinf(value):
            raise ValueError(f"weight of {code!r} must be a positive number")
        weights[code] = value
    if not weights:
        raise ValueError("no languages given")
    total = sum(weights.values())
    return {code: value / total for code, value in weights.items()}


@cache
def known_languages() -> frozenset[str]:
    """The languages langdetect has a profile for, in our codes."""
    outward = {name: code for code, name in PROFILE_NAME.items()}
    names = (item.name for item in resources.files("langdetect").joinpath("profiles").iterdir())
    return frozenset(outward.get(name, name) for name in names)


class WordLists:
    """Per language, -log10 of the frequency of its most frequent words (from wordfreq)."""

    def __init__(self, costs: Mapping[str, Mapping[str, float]]) -> None:
        self._costs = costs
        self.languages = frozenset(costs)

    @classmethod
    def load(cls, languages: frozenset[str], path: Path = WORDS_FILE) -> WordLists:
        costs: dict[str, dict[str, float]] = {language: {} for language in languages}
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                language, word, cost = line.rstrip("\n").split("\t")
                if language in costs:
                    costs[language][word] = float(cost)
        return cls({language: words for language, words in costs.items() if words})

    def cost(self, language: str, words: list[str]) -> float:
        """How unlikely these words are in the language (-log10 of their joint frequency).

        A language without a list (Somali) is neither helped nor hurt by its words: each costs
        what it costs in the language that knows it best, plus a small toll.
        """
        table = self._costs.get(language)
        if table is None:
            return sum(
                min(self._word_cost(code, word) for code in self._costs) + UNLISTED_TOLL
                for word in words
            )
        return sum(table.get(word, UNKNOWN_WORD_COST) for word in words)

    def _word_cost(self, language: str, word: str) -> float:
        return self._costs[language].get(word, UNKNOWN_WORD_COST)

    def known_nordic(self, word: str) -> bool:
        """Whether any Nordic list knows the word."""
        return any(word in self._costs[code] for code in NORDIC if code in self._costs)

    def known(self, language: str, words: list[str]) -> int:
        table = self._costs.get(language, {})
        return sum(word in table for word in words)


def word_ngrams(word: str, longest: int = NGRAM_LONGEST) -> set[str]:
    """The letter sequences of a word, 1 to ``longest`` letters, with a space on either side."""
    padded = f" {word} "
    return {
        padded[start : start + size]
        for size in range(1, min(longest, len(padded)) + 1)
        for start in range(len(padded) - size + 1)
    }


def text_words(text: str) -> list[str]:
    """A text's words, case-folded, without its addresses and links."""
    return WORD.findall(NOT_LANGUAGE.sub(" ", text).casefold())


def words_features(words: list[str]) -> list[str]:
    """What the sentence model reads: each word's letter sequences, and the word (``w:word``)."""
    features: list[str] = []
    for word in words:
        features.extend(word_ngrams(word))
        features.append("w:" + word)
    return features


def text_features(text: str) -> list[str]:
    """``words_features`` of a text's words."""
    return words_features(text_words(text))


class NordicNgrams:
    """Which Nordic language a word no list knows is from, by its letter sequences.

    A logistic regression over ``word_ngrams`` trained on wordfreq's Danish, Norwegian Bokmål and
    Swedish words (``build_words``): per letter sequence its weight for Norwegian and for Swedish
    against Danish, in log10 odds.
    """

    def __init__(self, index: Mapping[str, int], weights: Mapping[str, array[float]]) -> None:
        self._index = index
        self._weights = weights
        self.languages = ("da", *weights)

    @classmethod
    def load(cls, path: Path = NGRAMS_FILE) -> NordicNgrams:
        index: dict[str, int] = {}
        weights: dict[str, array[float]] = {}
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split("\t")
            # "#\tnb\tsv", then the intercepts ("#"), then one line per letter sequence.
            weights = {language: array("f") for language in header[1:]}
            for line in handle:
                ngram, *values = line.rstrip("\n").split("\t")
                index[ngram] = len(index)
                for language, value in zip(weights, values, strict=True):
                    weights[language].append(float(value))
        return cls(index, weights)

    def costs(self, word: str) -> dict[str, float]:
        """-log10 of the word's probability in each Nordic language (Danish, Bokmål, Swedish)."""
        return self.feature_costs(word_ngrams(word))

    def feature_costs(self, features: Iterable[str]) -> dict[str, float]:
        """-log10 of the probability in each Nordic language of what has these features."""
        found = [self._index["#"]]
        found.extend(self._index[g] for g in features if g in self._index)
        logits = {"da": 0.0}
        for language, weights in self._weights.items():
            logits[language] = sum(weights[i] for i in found)
        top = max(logits.values())
        total = top + math.log10(sum(10 ** (value - top) for value in logits.values()))
        return {language: total - value for language, value in logits.items()}


# How many recent texts' readings a detector keeps (see LanguageDetector.explain).
RECENT_READINGS = 256


class LanguageDetector:
    """Tells the language of a text among candidate languages; build once, use from any thread."""

    def __init__(self, priors: Mapping[str, float]) -> None:
        from langdetect.detector_factory import DetectorFactory

        self.priors = dict(priors)
        self.candidates = frozenset(priors)
        self._factory = DetectorFactory()
        self._factory.set_seed(LANGDETECT_SEED)
        # langdetect's languages: those written in a script it must tell apart by letters.
        self._latin = sorted(self.candidates - {"ar", "fa", "ur", "uk"})
        profiles = [
            resources.files("langdetect")
            .joinpath("profiles", PROFILE_NAME.get(code, code))
            .read_text(encoding="utf-8")
            for code in self._latin
        ]
        if len(profiles) >= 2:
            self._factory.load_json_profile(profiles)
        self._from_profile = {PROFILE_NAME.get(code, code): code for code in self._latin}
        self.words = WordLists.load(self.candidates)
        self.ngrams = NordicNgrams.load()
        self.sentences = NordicNgrams.load(SENTENCES_FILE)
        # A free-text answer is read twice, for the reply language and for screening: the second
        # reading comes from here. Readings are small and the texts recent, so few are kept.
        self._recent = lru_cache(maxsize=RECENT_READINGS)(self._read)

    def identify(self, text: str) -> str | None:
        """The language of the text, or None when it has fewer than two words."""
        return self.explain(text).language

    def explain(self, text: str) -> LanguageReading:
        """The language of the text with the scores behind the choice."""
        return self._recent(text)

    def _read(self, text: str) -> LanguageReading:
        words = WORD.findall(NOT_LANGUAGE.sub(" ", text).casefold())
        if len(words) < 2:
            return LanguageReading(None, (), "fewer than two words")
        if all(len(word) == 1 for word in words):
            # Letters spaced out ("l o r t") or initials: a word in disguise, not a language.
            return LanguageReading(None, (), "single letters")
        joined = " ".join(words)
        by_script = self._by_script(joined)
        if by_script is not None:
            return by_script
        if len(self._latin) == 1:
            return LanguageReading(self._latin[0], ((self._latin[0], 1.0),), "only candidate")
        if not self._latin:
            return LanguageReading(None, (), "no candidate for this script")
        # Two or three words are too few letters for langdetect: its say grows with the text.
        # (Somali has no word list, so two Somali words are not told; three may be.)
        say = (len(words) - NO_SAY_WORDS) / (FULL_SAY_WORDS - NO_SAY_WORDS)
        weight = LANGDETECT_WEIGHT * min(1.0, max(0.0, say))
        # Without a say, langdetect is not asked: it is most of the cost of a short text.
        letters = self._langdetect(joined) if weight > 0 else {}
        costs = {
            code: -math.log10(self.priors[code])
            - weight * math.log10(max(letters.get(code, 0.0), LANGDETECT_FLOOR))
            + self.words.cost(code, words)
            for code in self._latin
        }
        best = min(costs, key=costs.__getitem__)
        reason = "letters" if letters and max(letters, key=letters.__getitem__) == best else "words"
        if best in NORDIC:
            # Within the Nordic three, the words decide; langdetect's letters count a little.
            # A letter alone is an option or an initial here, not a word ("i" and "å" are words).
            nordic_words = [word for word in words if len(word) > 1 or word in ONE_LETTER_WORDS]
            unlisted = self._ngram_costs(nordic_words)
            sentence = self._sentence_costs(nordic_words)
            nordic = {
                code: -math.log10(self.priors[code])
                + NORDIC_WORDS_WEIGHT * (self.words.cost(code, nordic_words) + unlisted[code])
                + sentence[code]
                - NORDIC_LETTERS_WEIGHT * weight * math.log10(max(letters.get(code, 0.0), 0.01))
                for code in NORDIC
                if code in costs
            }
            if "da" in nordic:
                nordic["da"] += DOUBLE_DEFINITE_COST * sum(
                    noun not in DANISH_BASE_FORMS
                    for noun in DOUBLE_DEFINITE.findall(" ".join(nordic_words))
                )
            if len(nordic) > 1:
                best = min(nordic, key=nordic.__getitem__)
                reason = "nordic words"
                costs.update(nordic)
        return LanguageReading(best, _shares(costs), reason)

    def _sentence_costs(self, words: list[str]) -> dict[str, float]:
        """What the sentence model's reading of the words costs each Nordic language."""
        say = (len(words) - SENTENCE_NO_SAY_WORDS) / (
            SENTENCE_FULL_SAY_WORDS - SENTENCE_NO_SAY_WORDS
        )
        weight = SENTENCE_WEIGHT * min(1.0, max(0.0, say))
        if weight == 0:
            return dict.fromkeys(NORDIC, 0.0)
        costs = self.sentences.feature_costs(words_features(words))
        lowest = min(costs.values())
        return {code: weight * min(costs[code] - lowest, SENTENCE_CLIP) for code in NORDIC}

    def _ngram_costs(self, words: list[str]) -> dict[str, float]:
        """What the words no Nordic list knows cost each Nordic language by their letters.

        Each word's say is clipped: a name or a command looks like some language, and should not
        outweigh the words that are known.
        """
        totals = dict.fromkeys(NORDIC, 0.0)
        for word in words:
            if self.words.known_nordic(word):
                continue
            costs = self.ngrams.costs(word)
            lowest = min(costs.values())
            # A word spelt as only Norwegian spells it may say more ("oppføringer", "sammenlikn").
            clip = NGRAM_MARKED_CLIP if NORWEGIAN_SPELLING.search(word) else NGRAM_CLIP
            for code in NORDIC:
                totals[code] += NGRAM_WEIGHT * min(costs[code] - lowest, clip)
        return totals

    def _by_script(self, text: str) -> LanguageReading | None:
        letters = sum(ch.isalpha() for ch in text)
        if len(ARABIC_LETTER.findall(text)) * 2 > letters:
            if URDU_LETTERS.search(text) and "ur" in self.candidates:
                return LanguageReading("ur", (("ur", 1.0),), "arabic script: urdu letters")
            if PERSIAN_LETTERS.search(text) and "fa" in self.candidates:
                return LanguageReading("fa", (("fa", 1.0),), "arabic script: persian letters")
            language = "ar" if "ar" in self.candidates else None
            return LanguageReading(
                language, ((language, 1.0),) if language else (), "arabic script"
            )
        if len(CYRILLIC_LETTER.findall(text)) * 2 > letters:
            # Ukrainian is the one Cyrillic candidate; without its own letters it is still the
            # likeliest reader of Cyrillic text in a Danish municipality.
            language = "uk" if "uk" in self.candidates else None
            reason = "cyrillic: ukrainian letters" if UKRAINIAN_LETTERS.search(text) else "cyrillic"
            return LanguageReading(language, ((language, 1.0),) if language else (), reason)
        return None

    def _langdetect(self, text: str) -> dict[str, float]:
        """langdetect's probability for each Latin-script candidate."""
        from langdetect.lang_detect_exception import LangDetectException

        detector = self._factory.create()
        detector.set_prior_map(
            {PROFILE_NAME.get(code, code): self.priors[code] for code in self._latin}
        )
        detector.append(text)
        try:
            detector.get_probabilities()
        except LangDetectException:  # no letter langdetect knows: the words decide
            return {}
        return {
            self._from_profile[name]: probability
            for name, probability in zip(detector.langlist, detector.langprob, strict=True)
        }


def _shares(costs: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """Costs (-log10 likelihoods) as shares summing to 1, highest first."""
    lowest = min(costs.values())
    weights = {code: 10 ** (lowest - cost) for code, cost in costs.items()}
    total = sum(weights.values())
    return tuple(
        sorted(
            ((code, round(weight / total, 4)) for code, weight in weights.items()),
            key=lambda item: -item[1],
        )
    )


@cache
def _shared(priors: tuple[tuple[str, float], ...]) -> LanguageDetector:
    return LanguageDetector(dict(priors))


def language_detector(priors: Mapping[str, float] | None = None) -> LanguageDetector:
    """The detector for these priors (default: the default candidates), built once per process."""
    chosen = priors if priors is not None else parse_candidates(DEFAULT_LANGUAGE_CANDIDATES)
    return _shared(tuple(sorted(chosen.items())))


def explain(text: str, priors: Mapping[str, float] | None = None) -> LanguageReading:
    """The language of a text with the scores behind it, with the default (or given) priors."""
    return language_detector(priors).explain(text)
