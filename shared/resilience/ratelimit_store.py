"""Where rate-limit buckets live: a compare-and-swap store over Cosmos (or memory for tests).

One item per bucket in the container `rate_limits`, partitioned by its id, so every read and
write is a point operation on one logical partition. `put` is conditional on the ETag read
(or on absence), which is what makes a take atomic with respect to every other instance.
Every call is counted in `ops`, so tests and the bench can state the cost of a decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shared.resilience.ratelimit_buckets import BucketState
from shared.storage.cosmos import (
    AlreadyExists,
    ContainerSpec,
    CosmosStore,
    ItemNotFound,
    PreconditionFailed,
)

# An idle bucket is full again within a minute (or after repaying its debt), and a missing item
# reads as full, so expiring items a day after their last write forgets nothing that matters.
RATE_LIMITS_CONTAINER = ContainerSpec("rate_limits", "/id", default_ttl=86_400)


@dataclass(frozen=True)
class Stored:
    """A bucket state with the ETag it was read or written at (None: the item does not exist)."""

    state: BucketState
    etag: str | None


class BucketConflict(Exception):
    """A conditional write lost: the item changed (412), appeared (409) or vanished (404)."""


@dataclass
class OpCounts:
    """Store round trips made so far, by kind."""

    reads: int = 0
    writes: int = 0
    conflicts: int = 0  # writes refused because another writer got there first
    errors: int = 0  # calls that failed for any other reason

    @property
    def total(self) -> int:
        """Round trips of any kind (a conflict is one of the writes)."""
        return self.reads + self.writes

    def snapshot(self) -> OpCounts:
        """A copy, to diff against later."""
        return OpCounts(self.reads, self.writes, self.conflicts, self.errors)

    def since(self, earlier: OpCounts) -> OpCounts:
        """The calls made after `earlier` was taken."""
        return OpCounts(
            self.reads - earlier.reads,
            self.writes - earlier.writes,
            self.conflicts - earlier.conflicts,
            self.errors - earlier.errors,
        )


class BucketStore(Protocol):
    """Bucket items with compare-and-swap writes; every call counts in `ops`."""

    ops: OpCounts

    async def get(self, bucket_id: str) -> Stored | None:
        """The stored bucket, or None when it has never been written."""
        ...

    async def put(self, state: BucketState, etag: str | None) -> Stored:
        """Write `state` if the stored ETag is still `etag` (None: only if absent)."""
        ...


@dataclass
class MemoryBucketStore:
    """A process-local store with real ETag semantics (unit tests, single-instance runs)."""

    ops: OpCounts = field(default_factory=OpCounts)
    items: dict[str, Stored] = field(default_factory=dict)
    _version: int = 0

    async def get(self, bucket_id: str) -> Stored | None:
        """The stored bucket, or None."""
        self.ops.reads += 1
        return self.items.get(bucket_id)

    async def put(self, state: BucketState, etag: str | None) -> Stored:
        """Compare-and-swap on the version string."""
        self.ops.writes += 1
        current = self.items.get(state.id)
        if (current.etag if current else None) != etag:
            self.ops.conflicts += 1
            raise BucketConflict(state.id)
        self._version += 1
        stored = Stored(state, str(self._version))
        self.items[state.id] = stored
        return stored


class CosmosBucketStore:
    """Buckets in the Cosmos container `rate_limits` (partition key /id), one item each."""

    def __init__(self, store: CosmosStore, container: str = RATE_LIMITS_CONTAINER.name) -> None:
        """Use `container` of `store` (registered by the caller: see RATE_LIMITS_CONTAINER)."""
        self._store = store
        self._container = container
        self.ops = OpCounts()

    async def get(self, bucket_id: str) -> Stored | None:
        """One point read."""
        self.ops.reads += 1
        try:
            item = await self._store.read(self._container, bucket_id, bucket_id)
        except Exception:
            self.ops.errors += 1
            raise
        return None if item is None else Stored(BucketState.from_item(item), item["_etag"])

    async def put(self, state: BucketState, etag: str | None) -> Stored:
        """One create (no ETag) or replace with If-Match; a lost race is BucketConflict."""
        self.ops.writes += 1
        try:
            if etag is None:
                item = await self._store.create(self._container, state.to_item())
            else:
                item = await self._store.replace(self._container, state.to_item(), etag)
        except (AlreadyExists, PreconditionFailed, ItemNotFound) as error:
            self.ops.conflicts += 1
            raise BucketConflict(state.id) from error
        except Exception:
            self.ops.errors += 1
            raise
        return Stored(BucketState.from_item(item), item["_etag"])
