"""The in-memory search as it was before the incremental index: a scan of every chunk.

Kept as the reference the incremental index (`shared.retrieval.memory_index`) must agree with:
per question it re-checks every chunk's ACL and filter in Python, stacks the readable vectors
and scores BM25 over the readable chunks' term counts. The scoring functions are the shared
ones (`bm25_scores`, `fuse`), so a change of formula applies to both and the equivalence test
keeps checking only the data structure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.retrieval.access import is_searchable
from shared.retrieval.filters import matches
from shared.retrieval.keyword import TermCounts, bm25_scores
from shared.retrieval.memory_index import FIELDS
from shared.retrieval.search import CANDIDATES, RetrievedChunk, SearchRequest, fuse, to_result
from shared.vectors import unit

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    """One indexed chunk: its metadata (without the vector) and its term counts."""

    item: dict[str, Any]
    terms: TermCounts


class ScanIndex:
    """One tenant's live chunks: unit vectors in a dict, stacked per question; term counts."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._dimensions: int | None = None
        self._matrix: np.ndarray | None = None  # rebuilt lazily after changes
        self._order: list[str] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ids(self) -> set[str]:
        """The ids of the indexed chunks."""
        return set(self._entries)

    def upsert(self, item: Mapping[str, Any]) -> None:
        """Adds or replaces a chunk item (with its `embedding`)."""
        vector = unit(item["embedding"])
        if self._dimensions is None:
            self._dimensions = len(vector)
        if len(vector) != self._dimensions:
            log.warning("chunk %s: %d-d vector skipped", item["id"], len(vector))
            return
        metadata = {key: item.get(key) for key in FIELDS}
        self._entries[item["id"]] = _Entry(metadata, TermCounts.of(item["text"]))
        self._vectors[item["id"]] = vector
        self._matrix = None

    def remove(self, chunk_id: str) -> bool:
        """Drops a chunk; False when it was not indexed."""
        if self._entries.pop(chunk_id, None) is None:
            return False
        del self._vectors[chunk_id]
        self._matrix = None
        return True

    def _rows(self) -> tuple[list[str], np.ndarray]:
        """Ids in matrix order and the matrix of unit vectors."""
        if self._matrix is None:
            self._order = list(self._entries)
            dimensions = self._dimensions or 0
            self._matrix = (
                np.stack([self._vectors[key] for key in self._order])
                if self._order
                else np.zeros((0, dimensions), dtype=np.float32)
            )
        return self._order, self._matrix

    def search(self, request: SearchRequest) -> list[RetrievedChunk]:
        """Exact hybrid search over what `request.principal` may read and the filter passes."""
        order, matrix = self._rows()
        allowed = [row for row, key in enumerate(order) if self._admits(request, key)]
        if not allowed:
            return []
        keys = [order[row] for row in allowed]
        similarity = self._similarities(matrix[allowed], request.vector)
        keyword = bm25_scores(request.text, [self._entries[key].terms for key in keys])
        scores = {key: (float(similarity[i]), float(keyword[i])) for i, key in enumerate(keys)}
        results = fuse(
            _ranking(keys, similarity, positive=False),
            _ranking(keys, keyword, positive=True),
            scores,
            request.mode,
            request.top_k,
        )
        return [
            to_result(self._entries[key].item, score, (vector_rank, keyword_rank))
            for key, score, vector_rank, keyword_rank in results
        ]

    def _admits(self, request: SearchRequest, key: str) -> bool:
        """ACL, tenant, live status and the metadata filter."""
        item = self._entries[key].item
        return is_searchable(request.principal, item) and matches(request.filters, item)

    def _similarities(self, rows: np.ndarray, vector: Sequence[float]) -> np.ndarray:
        """Cosine similarity of each row with the question vector."""
        query = unit(vector)
        if rows.shape[1] != len(query):
            raise ValueError(f"question vector is {len(query)}-d, the index {rows.shape[1]}-d")
        return rows @ query


def _ranking(keys: list[str], scores: np.ndarray, positive: bool) -> list[str]:
    """The best CANDIDATES keys by score (BM25 keeps only scores above zero)."""
    order = np.argsort(-scores, kind="stable")[:CANDIDATES]
    return [keys[index] for index in order if not positive or scores[index] > 0]
