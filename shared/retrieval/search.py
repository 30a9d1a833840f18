"""Hybrid retrieval: vector similarity and BM25 fused by reciprocal rank, ACL-trimmed first.

`Retriever.retrieve` embeds the question and asks one `VectorSearch` implementation:

- `InMemoryIndex` (RETRIEVAL_MODE=memory; the emulator, tenants up to ~100k chunks): each
  tenant's live chunks sit in one contiguous float32 matrix of unit vectors plus an inverted
  index of their terms (`shared.retrieval.memory_index`), both updated in place. Search is
  exact cosine similarity and BM25 over only the chunks the principal may read and the filter
  passes, so another group's chunk cannot surface even at the bottom of a ranking, and BM25's
  corpus statistics come from readable chunks only.
- `CosmosVectorIndex` (RETRIEVAL_MODE=cosmos; Azure): `ORDER BY VectorDistance` with the ACL
  and filter fragments in the WHERE clause. Keyword scoring is BM25 over that query's
  candidates rather than `FullTextScore`: FullTextScore needs a full-text policy and index on
  the container, which our provisioning does not create, and fails the query without them.
  The cost: an exact-term chunk outside the top CANDIDATES by vector is not found.

The memory index is a `shared.storage.mirror.PartitionMirror` of the chunks container, one view
per tenant holding its live chunks (delta by `_ts`, a live count, ids re-listed only after a
deletion; at most one refresh per tenant every `refresh_seconds`, which a question waits for
at most `wait_seconds`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from shared.documents.index import CHUNKS, LIVE
from shared.retrieval.access import acl_sql
from shared.retrieval.filters import Node, compile_filter, parse_filter
from shared.retrieval.fusion import RRF_K, reciprocal_rank_fusion
from shared.retrieval.keyword import TermCounts, bm25_scores
from shared.retrieval.memory_index import FIELDS, ChunkIndex
from shared.security.principal import Principal
from shared.storage.cosmos import CosmosStore
from shared.storage.mirror import Liveness, PartitionMirror

if TYPE_CHECKING:
    from shared.embeddings import Embedder

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "keyword")
CANDIDATES = 50  # depth of each ranking fed to fusion (and of the Cosmos vector query)
MAX_TOP_K = 50
REFRESH_SECONDS = 5.0
REFRESH_WAIT_SECONDS = 0.05


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk to cite: its text and place, the fused score and its rank in each retriever."""

    id: str
    document_id: str
    document_name: str
    pages: list[int]
    text: str
    kind: str
    headings: list[str]
    score: float  # RRF score in hybrid mode; cosine similarity or BM25 in single modes
    vector_rank: int | None  # 1-based rank among readable chunks; None: not in the top
    keyword_rank: int | None
    injection: dict[str, Any] | None = None  # verdict stored at ingestion (None: unscreened)
    page_spans: list[dict[str, int]] = field(default_factory=list)  # see documents/pagespans


@dataclass(frozen=True)
class SearchRequest:
    """One search: the question as text and vector, who asks, the parsed filter, how many."""

    text: str
    vector: Sequence[float]
    principal: Principal
    filters: Node
    top_k: int
    mode: Mode = "hybrid"


class VectorSearch(Protocol):
    """An index that answers a SearchRequest with ACL-trimmed, filtered, ranked chunks."""

    async def search(self, request: SearchRequest) -> list[RetrievedChunk]:
        """The best `request.top_k` chunks the principal may read, best first."""
        ...


def fuse(
    vector_ranking: Sequence[str],
    keyword_ranking: Sequence[str],
    scores: Mapping[str, tuple[float, float]],
    mode: Mode,
    top_k: int,
) -> list[tuple[str, float, int | None, int | None]]:
    """(id, score, vector rank, keyword rank) of the best `top_k` for `mode`."""
    vector_ranks = {key: rank for rank, key in enumerate(vector_ranking, start=1)}
    keyword_ranks = {key: rank for rank, key in enumerate(keyword_ranking, start=1)}
    if mode == "vector":
        chosen = [(key, scores[key][0]) for key in vector_ranking[:top_k]]
    elif mode == "keyword":
        chosen = [(key, scores[key][1]) for key in keyword_ranking[:top_k]]
    else:
        fused = reciprocal_rank_fusion([vector_ranking, keyword_ranking], k=RRF_K)
        chosen = [(item.key, item.score) for item in fused[:top_k]]
    return [(key, score, vector_ranks.get(key), keyword_ranks.get(key)) for key, score in chosen]


