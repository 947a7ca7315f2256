"""Rebuild ``data/words.tsv.gz`` and ``data/nordic_ngrams.tsv.gz``, the language detector's data.

Build time only: it needs the ``wordfreq`` and ``scikit-learn`` packages (the test extra), which
the running bot never imports. Run ``python -m bot.dialogue.i18n.build_words`` (a minute or two) and
commit the files it writes.

``words.tsv.gz``: each line is ``language<TAB>word<TAB>cost``: the language's most frequent words,
with cost -log10 of the word's frequency in that language (wordfreq's ``word_frequency``), rounded
to two decimals. Danish, Norwegian Bokmål and Swedish get many more words than the others: they
are the three the detector tells apart by words, where letters alone cannot; each of them lists
the words of all three lists, with its own frequency of each.

``nordic_ngrams.tsv.gz``: a logistic regression telling Danish, Norwegian Bokmål and Swedish words
apart by their letter sequences (``languages.word_ngrams``), for the words no list holds
("endringshistorikk", "opprettholdes"). It is trained on the three languages' most frequent
words, each word counted in each language by that language's share of its frequency ("ikke" is
about half Danish, half Norwegian; "ikkje" all Norwegian). The first line names the languages
weighed against Danish, the second (``#``) holds the intercepts, then each letter sequence its
weights, in log10 odds against Danish; sequences that say next to nothing are left out.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

from bot.dialogue.i18n.languages import NGRAMS_FILE, WORDS_FILE, word_ngrams

NORDIC = ("da", "nb", "sv")
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
# The letter-sequence model learns from this many of each Nordic language's words (wordfreq
# knows about 29,000 Danish words), and keeps a sequence whose weight reaches this (log10 odds).
NGRAM_TRAINING_WORDS = 29000
NGRAM_REGULARISATION = 1.0  # scikit-learn's C
NGRAM_MIN_WORDS = 3  # a sequence must occur in this many training words
NGRAM_KEEP = 0.02


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(exist_ok=True)
    # mtime=0: the same lists give the same bytes, so a rebuild without changes is no diff.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write("".join(lines).encode("utf-8"))
    print(f"{path}: {len(lines)} lines")


def build_words() -> None:
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
    _write(WORDS_FILE, lines)


def build_ngrams() -> None:
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from wordfreq import top_n_list, word_frequency

    vocabulary = sorted(
        {
            word
            for code in NORDIC
            for word in top_n_list(code, NGRAM_TRAINING_WORDS)
            if word.isalpha() and len(word) >= 2
        }
    )
    texts, labels, weights = [], [], []
    for word in vocabulary:
        frequencies = [word_frequency(word, code) for code in NORDIC]
        for label, frequency in enumerate(frequencies):
            if frequency > 0:
                texts.append(word)
                labels.append(label)
                weights.append(frequency / sum(frequencies))
    vectorizer = CountVectorizer(
        analyzer=word_ngrams, binary=True, min_df=NGRAM_MIN_WORDS, lowercase=False
    )
    matrix = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=NGRAM_REGULARISATION, max_iter=3000)
    model.fit(matrix, labels, sample_weight=np.array(weights))
    # Weights against Danish, in log10 units.
    against = (model.coef_[1:] - model.coef_[0]) / math.log(10)
    intercepts = (model.intercept_[1:] - model.intercept_[0]) / math.log(10)
    others = NORDIC[1:]
    lines = ["#\t" + "\t".join(others) + "\n"]
    lines.append("#\t" + "\t".join(f"{value:.3f}" for value in intercepts) + "\n")
    for ngram, column in sorted(vectorizer.vocabulary_.items()):
        values = against[:, column]
        if np.abs(values).max() >= NGRAM_KEEP:
            lines.append(f"{ngram}\t" + "\t".join(f"{value:.3f}" for value in values) + "\n")
    _write(NGRAMS_FILE, lines)


def main() -> None:
    build_words()
    build_ngrams()


if __name__ == "__main__":
    main()
