"""Circuit breakers per key, shared by every instance through a store (Cosmos in Azure).

The transitions are pure functions of (state, now), so they are tested with a fake clock. The
`BreakerBoard` is what callers use: it keeps a short in-process cache so the hot path does not
read the store per request, and writes with optimistic concurrency (ETags) so two instances
recording failures at once never lose each other's update.

States: closed -> open after `failure_threshold` failures within `window_seconds`, or at once on a
throttle with Retry-After (open until now + the capped Retry-After). An open breaker becomes
half-open when its `open_until` passes; then one caller at a time holds the probe lease. A
probe success closes it, a probe failure opens it again.

Times are wall-clock epoch seconds: they are compared across instances, which a monotonic clock
cannot be. Clock skew between instances shifts an opening by that skew, a small fraction of the
open period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from shared.resilience.retry import cap
from shared.storage.cas import (
    CasStore,
    Codec,
    Conflict,
    CosmosCasStore,
    KeyLocks,
    MemoryCasStore,
    Versioned,
    compare_and_swap,
)
from shared.storage.cosmos import ContainerSpec, CosmosStore

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]

# One item per key, the key is the partition: every read and write is a 1-RU point operation.
BREAKERS_CONTAINER = ContainerSpec("breakers", "/id")


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens and for how long."""

    failure_threshold: int = 5  # failures within window_seconds that open the breaker
    window_seconds: float = 30.0
    open_seconds: float = 30.0
    max_open_seconds: float = 30.0  # cap on an opening set by Retry-After
    probe_lease_seconds: float = 30.0  # a probe that never reports frees the lease after this


@dataclass(frozen=True)
class BreakerState:
    """One key's breaker as stored; `state` is the stored phase, see `phase()` for the live one."""

    key: str
    state: State = "closed"
    failures: tuple[float, ...] = ()  # failure times inside the window, while closed
    opened_at: float | None = None
    open_until: float | None = None
    probe_lease_until: float | None = None
    updated: float = 0.0
    reason: str | None = None  # why it last opened: "failures", "retry_after", "probe_failed"

    def to_item(self) -> dict[str, Any]:
        """The Cosmos item (id is the key, escaped: Cosmos ids may not hold / \\ ? #)."""
        return {"id": item_id(self.key), **asdict(self), "failures": list(self.failures)}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> BreakerState:
        """Read back what `to_item` wrote, ignoring Cosmos system fields."""
        return cls(
            key=item["key"],
            state=item.get("state", "closed"),
            failures=tuple(item.get("failures") or ()),
            opened_at=item.get("opened_at"),
            open_until=item.get("open_until"),
            probe_lease_until=item.get("probe_lease_until"),
            updated=item.get("updated", 0.0),
            reason=item.get("reason"),
        )


def item_id(key: str) -> str:
    """A Cosmos-safe id for a breaker key."""
    return quote(key, safe="")


def phase(state: BreakerState, now: float) -> State:
    """The live phase: an open breaker whose open period has passed is half-open."""
    if state.state == "closed":
        return "closed"
    if state.open_until is not None and now < state.open_until:
        return "open"
    return "half_open"


def probe_lease_held(state: BreakerState, now: float) -> bool:
    """Whether some caller holds an unexpired probe lease."""
    return state.probe_lease_until is not None and now < state.probe_lease_until


def seconds_until_allowed(state: BreakerState, now: float) -> float:
    """How long until this breaker may let a call through again (0 when it may now)."""
    if phase(state, now) == "open" and state.open_until is not None:
        return state.open_until - now
    return 0.0


def _opened(state: BreakerState, now: float, seconds: float, reason: str) -> BreakerState:
    """`state` opened from `now` for `seconds`."""
    return replace(
        state,
        state="open",
        failures=(),
        opened_at=now,
        open_until=now + seconds,
        probe_lease_until=None,
        updated=now,
        reason=reason,
    )


def on_failure(
    state: BreakerState, now: float, policy: BreakerPolicy, retry_after: float | None = None
) -> BreakerState:
    """The breaker after one failure (returns `state` itself when nothing changes)."""
    hint = None if retry_after is None else cap(retry_after, policy.max_open_seconds)
    if hint is not None and hint <= 0:
        hint = None  # "Retry-After: 0" asks for no pause: an ordinary failure
    current = phase(state, now)
    if current == "half_open":
        return _opened(state, now, policy.open_seconds if hint is None else hint, "probe_failed")
    if current == "open":
        # Calls that began before the opening keep failing; only a longer hint extends it.
        if hint is None or state.open_until is None or now + hint <= state.open_until:
            return state
        return replace(state, open_until=now + hint, updated=now, reason="retry_after")
    if hint is not None:
        return _opened(state, now, hint, "retry_after")
    recent = (*(t for t in state.failures if t > now - policy.window_seconds), now)
    if len(recent) >= policy.failure_threshold:
        return _opened(state, now, policy.open_seconds, "failures")
    return replace(state, failures=recent[-policy.failure_threshold :], updated=now)


