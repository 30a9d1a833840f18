"""One tenant's chunks in process, updated in place: the index of RETRIEVAL_MODE=memory.

A question costs one matrix-vector product plus work in proportion to its terms' postings,
whatever the tenant's size, and a change costs work in proportion to the chunks it touches
(nothing is rebuilt):

- **Slots.** Every chunk version applied gets a slot. Per-slot numpy arrays hold whether it is
  alive, its length in tokens, its place in the tie order, its ACL class and document class.
- **Vectors.** One contiguous float32 matrix of unit vectors; rows are appended and its
  capacity grows by GROWTH. A removed or replaced chunk leaves a dead row (a tombstone) until
  dead rows outnumber live ones, when the live rows are copied together (compaction), so the
  scan never reads more than twice the live rows.
- **Keywords.** An inverted index, term -> (slots, term frequencies), appended per chunk.
  Postings of dead slots are dropped lazily, when a question reads a term whose list is mostly
  dead.
- **Admission.** Chunks sharing (tenant, status, ACL) form an ACL class, and chunks sharing
  the document fields a filter can name form a document class. A question runs the ACL rule
  once per ACL class and each filter condition on a document field once per document class;
  page ranges compare per-slot lowest/highest pages; only other page or heading conditions
  look at chunks one by one. Then the arrays are masked.

The results are the scan's: BM25 statistics over the readable chunks only (the helpers of
`shared.retrieval.keyword`, same term order and float operations), exact cosine similarity,
and ties broken in the order chunks were first added (a replaced chunk keeps its place).
tests/shared/retrieval/test_index_equivalence.py checks that against a scan on a generated
corpus.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.retrieval.access import is_searchable
from shared.retrieval.filters import MATCH_ALL, Group, Node, matches
from shared.retrieval.keyword import (
    TermCounts,
    average_length,
    idf,
    length_norms,
    query_terms,
    term_scores,
)
from shared.security.principal import Principal
from shared.vectors import unit

log = logging.getLogger(__name__)

GROWTH = 1.5  # capacity factor of the matrix and the slot arrays
MIN_CAPACITY = 256
COMPACT_MIN_DEAD = 1024  # below this many dead rows, compaction is not worth a copy
PRUNE_MIN_POSTINGS = 64  # shorter posting lists are never pruned
GATHER_FRACTION = 0.125  # below this share of readable rows, score only those rows
COPY_SLICE = 4_096  # rows copied at a time when the matrix grows ahead (6 MB at 384-d)
COPY_PAUSE = 0.002  # seconds between slices
MAX_VERDICTS = 256  # principals and filters whose verdicts per class are kept
ACL_FIELDS = ("tenant", "status", "acl")
# A page condition holds when ANY page satisfies it (filters.py): for an order comparison that
# is a comparison of the highest page (> and >=) or of the lowest (< and <=).
PAGE_BOUNDS: dict[str, tuple[str, Callable[[np.ndarray, Any], np.ndarray]]] = {
    "$gt": ("max", np.greater),
    "$gte": ("max", np.greater_equal),
    "$lt": ("min", np.less),
    "$lte": ("min", np.less_equal),
}
DOCUMENT_FIELDS = ("document_id", "document_name", "media_type", "kind")
# What the index keeps of a chunk (everything retrieval returns or filters on), as the scan did.
FIELDS = (
    "id",
    "tenant",
    "document_id",
    "document_name",
    "media_type",
    "acl",
    "kind",
    "text",
    "pages",
    "page_spans",
    "headings",
    "status",
    "injection",
)


@dataclass(frozen=True)
class Ranked:
    """A ranking over the readable chunks: slots best first and each one's score."""

    slots: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Scored:
    """What a question found: both rankings, and both scores of every slot (dense arrays)."""

    vector: Ranked
    keyword: Ranked
    similarity: np.ndarray  # per slot; 0 where not allowed
    bm25: np.ndarray  # per slot; 0 where no question term or not allowed


@dataclass
class _Postings:
    """One term's posting list: slots and the term's count in each."""

    slots: array = field(default_factory=lambda: array("i"))
    frequencies: array = field(default_factory=lambda: array("i"))


