"""Where rate-limit buckets live: `shared.storage.cas` over the Cosmos container `rate_limits`.

One item per bucket, partitioned by its id, so every read and write is a point operation on
one logical partition; a take is conditional on the ETag read (or on absence), which is what
makes it atomic with respect to every other instance.
"""

from __future__ import annotations

from shared.resilience.ratelimit_buckets import BucketState
from shared.storage.cas import (
    CasStore,
    Codec,
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


BUCKET_CODEC: Codec[BucketState] = Codec(
    key_of=lambda state: state.id, to_item=BucketState.to_item, from_item=BucketState.from_item
)


class MemoryBucketStore(MemoryCasStore[BucketState]):
    """A process-local store with real ETag semantics (unit tests, single-instance runs)."""

    def __init__(self) -> None:
        """Start empty."""
        super().__init__(BUCKET_CODEC)


class CosmosBucketStore(CosmosCasStore[BucketState]):
    """Buckets in the Cosmos container `rate_limits` (partition key /id), one item each."""

    def __init__(self, store: CosmosStore, container: str = RATE_LIMITS_CONTAINER.name) -> None:
        """Use `container` of `store` (registered by the caller: see RATE_LIMITS_CONTAINER)."""
        super().__init__(store, container, BUCKET_CODEC)


__all__ = [
    "RATE_LIMITS_CONTAINER",
    "BucketConflict",
    "BucketStore",
    "CosmosBucketStore",
    "MemoryBucketStore",
    "OpCounts",
    "Stored",
]
