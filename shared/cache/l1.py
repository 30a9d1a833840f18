"""The in-process L1: one PartitionMatrix per cache partition, kept fresh from Cosmos.

Why `_ts` polling and not the change feed: on the emulator (checked with azure-cosmos 4.17 aio)
`query_items_change_feed` ignores the partition key and its continuation token never advances,
so new items are not delivered; and on Azure the latest-version change feed does not report
deletions either, which invalidation and eviction need. So, as InMemoryIndex does for chunks,
per partition and at most once per `refresh_seconds`:
1. delta: entries with `_ts >= last seen _ts` (">=": `_ts` has one-second resolution) are
   upserted, expired ones removed;
2. count: `COUNT(1)` of unexpired entries; after the delta the matrix holds every live entry
   plus any deleted since, so the counts agree exactly when nothing was deleted;
3. only when they differ: list the live ids, drop the missing, fetch the absent.
A stale L1 can only propose a candidate: every semantic hit is confirmed by a point read of the
entry (see cache.py), so an entry deleted by another instance is never served, only wasted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.cache.entries import CONTAINER, is_fresh
from shared.cache.matrix import PartitionMatrix
from shared.cosmos import CosmosStore

log = logging.getLogger(__name__)
_SELECT = "c.id, c.question, c.embedding, c.expires_at, c._ts"


@dataclass
class _PartitionState:
    """A partition's matrix and how fresh it is."""

    matrix: PartitionMatrix = field(default_factory=PartitionMatrix)
    last_ts: int = 0
    refreshed_at: float = -math.inf
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class L1Index:
    """Per-partition matrices refreshed from the semantic_cache container by `_ts` polling."""

    def __init__(
        self,
        store: CosmosStore,
        refresh_seconds: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._partitions: dict[str, _PartitionState] = {}

    @property
    def partitions(self) -> dict[str, PartitionMatrix]:
        """The matrices held, by partition."""
        return {key: state.matrix for key, state in self._partitions.items()}

    async def matrix(self, partition: str) -> PartitionMatrix:
        """The partition's matrix, refreshed first when older than refresh_seconds."""
        state = self._partitions.setdefault(partition, _PartitionState())
        if self._is_due(state):
            async with state.lock:  # one refresh at a time; waiters then find it fresh
                if self._is_due(state):
                    await self._refresh_or_keep(partition, state)
        return state.matrix

    def _is_due(self, state: _PartitionState) -> bool:
        """True when the partition was never loaded or its refresh interval has passed."""
        return self._monotonic() - state.refreshed_at >= self._refresh_seconds

    async def _refresh_or_keep(self, partition: str, state: _PartitionState) -> None:
        """A failed refresh keeps the last matrix (hits are re-read anyway); a first load raises."""
        try:
            await self._sync(partition, state)
        except Exception:
            if not state.loaded:
                raise
            log.warning("refreshing cache partition %s failed", partition, exc_info=True)
        state.refreshed_at = self._monotonic()

    async def _sync(self, partition: str, state: _PartitionState) -> None:
        """Delta by `_ts`, then a live count; ids are re-listed only when the counts differ."""
        rows = await self._store.query_partition(
            CONTAINER, partition, "c._ts >= @since", {"@since": state.last_ts}, select=_SELECT
        )
        self._apply(state, rows)
        for row in rows:
            state.last_ts = max(state.last_ts, int(row.get("_ts") or 0))
        now = self._clock()
        live = await self._store.query_partition(
            CONTAINER, partition, "c.expires_at > @now", {"@now": now}, select="VALUE COUNT(1)"
        )
        if live and live[0] != state.matrix.fresh_count(now):
            await self._reconcile(partition, state, now)
        state.loaded = True

    def _apply(self, state: _PartitionState, rows: Iterable[Mapping[str, Any]]) -> None:
        """Upsert fresh rows, drop expired ones."""
        now = self._clock()
        for row in rows:
            if is_fresh(row, now):
                state.matrix.upsert(row["id"], row["embedding"], row["question"], row["expires_at"])
            else:
                state.matrix.remove(row["id"])

    async def _reconcile(self, partition: str, state: _PartitionState, now: float) -> None:
        """Drop entries gone from Cosmos (or expired); fetch live ones the delta missed."""
        listed = await self._store.query_partition(
            CONTAINER, partition, "c.expires_at > @now", {"@now": now}, select="c.id"
        )
        live_ids = {row["id"] for row in listed}
        for entry_id in state.matrix.ids - live_ids:
            state.matrix.remove(entry_id)
        missing = sorted(live_ids - state.matrix.ids)
        if missing:
            rows = await self._store.query_partition(
                CONTAINER, partition, "ARRAY_CONTAINS(@ids, c.id)", {"@ids": missing},
                select=_SELECT,
            )  # fmt: skip
            self._apply(state, rows)

    def upsert(self, partition: str, item: Mapping[str, Any]) -> None:
        """Add an entry this instance just wrote, if the partition is held (saves a refresh)."""
        state = self._partitions.get(partition)
        if state is not None and state.loaded:
            self._apply(state, [item])

    def remove(self, partition: str, entry_ids: Iterable[str]) -> None:
        """Drop entries this instance deleted or found gone."""
        state = self._partitions.get(partition)
        if state is not None:
            for entry_id in entry_ids:
                state.matrix.remove(entry_id)

    def forget(self, partitions: Iterable[str] | None = None) -> None:
        """Drop the given partitions (all when None); they reload on next use."""
        if partitions is None:
            self._partitions.clear()
            return
        for partition in partitions:
            self._partitions.pop(partition, None)


__all__ = ["L1Index"]