def to_result(
    item: Mapping[str, Any], score: float, ranks: tuple[int | None, int | None]
) -> RetrievedChunk:
    """A RetrievedChunk from a chunk item."""
    return RetrievedChunk(
        id=item["id"],
        document_id=item["document_id"],
        document_name=item["document_name"],
        pages=list(item.get("pages") or []),
        text=item["text"],
        kind=item["kind"],
        headings=list(item.get("headings") or []),
        score=float(score),
        vector_rank=ranks[0],
        keyword_rank=ranks[1],
        injection=item.get("injection"),
        page_spans=list(item.get("page_spans") or []),
    )


# In memory -------------------------------------------------------------------------------------


class TenantIndex(ChunkIndex):
    """One tenant's live chunks in process (see `shared.retrieval.memory_index`), searched."""

    def search(self, request: SearchRequest) -> list[RetrievedChunk]:
        """Exact hybrid search over what `request.principal` may read and the filter passes."""
        allowed = self.readable(request.principal, request.filters)
        if not allowed.any():
            return []
        scored = self.score(request.text, request.vector, allowed, CANDIDATES)
        vector_ranking = [int(slot) for slot in scored.vector.slots]
        keyword_ranking = [int(slot) for slot in scored.keyword.slots]
        scores = {
            slot: (float(scored.similarity[slot]), float(scored.bm25[slot]))
            for slot in {*vector_ranking, *keyword_ranking}
        }
        results = fuse(vector_ranking, keyword_ranking, scores, request.mode, request.top_k)
        return [
            to_result(self.item(slot), score, (vector_rank, keyword_rank))
            for slot, score, vector_rank, keyword_rank in results
        ]


def _ranking(keys: list[str], scores: np.ndarray, positive: bool) -> list[str]:
    """The best CANDIDATES keys by score (BM25 keeps only scores above zero)."""
    order = np.argsort(-scores, kind="stable")[:CANDIDATES]
    return [keys[index] for index in order if not positive or scores[index] > 0]


LIVE_CHUNKS = Liveness(
    where="c.status = @live",
    parameters=lambda now: {"@live": LIVE},
    is_live=lambda row, now: row.get("status") == LIVE,
)


@dataclass(frozen=True)
class MemoryRefresh:
    """How the memory index follows Cosmos: refresh period and a question's wait for one."""

    seconds: float = REFRESH_SECONDS
    wait_seconds: float | None = REFRESH_WAIT_SECONDS  # None: wait for the refresh to end


class InMemoryIndex:
    """Per-tenant in-process indexes: a mirror of the Cosmos chunks container's live chunks.

    Changes are applied in place (`TenantIndex`): after an ingestion only its chunks are read
    and added, never the tenant. A question that finds its tenant due for a refresh waits at
    most `wait_seconds` for it, then is answered from the current index while the refresh
    (a big delta, applied in small batches) completes in the background.
    """

    def __init__(
        self,
        store: CosmosStore,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wait_seconds: float | None = REFRESH_WAIT_SECONDS,
    ) -> None:
        """`clock` schedules refreshes (liveness does not depend on time)."""
        self._mirror: PartitionMirror[TenantIndex] = PartitionMirror(
            store, CHUNKS, (*FIELDS, "embedding"), LIVE_CHUNKS, TenantIndex, refresh_seconds,
            monotonic=clock,
        )  # fmt: skip
        self._wait_seconds = wait_seconds

    async def search(self, request: SearchRequest) -> list[RetrievedChunk]:
        """Refreshes the tenant's index if due (a bounded wait), then searches it."""
        index = await self.tenant_index(request.principal.tenant)
        return index.search(request)

    async def tenant_index(self, tenant: str) -> TenantIndex:
        """The tenant's index; a due refresh is waited for at most `wait_seconds`."""
        return await self._mirror.view(tenant, self._wait_seconds)

    async def refresh(self, tenant: str) -> TenantIndex:
        """Refreshes the tenant's index now, whatever its age, and waits for it."""
        return await self._mirror.refresh(tenant)

    async def settle(self) -> None:
        """Waits for background refreshes in flight (tests, shutdown)."""
        await self._mirror.settle()


# Cosmos vector search --------------------------------------------------------------------------


