"""A generated corpus of any size for the in-memory index: chunks with Zipf-distributed words,
random unit vectors, several ACLs, statuses, pages and headings, and questions over it.

Deterministic for a seed. Word frequencies follow Zipf's law (a few words in most chunks, most
words in few), so posting lists have the lengths of real text, and about one chunk in fifty
repeats an earlier chunk's text, so BM25 ties occur. Used by the equivalence test against the
scan and by bench/retrieval_scale.py.

Questions draw their words from ranks STOP_RANKS and below: in English the head of the Zipf
curve (the, of, and, to, in...) is stop words, which tokenization drops from real questions,
so a question term here is a content word (the most common ones still in ~10% of chunks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.documents.index import LIVE, STAGED

VOCABULARY = 20_000
ZIPF = 1.1
CHUNKS_PER_DOCUMENT = 100
STOP_RANKS = 50  # the most frequent words stand for stop words: never in a question
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ACLS: tuple[tuple[float, dict[str, Any]], ...] = (
    (0.70, {"users": [], "groups": [], "tenant_wide": True}),
    (0.12, {"users": [], "groups": ["sales"], "tenant_wide": False}),
    (0.10, {"users": [], "groups": ["finance"], "tenant_wide": False}),
    (0.08, {"users": ["carol"], "groups": [], "tenant_wide": False}),
)


@dataclass(frozen=True)
class Question:
    """A question's text and vector."""

    text: str
    vector: np.ndarray


def words(count: int) -> list[str]:
    """`count` pronounceable made-up words, distinct, the most frequent first."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    out, n = [], 0
    while len(out) < count:
        word, value = "", n
        while True:
            word += syllables[value % len(syllables)]
            value //= len(syllables)
            if not value:
                break
        out.append(word + "x")  # a final consonant the stemmer leaves alone
        n += 1
    return out


def _zipf_weights(size: int) -> np.ndarray:
    """Probabilities of word ranks 1..size under Zipf's law."""
    weights = 1.0 / np.arange(1, size + 1) ** ZIPF
    return weights / weights.sum()


def chunks(
    count: int,
    tenant: str = "acme",
    dimensions: int = 384,
    seed: int = 0,
    prefix: str = "c",
    as_lists: bool = True,
) -> list[dict[str, Any]]:
    """`count` chunk items (ids `{prefix}{n}`) as Cosmos holds them; embeddings as lists (as
    JSON gives them) or, with `as_lists=False`, as float32 rows (less memory for a bench)."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(words(VOCABULARY))
    probabilities = _zipf_weights(VOCABULARY)
    lengths = rng.integers(30, 160, size=count)
    drawn = rng.choice(VOCABULARY, size=int(lengths.sum()), p=probabilities)
    vectors = rng.standard_normal((count, dimensions)).astype(np.float32)
    acl_weights = np.array([weight for weight, _ in ACLS])
    items: list[dict[str, Any]] = []
    start = 0
    for n in range(count):
        document = n // CHUNKS_PER_DOCUMENT
        doc_rng = np.random.default_rng([seed, document])
        acl = ACLS[int(doc_rng.choice(len(ACLS), p=acl_weights))][1]
        text = " ".join(vocabulary[drawn[start : start + lengths[n]]])
        start += lengths[n]
        if items and rng.random() < 0.02:
            text = items[int(rng.integers(len(items)))]["text"]  # a repeated passage
        page = 1 + (n % CHUNKS_PER_DOCUMENT) // 3
        items.append(
            {
                "id": f"{prefix}{n}",
                "tenant": tenant,
                "document_id": f"{prefix}doc{document}",
                "document_name": f"{prefix}doc{document}.{'pdf' if document % 3 else 'docx'}",
                "media_type": PDF if document % 3 else DOCX,
                "acl": acl,
                "kind": "table" if rng.random() < 0.1 else "text",
                "text": text,
                "pages": [page, page + 1] if rng.random() < 0.2 else [page],
                "headings": [f"Part {document}", f"Section {page}"],
                "embedding": vectors[n].tolist() if as_lists else vectors[n],
                "status": STAGED if rng.random() < 0.02 else LIVE,
            }
        )
    return items


def questions(
    count: int, corpus: list[dict[str, Any]], seed: int = 1, dimensions: int = 384
) -> list[Question]:
    """Questions of 1-6 content words (Zipf-drawn below STOP_RANKS, some unknown), vectors
    near a chunk or random."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(words(VOCABULARY))[STOP_RANKS:]
    probabilities = _zipf_weights(VOCABULARY)[STOP_RANKS:]
    probabilities = probabilities / probabilities.sum()
    out = []
    for _ in range(count):
        drawn = rng.choice(len(vocabulary), size=rng.integers(1, 7), p=probabilities)
        terms = list(vocabulary[drawn])
        if rng.random() < 0.1:
            terms.append("unknownterm")
        if rng.random() < 0.5 and corpus:
            near = np.asarray(corpus[int(rng.integers(len(corpus)))]["embedding"], np.float32)
            vector = near + 0.5 * rng.standard_normal(dimensions).astype(np.float32)
        else:
            vector = rng.standard_normal(dimensions).astype(np.float32)
        out.append(Question(" ".join(terms), vector))
    return out


__all__ = ["Question", "chunks", "questions", "words"]
