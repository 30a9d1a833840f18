"""An in-process copy of Cosmos partitions, kept fresh by `_ts` polling.

The semantic cache's L1 (question vectors per cache partition) and retrieval's memory index
(chunk vectors per tenant) are both views of one Cosmos partition that must follow its writes
and deletions from every instance. `PartitionMirror` owns that: a view per partition, and per
partition at most one refresh every `refresh_seconds`:
1. delta: rows with `_ts >= last seen _ts` (">=": `_ts` has one-second resolution, so a write
   in the same second as the last one seen is read again, harmlessly): live ones are applied
   to the view, others removed;
2. count: `SELECT VALUE COUNT(1)` of the live rows. After the delta the view holds every live
   row plus any deleted since (a deletion leaves no trace in a `_ts` query), so the counts are
   equal exactly when nothing was deleted;
3. only when they differ: list the live ids, drop the missing ones and fetch any the view
   lacks (a change the delta could not see, such as an expiry or a status flip).
Two cheap queries per refresh; the id listing only after a deletion. A write racing a refresh
can make one refresh miss a deletion; the next refresh after writes stop is exact.

Why not the change feed: on the emulator (azure-cosmos 4.17 aio) `query_items_change_feed`
ignores the partition key and its continuation token never advances; on Azure the latest-
version change feed does not report deletions, which invalidation and eviction need.

A failed refresh keeps serving the last view (a failed first load raises). `apply` lets the
owner push rows it just wrote (or a delta it received some other way) without a refresh.

A refresh never holds the event loop for long: rows arrive in pages of `PAGE_SIZE` and are
applied `APPLY_BATCH` at a time with a yield in between, so questions served by the same
process keep running while a large delta (a 1,000-page document's chunks) is taken in. With
`view(partition, wait=...)` a caller bounds how long it waits for a due refresh of a loaded
view: past that it is served the current view while the refresh finishes in the background.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from shared.storage.cosmos import CosmosStore

log = logging.getLogger(__name__)
PAGE_SIZE = 100  # rows per Cosmos response page of a delta or a fetch
APPLY_BATCH = 32  # rows applied between yields to the event loop
Row = Mapping[str, Any]
Clock = Callable[[], float]


class MirrorView(Protocol):
    """What a mirror keeps for one partition: its live rows, in whatever shape serves reads."""

    @property
    def ids(self) -> set[str]:
        """The ids held."""
        ...

    def apply(self, row: Row) -> None:
        """Add or replace a live row."""
        ...

    def remove(self, row_id: str) -> Any:
        """Drop a row (no error when it is not held)."""
        ...

    def live_count(self, now: float) -> int:
        """How many held rows are live at `now` (wall-clock epoch seconds)."""
        ...


@runtime_checkable
class ReservingView(MirrorView, Protocol):
    """A view that prepares for a batch of rows before it is applied (e.g. grows storage off
    the event loop); the mirror calls `reserve` when the view has it."""

    async def reserve(self, extra: int) -> None:
        """Make room for `extra` more rows."""
        ...


V = TypeVar("V", bound=MirrorView)


@dataclass(frozen=True)
class Liveness:
    """Which rows of a partition count as live: as a SQL condition and as a predicate."""

    where: str  # e.g. "c.status = @live"; its parameters come from `parameters(now)`
    parameters: Callable[[float], dict[str, Any]]
    is_live: Callable[[Row, float], bool]


@dataclass
class _Partition(Generic[V]):
    """A partition's view and how fresh it is."""

    view: V
    last_ts: int = 0
    refreshed_at: float = -math.inf
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    refreshing: asyncio.Task[None] | None = None  # a background refresh in flight