def vector_query(request: SearchRequest, candidates: int = CANDIDATES) -> tuple[str, dict]:
    """The VectorDistance query: top candidates the principal may read that pass the filter."""
    acl, parameters = acl_sql(request.principal)
    where, filter_parameters = compile_filter(request.filters)
    select = ", ".join(f"c.{name}" for name in FIELDS)
    sql = (
        f"SELECT TOP @top {select}, VectorDistance(c.embedding, @vector) AS similarity "
        f"FROM c WHERE c.tenant = @pk AND {acl} AND {where} "
        "ORDER BY VectorDistance(c.embedding, @vector)"
    )
    parameters = {
        **parameters,
        **filter_parameters,
        "@pk": request.principal.tenant,
        "@top": max(candidates, request.top_k),
        "@vector": [float(value) for value in request.vector],
    }
    return sql, parameters


class CosmosVectorIndex:
    """Vector search in Cosmos (VectorDistance), BM25 over its candidates, RRF in process."""

    def __init__(self, store: CosmosStore, candidates: int = CANDIDATES) -> None:
        if not store.capabilities.vector_distance:
            raise ValueError(
                "RETRIEVAL_MODE=cosmos needs VectorDistance, which this Cosmos endpoint lacks "
                "(the emulator): use RETRIEVAL_MODE=memory"
            )
        self._store = store
        self._candidates = candidates

    async def search(self, request: SearchRequest) -> list[RetrievedChunk]:
        """One VectorDistance query, then keyword re-ranking of its rows and fusion."""
        sql, parameters = vector_query(request, self._candidates)
        rows = await self._store.query(CHUNKS, sql, parameters, request.principal.tenant)
        return rank_candidates(request, rows)


def rank_candidates(
    request: SearchRequest, rows: Sequence[Mapping[str, Any]]
) -> list[RetrievedChunk]:
    """Fuses the vector order of `rows` (best first) with BM25 over their texts."""
    by_id = {row["id"]: row for row in rows}
    keys = list(by_id)
    keyword = bm25_scores(request.text, [TermCounts.of(by_id[key]["text"]) for key in keys])
    scores = {
        key: (float(by_id[key].get("similarity") or 0.0), float(keyword[i]))
        for i, key in enumerate(keys)
    }
    keyword_order = _ranking(keys, keyword, positive=True)
    results = fuse(keys, keyword_order, scores, request.mode, request.top_k)
    return [
        to_result(by_id[key], score, (vector_rank, keyword_rank))
        for key, score, vector_rank, keyword_rank in results
    ]


# The retriever ---------------------------------------------------------------------------------


class Retriever:
    """Embeds a question and searches the configured index for what the principal may read."""

    def __init__(self, index: VectorSearch, embedder: Embedder, default_top_k: int = 5) -> None:
        self.index = index
        self._embedder = embedder
        self._default_top_k = default_top_k

    async def retrieve(
        self,
        question: str,
        principal: Principal,
        filters: Mapping[str, Any] | None = None,
        top_k: int | None = None,
        mode: Mode = "hybrid",
    ) -> list[RetrievedChunk]:
        """The best `top_k` chunks for `question`; InvalidFilter/ValueError on bad input."""
        node = parse_filter(filters)  # a bad filter fails before any embedding or query
        top_k = self._default_top_k if top_k is None else top_k
        if not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        [vector] = await self._embedder.embed([question])
        request = SearchRequest(question, vector, principal, node, top_k, mode)
        return await self.index.search(request)


def build_retriever(
    mode: str,
    store: CosmosStore,
    embedder: Embedder,
    default_top_k: int,
    refresh: MemoryRefresh | None = None,
) -> Retriever:
    """The retriever RETRIEVAL_MODE asks for; build it once per process (it holds the index)."""
    if mode == "cosmos":
        return Retriever(CosmosVectorIndex(store), embedder, default_top_k)
    refresh = refresh or MemoryRefresh()
    memory = InMemoryIndex(store, refresh.seconds, wait_seconds=refresh.wait_seconds)
    return Retriever(memory, embedder, default_top_k)


__all__ = [
    "CANDIDATES",
    "MAX_TOP_K",
    "MODES",
    "CosmosVectorIndex",
    "InMemoryIndex",
    "MemoryRefresh",
    "RetrievedChunk",
    "Retriever",
    "SearchRequest",
    "TenantIndex",
    "VectorSearch",
    "build_retriever",
    "rank_candidates",
    "vector_query",
]
