"""The incremental in-memory index returns what the scan it replaced returned.

Both indexes take the same generated corpus and the same changes (inserts, replacements,
removals, re-inserts, compaction); after each phase every question is asked of both, by
several principals, with and without filters (document-level ones and per-chunk ones), in
every mode and at two depths. Ids, order, both ranks and scores must agree: BM25 and RRF
scores exactly, cosine similarity to float32 rounding (the scan multiplies a stacked copy of
the readable rows, the index the whole matrix; the sums may round differently in the last
bit).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from shared.retrieval.filters import MATCH_ALL, parse_filter
from shared.retrieval.memory_index import COMPACT_MIN_DEAD
from shared.retrieval.search import MODES, RetrievedChunk, SearchRequest, TenantIndex
from shared.security.principal import Principal
from tests.shared.retrieval import synthetic
from tests.shared.retrieval.scan_reference import ScanIndex

DIMENSIONS = 32
CORPUS = 3_000
PRINCIPALS = (
    Principal(user_id="alice", tenant="acme", groups=("sales",)),
    Principal(user_id="bob", tenant="acme", groups=("finance", "sales")),
    Principal(user_id="carol", tenant="acme"),  # a few chunks by user: the gather path
    Principal(user_id="gina", tenant="globex"),  # another tenant: nothing
)
FILTERS = (
    MATCH_ALL,
    parse_filter({"media_type": synthetic.PDF}),
    parse_filter({"document_id": {"$in": ["cdoc1", "cdoc4", "cdoc7", "cdoc20"]}}),
    parse_filter({"kind": {"$ne": "table"}, "document_name": {"$gte": "cdoc2"}}),
    parse_filter({"pages": {"$gte": 20}}),  # per chunk
    parse_filter({"$or": [{"headings": "Section 3"}, {"document_id": "cdoc9"}]}),
    parse_filter({"pages": {"$gt": 4, "$lte": 9}, "kind": "text"}),  # page bounds
    parse_filter({"$or": [{"pages": {"$ne": 3}}, {"pages": {"$lt": 2}}]}),
    parse_filter({"$and": [{"headings": {"$in": ["Part 3", "Part 9"]}}, {"pages": 2}]}),
)


def both(items: list[dict[str, Any]]) -> tuple[TenantIndex, ScanIndex]:
    """The incremental index and the scan, loaded with the same items in the same order."""
    index, scan = TenantIndex(), ScanIndex()
    for item in items:
        index.upsert(item)
        scan.upsert(item)
    return index, scan


def assert_same(got: list[RetrievedChunk], expected: list[RetrievedChunk], mode: str) -> None:
    """Same chunks, order, ranks and scores (cosine to float32 rounding)."""
    assert [(r.id, r.vector_rank, r.keyword_rank) for r in got] == [
        (r.id, r.vector_rank, r.keyword_rank) for r in expected
    ]
    assert [r.text for r in got] == [r.text for r in expected]
    got_scores = np.array([r.score for r in got])
    expected_scores = np.array([r.score for r in expected])
    if mode == "vector":
        np.testing.assert_allclose(got_scores, expected_scores, rtol=0, atol=1e-6)
    else:
        assert np.array_equal(got_scores, expected_scores)


def assert_equivalent(index: TenantIndex, scan: ScanIndex, questions: list[Any]) -> int:
    """Every question, principal, filter, mode and depth: same results. Returns the count."""
    assert index.ids == scan.ids and len(index) == len(scan)
    compared = 0
    for number, question in enumerate(questions):
        principal = PRINCIPALS[number % len(PRINCIPALS)]
        filters = FILTERS[number % len(FILTERS)] if number % 2 else MATCH_ALL
        for mode in MODES:
            deep = SearchRequest(question.text, question.vector, principal, filters, 50, mode)
            expected = scan.search(deep)  # the first 5 of 50 are the top 5: scanned once
            assert_same(index.search(deep), expected, mode)
            assert_same(index.search(replace(deep, top_k=5)), expected[:5], mode)
            compared += 2
    return compared


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    """The generated chunks."""
    return synthetic.chunks(CORPUS, dimensions=DIMENSIONS, seed=7)


def test_same_results_after_loading(corpus: list[dict[str, Any]]) -> None:
    index, scan = both(corpus)
    questions = synthetic.questions(40, corpus, seed=11, dimensions=DIMENSIONS)
    assert assert_equivalent(index, scan, questions) == 40 * len(MODES) * 2
    # the questions were not vacuous: most found something in each mode
    request = SearchRequest(questions[0].text, questions[0].vector, PRINCIPALS[0], MATCH_ALL, 5)
    assert len(index.search(request)) == 5


def test_same_results_through_replacements_removals_and_compaction(
    corpus: list[dict[str, Any]],
) -> None:
    index, scan = both(corpus)
    rng = np.random.default_rng(3)
    questions = synthetic.questions(18, corpus, seed=5, dimensions=DIMENSIONS)
    replacements = synthetic.chunks(300, dimensions=DIMENSIONS, seed=8)
    for n, replacement in enumerate(replacements):  # same ids, new text and vectors
        changed = {**replacement, "id": corpus[n * 7]["id"]}
        index.upsert(changed)
        scan.upsert(changed)
    assert_equivalent(index, scan, questions)

    removed = [corpus[int(n)]["id"] for n in rng.choice(CORPUS, size=1_900, replace=False)]
    for chunk_id in removed:
        assert index.remove(chunk_id) == scan.remove(chunk_id)
    assert index.dead_rows < COMPACT_MIN_DEAD + len(index)  # compaction ran on the way
    assert_equivalent(index, scan, questions)

    returning = {chunk_id for chunk_id in removed[:400]}
    for item in corpus:  # removed chunks come back: at the end of the tie order
        if item["id"] in returning:
            index.upsert(item)
            scan.upsert(item)
    index.compact()
    assert index.dead_rows == 0
    assert_equivalent(index, scan, questions)


def test_an_unchanged_reapply_changes_nothing(corpus: list[dict[str, Any]]) -> None:
    index, _ = both(corpus[:500])
    rows_before = index.dead_rows
    for item in corpus[:500]:  # what the mirror's same-second re-read does
        index.apply(item)
    assert index.dead_rows == rows_before == 0


def test_a_question_of_another_dimension_is_refused(corpus: list[dict[str, Any]]) -> None:
    index, scan = both(corpus[:50])
    request = SearchRequest("x", [1.0, 0.0], PRINCIPALS[0], MATCH_ALL, 5)
    for searched in (index, scan):
        with pytest.raises(ValueError, match="question vector is 2-d"):
            searched.search(request)
