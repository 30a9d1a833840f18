"""Shared state as one Cosmos item per key, written by compare-and-swap on its ETag.

Circuit breakers, rate-limit buckets and budget counters are each a small state per key that
many instances update at once. The container is partitioned by the key (`/id`), so every read
and write is a 1-RU point operation, and every write is conditional: a replace If-Match the
ETag read (a create when the item did not exist). A write that lost to another instance is a
`Conflict`; `compare_and_swap` then re-reads and re-applies the transition, a bounded number of
times, optionally pausing between tries. Every store call counts in `ops`, so tests and
benches can state what a decision costs.

The store is generic over the state type through a `Codec`; a `MemoryCasStore` with the same
ETag semantics serves unit tests and single-instance runs. A state may be anything a codec can
write, e.g. a lease on a slice of a shared quantity.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from shared.storage.cosmos import AlreadyExists, CosmosStore, ItemNotFound, PreconditionFailed

T = TypeVar("T")
Outcome = Literal["written", "unchanged", "refused", "contended"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A state with the ETag it was read or written at (None: the item does not exist)."""

    state: T
    etag: str | None


class Conflict(Exception):
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


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a state becomes an item (whose `id` is `item_id(key)`) and back."""

    key_of: Callable[[T], str]
    to_item: Callable[[T], dict[str, Any]]
    from_item: Callable[[dict[str, Any]], T]  # Cosmos system fields are ignored
    item_id: Callable[[str], str] = str  # the Cosmos id (and partition key) of a key


class CasStore(Protocol[T]):
    """States by key with compare-and-swap writes; every call counts in `ops`."""

    ops: OpCounts

    async def get(self, key: str) -> Versioned[T] | None:
        """The stored state, or None when the key has never been written."""
        ...

    async def put(self, state: T, etag: str | None) -> Versioned[T]:
        """Write `state` if the stored ETag is still `etag` (None: only if absent)."""
        ...

    async def all(self) -> list[Versioned[T]]:
        """Every stored state (a cross-partition scan: admin views and timers only)."""
        ...


class CosmosCasStore(Generic[T]):
    """States in a Cosmos container partitioned by `/id`, one item per key."""

    def __init__(self, store: CosmosStore, container: str, codec: Codec[T]) -> None:
        """Use `container` of `store` (registered by the caller with its spec)."""
        self._store = store
        self._container = container
        self._codec = codec
        self.ops = OpCounts()

    async def get(self, key: str) -> Versioned[T] | None:
        """One point read."""
        self.ops.reads += 1
        identifier = self._codec.item_id(key)
        try:
            item = await self._store.read(self._container, identifier, identifier)
        except Exception:
            self.ops.errors += 1
            raise
        return None if item is None else self._versioned(item)

    async def put(self, state: T, etag: str | None) -> Versioned[T]:
        """One create (no ETag) or replace If-Match; a lost race is a Conflict."""
        self.ops.writes += 1
        item = self._codec.to_item(state)
        try:
            if etag is None:
                written = await self._store.create(self._container, item)
            else:
                written = await self._store.replace(self._container, item, etag)
        except (AlreadyExists, PreconditionFailed, ItemNotFound) as error:
            self.ops.conflicts += 1
            raise Conflict(self._codec.key_of(state)) from error
        except Exception:
            self.ops.errors += 1
            raise
        return self._versioned(written)

    async def all(self) -> list[Versioned[T]]:
        """Every item of the container."""
        self.ops.reads += 1
        items = await self._store.query(self._container, "SELECT * FROM c")
        return [self._versioned(item) for item in items]

    def _versioned(self, item: dict[str, Any]) -> Versioned[T]:
        return Versioned(self._codec.from_item(item), item["_etag"])


class MemoryCasStore(Generic[T]):
    """A process-local store with real ETag semantics (unit tests, single-instance runs)."""

    def __init__(self, codec: Codec[T]) -> None:
        """Start empty."""
        self._codec = codec
        self.items: dict[str, Versioned[T]] = {}
        self.ops = OpCounts()
        self._version = 0

    async def get(self, key: str) -> Versioned[T] | None:
        """The stored state, or None."""
        self.ops.reads += 1
        return self.items.get(key)

    async def put(self, state: T, etag: str | None) -> Versioned[T]:
        """Compare-and-swap on the version string."""
        self.ops.writes += 1
        key = self._codec.key_of(state)
        current = self.items.get(key)
        if (current.etag if current else None) != etag:
            self.ops.conflicts += 1
            raise Conflict(key)
        self._version += 1
        stored = Versioned(state, str(self._version))
        self.items[key] = stored
        return stored

    async def all(self) -> list[Versioned[T]]:
        """Every stored state."""
        self.ops.reads += 1
        return list(self.items.values())


@dataclass(frozen=True)
class Swapped(Generic[T]):
    """How a compare-and-swap ended, the state it ended on, and how many races it lost.

    written: `current` is what this call wrote; unchanged: the transition changed nothing;
    refused: the transition refused the latest state; contended: every attempt lost a race.
    """

    outcome: Outcome
    current: Versioned[T]
    lost: int = 0


async def compare_and_swap(
    store: CasStore[T],
    transition: Callable[[T, float], T | None],
    *,
    read: Callable[[], Awaitable[Versioned[T]]],
    first: Versioned[T] | None = None,
    attempts: int,
    clock: Clock,
    pause: Callable[[int], float] | None = None,
    skip_unchanged: bool = True,
) -> Swapped[T]:
    """Apply `transition` (None: refuse, write nothing) by compare-and-swap.

    `first` is a copy the caller already holds (a cache): the first try writes against its
    ETag, so an uncontended update costs one write; a refusal computed from it is confirmed by
    a fresh `read()` first. After a lost race the state is re-read (after `pause(attempt)`
    seconds, when given) and the transition re-applied, at most `attempts` tries in all.
    A transition that changes nothing writes nothing, unless `skip_unchanged` is False (the
    write then also proves the item is still at that version).
    """
    stored, fresh = (first, False) if first is not None else (await read(), True)
    lost = 0
    for attempt in range(1, attempts + 1):
        changed = transition(stored.state, clock())
        if changed is None:
            if fresh:
                return Swapped("refused", stored, lost)
            stored, fresh = await read(), True
            continue
        if skip_unchanged and changed == stored.state:
            return Swapped("unchanged", stored, lost)
        try:
            return Swapped("written", await store.put(changed, stored.etag), lost)
        except Conflict:
            lost += 1
            if attempt == attempts:
                break  # a re-read no try would use
            if pause is not None:
                await asyncio.sleep(pause(attempt))
            stored, fresh = await read(), True
    return Swapped("contended", stored, lost)


@dataclass
class KeyLocks:
    """One asyncio lock per key: writers in one process take turns, so only other instances
    can make a write conflict (a lock is dropped once nobody holds or waits on it)."""

    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )

    def __call__(self, key: str) -> asyncio.Lock:
        """The lock of `key`."""
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock


__all__ = [
    "CasStore",
    "Codec",
    "Conflict",
    "CosmosCasStore",
    "KeyLocks",
    "MemoryCasStore",
    "OpCounts",
    "Swapped",
    "Versioned",
    "compare_and_swap",
]
