"""Rate limiter: bucket arithmetic, options, multi-bucket admission, settle, failure modes."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.resilience.ratelimit import (
    DEFAULT_RATE_LIMITS_JSON,
    Admission,
    RateLimiter,
    RateLimits,
    TokenReservation,
    bucket_ids,
    headers,
)
from shared.resilience.ratelimit_buckets import (
    BucketState,
    Cost,
    Limit,
    adjust,
    full_in,
    refill,
    refusal,
    take,
    wait_seconds,
)
from shared.resilience.ratelimit_store import (
    RATE_LIMITS_CONTAINER,
    BucketConflict,
    CosmosBucketStore,
    MemoryBucketStore,
    OpCounts,
    Stored,
)
from shared.security.principal import Principal
from shared.storage.cosmos import CosmosStore

if TYPE_CHECKING:
    pass

T0 = 1_700_000_000.0
LIMIT = Limit(rpm=60, tpm=6_000)  # 1 request and 100 tokens per second
ALICE = Principal("alice", "contoso", roles=("user",))
BOB = Principal("bob", "contoso", roles=("user",))
ADMIN = Principal("root", "contoso", roles=("user", "admin"))


class FakeClock:
    """A settable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def empty(now: float = T0) -> BucketState:
    """A bucket with nothing left."""
    return BucketState("b", 0.0, 0.0, now)


def limits(user: Limit, tenant: Limit | None = None, **options: object) -> RateLimits:
    """Options with `user` for the "user" role and a wider admin role."""
    admin = Limit(user.rpm * 10, user.tpm * 10)
    return RateLimits({"user": user, "admin": admin}, tenant, **options)  # type: ignore[arg-type]


def limiter(
    user: Limit,
    tenant: Limit | None = None,
    store: MemoryBucketStore | None = None,
    **options: object,
) -> RateLimiter:
    """A limiter on a memory store with a fake clock at T0."""
    return RateLimiter(store or MemoryBucketStore(), limits(user, tenant, **options), FakeClock())


async def level(store: MemoryBucketStore, bucket_id: str) -> tuple[float, float]:
    """The stored (requests, tokens) of a bucket."""
    stored = store.items[bucket_id]
    return stored.state.requests, stored.state.tokens


# Bucket arithmetic --------------------------------------------------------------------------


def test_refill_grows_with_elapsed_time_up_to_capacity() -> None:
    assert refill(empty(), LIMIT, T0 + 30) == BucketState("b", 30.0, 3_000.0, T0 + 30)
    assert refill(empty(), LIMIT, T0 + 600) == BucketState("b", 60.0, 6_000.0, T0 + 600)


def test_refill_ignores_a_clock_behind_the_stored_time() -> None:
    state = BucketState("b", 5.0, 500.0, T0)
    assert refill(state, LIMIT, T0 - 10) == state  # no refill, and `at` never moves back


def test_take_needs_both_levels() -> None:
    state = BucketState("b", 1.0, 50.0, T0)
    assert take(state, LIMIT, Cost(1, 50), T0) == BucketState("b", 0.0, 0.0, T0)
    assert take(state, LIMIT, Cost(1, 51), T0) is None
    assert take(BucketState("b", 0.5, 500.0, T0), LIMIT, Cost(1, 1), T0) is None
    assert take(state, LIMIT, Cost(1, 100), T0 + 0.5) == BucketState("b", 0.5, 0.0, T0 + 0.5)


def test_refusal_says_which_level_or_that_it_never_fits() -> None:
    assert refusal(empty(), LIMIT, Cost(1, 0), T0) == "requests"
    assert refusal(BucketState("b", 3.0, 10.0, T0), LIMIT, Cost(1, 20), T0) == "tokens"
    assert refusal(empty(), LIMIT, Cost(1, 6_001), T0 + 999) == "too_large"
    assert refusal(empty(), LIMIT, Cost(1, 100), T0 + 1) is None


def test_wait_seconds_is_the_slower_level() -> None:
    assert wait_seconds(empty(), LIMIT, Cost(1, 100), T0) == 1.0
    assert wait_seconds(empty(), LIMIT, Cost(1, 500), T0) == 5.0
    assert wait_seconds(empty(), LIMIT, Cost(1, 100), T0 + 2) == 0.0
    assert wait_seconds(empty(), LIMIT, Cost(1, 7_000), T0) == math.inf


def test_full_in_counts_the_emptier_level() -> None:
    assert full_in(empty(), LIMIT, T0) == 60.0
    assert full_in(BucketState("b", 60.0, 5_900.0, T0), LIMIT, T0) == 1.0