class PartitionMirror(Generic[V]):
    """Views of the partitions of one container, each refreshed from Cosmos when due."""

    def __init__(
        self,
        store: CosmosStore,
        container: str,
        fields: Sequence[str],
        liveness: Liveness,
        new_view: Callable[[], V],
        refresh_seconds: float,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
    ) -> None:
        """Mirror `container`; `fields` are what a view needs of a row (`id` among them)."""
        self._store = store
        self._container = container
        self._select = ", ".join(f"c.{name}" for name in fields)
        self._liveness = liveness
        self._new_view = new_view
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._partitions: dict[str, _Partition[V]] = {}

    @property
    def views(self) -> dict[str, V]:
        """The views held, by partition."""
        return {key: state.view for key, state in self._partitions.items()}

    async def view(self, partition: str, wait: float | None = None) -> V:
        """The partition's view, refreshed first when older than `refresh_seconds`.

        `wait` (seconds) bounds the wait for that refresh once the view has loaded: the caller
        that finds the view due starts the refresh and waits at most `wait` for it; callers
        arriving while it runs are served the current view at once. None waits for it to end.
        """
        state = self._state(partition)
        if not self._is_due(state):
            return state.view
        if wait is None or not state.loaded:
            await self._refresh_when_due(partition, state)
            return state.view
        if state.refreshing is None or state.refreshing.done():
            state.refreshing = asyncio.create_task(self._refresh_when_due(partition, state))
            try:
                await asyncio.wait_for(asyncio.shield(state.refreshing), wait)
            except TimeoutError:
                log.debug("%s/%s: refresh continues in the background", self._container, partition)
        return state.view

    async def refresh(self, partition: str) -> V:
        """Refreshes the partition's view now, whatever its age (errors raise)."""
        state = self._state(partition)
        async with state.lock:
            await self._sync(partition, state)
            state.refreshed_at = self._monotonic()
        return state.view

    def apply(self, partition: str, rows: Iterable[Row]) -> None:
        """Apply rows this instance wrote (or a delta from elsewhere) to a loaded view."""
        state = self._partitions.get(partition)
        if state is not None and state.loaded:
            self._apply(state, rows)

    def remove(self, partition: str, row_ids: Iterable[str]) -> None:
        """Drop rows this instance deleted or found gone."""
        state = self._partitions.get(partition)
        if state is not None:
            for row_id in row_ids:
                state.view.remove(row_id)

    def forget(self, partitions: Iterable[str] | None = None) -> None:
        """Drop the given partitions' views (all when None); they reload on next use."""
        if partitions is None:
            self._partitions.clear()
            return
        for partition in partitions:
            self._partitions.pop(partition, None)

    async def settle(self) -> None:
        """Waits for the background refreshes in flight (before closing the Cosmos client)."""
        tasks = [state.refreshing for state in self._partitions.values() if state.refreshing]
        await asyncio.gather(*tasks, return_exceptions=True)

    # refreshing ---------------------------------------------------------------------------

    def _state(self, partition: str) -> _Partition[V]:
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _Partition(self._new_view())
        return state

    def _is_due(self, state: _Partition[V]) -> bool:
        """True when the partition was never loaded or its refresh interval has passed."""
        return self._monotonic() - state.refreshed_at >= self._refresh_seconds

    async def _refresh_when_due(self, partition: str, state: _Partition[V]) -> None:
        """One refresh at a time; callers that waited for the lock then find it fresh."""
        async with state.lock:
            if self._is_due(state):
                await self._refresh_or_keep(partition, state)

    async def _refresh_or_keep(self, partition: str, state: _Partition[V]) -> None:
        """A failed refresh keeps serving the last view; a failed first load raises."""
        try:
            await self._sync(partition, state)
        except Exception:
            if not state.loaded:
                raise
            log.warning(
                "refreshing %s/%s failed; serving the last view",
                self._container,
                partition,
                exc_info=True,
            )
        state.refreshed_at = self._monotonic()

    async def _sync(self, partition: str, state: _Partition[V]) -> None:
        """Delta by `_ts`, then a live count; ids are re-listed only when the counts differ."""
        rows = await self._store.query_partition(
            self._container, partition, "c._ts >= @since", {"@since": state.last_ts},
            select=f"{self._select}, c._ts", page_size=PAGE_SIZE,
        )  # fmt: skip
        await self._apply_in_batches(state, rows)
        for row in rows:
            state.last_ts = max(state.last_ts, int(row.get("_ts") or 0))
        now = self._clock()
        live = await self._store.query_partition(
            self._container, partition, self._liveness.where, self._liveness.parameters(now),
            select="VALUE COUNT(1)",
        )  # fmt: skip
        if live and live[0] != state.view.live_count(now):
            await self._reconcile(partition, state, now)
        state.loaded = True

    async def _apply_in_batches(self, state: _Partition[V], rows: Sequence[Row]) -> None:
        """`_apply`, APPLY_BATCH rows at a time, yielding to the event loop in between."""
        if rows and isinstance(state.view, ReservingView):
            await state.view.reserve(len(rows))
        for start in range(0, len(rows), APPLY_BATCH):
            if start:
                await asyncio.sleep(0)
            self._apply(state, rows[start : start + APPLY_BATCH])

    def _apply(self, state: _Partition[V], rows: Iterable[Row]) -> None:
        """Live rows in, others out."""
        now = self._clock()
        for row in rows:
            if self._liveness.is_live(row, now):
                state.view.apply(row)
            else:
                state.view.remove(row["id"])

    async def _reconcile(self, partition: str, state: _Partition[V], now: float) -> None:
        """Drop rows no longer live; fetch live ones the delta missed."""
        listed = await self._store.query_partition(
            self._container, partition, self._liveness.where, self._liveness.parameters(now),
            select="c.id",
        )  # fmt: skip
        live_ids = {row["id"] for row in listed}
        for row_id in state.view.ids - live_ids:
            state.view.remove(row_id)
        missing = sorted(live_ids - state.view.ids)
        if missing:
            rows = await self._store.query_partition(
                self._container, partition, "ARRAY_CONTAINS(@ids, c.id)", {"@ids": missing},
                select=self._select, page_size=PAGE_SIZE,
            )  # fmt: skip
            await self._apply_in_batches(state, rows)


__all__ = ["Liveness", "MirrorView", "PartitionMirror", "ReservingView"]
