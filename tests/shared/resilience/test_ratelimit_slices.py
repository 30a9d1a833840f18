"""Leased slices: local admission, exactness with leases, under-admission bounds, settle."""

from __future__ import annotations

import pytest

from shared.resilience.ratelimit import RateLimiter, RateLimits, bucket_ids
from shared.resilience.ratelimit_buckets import BucketState, Cost, Lease, Limit, leasing, refill
from shared.resilience.ratelimit_slices import SliceOptions
from shared.resilience.ratelimit_store import MemoryBucketStore
from shared.security.principal import Principal

T0 = 1_700_000_000.0
LIMIT = Limit(rpm=60, tpm=6_000)  # 1 request and 100 tokens per second
ALICE = Principal("alice", "contoso", roles=("user",))
BOB = Principal("bob", "contoso", roles=("user",))
SLICES = SliceOptions(fraction=0.1, seconds=5.0, margin_seconds=1.0)  # 6 requests a slice


class FakeClock:
    """A settable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sliced(
    store: MemoryBucketStore,
    clock: FakeClock,
    user: Limit = LIMIT,
    tenant: Limit | None = None,
    holder: str = "a",
) -> RateLimiter:
    """An instance with slices on, sharing `store` and `clock` with its peers."""
    limits = RateLimits({"user": user}, tenant)
    return RateLimiter(store, limits, clock, slices=SLICES, holder=holder)


def user_item(store: MemoryBucketStore, principal: Principal = ALICE) -> BucketState:
    return store.items[bucket_ids(principal)[0]].state


async def drain(limiter: RateLimiter, principal: Principal, tokens: int = 10) -> int:
    """Admissions until the first refusal."""
    admitted = 0
    while (await limiter.admit(principal, tokens)).allowed:
        admitted += 1
    return admitted


def test_refill_stops_at_capacity_minus_live_leases_and_drops_expired_ones() -> None:
    state = BucketState("b", 50.0, 5_000.0, T0, {"a": Lease(6, 600, T0 + 5)})
    assert refill(state, LIMIT, T0 + 4).requests == 54  # capped while the lease lives
    assert refill(state, LIMIT, T0 + 4).tokens == 5_400
    later = refill(state, LIMIT, T0 + 5)
    assert later.leases == {} and later.requests == 55  # expired: dropped, capacity back


def test_a_lease_never_adds_tokens_only_takes_them_early() -> None:
    full = BucketState.full("b", LIMIT, T0)
    transition = leasing(LIMIT, "a", (0.0, 0.0), Cost(1, 10), Cost(6, 60), T0 + 5)
    leased = transition(full, T0)
    assert leased is not None and leased.leases["a"] == Lease(6, 60, T0 + 5)
    assert leased.requests + leased.leases["a"].requests == LIMIT.rpm
    # The holder renews with 2 requests left: only 4 more come from the level.
    renewed = leasing(LIMIT, "a", (2.0, 20.0), Cost(1, 10), Cost(6, 60), T0 + 6)(leased, T0 + 1)
    assert renewed is not None and renewed.leases["a"] == Lease(6, 60, T0 + 6)
    assert renewed.requests == pytest.approx(leased.requests - 4)  # no refill past the cap


def test_an_expired_lease_forfeits_its_rest_but_not_its_debt() -> None:
    state = BucketState("b", 10.0, 1_000.0, T0, {"a": Lease(6, 60, T0 + 5)})
    renewed = leasing(LIMIT, "a", (3.0, -50.0), Cost(1, 10), Cost(6, 60), T0 + 20)(state, T0 + 6)
    assert renewed is not None
    # Not mine any more: the 3 requests are gone; the 50-token debt is paid from the level.
    assert renewed.leases["a"] == Lease(6, 60, T0 + 20)
    assert renewed.tokens == pytest.approx(1_000 + 600 - 110)  # refilled 6 s, then 60 + 50


async def test_one_write_leases_a_slice_and_the_next_requests_cost_no_round_trip() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    limiter = sliced(store, clock)
    for _ in range(6):
        assert (await limiter.admit(ALICE, 10)).allowed
    assert store.ops.writes == 1 and store.ops.reads == 1  # the first read: a cold bucket
    assert (await limiter.admit(ALICE, 10)).allowed  # the 7th renews the lease
    assert store.ops.writes == 2 and store.ops.reads == 1
    assert user_item(store).leases[limiter.holder].requests == 6


async def test_instances_sharing_a_bucket_admit_exactly_its_capacity() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    instances = [sliced(store, clock, holder=name) for name in "abcd"]
    admitted = 0
    refused: set[str] = set()
    while len(refused) < len(instances):  # round robin until every instance is refused
        for limiter in instances:
            if limiter.holder in refused:
                continue
            if (await limiter.admit(ALICE, 10)).allowed:
                admitted += 1
            else:
                refused.add(limiter.holder)
    assert admitted == LIMIT.rpm


async def test_over_any_window_admissions_stay_within_the_token_bucket_bound() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    first, second = sliced(store, clock, holder="a"), sliced(store, clock, holder="b")
    assert (await first.admit(ALICE, 10)).allowed  # "a" leases 6 and sits on 5 of them
    clock.now = T0 + 3  # three seconds of refill: 3 requests
    by_second = await drain(second, ALICE)
    by_first = 1 + await drain(first, ALICE)
    # A plain token bucket admits at most capacity + 3 s of refill over [T0, T0 + 3].
    assert by_first + by_second <= LIMIT.rpm + 3
    assert by_first == 6


async def test_an_idle_slice_is_unavailable_to_others_only_until_its_lease_expires() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    idle, busy = sliced(store, clock, holder="idle"), sliced(store, clock, holder="busy")
    assert (await idle.admit(ALICE, 10)).allowed  # holds 5 more it will not use
    assert await drain(busy, ALICE) == LIMIT.rpm - 6  # under-admission: at most the slice
    clock.now = T0 + 60  # the idle lease expired: refill reaches the whole capacity again
    assert await drain(busy, ALICE) == LIMIT.rpm


async def test_the_holder_stops_using_a_slice_before_its_lease_expires() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    limiter = sliced(store, clock)
    assert (await limiter.admit(ALICE, 10)).allowed
    clock.now = T0 + SLICES.seconds - SLICES.margin_seconds  # inside the safety margin
    writes = store.ops.writes
    assert (await limiter.admit(ALICE, 10)).allowed
    assert store.ops.writes == writes + 1  # renewed instead of using the old slice
    assert user_item(store).leases[limiter.holder].expires == clock.now + SLICES.seconds


async def test_settle_and_a_tenant_refusal_give_back_to_the_slice_without_a_write() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    limiter = sliced(store, clock, tenant=Limit(rpm=2, tpm=6_000))
    decision = await limiter.admit(ALICE, 100)
    writes = store.ops.writes
    await limiter.settle(decision.reservation, 40)  # 60 tokens back, locally
    assert store.ops.writes == writes
    assert (await limiter.admit(BOB, 10)).allowed  # the tenant's slice holds 2 requests
    refused = await limiter.admit(ALICE, 10)
    assert not refused.allowed and refused.bucket == "tenant"
    slice_of_alice = limiter._slices[bucket_ids(ALICE)[0]]
    assert slice_of_alice.requests == 5  # the user request taken before the refusal came back
    assert slice_of_alice.tokens == 600 - 100 + 60


async def test_a_charge_beyond_the_estimate_is_a_debt_the_next_lease_pays() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    limiter = sliced(store, clock, user=Limit(rpm=10, tpm=1_000))  # slices of 1 request
    decision = await limiter.admit(ALICE, 100)
    await limiter.settle(decision.reservation, 400)  # 300 tokens more than reserved
    assert (await limiter.admit(ALICE, 100)).allowed
    state = user_item(store)
    # The level: 1,000 - 100 (first) - 300 (its debt) - 100 (second, now in the lease)
    assert state.tokens == pytest.approx(500)
    assert state.leases[limiter.holder].tokens == pytest.approx(100)


async def test_release_returns_the_unused_rest() -> None:
    store, clock = MemoryBucketStore(), FakeClock()
    limiter = sliced(store, clock)
    assert (await limiter.admit(ALICE, 10)).allowed
    await limiter.release()
    state = user_item(store)
    assert state.leases == {} and state.requests == LIMIT.rpm - 1