def on_success(state: BreakerState, now: float, started_at: float | None = None) -> BreakerState:
    """The breaker after one success that began at `started_at` (default: now).

    Only a call that began after the opening proves the key healthy again: successes of calls
    already in flight when a 429 opened it must not close it early. A closed breaker keeps its
    windowed failures (a key failing every other call still trips), so success costs no write.
    """
    if state.state == "closed":
        return state
    began = now if started_at is None else started_at
    if state.opened_at is not None and began < state.opened_at:
        return state
    return BreakerState(key=state.key, updated=now)


def try_acquire_probe(state: BreakerState, now: float, lease_seconds: float) -> BreakerState | None:
    """The state with a probe lease taken, or None when the breaker is not free to probe."""
    if phase(state, now) != "half_open" or probe_lease_held(state, now):
        return None
    return replace(state, state="half_open", probe_lease_until=now + lease_seconds, updated=now)


def describe(state: BreakerState, now: float) -> dict[str, Any]:
    """The admin view of one breaker."""
    return {
        "key": state.key,
        "state": phase(state, now),
        "failures": len(state.failures),
        "opened_at": state.opened_at,
        "open_until": state.open_until,
        "probe_lease_until": state.probe_lease_until,
        "updated": state.updated,
        "reason": state.reason,
    }


# Stores -----------------------------------------------------------------------------------

Stored = Versioned  # a breaker state with the ETag it was read or written at
BreakerConflict = Conflict
BreakerStore = CasStore[BreakerState]


BREAKER_CODEC: Codec[BreakerState] = Codec(
    key_of=lambda state: state.key,
    to_item=BreakerState.to_item,
    from_item=BreakerState.from_item,
    item_id=item_id,  # keys hold characters Cosmos ids may not
)


class MemoryBreakerStore(MemoryCasStore[BreakerState]):
    """A process-local store with real ETag semantics (tests and single-instance runs)."""

    def __init__(self) -> None:
        """Start empty."""
        super().__init__(BREAKER_CODEC)


class CosmosBreakerStore(CosmosCasStore[BreakerState]):
    """Breakers in the Cosmos container `breakers` (partition key /id), one item per key."""

    def __init__(self, store: CosmosStore, container: str = BREAKERS_CONTAINER.name) -> None:
        """Use `container` of `store` (registered by the caller: see BREAKERS_CONTAINER)."""
        super().__init__(store, container, BREAKER_CODEC)


class _Tolerant:
    """A breaker store whose failed writes (other than lost races) keep the decision locally:
    an unreachable breaker store must not take the chat API down with it."""

    def __init__(self, store: BreakerStore) -> None:
        self.store = store
        self.ops = store.ops

    async def get(self, key: str) -> Stored[BreakerState] | None:
        return await self.store.get(key)

    async def put(self, state: BreakerState, etag: str | None) -> Stored[BreakerState]:
        try:
            return await self.store.put(state, etag)
        except Conflict:
            raise
        except Exception:  # keep the decision locally; the store may be back next time
            log.warning("breaker store write failed for %s", state.key, exc_info=True)
            return Stored(state, etag)

    async def all(self) -> list[Stored[BreakerState]]:
        return await self.store.all()


# The board --------------------------------------------------------------------------------


@dataclass
class _Cached:
    """A stored state and when this instance fetched or wrote it."""

    stored: Stored
    fetched_at: float


