"""One partition's cached questions in process: a float32 matrix of unit vectors plus metadata.

Rows live in a pre-allocated matrix that grows by doubling; a removal moves the last row into
the hole, so inserts and deletes are O(dimensions) and a search is one matrix-vector product
over a contiguous block (memory-bandwidth bound: bench/cache_latency.py measures how close).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.vectors import unit

_INITIAL_ROWS = 16


@dataclass(frozen=True)
class Candidate:
    """A cached question close to the asked one."""

    entry_id: str
    similarity: float  # cosine similarity in [0, 1] (vectors are unit length)
    question: str


class PartitionMatrix:
    """Unit vectors of one partition's entries with each entry's question and expiry."""

    def __init__(self, dimensions: int | None = None) -> None:
        self._dimensions = dimensions
        self._matrix = np.zeros((0, dimensions or 0), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._questions: list[str] = []
        self._expires = np.zeros(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._rows

    @property
    def ids(self) -> set[str]:
        """The ids held."""
        return set(self._rows)

    def fresh_count(self, now: float) -> int:
        """How many entries have not expired at `now`."""
        return int(np.count_nonzero(self._expires[: len(self)] > now))

    def upsert(self, entry_id: str, vector: Sequence[float], question: str, expires: float) -> None:
        """Add or replace one entry."""
        row = unit(vector)
        self._ensure_dimensions(len(row))
        index = self._rows.get(entry_id)
        if index is None:
            index = self._append_slot(entry_id, question)
        self._matrix[index] = row
        self._questions[index] = question
        self._expires[index] = expires

    def _ensure_dimensions(self, dimensions: int) -> None:
        """Fix the dimension on first insert; reject vectors of another size."""
        if self._dimensions is None:
            self._dimensions = dimensions
            self._matrix = np.zeros((0, dimensions), dtype=np.float32)
        if dimensions != self._dimensions:
            raise ValueError(f"vector is {dimensions}-d, the partition holds {self._dimensions}-d")

    def _append_slot(self, entry_id: str, question: str) -> int:
        """Reserve the next row, doubling the capacity when full."""
        index = len(self._ids)
        if index == self._matrix.shape[0]:
            capacity = max(_INITIAL_ROWS, 2 * index)
            grown = np.zeros((capacity, self._dimensions or 0), dtype=np.float32)
            grown[:index] = self._matrix[:index]
            expires = np.zeros(capacity, dtype=np.float64)
            expires[:index] = self._expires[:index]
            self._matrix, self._expires = grown, expires
        self._ids.append(entry_id)
        self._questions.append(question)
        self._rows[entry_id] = index
        return index

    def live_count(self, now: float) -> int:
        """How many entries have not expired at `now` (the mirror's count check)."""
        return self.fresh_count(now)

    def apply(self, row: Mapping[str, Any]) -> None:
        """Add or replace the entry a cache row describes."""
        self.upsert(row["id"], row["embedding"], row["question"], row["expires_at"])

    def remove(self, entry_id: str) -> bool:
        """Drop one entry (the last row fills its slot); False when absent."""
        index = self._rows.pop(entry_id, None)
        if index is None:
            return False
        last = len(self._ids) - 1
        if index != last:
            moved = self._ids[last]
            self._matrix[index] = self._matrix[last]
            self._expires[index] = self._expires[last]
            self._ids[index] = moved
            self._questions[index] = self._questions[last]
            self._rows[moved] = index
        self._ids.pop()
        self._questions.pop()
        return True

    def search(
        self, vector: Sequence[float] | np.ndarray, threshold: float, limit: int, now: float
    ) -> list[Candidate]:
        """Up to `limit` unexpired entries with similarity >= threshold, most similar first."""
        count = len(self._ids)
        if count == 0:
            return []
        query = unit(vector)
        if len(query) != self._dimensions:
            raise ValueError(f"question is {len(query)}-d, the partition {self._dimensions}-d")
        similarity = self._matrix[:count] @ query
        rows = np.flatnonzero((similarity >= threshold) & (self._expires[:count] > now))
        if len(rows) > limit:
            rows = rows[np.argpartition(-similarity[rows], limit - 1)[:limit]]
        rows = rows[np.argsort(-similarity[rows], kind="stable")]
        return [
            Candidate(self._ids[row], min(1.0, float(similarity[row])), self._questions[row])
            for row in rows
        ]


__all__ = ["Candidate", "PartitionMatrix", "unit"]
