"""Credential-failure throttling: per source, shared through the compare-and-swap store."""

from __future__ import annotations

import pytest

from shared.resilience.ratelimit_store import (
    RATE_LIMITS_CONTAINER,
    CosmosBucketStore,
    MemoryBucketStore,
)
from shared.security.throttle import (
    CredentialsThrottled,
    CredentialThrottle,
    bucket_id,
    client_source,
)
from shared.storage.cosmos import EMULATOR, CosmosStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("headers", "peer", "source"),
    [
        ({}, "10.0.0.7", "10.0.0.7"),
        ({"x-forwarded-for": "203.0.113.9:51234"}, "127.0.0.1", "203.0.113.9"),
        # the client wrote the first entry; the platform's front end appended the last
        ({"x-forwarded-for": "1.1.1.1, 203.0.113.9"}, "127.0.0.1", "203.0.113.9"),
        ({"x-forwarded-for": "2001:db8::1"}, None, "2001:db8::1"),
        ({"x-forwarded-for": "[2001:db8::1]:443"}, None, "2001:db8::1"),
        ({"x-forwarded-for": " , "}, None, "unknown"),
    ],
)
def test_the_source_is_the_address_the_front_end_saw(
    headers: dict[str, str], peer: str | None, source: str
) -> None:
    assert client_source(headers, peer) == source


def test_a_named_edge_header_wins_and_falls_back_when_absent() -> None:
    edge = {"x-azure-socketip": "203.0.113.9", "x-forwarded-for": "1.1.1.1, 10.0.0.4"}
    assert client_source(edge, "10.0.0.4", "X-Azure-SocketIP") == "203.0.113.9"
    assert client_source({"x-forwarded-for": "1.1.1.1"}, None, "X-Azure-SocketIP") == "1.1.1.1"


def test_bucket_ids_do_not_hold_addresses() -> None:
    assert "203.0.113.9" not in bucket_id("203.0.113.9")
    assert bucket_id("203.0.113.9") != bucket_id("203.0.113.10")


async def test_the_allowance_then_429_with_retry_after_until_it_refills() -> None:
    clock = Clock()
    throttle = CredentialThrottle(MemoryBucketStore(), 6, clock)
    for _ in range(6):
        await throttle.check("a")
        assert await throttle.failed("a") is None
    refusal = await throttle.failed("a")
    assert isinstance(refusal, CredentialsThrottled)
    assert refusal.retry_after_seconds == 10  # one failure refills in 60 / 6 s
    with pytest.raises(CredentialsThrottled):
        await throttle.check("a")  # refused before its credentials are looked at
    await throttle.check("b")  # another source is not affected
    assert await throttle.failed("b") is None
    clock.now += 10
    await throttle.check("a")
    assert await throttle.failed("a") is None
    assert isinstance(await throttle.failed("a"), CredentialsThrottled)


async def test_a_source_that_never_failed_costs_no_store_call() -> None:
    store = MemoryBucketStore()
    throttle = CredentialThrottle(store, 5, Clock())
    for _ in range(100):
        await throttle.check("good")
    assert store.ops.total == 0


async def test_instances_share_the_count_and_a_lifted_block_rereads_it() -> None:
    clock, store = Clock(), MemoryBucketStore()
    first, second = (CredentialThrottle(store, 4, clock) for _ in range(2))
    for throttle in (first, second, first, second):
        assert await throttle.failed("a") is None
    assert await second.failed("a") is not None  # the fifth, wherever it lands
    assert await first.failed("a") is not None  # the other instance learns on its next failure
    clock.now += 15  # one failure refilled; both blocks lift
    assert await first.failed("a") is None  # spends it
    with pytest.raises(CredentialsThrottled):
        await second.check("a")  # its block lifted, but the shared bucket is empty again


COSMOS_CONTAINERS = (RATE_LIMITS_CONTAINER,)


@pytest.mark.emulators
async def test_on_cosmos(cosmos_client: object, unique_name: str) -> None:
    store = CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR)
    await store.ensure_containers([RATE_LIMITS_CONTAINER])
    try:
        clock = Clock()
        throttle = CredentialThrottle(CosmosBucketStore(store), 3, clock)
        assert [await throttle.failed("a") is None for _ in range(4)] == [True] * 3 + [False]
        item = await store.read(RATE_LIMITS_CONTAINER.name, bucket_id("a"), bucket_id("a"))
        assert item is not None and item["requests"] == 0
    finally:
        await cosmos_client.delete_database(unique_name)  # type: ignore[attr-defined]