def test_adjust_gives_back_up_to_capacity_and_charges_into_debt() -> None:
    state = BucketState("b", 59.0, 5_950.0, T0)
    assert adjust(state, LIMIT, 5, 500, T0) == BucketState("b", 60.0, 6_000.0, T0)
    debt = adjust(empty(), LIMIT, 0, -300, T0)
    assert debt.tokens == -300.0
    assert refusal(debt, LIMIT, Cost(1, 100), T0 + 3) == "tokens"  # 3 s only repay the debt
    assert refusal(debt, LIMIT, Cost(1, 100), T0 + 4) is None


# Options ------------------------------------------------------------------------------------


def test_options_parse_the_json_setting() -> None:
    parsed = RateLimits.from_json(
        '{"roles": {"user": {"rpm": 10, "tpm": 1000}, "admin": {"rpm": 100, "tpm": 9000}},'
        ' "tenant": {"rpm": 50, "tpm": 20000}, "on_store_error": "open", "max_attempts": 3}'
    )
    assert parsed.by_role == {"user": Limit(10, 1_000), "admin": Limit(100, 9_000)}
    assert parsed.tenant == Limit(50, 20_000)
    assert (parsed.default_role, parsed.on_store_error, parsed.max_attempts) == ("user", "open", 3)


def test_options_default_and_tenant_bucket_off() -> None:
    assert RateLimits.from_json("") == RateLimits.from_json(DEFAULT_RATE_LIMITS_JSON)
    parsed = RateLimits.from_json('{"roles": {"user": {"rpm": 1, "tpm": 1}}, "tenant": null}')
    assert parsed.tenant is None


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"roles": {"admin": {"rpm": 1, "tpm": 1}}}',  # the default role has no limit
        '{"roles": {"user": {"rpm": 0, "tpm": 1}}}',
        '{"roles": {"user": {"rpm": 1}}}',
        '{"roles": {"user": {"rpm": 1, "tpm": 1}}, "on_store_error": "maybe"}',
    ],
)
def test_options_reject_bad_settings(text: str) -> None:
    with pytest.raises(ValueError):
        RateLimits.from_json(text)


def test_user_limit_by_role_widest_role_wins_and_default_applies() -> None:
    options = RateLimits({"user": Limit(10, 100), "admin": Limit(5, 1_000)})
    assert options.user_limit(ALICE) == Limit(10, 100)
    assert options.user_limit(ADMIN) == Limit(10, 1_000)
    assert options.user_limit(Principal("x", "t", roles=("guest",))) == Limit(10, 100)


def test_bucket_ids_scope_users_by_tenant_and_escape() -> None:
    assert bucket_ids(Principal("a/b", "t#1")) == ("user:t%231:a%2Fb", "tenant:t%231")
    assert bucket_ids(Principal("a", "t1"))[0] != bucket_ids(Principal("a", "t2"))[0]


# Admission ----------------------------------------------------------------------------------


async def test_per_role_limits() -> None:
    subject = limiter(Limit(2, 1_000))
    assert [(await subject.admit(ALICE, 10)).allowed for _ in range(3)] == [True, True, False]
    admitted = [(await subject.admit(ADMIN, 10)).allowed for _ in range(25)]
    assert admitted.count(True) == 20  # the admin role's 20 rpm


async def test_refusal_reports_reason_and_retry_after() -> None:
    subject = limiter(Limit(60, 600))
    first = await subject.admit(ALICE, 500)
    assert first.allowed and first.remaining_tokens == 100 and first.remaining_requests == 59
    second = await subject.admit(ALICE, 300)
    assert (second.allowed, second.reason, second.bucket) == (False, "tokens", "user")
    assert second.retry_after_seconds == pytest.approx(20.0)  # 200 missing at 10 tokens/s
    assert second.reservation == TokenReservation()


async def test_refill_admits_again_after_time_passes() -> None:
    subject = limiter(Limit(1, 1_000))
    assert (await subject.admit(ALICE, 1)).allowed
    assert not (await subject.admit(ALICE, 1)).allowed
    subject.clock.now += 60  # type: ignore[attr-defined]
    assert (await subject.admit(ALICE, 1)).allowed


async def test_too_large_is_refused_without_io_and_without_retry_after() -> None:
    store = MemoryBucketStore()
    decision = await limiter(Limit(10, 100), store=store).admit(ALICE, 101)
    assert (decision.allowed, decision.reason, decision.retry_after_seconds) == (
        False,
        "too_large",
        None,
    )
    assert store.ops.total == 0 and "Retry-After" not in headers(decision)


async def test_user_and_tenant_buckets_are_both_enforced() -> None:
    store = MemoryBucketStore()
    subject = limiter(Limit(2, 1_000), tenant=Limit(3, 10_000), store=store)
    alice = [await subject.admit(ALICE, 1) for _ in range(3)]
    assert [d.allowed for d in alice] == [True, True, False]
    assert alice[2].bucket == "user"
    bob = [await subject.admit(BOB, 1) for _ in range(2)]
    assert [d.allowed for d in bob] == [True, False]
    assert (bob[1].bucket, bob[1].reason) == ("tenant", "requests")
    assert alice[0].reservation.buckets[1].kind == "tenant"


