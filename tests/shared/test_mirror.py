"""PartitionMirror's scheduling, on a scripted store: a bounded wait for a due refresh, the
refresh continuing in the background, and large deltas applied with the event loop free."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.storage.mirror import APPLY_BATCH, Liveness, PartitionMirror

LIVE = Liveness("c.live = true", lambda now: {}, lambda row, now: bool(row.get("live")))


class ScriptedStore:
    """Serves a partition's rows; the delta query can be held until released."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.deltas = 0

    async def query_partition(
        self, container: str, partition: str, where: str, parameters: dict[str, Any], **kw: Any
    ) -> list[Any]:
        if kw["select"] == "VALUE COUNT(1)":
            return [sum(1 for row in self.rows if row["live"])]
        if kw["select"] == "c.id":
            return [{"id": row["id"]} for row in self.rows if row["live"]]
        self.deltas += 1
        await self.release.wait()
        return [row for row in self.rows if row["_ts"] >= parameters.get("@since", 0)]


class RecordingView:
    """A view that records what it holds and each batch it was given."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, Any]] = {}
        self.log: list[str] = []

    @property
    def ids(self) -> set[str]:
        return set(self.held)

    def apply(self, row: dict[str, Any]) -> None:
        self.held[row["id"]] = row
        self.log.append("row")

    def remove(self, row_id: str) -> None:
        self.held.pop(row_id, None)

    def live_count(self, now: float) -> int:
        return len(self.held)


def mirror(store: ScriptedStore, view: RecordingView | None = None) -> PartitionMirror[Any]:
    """A mirror refreshing at every call (refresh_seconds=0)."""
    new_view = (lambda: view) if view is not None else RecordingView
    return PartitionMirror(store, "rows", ("id", "live"), LIVE, new_view, 0.0)  # type: ignore[arg-type]


def row(n: int, ts: int = 1) -> dict[str, Any]:
    return {"id": f"r{n}", "live": True, "_ts": ts}


async def test_a_question_waits_at_most_the_bound_then_the_refresh_finishes_behind() -> None:
    store = ScriptedStore()
    store.rows = [row(1)]
    rows = mirror(store)
    assert (await rows.view("p", wait=0.01)).ids == {"r1"}  # first load: waited for in full

    store.rows.append(row(2, ts=2))
    store.release.clear()  # Cosmos is slow now
    view = await rows.view("p", wait=0.01)
    assert view.ids == {"r1"}  # served the current view
    deltas = store.deltas
    assert (await rows.view("p", wait=0.01)).ids == {"r1"}  # no second refresh meanwhile
    assert store.deltas == deltas

    store.release.set()
    await rows.settle()
    assert view.ids == {"r1", "r2"}  # the background refresh landed in the same view


async def test_without_a_bound_a_question_waits_for_the_refresh() -> None:
    store = ScriptedStore()
    rows = mirror(store)
    await rows.view("p")
    store.rows.append(row(3))
    assert (await rows.view("p")).ids == {"r3"}


async def test_a_large_delta_is_applied_in_batches_with_the_loop_free_between() -> None:
    store = ScriptedStore()
    store.rows = [row(n) for n in range(5 * APPLY_BATCH)]
    view = RecordingView()
    rows = mirror(store, view)
    ticking = True

    async def tick() -> None:
        while ticking:
            view.log.append("tick")
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await rows.refresh("p")
    ticking = False
    await ticker
    applied = [entry for entry in view.log if entry == "row"]
    assert len(applied) == 5 * APPLY_BATCH
    runs = "".join("r" if entry == "row" else "t" for entry in view.log).split("t")
    assert max(len(run) for run in runs) == APPLY_BATCH  # never more rows without a tick
