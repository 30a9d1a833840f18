"""BM25 keyword scoring over chunk texts: a small numpy implementation, no index server.

Tokens are lowercase runs of letters or digits ("FY2023" -> "fy2023", "4,500.00" -> "4",
"500", "00"), with English stop words dropped and a light suffix-stripping stemmer, so
"shipments" and "shipment" meet, as do "approved" and "approve", while codes and numbers stay
exact (an exact term is what keyword search adds over vectors).

Scoring is Okapi BM25 with the Lucene IDF, log(1 + (N - df + 0.5) / (df + 0.5)), always
positive:
- K1 = 1.2: how fast repeated terms saturate. At 1.2 a term's third occurrence adds little,
  so a chunk cannot win by repeating one word.
- B = 0.75: how much a long chunk is penalised for having more words. Chunks are size-capped
  by the chunker, so the usual 0.75 is kept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

K1 = 1.2
B = 0.75

_TOKEN = re.compile(r"[^\W_]+")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)
# Longest suffix first; each must leave a stem of at least three letters. Numbers and codes
# ("fy2023") are never stemmed: an exact identifier is what keyword search is for.
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("s", ""))
_SIBILANT_PLURAL = re.compile(r"(?:ss|x|z|ch|sh)es$")  # "boxes", "matches": drop "es"
_KEEP_ENDINGS = ("ss", "us", "is")  # "class", "status", "analysis" are not plurals


def stem(word: str) -> str:
    """A light English stemmer: one plural or -ed/-ing suffix, then a final "e" is dropped.

    Dropping the final "e" lets "approve", "approved" and "approving" (and "revenue",
    "revenues") meet at one stem.
    """
    if not word.isalpha() or len(word) <= 3 or word.endswith(_KEEP_ENDINGS):
        return word
    if _SIBILANT_PLURAL.search(word):
        return word[:-2]
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: len(word) - len(suffix)] + replacement
            if suffix in ("ing", "ed"):
                word = _undouble(word)
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def _undouble(word: str) -> str:
    """ "shipp" -> "ship", "stopp" -> "stop" (a consonant doubled before -ing/-ed)."""
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouslz":
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase stemmed words and numbers, stop words dropped."""
    words = _TOKEN.findall(text.lower())
    return [stem(word) for word in words if word not in STOP_WORDS]


@dataclass(frozen=True)
class TermCounts:
    """One text's term frequencies and length in tokens, computed once per chunk."""

    counts: Mapping[str, int]
    length: int

    @classmethod
    def of(cls, text: str) -> TermCounts:
        """Tokenises `text`."""
        tokens = tokenize(text)
        return cls(Counter(tokens), len(tokens))


def query_terms(query: str) -> set[str]:
    """The distinct terms of a question; scores add up over them in this set's order."""
    return set(tokenize(query))


def idf(documents: int, present: int) -> float:
    """Lucene's IDF of a term found in `present` of `documents` documents (always positive)."""
    return math.log(1.0 + (documents - present + 0.5) / (present + 0.5))


def average_length(total_tokens: float, documents: int) -> float:
    """The mean document length the length penalty compares against (at least 1 token)."""
    return max(float(total_tokens) / documents, 1.0)


def length_norms(lengths: np.ndarray, average: float, k1: float = K1, b: float = B) -> np.ndarray:
    """Each document's saturation denominator term: K1 scaled by its length against the mean."""
    return k1 * (1.0 - b + b * lengths / average)


def term_scores(
    term_idf: float, frequencies: np.ndarray, norms: np.ndarray, k1: float = K1
) -> np.ndarray:
    """One term's BM25 contribution to each document (frequencies and norms aligned)."""
    return term_idf * frequencies * (k1 + 1.0) / (frequencies + norms)


def bm25_scores(
    query: str, documents: Sequence[TermCounts], k1: float = K1, b: float = B
) -> np.ndarray:
    """BM25 score of every document for `query`; the corpus statistics are these documents.

    This is the scan form. `shared.retrieval.memory_index` computes the same numbers through
    an inverted index with these helpers, in the same term order: a formula changed here
    changes both.
    """
    scores = np.zeros(len(documents), dtype=np.float64)
    if not documents:
        return scores
    lengths = np.array([document.length for document in documents], dtype=np.float64)
    norms = length_norms(lengths, average_length(lengths.sum(), len(documents)), k1, b)
    for term in query_terms(query):
        frequencies = np.array([d.counts.get(term, 0) for d in documents], dtype=np.float64)
        present = int(np.count_nonzero(frequencies))
        if not present:
            continue
        scores += term_scores(idf(len(documents), present), frequencies, norms, k1)
    return scores


def keyword_ranking(query: str, documents: Sequence[TermCounts], limit: int) -> list[int]:
    """Indexes of the best `limit` documents with a positive score, best first."""
    scores = bm25_scores(query, documents)
    order = np.argsort(-scores, kind="stable")  # stable: ties keep corpus order
    return [int(index) for index in order[:limit] if scores[index] > 0]


__all__ = [
    "K1",
    "B",
    "TermCounts",
    "average_length",
    "bm25_scores",
    "idf",
    "keyword_ranking",
    "length_norms",
    "query_terms",
    "stem",
    "term_scores",
    "tokenize",
]
