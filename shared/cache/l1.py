"""The in-process L1: one PartitionMatrix per cache partition, a mirror of the Cosmos container.

`shared.storage.mirror.PartitionMirror` keeps each partition's matrix fresh (delta by `_ts`, a
live count, ids re-listed only after a deletion); here is only what "live" means for a cached
answer: its own `expires_at` has not passed (the emulator ignores TTL, and a hit-counter patch
restarts Cosmos's TTL clock). A stale L1 can only propose a candidate: every semantic hit is
confirmed by a point read of the entry (see cache.py), so an entry deleted by another instance
is never served, only wasted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.cache.entries import CONTAINER, is_fresh
from shared.cache.matrix import PartitionMatrix
from shared.storage.cosmos import CosmosStore
from shared.storage.mirror import Liveness, PartitionMirror

FIELDS = ("id", "question", "embedding", "expires_at")
UNEXPIRED = Liveness(
    where="c.expires_at > @now",
    parameters=lambda now: {"@now": now},
    is_live=lambda row, now: is_fresh(row, now),
)


def l1_mirror(
    store: CosmosStore,
    refresh_seconds: float,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> PartitionMirror[PartitionMatrix]:
    """Per-partition matrices of the semantic_cache container's unexpired entries."""
    return PartitionMirror(
        store, CONTAINER, FIELDS, UNEXPIRED, PartitionMatrix, refresh_seconds, clock, monotonic
    )


__all__ = ["FIELDS", "UNEXPIRED", "l1_mirror"]
