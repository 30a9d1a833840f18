"""Where rate-limit buckets live: `shared.storage.cas` over the Cosmos container `rate_limits`.

One item per bucket, partitioned by its id, so every read and write is a point operation on
one logical partition; a take is conditional on the ETag read (or on absence), which is what
makes it atomic with respect to every other instance.
"""

from __future__ import annotations

from typing import Any

from shared.resilience.ratelimit_buckets import BucketState
from shared.storage.cas import (
    CasStore,
    Conflict,
    CosmosCasStore,
    MemoryCasStore,
    OpCounts,
    Versioned,
)
from shared.storage.cosmos import ContainerSpec, CosmosStore

# An idle bucket is full again within a minute (or after repaying its debt), and a missing item
# reads as full, so expiring items a day after their last write forgets nothing that matters.
RATE_LIMITS_CONTAINER = ContainerSpec("rate_limits", "/id", default_ttl=86_400)

Stored = Versioned  # a bucket state with the ETag it was read or written at
BucketConflict = Conflict
BucketStore = CasStore[BucketState]


class BucketCodec:
    """Bucket states as Cosmos items (the bucket id is already a safe id)."""

    def key_of(self, state: BucketState) -> str:
        """The bucket id."""
        return state.id

    def item_id(self, key: str) -> str:
        """The bucket id itself."""
        return key

    def to_item(self, state: BucketState) -> dict[str, Any]:
        """The item."""
        return state.to_item()

    def from_item(self, item: dict[str, Any]) -> BucketState:
        """The state."""
        return BucketState.from_item(item)


class MemoryBucketStore(MemoryCasStore[BucketState]):
    """A process-local store with real ETag semantics (unit tests, single-instance runs)."""

    def __init__(self) -> None:
        """Start empty."""
        super().__init__(BucketCodec())


class CosmosBucketStore(CosmosCasStore[BucketState]):
    """Buckets in the Cosmos container `rate_limits` (partition key /id), one item each."""

    def __init__(self, store: CosmosStore, container: str = RATE_LIMITS_CONTAINER.name) -> None:
        """Use `container` of `store` (registered by the caller: see RATE_LIMITS_CONTAINER)."""
        super().__init__(store, container, BucketCodec())


__all__ = [
    "RATE_LIMITS_CONTAINER",
    "BucketConflict",
    "BucketStore",
    "CosmosBucketStore",
    "MemoryBucketStore",
    "OpCounts",
    "Stored",
]