class _Classes:
    """Interned groups of chunks that agree on some fields: one id and one sample per group.

    A class's sample never changes, so a test's verdicts per class are kept (by a key naming
    the test) and only classes added since are tested again.
    """

    def __init__(self, fields: Sequence[str]) -> None:
        self._fields = fields
        self._ids: dict[str, int] = {}
        self.samples: list[dict[str, Any]] = []
        self._verdicts: dict[str, np.ndarray] = {}

    def of(self, item: Mapping[str, Any]) -> int:
        """The class id of `item` (a new class for values not seen before)."""
        values = [item.get(name) for name in self._fields]
        key = json.dumps(values, sort_keys=True, default=repr)
        class_id = self._ids.get(key)
        if class_id is None:
            class_id = self._ids[key] = len(self.samples)
            self.samples.append({name: item.get(name) for name in self._fields})
        return class_id

    def admitted(self, key: str, test: Callable[[Mapping[str, Any]], bool]) -> np.ndarray:
        """A boolean per class: whether its sample passes `test` (named by `key`)."""
        known = self._verdicts.get(key, np.zeros(0, dtype=bool))
        if len(known) < len(self.samples):
            fresh = (test(sample) for sample in self.samples[len(known) :])
            added = np.fromiter(fresh, bool, len(self.samples) - len(known))
            known = np.concatenate([known, added])
            if len(self._verdicts) >= MAX_VERDICTS:
                self._verdicts.clear()  # many distinct principals or filters: start over
            self._verdicts[key] = known
        return known


def _page_range(pages: Any) -> tuple[float, float]:
    """The lowest and highest numeric page (what a filter can compare); NaN when none."""
    numbers = [
        float(page)
        for page in (pages if isinstance(pages, list) else [])
        if isinstance(page, int | float) and not isinstance(page, bool) and math.isfinite(page)
    ]
    return (min(numbers), max(numbers)) if numbers else (math.nan, math.nan)


def _copied_gently(values: np.ndarray, capacity: int) -> np.ndarray:
    """`_grown` for a worker thread: slice by slice with a pause between, so the copy does not
    take the memory bandwidth and cores that questions on the event loop need."""
    grown = np.zeros((capacity, *values.shape[1:]), dtype=values.dtype)
    for start in range(0, len(values), COPY_SLICE):
        end = min(start + COPY_SLICE, len(values))
        grown[start:end] = values[start:end]
        time.sleep(COPY_PAUSE)
    return grown


def _grown(values: np.ndarray, capacity: int, fill: Any = 0) -> np.ndarray:
    """`values` copied into a larger array (rows beyond the old ones set to `fill`)."""
    grown = np.full((capacity, *values.shape[1:]), fill, dtype=values.dtype)
    grown[: len(values)] = values
    return grown


