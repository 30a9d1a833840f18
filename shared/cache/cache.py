"""SemanticCache: the facade the chat path uses (scope, bypass, lookup, store, invalidate, admin).

Lookup, inside one partition only (shared.cache.keys):
1. exact path: a point read of id = hash(normalised question); a hit has similarity 1.0;
2. semantic path: the partition's L1 matrix proposes up to `candidates` entries with cosine
   similarity >= threshold; each must pass the token guard (shared.cache.guards) and is then
   confirmed by a point read, which is what makes invalidation instant across instances: an
   entry another instance deleted reads as missing and is never served. Expiry is checked on
   every read by our code (`expires_at`), because the emulator ignores TTL.
So a lookup costs one point read on a miss, two on a semantic hit, never one per entry.

Invalidation (`invalidate_documents`): a cross-partition query for entries whose `document_ids`
contain any of the ids (ingestion time, not the hot path), one delete each, and a local L1
drop. Other instances keep the row in their L1 until their next refresh (the count check sees
the deletion), but the confirming point read already refuses it. Known window: an answer
computed from a document's old version and stored after that document's invalidation ran
survives until its TTL; the window is one answer's duration, so keep ttl_seconds modest.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.cosmos.exceptions import CosmosHttpResponseError

from shared.cache.bypass import Bypass, Phase, bypass
from shared.cache.counters import HitBuffer, PartitionStats
from shared.cache.entries import (
    CONTAINER,
    CacheHit,
    build_entry,
    container_spec,
    is_fresh,
    result_from_payload,
)
from shared.cache.eviction import choose_victims
from shared.cache.guards import guard_reason
from shared.cache.keys import cache_partition, normalise_question, question_key
from shared.cache.l1 import l1_mirror
from shared.cache.options import CacheOptions
from shared.chat.service import ChatResult
from shared.embeddings import Embedder
from shared.security.principal import Principal
from shared.storage.cosmos import CosmosStore, CosmosStoreError

log = logging.getLogger(__name__)
_VECTOR_MEMO = 256  # question vectors kept between a miss's lookup and its store
_EVICTION_FIELDS = "c.id, c.hits, c.last_hit, c.created, c.expires_at"


@dataclass(frozen=True)
class CacheScope:
    """Where a request's answers may be shared: its tenant and partition key."""

    tenant: str
    partition: str


