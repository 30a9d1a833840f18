"""Circuit breaker transitions, the board's cache and CAS writes, and the Cosmos store."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from shared.resilience.breaker import (
    BREAKERS_CONTAINER,
    BreakerBoard,
    BreakerConflict,
    BreakerPolicy,
    BreakerState,
    CosmosBreakerStore,
    MemoryBreakerStore,
    Stored,
    on_failure,
    on_success,
    phase,
    try_acquire_probe,
)
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

T0 = 1_700_000_000.0
POLICY = BreakerPolicy(
    failure_threshold=3,
    window_seconds=10,
    open_seconds=20,
    max_open_seconds=30,
    probe_lease_seconds=5,
)


class FakeClock:
    """A settable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryBreakerStore):
    """A memory store that counts calls, to prove what the hot path costs."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.puts = 0

    async def get(self, key: str) -> Stored | None:
        self.gets += 1
        return await super().get(key)

    async def put(self, state: BreakerState, etag: str | None) -> Stored:
        self.puts += 1
        await asyncio.sleep(0)  # let racing writers interleave, as over a network
        return await super().put(state, etag)


class BrokenStore(MemoryBreakerStore):
    """A store whose every call fails, like Cosmos being unreachable."""

    async def get(self, key: str) -> Stored | None:
        raise ConnectionError("cosmos unreachable")

    async def put(self, state: BreakerState, etag: str | None) -> Stored:
        raise ConnectionError("cosmos unreachable")

    async def all(self) -> list[Stored]:
        raise ConnectionError("cosmos unreachable")


def fail_times(state: BreakerState, times: list[float]) -> BreakerState:
    """`state` after failures at each of `times`."""
    for now in times:
        state = on_failure(state, now, POLICY)
    return state


# Pure transitions -------------------------------------------------------------------------


def test_opens_after_n_failures_within_the_window() -> None:
    state = fail_times(BreakerState("k"), [T0, T0 + 1])
    assert phase(state, T0 + 1) == "closed" and len(state.failures) == 2
    state = on_failure(state, T0 + 2, POLICY)
    assert phase(state, T0 + 2) == "open"
    assert state.opened_at == T0 + 2 and state.open_until == T0 + 22 and state.reason == "failures"


def test_failures_outside_the_window_do_not_count() -> None:
    state = fail_times(BreakerState("k"), [T0, T0 + 1, T0 + 11.5])
    assert phase(state, T0 + 11.5) == "closed" and state.failures == (T0 + 11.5,)


def test_retry_after_opens_at_once_for_the_capped_hint() -> None:
    state = on_failure(BreakerState("k"), T0, POLICY, retry_after=86_400)
    assert phase(state, T0) == "open" and state.open_until == T0 + 30
    assert state.reason == "retry_after"


def test_retry_after_zero_is_an_ordinary_failure() -> None:
    state = on_failure(BreakerState("k"), T0, POLICY, retry_after=0)
    assert phase(state, T0) == "closed" and state.failures == (T0,)


def test_open_extends_only_for_a_longer_hint() -> None:
    state = on_failure(BreakerState("k"), T0, POLICY, retry_after=10)
    assert on_failure(state, T0 + 1, POLICY) is state
    assert on_failure(state, T0 + 1, POLICY, retry_after=5) is state
    assert on_failure(state, T0 + 1, POLICY, retry_after=20).open_until == T0 + 21


def test_half_open_after_the_open_period_then_one_probe_lease() -> None:
    state = on_failure(BreakerState("k"), T0, POLICY, retry_after=10)
    assert phase(state, T0 + 9.9) == "open" and phase(state, T0 + 10) == "half_open"
    assert try_acquire_probe(state, T0 + 5, 5) is None  # still open
    leased = try_acquire_probe(state, T0 + 10, 5)
    assert leased is not None and leased.probe_lease_until == T0 + 15
    assert try_acquire_probe(leased, T0 + 12, 5) is None  # one probe at a time
    assert try_acquire_probe(leased, T0 + 15, 5) is not None  # an abandoned lease lapses


def test_probe_success_closes_and_probe_failure_reopens() -> None:
    state = try_acquire_probe(fail_times(BreakerState("k"), [T0] * 3), T0 + 20, 5)
    assert state is not None
    closed = on_success(state, T0 + 21, started_at=T0 + 20)
    assert phase(closed, T0 + 21) == "closed" and closed.failures == ()
    reopened = on_failure(state, T0 + 21, POLICY)
    assert phase(reopened, T0 + 21) == "open" and reopened.open_until == T0 + 41
    assert reopened.reason == "probe_failed" and reopened.probe_lease_until is None


def test_success_of_a_call_begun_before_the_opening_does_not_close() -> None:
    state = on_failure(BreakerState("k"), T0, POLICY, retry_after=10)
    assert on_success(state, T0 + 1, started_at=T0 - 0.5) is state
    assert phase(on_success(state, T0 + 1, started_at=T0 + 0.5), T0 + 1) == "closed"


def test_success_while_closed_changes_nothing() -> None:
    state = fail_times(BreakerState("k"), [T0])
    assert on_success(state, T0 + 1) is state


def test_item_round_trip_escapes_the_key() -> None:
    state = on_failure(BreakerState("llm:east/us?#"), T0, POLICY, retry_after=3)
    item = state.to_item()
    assert "/" not in item["id"] and "?" not in item["id"] and "#" not in item["id"]
    assert BreakerState.from_item({**item, "_etag": "x", "_ts": 1}) == state


# The board --------------------------------------------------------------------------------


def board(store: MemoryBreakerStore, clock: FakeClock, cache: float = 2.0) -> BreakerBoard:
    """A board on `store` with the test policy."""
    return BreakerBoard(store, POLICY, cache_seconds=cache, clock=clock)


async def test_board_opens_and_half_opens_with_the_clock() -> None:
    clock = FakeClock()
    breakers = board(MemoryBreakerStore(), clock)
    assert await breakers.allows("k")
    await breakers.record_failure("k", retry_after_seconds=8)
    assert not await breakers.allows("k")
    clock.now += 8
    assert await breakers.allows("k")  # this caller holds the probe lease
    assert not await breakers.allows("k")
    await breakers.record_success("k", started_at=clock.now)
    assert await breakers.allows("k") and await breakers.allows("k")


async def test_half_open_lets_exactly_one_concurrent_caller_probe() -> None:
    clock, store = FakeClock(), CountingStore()
    boards = [board(store, clock) for _ in range(4)]  # four instances on one store
    await boards[0].record_failure("k", retry_after_seconds=5)
    clock.now += 5
    verdicts = await asyncio.gather(*(b.allows("k") for b in boards for _ in range(5)))
    assert verdicts.count(True) == 1


async def test_hot_path_reads_the_store_at_most_once_per_cache_period() -> None:
    clock, store = FakeClock(), CountingStore()
    breakers = board(store, clock, cache=2.0)
    await asyncio.gather(*(breakers.allows("k") for _ in range(50)))
    for _ in range(50):
        assert await breakers.allows("k")
        await breakers.record_success("k")
    assert (store.gets, store.puts) == (1, 0)
    clock.now += 2.0
    assert await breakers.allows("k")
    assert store.gets == 2


async def test_open_breaker_is_cached_until_open_until() -> None:
    clock, store = FakeClock(), CountingStore()
    breakers = board(store, clock, cache=2.0)
    await breakers.record_failure("k", retry_after_seconds=25)
    reads = store.gets
    for _ in range(24):
        clock.now += 1
        assert not await breakers.allows("k")
    assert store.gets == reads


async def test_another_instance_sees_the_opening_within_its_cache_period() -> None:
    clock, store = FakeClock(), MemoryBreakerStore()
    opener, watcher = board(store, clock), board(store, clock, cache=2.0)
    assert await watcher.allows("k")
    await opener.record_failure("k", retry_after_seconds=30)
    clock.now += 1.9
    assert await watcher.allows("k")  # still trusting its cached copy
    clock.now += 0.1
    assert not await watcher.allows("k")


async def test_racing_instances_lose_no_failure() -> None:
    clock, store = FakeClock(), CountingStore()
    wide = BreakerPolicy(failure_threshold=100, window_seconds=60)
    first, second = (BreakerBoard(store, wide, clock=clock) for _ in range(2))
    await asyncio.gather(first.allows("k"), second.allows("k"))  # both cache the same ETag
    await asyncio.gather(*(b.record_failure("k") for b in (first, second) for _ in range(6)))
    stored = await store.get("k")
    assert stored is not None and len(stored.state.failures) == 12


async def test_memory_store_is_compare_and_swap() -> None:
    store = MemoryBreakerStore()
    created = await store.put(BreakerState("k"), None)
    with pytest.raises(BreakerConflict):
        await store.put(BreakerState("k"), None)
    await store.put(BreakerState("k", updated=1), created.etag)
    with pytest.raises(BreakerConflict):
        await store.put(BreakerState("k", updated=2), created.etag)


async def test_an_unreachable_store_never_fails_the_caller() -> None:
    clock = FakeClock()
    breakers = board(BrokenStore(), clock)
    assert await breakers.allows("k")  # fail open on the store, not on the region
    state = await breakers.record_failure("k", retry_after_seconds=10)
    assert phase(state, clock.now) == "open"
    assert not await breakers.allows("k")  # the decision is kept locally
    assert (await breakers.snapshot())["k"]["state"] == "open"


async def test_snapshot_lists_every_key() -> None:
    clock = FakeClock()
    breakers = board(MemoryBreakerStore(), clock)
    await breakers.record_failure("a", retry_after_seconds=10)
    await breakers.record_failure("b")
    view = await breakers.snapshot()
    assert view["a"]["state"] == "open" and view["a"]["open_until"] == T0 + 10
    assert view["b"] == {
        "key": "b",
        "state": "closed",
        "failures": 1,
        "opened_at": None,
        "open_until": None,
        "probe_lease_until": None,
        "updated": T0,
        "reason": None,
    }


async def test_fresh_success_closes_a_breaker_opened_elsewhere() -> None:
    clock, store = FakeClock(), MemoryBreakerStore()
    opener, prober = board(store, clock), board(store, clock)
    assert await prober.allows("k")  # caches "closed"
    await opener.record_failure("k", retry_after_seconds=30)
    clock.now += 1
    closed = await prober.record_success("k", started_at=clock.now, fresh=True)
    assert phase(closed, clock.now) == "closed"
    stored = await store.get("k")
    assert stored is not None and stored.state.state == "closed"


# Cosmos -----------------------------------------------------------------------------------


COSMOS_CONTAINERS = (BREAKERS_CONTAINER,)  # what the `cosmos_store` fixture creates


@pytest.mark.emulators
async def test_cosmos_store_is_compare_and_swap(cosmos_store: CosmosStore) -> None:
    store = CosmosBreakerStore(cosmos_store)
    assert await store.get("llm:east/us") is None
    created = await store.put(BreakerState("llm:east/us", updated=T0), None)
    assert created.etag and (await store.get("llm:east/us")) == created
    with pytest.raises(BreakerConflict):
        await store.put(BreakerState("llm:east/us"), None)
    opened = on_failure(created.state, T0, POLICY, retry_after=10)
    written = await store.put(opened, created.etag)
    assert written.state == opened and written.etag != created.etag
    with pytest.raises(BreakerConflict):
        await store.put(BreakerState("llm:east/us"), created.etag)
    assert [item.state.key for item in await store.all()] == ["llm:east/us"]


@pytest.mark.emulators
async def test_two_cosmos_stores_racing_lose_no_update(
    emulators: EmulatorEndpoints, cosmos_store: CosmosStore, unique_name: str
) -> None:
    wide = BreakerPolicy(failure_threshold=100, window_seconds=600)
    async with create_cosmos_client(
        emulators.cosmos_endpoint, emulators.cosmos_key, None
    ) as other_client:
        other = CosmosStore(other_client, unique_name, [BREAKERS_CONTAINER], EMULATOR)
        first = BreakerBoard(CosmosBreakerStore(cosmos_store), wide)
        second = BreakerBoard(CosmosBreakerStore(other), wide)
        await asyncio.gather(first.allows("k"), second.allows("k"))
        await asyncio.gather(*(b.record_failure("k") for b in (first, second) for _ in range(8)))
        stored = await CosmosBreakerStore(other).get("k")
    assert stored is not None and len(stored.state.failures) == 16


@pytest.mark.emulators
async def test_cosmos_board_opens_for_every_instance(cosmos_store: CosmosStore) -> None:
    clock = FakeClock()
    opener = BreakerBoard(CosmosBreakerStore(cosmos_store), POLICY, clock=clock)
    watcher = BreakerBoard(CosmosBreakerStore(cosmos_store), POLICY, clock=clock)
    assert await watcher.allows("llm:eastus")
    await opener.record_failure("llm:eastus", retry_after_seconds=12)
    clock.now += 2.0
    assert not await watcher.allows("llm:eastus")
    clock.now += 10.0
    assert [await b.allows("llm:eastus") for b in (watcher, opener)] == [True, False]
    await watcher.record_success("llm:eastus", started_at=clock.now)
    clock.now += 2.0
    assert await opener.allows("llm:eastus")
    assert (await opener.snapshot())["llm:eastus"]["state"] == "closed"
