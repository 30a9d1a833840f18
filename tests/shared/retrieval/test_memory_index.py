"""The in-memory index's own mechanics: top-k selection, matrix growth, tombstones,
compaction and posting pruning. (That it answers like the scan is test_index_equivalence.)"""

from __future__ import annotations

import itertools

import numpy as np

from shared.retrieval.filters import MATCH_ALL, matches, parse_filter
from shared.retrieval.memory_index import COMPACT_MIN_DEAD, GROWTH, MIN_CAPACITY, best
from shared.retrieval.search import SearchRequest, TenantIndex
from shared.security.principal import Principal
from tests.shared.retrieval import synthetic

READER = Principal(user_id="alice", tenant="acme", groups=("sales", "finance"))


def test_best_is_a_stable_descending_sort_cut_at_the_limit() -> None:
    rng = np.random.default_rng(0)
    for size, limit in ((10, 50), (500, 50), (500, 1), (2_000, 50)):
        scores = rng.integers(0, 20, size).astype(np.float64)  # many ties, across the cut too
        ties = rng.permutation(size)
        in_tie_order = np.argsort(ties)
        expected = in_tie_order[np.argsort(-scores[in_tie_order], kind="stable")][:limit]
        assert best(scores, ties, limit).tolist() == expected.tolist()


def test_the_matrix_grows_geometrically_and_compacts_when_dead_rows_outnumber_live() -> None:
    items = synthetic.chunks(3 * COMPACT_MIN_DEAD, dimensions=8, seed=2)
    index = TenantIndex()
    capacities = set()
    for item in items:
        index.upsert(item)
        capacities.add(index.matrix_bytes // (8 * 4))
    assert min(capacities) == MIN_CAPACITY
    steps = sorted(capacities)
    assert all(b >= int(a * GROWTH) for a, b in itertools.pairwise(steps))
    assert len(capacities) < 12  # a few copies, not one per chunk

    for item in items[: COMPACT_MIN_DEAD - 1]:
        index.remove(item["id"])
    assert index.dead_rows == COMPACT_MIN_DEAD - 1  # tombstones, not yet worth a copy
    for item in items[COMPACT_MIN_DEAD - 1 : 2 * COMPACT_MIN_DEAD]:
        index.remove(item["id"])
    assert index.dead_rows < COMPACT_MIN_DEAD  # dead outnumbered live: compacted
    assert len(index) == COMPACT_MIN_DEAD


def test_removed_chunks_never_surface_and_mostly_dead_postings_are_pruned() -> None:
    items = synthetic.chunks(400, dimensions=8, seed=3)
    index = TenantIndex()
    for item in items:
        index.upsert({**item, "status": "live"})
    common = items[0]["text"].split()[0]
    request = SearchRequest(common, np.ones(8), READER, MATCH_ALL, 50, "keyword")
    before = {r.id for r in index.search(request)}
    for item in items[:300]:
        index.remove(item["id"])
    after = {r.id for r in index.search(request)}
    assert after and after <= {item["id"] for item in items[300:]}
    assert before - after  # some results were removed ones
    postings = index._postings[common]  # internal: the pruning itself
    assert len(postings.slots) <= 100


def test_page_bounds_agree_with_the_filter_semantics_on_odd_pages() -> None:
    odd_pages: list[object] = [[True], ["3"], [], None, [2.5, 7], [float("nan"), 4], [1, 9]]
    index = TenantIndex()
    items = []
    for n, pages in enumerate(odd_pages):
        item = {**synthetic.chunks(1, dimensions=4, seed=n)[0], "id": f"p{n}", "pages": pages}
        item.update(status="live", acl={"users": [], "groups": [], "tenant_wide": True})
        items.append(item)
        index.upsert(item)
    for operator in ("$gt", "$gte", "$lt", "$lte"):
        for value in (0, 1, 3, 4, 7, 9):
            node = parse_filter({"pages": {operator: value}})
            allowed = index.readable(READER, node)
            expected = [matches(node, item) for item in items]
            assert allowed[: len(items)].tolist() == expected, (operator, value)


async def test_reserve_grows_the_matrix_ahead_and_keeps_every_row() -> None:
    items = synthetic.chunks(MIN_CAPACITY, dimensions=8, seed=4)
    index = TenantIndex()
    for item in items:
        index.upsert(item)
    before = index.matrix.copy()
    await index.reserve(5_000)
    assert index.matrix_bytes >= (MIN_CAPACITY + 5_000) * 8 * 4
    assert np.array_equal(index.matrix, before)
    grown = index.matrix_bytes
    for item in synthetic.chunks(5_000, dimensions=8, seed=5, prefix="more"):
        index.upsert(item)
    assert index.matrix_bytes == grown  # no copy while the reserved rows arrived
    assert len(index) == MIN_CAPACITY + 5_000