def best(scores: np.ndarray, ties: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the `limit` highest scores, best first, equal scores by `ties` ascending.

    The same order as a stable descending argsort of scores listed in `ties` order, at the
    cost of a partition: only the winners are sorted.
    """
    if len(scores) > limit:
        threshold = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        above = np.flatnonzero(scores > threshold)
        level = np.flatnonzero(scores == threshold)
        level = level[np.argsort(ties[level], kind="stable")[: limit - len(above)]]
        chosen = np.concatenate([above, level])
    else:
        chosen = np.arange(len(scores))
    return chosen[np.lexsort((ties[chosen], -scores[chosen]))]


class ChunkIndex:
    """One tenant's live chunks: a contiguous vector matrix, postings and admission classes."""

    def __init__(self) -> None:
        self._dimensions: int | None = None
        self._slot_of: dict[str, int] = {}  # chunk id -> its live slot
        self._items: list[dict[str, Any] | None] = []  # per slot; None once dead
        self._slots = 0
        self._alive = np.zeros(0, dtype=bool)
        self._lengths = np.zeros(0, dtype=np.float64)
        self._order = np.zeros(0, dtype=np.int64)  # tie order: first-added first
        self._acl_class = np.zeros(0, dtype=np.int32)
        self._document_class = np.zeros(0, dtype=np.int32)
        self._slot_row = np.zeros(0, dtype=np.int64)
        self._page_min = np.zeros(0, dtype=np.float64)  # NaN: no numeric page
        self._page_max = np.zeros(0, dtype=np.float64)
        self._next_order = 0
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._row_slot = np.zeros(0, dtype=np.int64)
        self._rows = 0  # rows used, dead ones included
        self._postings: dict[str, _Postings] = {}
        self._acl_classes = _Classes(ACL_FIELDS)
        self._document_classes = _Classes(DOCUMENT_FIELDS)

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def ids(self) -> set[str]:
        """The ids of the indexed chunks."""
        return set(self._slot_of)

    @property
    def dead_rows(self) -> int:
        """Matrix rows of removed or replaced chunks not yet compacted away."""
        return self._rows - len(self._slot_of)

    @property
    def matrix(self) -> np.ndarray:
        """The rows in use of the vector matrix (dead rows included), read-only."""
        view = self._matrix[: self._rows]
        view.flags.writeable = False
        return view

    @property
    def matrix_bytes(self) -> int:
        """Bytes allocated to the vector matrix (spare capacity included)."""
        return int(self._matrix.nbytes)

    # changes --------------------------------------------------------------------------------

    def upsert(self, item: Mapping[str, Any]) -> None:
        """Adds or replaces a chunk item (with its `embedding`); an unchanged one is a no-op."""
        vector = unit(item["embedding"])
        if self._dimensions is None:
            self._dimensions = len(vector)
            self._matrix = np.zeros((0, len(vector)), dtype=np.float32)
        if len(vector) != self._dimensions:
            log.warning(
                "chunk %s has %d-d vector, index has %d-d: skipped",
                item["id"],
                len(vector),
                self._dimensions,
            )
            return
        metadata = {key: item.get(key) for key in FIELDS}
        previous = self._slot_of.get(item["id"])
        if previous is not None:
            if self._unchanged(previous, metadata, vector):
                return  # the mirror re-reads the last second's rows: nothing to do
            order = int(self._order[previous])  # a replaced chunk keeps its place in ties
            self._kill(previous)
        else:
            order = self._next_order
            self._next_order += 1
        self._add(metadata, vector, order)
        self._compact_if_due()

    def apply(self, row: Mapping[str, Any]) -> None:
        """Adds or replaces a live chunk (the mirror's view protocol)."""
        self.upsert(row)

    def live_count(self, now: float) -> int:
        """Every chunk held is live (the mirror's count check)."""
        return len(self._slot_of)

    def remove(self, chunk_id: str) -> bool:
        """Drops a chunk (its row becomes a tombstone); False when it was not indexed."""
        slot = self._slot_of.pop(chunk_id, None)
        if slot is None:
            return False
        self._kill(slot)
        self._compact_if_due()
        return True

    def _unchanged(self, slot: int, metadata: Mapping[str, Any], vector: np.ndarray) -> bool:
        """Whether a chunk's metadata and vector equal what `slot` holds."""
        row = int(self._slot_row[slot])
        return self._items[slot] == metadata and np.array_equal(self._matrix[row], vector)

    def _add(self, metadata: dict[str, Any], vector: np.ndarray, order: int) -> None:
        """A new slot, row and postings for one chunk."""
        slot = self._slots
        if slot == len(self._alive):
            self._grow_slots()
        row = self._rows
        if row == len(self._matrix):
            self._grow_rows()
        terms = TermCounts.of(metadata["text"] or "")
        self._matrix[row] = vector
        self._row_slot[row] = slot
        self._rows += 1
        self._slots += 1
        self._items.append(metadata)
        self._alive[slot] = True
        self._lengths[slot] = terms.length
        self._order[slot] = order
        self._acl_class[slot] = self._acl_classes.of(metadata)
        self._document_class[slot] = self._document_classes.of(metadata)
        self._slot_row[slot] = row
        self._page_min[slot], self._page_max[slot] = _page_range(metadata.get("pages"))
        self._slot_of[metadata["id"]] = slot
        for term, count in terms.counts.items():
            postings = self._postings.get(term)
            if postings is None:
                postings = self._postings[term] = _Postings()
            postings.slots.append(slot)
            postings.frequencies.append(count)

    def _kill(self, slot: int) -> None:
        """Marks a slot dead: its row and postings stay until compaction or pruning."""
        self._alive[slot] = False
        self._items[slot] = None

    def _grow_slots(self) -> None:
        """More capacity for the per-slot arrays."""
        capacity = max(MIN_CAPACITY, int(len(self._alive) * GROWTH))
        self._alive = _grown(self._alive, capacity, False)
        self._lengths = _grown(self._lengths, capacity)
        self._order = _grown(self._order, capacity)
        self._acl_class = _grown(self._acl_class, capacity)
        self._document_class = _grown(self._document_class, capacity)
        self._slot_row = _grown(self._slot_row, capacity, -1)
        self._page_min = _grown(self._page_min, capacity, np.nan)
        self._page_max = _grown(self._page_max, capacity, np.nan)

    async def reserve(self, extra: int) -> None:
        """Room for `extra` more rows before they arrive, the copy made off the event loop.

        Growing a large matrix copies it (150 MB at 100k chunks); done inside `upsert` that
        copy would stall every question of the process. Questions keep reading the current
        matrix meanwhile; the larger one replaces it only if nothing was appended or compacted
        during the copy (otherwise `upsert` grows it as usual).
        """
        needed = self._rows + extra
        if self._dimensions is None or needed <= len(self._matrix):
            return
        capacity = max(MIN_CAPACITY, int(len(self._matrix) * GROWTH), needed)
        matrix, rows = self._matrix, self._rows
        grown = await asyncio.to_thread(_copied_gently, matrix[:rows], capacity)
        if self._matrix is matrix and self._rows == rows:
            self._matrix = grown
            self._row_slot = _grown(self._row_slot[:rows], capacity, -1)

    def _grow_rows(self) -> None:
        """More capacity for the matrix (one copy of the rows used)."""
        capacity = max(MIN_CAPACITY, int(len(self._matrix) * GROWTH))
        self._matrix = _grown(self._matrix[: self._rows], capacity)
        self._row_slot = _grown(self._row_slot[: self._rows], capacity, -1)

    def _compact_if_due(self) -> None:
        """Copies the live rows together once dead rows outnumber them."""
        if self.dead_rows >= max(COMPACT_MIN_DEAD, len(self._slot_of)):
            self.compact()

    def compact(self) -> None:
        """Drops the matrix's dead rows now (row order is kept; slots do not change)."""
        slots = self._row_slot[: self._rows]
        keep = self._alive[slots]
        kept = slots[keep]
        capacity = max(MIN_CAPACITY, int(len(kept) * GROWTH))
        matrix = np.zeros((capacity, self._matrix.shape[1]), dtype=np.float32)
        matrix[: len(kept)] = self._matrix[: self._rows][keep]
        self._matrix = matrix
        self._row_slot = _grown(kept, capacity, -1)
        self._slot_row[slots[~keep]] = -1
        self._slot_row[kept] = np.arange(len(kept))
        self._rows = len(kept)

    # questions ------------------------------------------------------------------------------

    def readable(self, principal: Principal, filters: Node) -> np.ndarray:
        """A boolean per slot: alive, readable by `principal` and passing the filter."""
        slots = self._slots
        reader = repr((principal.tenant, principal.user_id, tuple(principal.groups)))
        acl = self._acl_classes.admitted(reader, lambda sample: is_searchable(principal, sample))
        allowed = self._alive[:slots] & acl[self._acl_class[:slots]]
        if filters == MATCH_ALL:
            return allowed
        return self._passing(filters, allowed)

    def _passing(self, node: Node, candidates: np.ndarray) -> np.ndarray:
        """`candidates` narrowed to the slots whose chunk passes `node`.

        Document fields are judged once per document class, page ranges by the per-slot
        lowest and highest page; only other conditions on pages or headings look at chunks
        one by one, and only at the candidates still in play (an AND narrows as it goes).
        """
        if isinstance(node, Group):
            if node.all_of:
                for part in node.parts:
                    candidates = self._passing(part, candidates)
                return candidates
            passing = np.zeros_like(candidates)
            for part in node.parts:
                passing |= self._passing(part, candidates & ~passing)
            return passing
        name, slots = node.field.name, self._slots
        if name in DOCUMENT_FIELDS:
            verdicts = self._document_classes.admitted(
                repr(node), lambda sample: matches(node, sample)
            )
            return candidates & verdicts[self._document_class[:slots]]
        if name == "pages" and node.operator in PAGE_BOUNDS:
            bound, compare = PAGE_BOUNDS[node.operator]
            pages = (self._page_max if bound == "max" else self._page_min)[:slots]
            with np.errstate(invalid="ignore"):  # NaN (no numeric page) never passes
                return candidates & compare(pages, node.value)
        passing = candidates.copy()
        for slot in np.flatnonzero(candidates):
            passing[slot] = matches(node, self._items[slot])  # type: ignore[arg-type]
        return passing

    def score(
        self, text: str, vector: Sequence[float], allowed: np.ndarray, candidates: int
    ) -> Scored:
        """Both rankings (at most `candidates` each) over the slots `allowed` lets through."""
        similarity = self._similarities(vector, allowed)
        bm25 = self._bm25(text, allowed)
        order = self._order
        ranked_vector = best(similarity[1], order[similarity[0]], candidates)
        vector_ranking = Ranked(similarity[0][ranked_vector], similarity[1][ranked_vector])
        positive = bm25[1] > 0
        keyword_slots, keyword_scores = bm25[0][positive], bm25[1][positive]
        ranked_keyword = best(keyword_scores, order[keyword_slots], candidates)
        keyword_ranking = Ranked(keyword_slots[ranked_keyword], keyword_scores[ranked_keyword])
        dense_similarity = np.zeros(self._slots, dtype=np.float64)
        dense_similarity[similarity[0]] = similarity[1]
        dense_bm25 = np.zeros(self._slots, dtype=np.float64)
        dense_bm25[bm25[0]] = bm25[1]
        return Scored(vector_ranking, keyword_ranking, dense_similarity, dense_bm25)

    def item(self, slot: int) -> Mapping[str, Any]:
        """The stored fields of a live slot's chunk."""
        item = self._items[slot]
        if item is None:
            raise KeyError(slot)
        return item

    def _similarities(
        self, vector: Sequence[float], allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(slots, cosine similarity) of every allowed slot."""
        query = unit(vector)
        if self._matrix.shape[1] != len(query):
            raise ValueError(
                f"question vector is {len(query)}-d, the index {self._matrix.shape[1]}-d"
            )
        slots = np.flatnonzero(allowed)
        if len(slots) < GATHER_FRACTION * self._rows:  # a few readable rows: read only those
            return slots, self._matrix[self._slot_row[slots]] @ query
        row_slots = self._row_slot[: self._rows]
        rows = np.flatnonzero(allowed[row_slots])
        return row_slots[rows], (self._matrix[: self._rows] @ query)[rows]

    def _bm25(self, text: str, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slots, BM25 score) of the allowed slots holding a question term, through postings.

        The statistics (documents, mean length, document frequency) count allowed slots only,
        exactly as `bm25_scores` over the readable chunks does.
        """
        documents = int(np.count_nonzero(allowed))
        lengths = self._lengths[: self._slots]
        average = average_length(lengths[allowed].sum(), documents)
        scores = np.zeros(self._slots, dtype=np.float64)
        touched = False
        for term in query_terms(text):
            postings = self._postings.get(term)
            if postings is None:
                continue
            slots, frequencies = self._read_postings(term, postings)
            keep = allowed[slots]
            slots, counts = slots[keep], frequencies[keep].astype(np.float64)
            if not len(slots):
                continue
            norms = length_norms(lengths[slots], average)
            scores[slots] += term_scores(idf(documents, len(slots)), counts, norms)
            touched = True
        if not touched:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        found = np.flatnonzero(scores > 0)  # every posting adds a positive amount
        return found, scores[found]

    def _read_postings(self, term: str, postings: _Postings) -> tuple[np.ndarray, np.ndarray]:
        """A term's postings as arrays; a mostly dead list is rewritten without its dead."""
        slots = np.array(postings.slots, dtype=np.int64)
        frequencies = np.array(postings.frequencies, dtype=np.int64)
        if len(slots) >= PRUNE_MIN_POSTINGS:
            alive = self._alive[slots]
            if 2 * int(np.count_nonzero(alive)) < len(slots):
                slots, frequencies = slots[alive], frequencies[alive]
                if len(slots):
                    self._postings[term] = _Postings(
                        array("i", slots.tolist()), array("i", frequencies.tolist())
                    )
                else:
                    del self._postings[term]
        return slots, frequencies


__all__ = ["FIELDS", "ChunkIndex", "Ranked", "Scored", "best"]