async def test_tenant_refusal_seen_in_cache_writes_nothing() -> None:
    store = MemoryBucketStore()
    subject = limiter(Limit(5, 1_000), tenant=Limit(1, 10_000), store=store)
    assert (await subject.admit(ALICE, 1)).allowed
    before = store.ops.snapshot()
    refused = await subject.admit(BOB, 1)
    assert refused.bucket == "tenant"
    assert store.ops.since(before) == OpCounts(reads=1)  # the confirming read, no write
    assert bucket_ids(BOB)[0] not in store.items


async def test_refusal_by_a_later_bucket_gives_back_the_earlier_one() -> None:
    # Another instance empties the tenant after this one cached it as roomy: the user bucket
    # is taken first, the tenant refuses, and the user's reservation must be given back.
    store = MemoryBucketStore()
    here = limiter(Limit(5, 1_000), tenant=Limit(2, 10_000), store=store)
    there = limiter(Limit(5, 1_000), tenant=Limit(2, 10_000), store=store)
    assert (await here.admit(ALICE, 100)).allowed
    user_id = bucket_ids(ALICE)[0]
    before = await level(store, user_id)
    assert (await there.admit(BOB, 1)).allowed
    before_ops = store.ops.snapshot()
    refused = await here.admit(ALICE, 100)
    # user write, lost tenant write, tenant re-read, user give-back
    assert store.ops.since(before_ops) == OpCounts(reads=1, writes=3, conflicts=1)
    assert (refused.allowed, refused.bucket, refused.reservation) == (
        False,
        "tenant",
        TokenReservation(),
    )
    assert await level(store, user_id) == before


async def test_settle_gives_back_and_charges_more() -> None:
    store = MemoryBucketStore()
    subject = limiter(Limit(10, 1_000), tenant=Limit(100, 5_000), store=store)
    user_id, tenant_id = bucket_ids(ALICE)
    decision = await subject.admit(ALICE, 400)
    await subject.settle(decision.reservation, 100)
    assert await level(store, user_id) == (9.0, 900.0)
    assert await level(store, tenant_id) == (99.0, 4_900.0)
    decision = await subject.admit(ALICE, 800)
    await subject.settle(decision.reservation, 1_500)  # 700 more than estimated: a debt
    assert await level(store, user_id) == (8.0, -600.0)
    refused = await subject.admit(ALICE, 0)
    assert (refused.reason, refused.retry_after_seconds) == ("tokens", pytest.approx(36.0))


async def test_settle_with_an_exact_estimate_costs_nothing() -> None:
    store = MemoryBucketStore()
    subject = limiter(Limit(10, 1_000), store=store)
    decision = await subject.admit(ALICE, 40)
    before = store.ops.snapshot()
    await subject.settle(decision.reservation, 40)
    await subject.settle(TokenReservation(), 999)
    assert store.ops.since(before) == OpCounts()


async def test_ops_per_decision_warm_and_cold() -> None:
    store = MemoryBucketStore()
    subject = limiter(Limit(100, 10_000), tenant=Limit(1_000, 100_000), store=store)
    await subject.admit(ALICE, 1)
    assert store.ops == OpCounts(reads=2, writes=2)  # cold: read and create each bucket
    before = store.ops.snapshot()
    await subject.admit(ALICE, 1)
    assert store.ops.since(before) == OpCounts(writes=2)  # warm: ETags from the last write


# Store failures and contention --------------------------------------------------------------