@dataclass
class BreakerBoard:
    """The breakers callers consult: cached reads, compare-and-swap writes, one probe at a time.

    Store failures never fail the caller: the board falls back to its cached copy (or closed),
    because an unreachable breaker store must not take the chat API down with it.
    """

    store: BreakerStore
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    cache_seconds: float = 2.0
    clock: Clock = time.time
    max_write_attempts: int = 8
    _cache: dict[str, _Cached] = field(default_factory=dict, init=False, repr=False)
    _locks: KeyLocks = field(default_factory=KeyLocks, init=False, repr=False)

    def now(self) -> float:
        """The board's clock (epoch seconds), for callers' `started_at`."""
        return self.clock()

    async def allows(self, key: str) -> bool:
        """Whether a call for `key` may go ahead now (in half-open: only the lease winner)."""
        stored = await self._current(key)
        now = self.clock()
        current = phase(stored.state, now)
        if current != "half_open":
            return current == "closed"
        if probe_lease_held(stored.state, now):
            return False
        return await self._acquire_probe(key)

    async def state(self, key: str) -> BreakerState:
        """The state as this instance currently believes it (read through the cache)."""
        return (await self._current(key)).state

    def cached(self, key: str) -> BreakerState | None:
        """The cached state without any I/O (None when never fetched)."""
        entry = self._cache.get(key)
        return None if entry is None else entry.stored.state

    async def record_success(
        self, key: str, *, started_at: float | None = None, fresh: bool = False
    ) -> BreakerState:
        """A call that began at `started_at` (board clock) succeeded; closes open/half-open.

        fresh=True re-reads the store first (a health probe must close a breaker another
        instance opened); otherwise a breaker cached as closed costs no I/O at all.
        """
        entry = self._cache.get(key)
        if fresh:
            await self._fetch(key, entry)
        elif entry is not None and entry.stored.state.state == "closed":
            return entry.stored.state
        state, _ = await self._update(key, lambda s, now: on_success(s, now, started_at))
        return state

    async def record_failure(
        self, key: str, retry_after_seconds: float | None = None
    ) -> BreakerState:
        """A call failed (retryably); a Retry-After opens the breaker at once for that long."""
        state, _ = await self._update(
            key, lambda s, now: on_failure(s, now, self.policy, retry_after_seconds)
        )
        return state

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every key's state for the admin view (read from the store, cache as fallback)."""
        now = self.clock()
        try:
            stored = {item.state.key: item for item in await self.store.all()}
        except Exception:  # the admin view must still answer when the store does not
            log.warning("breaker store unavailable; showing cached states", exc_info=True)
            stored = {key: entry.stored for key, entry in self._cache.items()}
        for item in stored.values():
            self._remember(item, now)
        return {key: describe(item.state, now) for key, item in sorted(stored.items())}

    # internals ----------------------------------------------------------------------------

    def _lock(self, key: str) -> asyncio.Lock:
        """One lock per key: concurrent requests share one store read and take turns writing."""
        return self._locks(key)

    def _fresh(self, entry: _Cached, now: float) -> bool:
        """Whether the cached copy may be used without asking the store."""
        if now - entry.fetched_at < self.cache_seconds:
            return True
        # An open breaker cannot close before open_until (short of a probe), so trust it till then.
        return phase(entry.stored.state, now) == "open"

    def _remember(self, stored: Stored, now: float) -> Stored:
        """Cache `stored` as of `now`."""
        self._cache[stored.state.key] = _Cached(stored, now)
        return stored

    async def _current(self, key: str) -> Stored:
        """The cached state when fresh, else one store read (shared by concurrent callers)."""
        entry = self._cache.get(key)
        if entry is not None and self._fresh(entry, self.clock()):
            return entry.stored
        async with self._lock(key):
            entry = self._cache.get(key)
            if entry is not None and self._fresh(entry, self.clock()):
                return entry.stored
            return await self._fetch(key, entry)

    async def _fetch(self, key: str, fallback: _Cached | None) -> Stored:
        """Read `key` from the store; on a store error keep the last copy (or closed)."""
        try:
            stored = await self.store.get(key) or Stored(BreakerState(key=key), None)
        except Exception:  # fail open on the store, not on the region: see the class docstring
            log.warning("breaker store read failed for %s", key, exc_info=True)
            stored = fallback.stored if fallback else Stored(BreakerState(key=key), None)
        return self._remember(stored, self.clock())

    async def _acquire_probe(self, key: str) -> bool:
        """Take the half-open probe lease by compare-and-swap; False when another caller won."""
        lease = self.policy.probe_lease_seconds
        _, won = await self._update(key, lambda s, now: try_acquire_probe(s, now, lease) or s)
        return won

    async def _update(
        self, key: str, transition: Callable[[BreakerState, float], BreakerState]
    ) -> tuple[BreakerState, bool]:
        """Apply `transition` with compare-and-swap, re-reading on conflict (bounded retries).

        Returns the resulting state and whether this call's change was applied. The first try
        uses the cached ETag, so an uncontended write costs one store call. Writers in this
        process take turns (the per-key lock): only other instances can make a write conflict.
        """
        async with self._lock(key):
            entry = self._cache.get(key)
            swapped = await compare_and_swap(
                _Tolerant(self.store),
                transition,
                read=lambda: self._fetch(key, self._cache.get(key)),
                first=entry.stored if entry else None,
                attempts=self.max_write_attempts,
                clock=self.clock,
            )
        if swapped.outcome == "written":
            return self._remember(swapped.current, self.clock()).state, True
        if swapped.outcome == "contended":
            log.warning("breaker %s: gave up after %d conflicts", key, self.max_write_attempts)
        return swapped.current.state, False
