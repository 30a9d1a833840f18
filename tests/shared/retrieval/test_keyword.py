"""BM25: tokenisation, stemming and the scoring properties the ranking relies on."""

from __future__ import annotations

import numpy as np
import pytest

from shared.retrieval.keyword import K1, TermCounts, bm25_scores, keyword_ranking, stem, tokenize


def corpus(*texts: str) -> list[TermCounts]:
    """Term counts of each text."""
    return [TermCounts.of(text) for text in texts]


def test_tokens_are_lowercase_words_and_numbers_without_stop_words() -> None:
    tokens = tokenize("What was the Revenue in FY2023? 4,500.00 (E-47)")
    assert tokens == ["revenu", "fy2023", "4", "500", "00", "e", "47"]


@pytest.mark.parametrize(
    ("words", "stem_"),
    [
        (("shipment", "shipments"), "shipment"),
        (("approve", "approved", "approving"), "approv"),
        (("policy", "policies"), "policy"),
        (("box", "boxes"), "box"),
        (("run", "running"), "run"),
        (("class",), "class"),
        (("status",), "status"),
        (("xr2210",), "xr2210"),
    ],
)
def test_stemming_joins_inflections(words: tuple[str, ...], stem_: str) -> None:
    assert {stem(word) for word in words} == {stem_}


def test_a_document_without_query_terms_scores_zero() -> None:
    scores = bm25_scores("forklift", corpus("forklift drivers", "hotel rooms"))
    assert scores[0] > 0 and scores[1] == 0


def test_rare_terms_weigh_more_than_common_ones() -> None:
    documents = corpus("policy travel", "policy hotel", "policy meals", "policy E-47 travel")
    common, rare = bm25_scores("policy", documents), bm25_scores("E-47", documents)
    assert rare[3] > common[3]


def test_repeating_a_term_saturates() -> None:
    documents = corpus("crane", "crane crane", "crane " * 20, "other words here")
    scores = bm25_scores("crane", documents, b=0.0)  # no length penalty: saturation alone
    assert scores[0] < scores[1] < scores[2]
    assert scores[2] < 2 * scores[1]  # ten times the occurrences, not twice the score
    idf = np.log(1 + (4 - 3 + 0.5) / (3 + 0.5))
    assert scores[2] < idf * (K1 + 1)  # the ceiling of one term's contribution


def test_longer_documents_are_penalised() -> None:
    short, long_ = bm25_scores("crane", corpus("crane upgrade", "crane " + "filler " * 30))
    assert short > long_


def test_empty_inputs() -> None:
    assert bm25_scores("anything", []).shape == (0,)
    assert np.all(bm25_scores("", corpus("some text")) == 0)


def test_keyword_ranking_keeps_positive_scores_best_first() -> None:
    documents = corpus("hotel", "hotel hotel rates", "nothing")
    assert keyword_ranking("hotel rates", documents, 5) == [1, 0]
    assert keyword_ranking("hotel rates", documents, 1) == [1]