class FailingStore(MemoryBucketStore):
    """A memory store whose calls on ids containing `failing` raise a transport error."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    def _check(self, bucket_id: str) -> None:
        if self.failing in bucket_id:
            raise ServiceRequestError("connection refused; AccountKey=s3cr3t")

    async def get(self, bucket_id: str) -> Stored | None:
        self._check(bucket_id)
        return await super().get(bucket_id)

    async def put(self, state: BucketState, etag: str | None) -> Stored:
        self._check(state.id)
        return await super().put(state, etag)


class AlwaysConflicting(MemoryBucketStore):
    """A store where another writer always gets there first."""

    async def put(self, state: BucketState, etag: str | None) -> Stored:
        self.ops.writes += 1
        self.ops.conflicts += 1
        raise BucketConflict(state.id)


async def test_fail_closed_refuses_and_gives_back(caplog: pytest.LogCaptureFixture) -> None:
    store = FailingStore("tenant:")
    subject = limiter(Limit(5, 1_000), tenant=Limit(50, 10_000), store=store)
    with caplog.at_level(logging.WARNING):
        decision = await subject.admit(ALICE, 100)
    assert (decision.allowed, decision.reason, decision.retry_after_seconds) == (
        False,
        "unavailable",
        5.0,
    )
    assert headers(decision)["Retry-After"] == "5"
    assert await level(store, bucket_ids(ALICE)[0]) == (5.0, 1_000.0)
    assert "failing closed" in caplog.text and "ServiceRequestError" in caplog.text
    assert "s3cr3t" not in caplog.text


async def test_fail_open_admits_keeping_what_was_reserved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FailingStore("tenant:")
    subject = limiter(Limit(5, 1_000), Limit(50, 10_000), store, on_store_error="open")
    with caplog.at_level(logging.WARNING):
        decision = await subject.admit(ALICE, 100)
    assert (decision.allowed, decision.reason) == (True, "unavailable")
    assert [b.kind for b in decision.reservation.buckets] == ["user"]
    assert headers(decision) == {"x-ratelimit-reset": "0"}  # remaining unknown: left out
    assert await level(store, bucket_ids(ALICE)[0]) == (4.0, 900.0)
    assert "failing open" in caplog.text and "s3cr3t" not in caplog.text


async def test_settle_never_raises_on_store_errors(caplog: pytest.LogCaptureFixture) -> None:
    subject = limiter(Limit(5, 1_000), store=FailingStore("user:"))
    reservation = TokenReservation(subject.buckets_of(ALICE), 100)
    with caplog.at_level(logging.WARNING):
        await subject.settle(reservation, 10)
    assert "correction lost" in caplog.text


async def test_contention_refuses_after_bounded_tries_with_nothing_reserved() -> None:
    store = AlwaysConflicting()
    decision = await limiter(Limit(5, 1_000), store=store, max_attempts=3).admit(ALICE, 1)
    assert (decision.allowed, decision.reason, decision.retry_after_seconds) == (
        False,
        "contention",
        1.0,
    )
    # The first read, and a re-read after each conflict but the last.
    assert store.ops == OpCounts(reads=3, writes=3, conflicts=3)


# Headers ------------------------------------------------------------------------------------


def test_headers_of_an_admission_and_a_refusal() -> None:
    allowed = Admission(True, 59, 5_900, 1.2, None, TokenReservation())
    assert headers(allowed) == {
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "5900",
        "x-ratelimit-reset": "2",
    }
    refused = Admission(False, 0, 12, 60.0, 0.3, TokenReservation(), "requests", "user")
    assert headers(refused)["Retry-After"] == "1"
    assert headers(refused)["x-ratelimit-remaining-requests"] == "0"


# Cosmos (the emulator) ----------------------------------------------------------------------


COSMOS_CONTAINERS = (RATE_LIMITS_CONTAINER,)  # what the `cosmos_store` fixture creates


@pytest.mark.emulators
async def test_cosmos_store_compare_and_swap(cosmos_store: CosmosStore) -> None:
    buckets = CosmosBucketStore(cosmos_store)
    assert await buckets.get("user:t:a") is None
    created = await buckets.put(BucketState("user:t:a", 5.0, 50.0, T0), None)
    with pytest.raises(BucketConflict):
        await buckets.put(BucketState("user:t:a", 4.0, 40.0, T0), None)
    replaced = await buckets.put(BucketState("user:t:a", 3.0, 30.0, T0), created.etag)
    with pytest.raises(BucketConflict):
        await buckets.put(BucketState("user:t:a", 2.0, 20.0, T0), created.etag)
    assert await buckets.get("user:t:a") == replaced
    assert buckets.ops == OpCounts(reads=2, writes=4, conflicts=2)


@pytest.mark.emulators
async def test_limiter_on_cosmos_admits_refuses_and_settles(cosmos_store: CosmosStore) -> None:
    buckets = CosmosBucketStore(cosmos_store)
    options = limits(Limit(3, 300), tenant=Limit(100, 10_000))
    subject = RateLimiter(buckets, options, FakeClock())
    decisions = [await subject.admit(ALICE, 100) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    await subject.settle(decisions[0].reservation, 40)
    # 3 admissions: 2 reads + 6 writes; the refusal: 1 confirming read; settle: 2 writes.
    assert buckets.ops == OpCounts(reads=3, writes=8)
    stored = await buckets.get(bucket_ids(ALICE)[1])
    assert stored is not None and (stored.state.requests, stored.state.tokens) == (97, 9_760)


async def test_corrections_try_harder_than_takes() -> None:
    store = AlwaysConflicting()
    subject = limiter(Limit(5, 1_000), store=store, max_attempts=2)
    await subject.settle(TokenReservation(subject.buckets_of(ALICE), 100), 10)
    assert store.ops.writes == 6  # max_attempts x CORRECTION_ATTEMPTS_FACTOR
