"""Hit bookkeeping that does not turn every cache hit into a synchronous Cosmos write.

HitBuffer: a hit only bumps an in-memory (count, last_hit) per entry. The facade flushes the
buffer at most once per `hit_flush_seconds`, on the lookup or store that finds it due, as one
Cosmos patch per entry hit since the last flush (`incr hits`, `set last_hit`), run concurrently.
A crash loses at most one interval of counts: they only steer LRU/LFU eviction.

Stats: hits, misses, stores, evictions, invalidations and guard rejections are counted per
instance (since it started) and per partition. Functions scale out, so fleet totals are the sum
over instances (telemetry); entry sizes and the flushed per-entry hit counts come from Cosmos
and are global.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class PartitionStats:
    """One instance's counters for one partition."""

    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    stores: int = 0
    evictions: int = 0
    invalidations: int = 0
    guard_rejections: int = 0

    @property
    def hits(self) -> int:
        """Exact plus semantic hits."""
        return self.exact_hits + self.semantic_hits

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0 when there were none)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def add(self, other: PartitionStats) -> None:
        """Accumulate another partition's counters into this one."""
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_json(self) -> dict[str, float | int]:
        """The counters plus hits and hit rate."""
        return {**asdict(self), "hits": self.hits, "hit_rate": round(self.hit_rate, 4)}


class HitBuffer:
    """Pending (hit count, last hit) per (partition, entry id), waiting for a flush."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, partition: str, entry_id: str, now: float) -> None:
        """Count one hit at `now`."""
        count, _ = self._pending.get((partition, entry_id), (0, now))
        self._pending[(partition, entry_id)] = (count + 1, now)

    def take(self, partition: str | None = None) -> dict[tuple[str, str], tuple[int, float]]:
        """Remove and return the pending hits (of one partition, or all)."""
        if partition is None:
            taken, self._pending = self._pending, {}
            return taken
        taken = {key: value for key, value in self._pending.items() if key[0] == partition}
        for key in taken:
            del self._pending[key]
        return taken


__all__ = ["HitBuffer", "PartitionStats"]