class SemanticCache:
    """A tenant- and access-scoped semantic answer cache over Cosmos with an in-process L1."""

    def __init__(
        self,
        options: CacheOptions,
        store: CosmosStore,
        embedder: Embedder,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._store = store
        self._embedder = embedder
        self._clock = clock
        self._monotonic = monotonic
        self._l1 = l1_mirror(store, options.refresh_seconds, clock, monotonic)
        self._hits = HitBuffer()
        self._flushed_at = monotonic()
        self._stats: dict[str, PartitionStats] = {}
        self._tenant_of: dict[str, str] = {}  # partition -> tenant, for tenant-scoped stats
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()

    async def ensure_container(self) -> None:
        """Create the semantic_cache container if missing and register it with the store."""
        await self._store.ensure_containers([container_spec(self.options.ttl_seconds)])

    # Keys and rules ---------------------------------------------------------------------------

    def scope(
        self,
        principal: Principal,
        scope_groups: Iterable[str],
        tier: str,
        system_prompt: str,
        *,
        user_acls: bool = True,
        vary_by: Mapping[str, Any] | None = None,
    ) -> CacheScope:
        """The request's cache scope (see shared.cache.keys for what the partition covers)."""
        partition = cache_partition(
            principal, scope_groups, tier, system_prompt, user_acls=user_acls, vary_by=vary_by
        )
        return CacheScope(principal.tenant, partition)

    def bypass(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        temperature: float = 0.0,
        tools: bool = False,
        cache_control: str | None = None,
        phase: Phase = "lookup",
        flagged: bool = False,
        citations: int | None = None,
    ) -> Bypass:
        """(bypass, reason) for this request in `phase` (see shared.cache.bypass)."""
        return bypass(
            messages, max_temperature=self.options.max_temperature, temperature=temperature,
            tools=tools, cache_control=cache_control, phase=phase, flagged=flagged,
            citations=citations,
        )  # fmt: skip

    # Lookup -----------------------------------------------------------------------------------

    async def lookup(
        self,
        scope: CacheScope,
        question: str,
        vector: Sequence[float] | None = None,
        trace_id: str = "",
    ) -> CacheHit | None:
        """A cached answer for `question` in `scope`, or None (exact path first)."""
        hit = await self._exact(scope, question, trace_id)
        if hit is None:
            hit = await self._semantic(scope, question, vector, trace_id)
        self._count_lookup(scope, hit)
        await self._flush_if_due()
        return hit

    async def _exact(self, scope: CacheScope, question: str, trace_id: str) -> CacheHit | None:
        """The point read of the normalised question's hash."""
        entry_id = question_key(question)
        item = await self._read_fresh(scope.partition, entry_id)
        if item is None or normalise_question(item["question"]) != normalise_question(question):
            return None
        return self._hit(item, "exact", 1.0, trace_id)

    async def _semantic(
        self, scope: CacheScope, question: str, vector: Sequence[float] | None, trace_id: str
    ) -> CacheHit | None:
        """The best L1 candidate that passes the guard and is still in Cosmos."""
        query = vector if vector is not None else await self._embed(question)
        matrix = await self._l1.view(scope.partition)
        candidates = matrix.search(
            query, self.options.similarity_threshold, self.options.candidates, self._clock()
        )
        for candidate in candidates:
            if self.options.guards and guard_reason(question, candidate.question) is not None:
                self._stats_of(scope.partition, scope.tenant).guard_rejections += 1
                continue
            item = await self._read_fresh(scope.partition, candidate.entry_id)
            if item is not None:
                return self._hit(item, "semantic", candidate.similarity, trace_id)
        return None

    async def _read_fresh(self, partition: str, entry_id: str) -> dict[str, Any] | None:
        """The entry from Cosmos, or None when missing or expired (then dropped from L1)."""
        item = await self._store.read(CONTAINER, entry_id, partition)
        if item is not None and is_fresh(item, self._clock()):
            return item
        self._l1.remove(partition, [entry_id])
        if item is not None:  # expired where Cosmos did not expire it: delete it now
            await self._delete(partition, entry_id)
        return None

    def _hit(
        self, item: Mapping[str, Any], path: str, similarity: float, trace_id: str
    ) -> CacheHit:
        """Build the CacheHit and count it for LRU/LFU."""
        self._hits.record(item["partition"], item["id"], self._clock())
        return CacheHit(
            result=result_from_payload(item["answer"], trace_id),
            path="exact" if path == "exact" else "semantic",
            similarity=similarity,
            cached_question=item["question"],
            entry_id=item["id"],
            partition=item["partition"],
        )

    async def _embed(self, question: str) -> list[float]:
        """The question's vector, memoised so a miss's store does not embed it again."""
        vector = self._vectors.get(question)
        if vector is None:
            [vector] = await self._embedder.embed([question])
            self._vectors[question] = vector
            if len(self._vectors) > _VECTOR_MEMO:
                self._vectors.popitem(last=False)
        return vector

    # Store ------------------------------------------------------------------------------------

    async def store(
        self,
        scope: CacheScope,
        question: str,
        result: ChatResult,
        vector: Sequence[float] | None = None,
        *,
        flagged: bool = False,
    ) -> bool:
        """Keep `result` for `question`; False when refused (flagged or uncited answers)."""
        refused = bypass([], max_temperature=math.inf, phase="store", flagged=flagged,
                         citations=len(result.citations))  # fmt: skip
        if refused.bypass:
            return False
        now = self._clock()
        vector = vector if vector is not None else await self._embed(question)
        item = build_entry(
            question_key(question), scope.partition, scope.tenant, question, vector, result,
            now, self.options.ttl_seconds,
        )  # fmt: skip
        stored = await self._store.upsert(CONTAINER, item)
        self._l1.apply(scope.partition, [stored])
        self._stats_of(scope.partition, scope.tenant).stores += 1
        await self._enforce_limit(scope, item["id"])
        await self._flush_if_due()
        return True

    async def _enforce_limit(self, scope: CacheScope, stored_id: str) -> None:
        """Evict by policy when the partition holds more than max_entries_per_partition."""
        partition = scope.partition
        counted = await self._store.query_partition(CONTAINER, partition, select="VALUE COUNT(1)")
        if not counted or counted[0] <= self.options.max_entries_per_partition:
            return
        await self._flush(self._hits.take(partition))  # eviction should see our latest hits
        rows = await self._store.query_partition(CONTAINER, partition, select=_EVICTION_FIELDS)
        victims = choose_victims(
            rows, self.options.max_entries_per_partition, self.options.eviction, self._clock(),
            protect=stored_id,
        )  # fmt: skip
        deleted = await self._delete_many([(partition, victim) for victim in victims])
        self._stats_of(partition, scope.tenant).evictions += deleted

    # Invalidation and admin -------------------------------------------------------------------

    async def invalidate_documents(
        self, document_ids: Iterable[str], tenant: str | None = None
    ) -> int:
        """Delete every entry citing any of `document_ids` (in `tenant` when given)."""
        ids = sorted(set(document_ids))
        if not ids:
            return 0
        where = "EXISTS(SELECT VALUE d FROM d IN c.document_ids WHERE ARRAY_CONTAINS(@ids, d))"
        parameters: dict[str, Any] = {"@ids": ids}
        if tenant is not None:
            where += " AND c.tenant = @tenant"
            parameters["@tenant"] = tenant
        rows = await self._store.query(
            CONTAINER, f"SELECT c.id, c.partition, c.tenant FROM c WHERE {where}", parameters
        )
        targets = [(row["partition"], row["id"]) for row in rows]
        await self._delete_many(targets)
        for row in rows:
            self._stats_of(row["partition"], row.get("tenant", "")).invalidations += 1
        return len(targets)

    async def clear(self, tenant: str | None = None) -> int:
        """Delete every entry (of `tenant`, or all); return how many were deleted."""
        sql = "SELECT c.id, c.partition FROM c"
        parameters: dict[str, Any] = {}
        if tenant is not None:
            sql += " WHERE c.tenant = @tenant"
            parameters["@tenant"] = tenant
        rows = await self._store.query(CONTAINER, sql, parameters)
        targets = [(row["partition"], row["id"]) for row in rows]
        deleted = await self._delete_many(targets)
        self._l1.forget({partition for partition, _ in targets} if tenant is not None else None)
        return deleted

    async def stats(self, tenant: str) -> dict[str, Any]:
        """`tenant`'s per-partition and overall counters (this instance) with sizes from Cosmos
        (global). Another tenant's partitions are not counted, named or sized."""
        rows = await self._store.query(
            CONTAINER,
            "SELECT c.partition, c.tenant, c.hits, c.expires_at FROM c WHERE c.tenant = @tenant",
            {"@tenant": tenant},
        )
        now = self._clock()
        sizes: dict[str, int] = {}
        tenants: dict[str, str] = {}
        stored_hits: dict[str, int] = {}
        for row in rows:
            if is_fresh(row, now):
                sizes[row["partition"]] = sizes.get(row["partition"], 0) + 1
                stored_hits[row["partition"]] = stored_hits.get(row["partition"], 0) + int(
                    row.get("hits") or 0
                )
            tenants[row["partition"]] = row.get("tenant", "")
        counters = {
            partition: stats
            for partition, stats in self._stats.items()
            if self._tenant_of.get(partition) == tenant
        }
        return _stats_report(counters, sizes, tenants, stored_hits)

    # Plumbing ---------------------------------------------------------------------------------

    def _stats_of(self, partition: str, tenant: str) -> PartitionStats:
        """This instance's counters for `partition` (of `tenant`)."""
        self._tenant_of[partition] = tenant
        return self._stats.setdefault(partition, PartitionStats())

    def _count_lookup(self, scope: CacheScope, hit: CacheHit | None) -> None:
        """Count a lookup's outcome."""
        stats = self._stats_of(scope.partition, scope.tenant)
        if hit is None:
            stats.misses += 1
        elif hit.path == "exact":
            stats.exact_hits += 1
        else:
            stats.semantic_hits += 1

    async def flush_hits(self) -> int:
        """Write every pending hit count to Cosmos now; return how many entries were patched."""
        return await self._flush(self._hits.take())

    async def _flush_if_due(self) -> None:
        """Flush pending hits when hit_flush_seconds have passed since the last flush."""
        elapsed = self._monotonic() - self._flushed_at
        if len(self._hits) and elapsed >= self.options.hit_flush_seconds:
            await self.flush_hits()

    async def _flush(self, pending: Mapping[tuple[str, str], tuple[int, float]]) -> int:
        """One patch per entry: increment hits, set last_hit; entries gone meanwhile are skipped."""
        self._flushed_at = self._monotonic()
        outcomes = await asyncio.gather(
            *(self._patch_hits(partition, entry_id, count, last_hit)
              for (partition, entry_id), (count, last_hit) in pending.items())
        )  # fmt: skip
        return sum(outcomes)

    async def _patch_hits(self, partition: str, entry_id: str, count: int, last: float) -> bool:
        """Apply one entry's pending hits; False when the entry no longer exists."""
        operations = [
            {"op": "incr", "path": "/hits", "value": count},
            {"op": "set", "path": "/last_hit", "value": last},
        ]
        try:
            await self._store.patch(CONTAINER, entry_id, partition, operations)
        except (CosmosStoreError, CosmosHttpResponseError):
            log.debug("hit counts for %s/%s dropped: entry gone", partition, entry_id)
            return False
        return True

    async def _delete(self, partition: str, entry_id: str) -> bool:
        """Delete one entry and drop it from L1; False when it was already gone."""
        self._l1.remove(partition, [entry_id])
        return await self._store.delete(CONTAINER, entry_id, partition)

    async def _delete_many(self, targets: Sequence[tuple[str, str]]) -> int:
        """Delete (partition, id) pairs concurrently; return how many existed."""
        outcomes = await asyncio.gather(*(self._delete(p, i) for p, i in targets))
        return sum(outcomes)


def _stats_report(
    counters: Mapping[str, PartitionStats],
    sizes: Mapping[str, int],
    tenants: Mapping[str, str],
    stored_hits: Mapping[str, int],
) -> dict[str, Any]:
    """Assemble the stats() answer: per partition, and summed overall."""
    overall = PartitionStats()
    partitions: dict[str, Any] = {}
    for partition in sorted(set(counters) | set(sizes)):
        stats = counters.get(partition, PartitionStats())
        overall.add(stats)
        partitions[partition] = {
            **stats.as_json(),
            "tenant": tenants.get(partition, ""),
            "size": sizes.get(partition, 0),
            "stored_hits": stored_hits.get(partition, 0),
        }
    return {
        "overall": {
            **overall.as_json(),
            "size": sum(sizes.values()),
            "partitions": len(partitions),
            "stored_hits": sum(stored_hits.values()),
        },
        "partitions": partitions,
    }


__all__ = ["CacheScope", "SemanticCache"]
