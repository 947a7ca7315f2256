"""Rebuild ``data/nordic_sentences.tsv.gz``: Danish, Norwegian Bokmål or Swedish, by whole text.

Build time only (scikit-learn and Babel, the test extra). The sources are Debian packages and
Django's catalogs, downloaded by hand and not kept in the repository::

    apt-get download manpages-da manpages-nb manpages-sv \
        libreoffice-l10n-da libreoffice-l10n-nb libreoffice-l10n-sv \
        firefox-esr-l10n-da firefox-esr-l10n-nb-no firefox-esr-l10n-sv-se \
        thunderbird-l10n-da thunderbird-l10n-nb-no thunderbird-l10n-sv-se
    # dpkg-deb -x each into SRC/<package>
    pip download --no-deps Django==5.1.4  # unzip into SRC/django
    apt-get download vlc-l10n gnucash-common evolution-common nautilus-data \
        gnome-control-center-data libgtk-3-common libglib2.0-data gimp-data
    # dpkg-deb -x each into SRC/mo/<package>; copy /usr/share/locale/{da,nb,nb_NO,sv} of a
    # Debian 12 system (the catalogs of its installed packages) into SRC/mo/system/usr/share/locale
    python -m bot.dialogue.i18n.build_nordic SRC

Danish also learns from DKHate's comments (/work/shared/data/dkhate-train), less those in
tests/data/languages/not_danish.txt and those with ä or ö. Every text of the language evaluation
(tests/data/languages/sentences.tsv, both parts, and danish_phrases.txt) is left out of the
training, and so is any text nearly the same as one of them.

The model is a logistic regression over a text's letter sequences (``languages.word_ngrams`` of
each word) and its words (``w:`` before the word), counted, the three languages weighed equally
(the detector adds its own priors). The file's first line names the languages weighed against
Danish, the second (``#``) the intercepts, then each feature its weights in log10 odds against
Danish, like ``nordic_ngrams.tsv.gz``; features that say next to nothing are left out.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from bot.dialogue.i18n.languages import SENTENCES_FILE, text_features

NORDIC = ("da", "nb", "sv")
REPO = Path(__file__).resolve().parents[3]  # bot/dialogue/i18n/ -> the project
EVAL = REPO / "tests" / "data" / "languages"
DKHATE = Path("/work/shared/data/dkhate-train/offenseval-da-training-v1.tsv")
PACKAGES = {
    "da": ("da", "da", "da"),
    "nb": ("nb", "nb", "nb-no"),
    "sv": ("sv", "sv", "sv-se"),
}
# Where the catalogs of other packages keep each language's messages.
LOCALE_FOLDERS = {"da": ("da",), "nb": ("nb", "nb_NO"), "sv": ("sv",)}
REGULARISATION = 1.0  # scikit-learn's C
MIN_TEXTS = 3  # a feature must occur in this many training texts
KEEP = 0.03  # and reach this weight (log10 odds) for some language
PER_LANGUAGE = 60000  # at most this many training texts per language

GROFF_ESCAPE = re.compile(
    r"\\(?:f(?:\[[^]]*\]|\(..|.)|\(..|\[[^]]*\]|\*(?:\(..|\[[^]]*\]|.)|[-&e|^ ~0c])"
)
SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+")
MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}|%\(?\w*\)?[sd]|%\d?\$?[sd]|\$\w+|&\w+;|[~_&]")
LETTERS = re.compile(r"[^\W\d_]+")


def segments(text: str) -> Iterator[str]:
    """Sentences of three words or more that are mostly letters."""
    for sentence in SENTENCE_END.split(" ".join(MARKUP.sub(" ", text).split())):
        words = LETTERS.findall(sentence)
        letters = sum(len(word) for word in words)
        if len(words) >= 3 and letters > 0.7 * len(sentence.replace(" ", "")):
            yield sentence


def man_texts(root: Path, language: str) -> Iterator[str]:
    folder = root / f"manpages-{language}" / "usr/share/man" / language
    for page in sorted(folder.glob("man*/*.gz")):
        paragraph: list[str] = []
        with gzip.open(page, "rt", errors="replace") as handle:
            for line in handle:
                if line.startswith((".", "'")):
                    yield GROFF_ESCAPE.sub("", " ".join(paragraph))
                    paragraph = []
                else:
                    paragraph.append(line.strip())
        yield GROFF_ESCAPE.sub("", " ".join(paragraph))


def catalog_texts(root: Path, language: str) -> Iterator[str]:
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    office = root / f"libreoffice-l10n-{language}" / "usr/lib/libreoffice/program/resource"
    catalogs = sorted(office.glob("*/LC_MESSAGES/*.mo"))
    for folder in LOCALE_FOLDERS[language]:
        catalogs += sorted((root / "mo").glob(f"*/**/locale/{folder}/LC_MESSAGES/*.mo"))
    catalogs += sorted((root / "django").glob(f"django/**/locale/{language}/LC_MESSAGES/*.po"))
    for path in catalogs:
        with path.open("rb") as handle:
            try:
                messages = list(read_po(handle) if path.suffix == ".po" else read_mo(handle))
            except UnicodeDecodeError:  # a catalog not in the charset it names: left out
                print(f"{path}: not read")
                continue
        for message in messages:
            string = message.string or ()
            strings = [string] if isinstance(string, str) else string
            yield from (string for string in strings if string)


def mozilla_texts(root: Path, language: str) -> Iterator[str]:
    suffix = PACKAGES[language][2]
    for product in ("firefox-esr", "thunderbird"):
        for xpi in sorted((root / f"{product}-l10n-{suffix}").rglob("*.xpi")):
            with zipfile.ZipFile(xpi) as archive:
                for name in sorted(archive.namelist()):
                    if name.endswith((".ftl", ".properties", ".dtd")):
                        text = archive.read(name).decode("utf-8", errors="replace")
                        yield from _mozilla_values(text, dtd=name.endswith(".dtd"))


def _mozilla_values(text: str, dtd: bool) -> Iterator[str]:
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if dtd:
            found = re.search(r'"([^"]*)"', line)
            yield found.group(1) if found else ""
        else:
            yield re.split(r"\s*[=:]\s*", line, maxsplit=1)[-1]


def dkhate_texts() -> Iterator[str]:
    not_danish = set((EVAL / "not_danish.txt").read_text(encoding="utf-8").splitlines())
    with DKHATE.open(encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        for row in rows:
            if len(row) < 2:
                continue
            text = " ".join(row[1].replace("@USER", " ").replace("URL", " ").split())
            if text not in not_danish and not re.search("[äöÄÖ]", text):
                yield text


def _key(text: str) -> str:
    return " ".join(LETTERS.findall(text.casefold()))


class Evaluation:
    """The evaluation texts, to leave out of the training with anything nearly the same."""

    def __init__(self) -> None:
        with (EVAL / "sentences.tsv").open(encoding="utf-8", newline="") as handle:
            rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            texts = [row["text"] for row in rows]
        texts += (EVAL / "danish_phrases.txt").read_text(encoding="utf-8").splitlines()
        self.keys = {_key(text) for text in texts if _key(text)}
        # Each evaluation text by its word triples, to find the training texts near it.
        self.by_triple: dict[tuple[str, ...], set[str]] = {}
        for key in self.keys:
            for triple in _triples(key):
                self.by_triple.setdefault(triple, set()).add(key)

    def near(self, text: str) -> bool:
        key = _key(text)
        if key in self.keys:
            return True
        candidates = set().union(*(self.by_triple.get(t, set()) for t in _triples(key)))
        for other in candidates:
            if other in key or key in other:
                return True
            if difflib.SequenceMatcher(None, key, other, autojunk=False).ratio() >= 0.7:
                return True
        return False


def _triples(key: str) -> set[tuple[str, ...]]:
    words = key.split()
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)} or {tuple(words)}


def corpus(root: Path) -> dict[str, list[str]]:
    """Per language its training texts: distinct, none near an evaluation text."""
    evaluation = Evaluation()
    found: dict[str, list[str]] = {}
    for language in NORDIC:
        sources = [man_texts(root, language), catalog_texts(root, language)]
        sources.append(mozilla_texts(root, language))
        if language == "da":
            sources.append(dkhate_texts())
        seen: set[str] = set()
        texts = []
        left_out = 0
        for source in sources:
            for text in source:
                for sentence in segments(text):
                    key = _key(sentence)
                    if key in seen:
                        continue
                    seen.add(key)
                    if evaluation.near(sentence):
                        left_out += 1
                    else:
                        texts.append(sentence)
        found[language] = texts
        print(f"{language}: {len(texts)} texts, {left_out} left out as near evaluation texts")
    return found


def build(root: Path) -> None:
    import math
    import random

    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    texts_by_language = corpus(root)
    texts, labels, weights = [], [], []
    for label, language in enumerate(NORDIC):
        chosen = texts_by_language[language]
        random.Random(language).shuffle(chosen)
        chosen = chosen[:PER_LANGUAGE]
        texts += chosen
        labels += [label] * len(chosen)
        weights += [1.0 / len(chosen)] * len(chosen)
    vectorizer = CountVectorizer(analyzer=text_features, min_df=MIN_TEXTS, lowercase=False)
    matrix = vectorizer.fit_transform(texts)
    print(f"{matrix.shape[0]} texts, {matrix.shape[1]} features")
    scale = len(texts) / len(NORDIC)
    model = LogisticRegression(C=REGULARISATION, max_iter=2000)
    model.fit(matrix, labels, sample_weight=np.array(weights) * scale)
    against = (model.coef_[1:] - model.coef_[0]) / math.log(10)
    intercepts = (model.intercept_[1:] - model.intercept_[0]) / math.log(10)
    lines = ["#\t" + "\t".join(NORDIC[1:]) + "\n"]
    lines.append("#\t" + "\t".join(f"{value:.3f}" for value in intercepts) + "\n")
    for feature, column in sorted(vectorizer.vocabulary_.items()):
        values = against[:, column]
        if np.abs(values).max() >= KEEP:
            lines.append(f"{feature}\t" + "\t".join(f"{value:.3f}" for value in values) + "\n")
    with SENTENCES_FILE.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        out.write("".join(lines).encode("utf-8"))
    print(f"{SENTENCES_FILE}: {len(lines)} lines")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
