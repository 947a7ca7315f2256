"""Rebuild ``data/words.tsv.gz``, the word lists the language detector ships with.

Build time only: it needs the ``wordfreq`` package (the test extra), which the running bot never
imports. Run ``python -m bot.i18n.build_words`` and commit the file it writes.

Each line is ``language<TAB>word<TAB>cost``: the language's most frequent words, with cost
-log10 of the word's frequency in that language (wordfreq's ``word_frequency``), rounded to
two decimals. Danish, Norwegian Bokmål and Swedish get many more words than the others: they are
the three the detector tells apart by words, where letters alone cannot; each of them lists
the words of all three lists, with its own frequency of each.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

NORDIC = ("da", "nb", "sv")
OUT = Path(__file__).parent / "data" / "words.tsv.gz"
# How many of each language's most frequent words are kept.
WORDS_PER_LANGUAGE = {
    "da": 12000,
    "nb": 12000,
    "sv": 12000,
    "en": 3000,
    "de": 3000,
    "pl": 3000,
    "ro": 3000,
    "tr": 3000,
}


def main() -> None:
    from wordfreq import top_n_list, word_frequency

    lines = []
    nordic_words = sorted(
        {word for code in NORDIC for word in top_n_list(code, WORDS_PER_LANGUAGE[code])}
    )
    for language, count in WORDS_PER_LANGUAGE.items():
        # A Nordic language gets every Nordic list's words with its own frequency of each (where
        # it has one): "dokumentasjonen" is rare in Danish, not unknown, and that is the signal.
        words = nordic_words if language in NORDIC else top_n_list(language, count)
        for word in words:
            frequency = word_frequency(word, language)
            if frequency <= 0 or not any(ch.isalpha() for ch in word):
                continue
            lines.append(f"{language}\t{word}\t{-math.log10(frequency):.2f}\n")
    OUT.parent.mkdir(exist_ok=True)
    # mtime=0: the same lists give the same bytes, so a rebuild without changes is no diff.
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write("".join(lines).encode("utf-8"))
    print(f"{OUT}: {len(lines)} words")


if __name__ == "__main__":
    main()
