"""The Cosmos access layer against the local emulator, through the real azure-cosmos aio SDK."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from azure.cosmos.aio import CosmosClient
from azure.cosmos.exceptions import CosmosHttpResponseError

from shared.storage.cosmos import (
    EMULATOR,
    AlreadyExists,
    BatchFailed,
    BatchOperation,
    ContainerMissing,
    ContainerSpec,
    CosmosStore,
    PreconditionFailed,
    UnscopedQueryError,
)

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.emulators

DOCS = ContainerSpec(name="docs", partition_key_path="/tenantId")
LEASES = ContainerSpec(name="leases", partition_key_path="/tenantId", default_ttl=60)


class FakeClock:
    """A settable clock, so TTL expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """The clock the store uses for TTL decisions."""
    return FakeClock()


@pytest.fixture
async def store(
    cosmos_client: CosmosClient, unique_name: str, clock: FakeClock
) -> AsyncIterator[CosmosStore]:
    """A store on a database of its own, with the docs and leases containers created."""
    store = CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR, clock=clock)
    await store.ensure_containers([DOCS, LEASES])
    yield store
    await cosmos_client.delete_database(unique_name)


async def test_ensure_containers_is_idempotent(store: CosmosStore) -> None:
    await store.ensure_containers([DOCS, LEASES])
    assert await store.read("docs", "nothing", "t1") is None


async def test_create_then_duplicate_raises_already_exists(store: CosmosStore) -> None:
    created = await store.create("docs", {"id": "d1", "tenantId": "t1", "title": "a"})
    assert created["_etag"]
    with pytest.raises(AlreadyExists):
        await store.create("docs", {"id": "d1", "tenantId": "t1", "title": "b"})


async def test_read_missing_returns_none(store: CosmosStore) -> None:
    assert await store.read("docs", "missing", "t1") is None


async def test_emulator_reports_missing_read_as_500(
    cosmos_client: CosmosClient, store: CosmosStore, unique_name: str
) -> None:
    # Documents the gap that read() hides; if the emulator is fixed this test says so.
    proxy = cosmos_client.get_database_client(unique_name).get_container_client("docs")
    with pytest.raises(CosmosHttpResponseError) as caught:
        await proxy.read_item("missing", "t1")
    assert caught.value.status_code == 500
    assert "Cannot read properties of undefined (reading 'tenantId')" in caught.value.message


async def test_upsert_then_read(store: CosmosStore) -> None:
    await store.upsert("docs", {"id": "d1", "tenantId": "t1", "v": 1})
    await store.upsert("docs", {"id": "d1", "tenantId": "t1", "v": 2})
    item = await store.read("docs", "d1", "t1")
    assert item is not None and item["v"] == 2
    assert await store.read("docs", "d1", "other-tenant") is None


async def test_replace_with_stale_etag_raises_precondition_failed(store: CosmosStore) -> None:
    first = await store.create("docs", {"id": "d1", "tenantId": "t1", "v": 1})
    second = await store.replace("docs", {"id": "d1", "tenantId": "t1", "v": 2}, first["_etag"])
    assert second["_etag"] != first["_etag"]
    with pytest.raises(PreconditionFailed):
        await store.replace("docs", {"id": "d1", "tenantId": "t1", "v": 3}, first["_etag"])
    item = await store.read("docs", "d1", "t1")
    assert item is not None and item["v"] == 2


async def test_patch_and_stale_patch(store: CosmosStore) -> None:
    first = await store.create("docs", {"id": "d1", "tenantId": "t1", "n": 1})
    patched = await store.patch("docs", "d1", "t1", [{"op": "incr", "path": "/n", "value": 2}])
    assert patched["n"] == 3
    with pytest.raises(PreconditionFailed):
        await store.patch(
            "docs", "d1", "t1", [{"op": "set", "path": "/n", "value": 0}], first["_etag"]
        )


async def test_delete(store: CosmosStore) -> None:
    assert await store.delete("docs", "missing", "t1") is False
    created = await store.create("docs", {"id": "d1", "tenantId": "t1"})
    await store.upsert("docs", {"id": "d1", "tenantId": "t1", "v": 2})
    with pytest.raises(PreconditionFailed):
        await store.delete("docs", "d1", "t1", etag=created["_etag"])
    assert await store.delete("docs", "d1", "t1") is True
    assert await store.read("docs", "d1", "t1") is None


async def test_query_scoped_to_one_partition(store: CosmosStore) -> None:
    for tenant in ("t1", "t2"):
        for n in range(3):
            await store.create("docs", {"id": f"{tenant}-{n}", "tenantId": tenant, "n": n})
    rows = await store.query_partition("docs", "t1", "c.n >= @min", {"min": 1}, order_by="c.n")
    assert [row["id"] for row in rows] == ["t1-1", "t1-2"]
    rows = await store.query(
        "docs", "SELECT * FROM c WHERE c.tenantId = @pk", {"pk": "t2"}, partition_key="t2"
    )
    assert {row["tenantId"] for row in rows} == {"t2"}
    everything = await store.query("docs", "SELECT c.id FROM c")
    assert len(everything) == 6


async def test_query_with_partition_key_but_no_filter_is_refused(store: CosmosStore) -> None:
    with pytest.raises(UnscopedQueryError):
        await store.query("docs", "SELECT * FROM c", partition_key="t1")


async def test_emulator_ignores_query_partition_key(
    cosmos_client: CosmosClient, store: CosmosStore, unique_name: str
) -> None:
    # Documents why the SQL must filter on the partition key itself: the emulator refuses a
    # partition-scoped query without such a filter (400) and does not scope by the argument.
    await store.create("docs", {"id": "a", "tenantId": "t1"})
    await store.create("docs", {"id": "b", "tenantId": "t2"})
    proxy = cosmos_client.get_database_client(unique_name).get_container_client("docs")
    with pytest.raises(CosmosHttpResponseError) as caught:
        [row async for row in proxy.query_items("SELECT * FROM c", partition_key="t1")]
    assert caught.value.status_code == 400
    sql = "SELECT * FROM c WHERE c.tenantId = @pk"
    parameters: list[dict[str, object]] = [{"name": "@pk", "value": "t2"}]
    rows = [row async for row in proxy.query_items(sql, parameters=parameters, partition_key="t1")]
    assert [row["id"] for row in rows] == ["b"]


async def test_ttl_expired_items_are_hidden(store: CosmosStore, clock: FakeClock) -> None:
    await store.create("leases", {"id": "short", "tenantId": "t1", "ttl": 1})
    await store.create("leases", {"id": "default", "tenantId": "t1"})  # container default: 60 s
    await store.create("leases", {"id": "forever", "tenantId": "t1", "ttl": -1})
    clock.now = time.time() + 5
    assert await store.read("leases", "short", "t1") is None
    assert await store.read("leases", "default", "t1") is not None
    ids = {row["id"] for row in await store.query_partition("leases", "t1")}
    assert ids == {"default", "forever"}
    clock.now = time.time() + 120
    ids = {row["id"] for row in await store.query_partition("leases", "t1")}
    assert ids == {"forever"}


async def test_create_over_expired_item_succeeds(store: CosmosStore, clock: FakeClock) -> None:
    # On Azure the expired item is gone, so the id is free; the store must behave the same.
    await store.create("leases", {"id": "lock", "tenantId": "t1", "ttl": 1, "owner": "a"})
    with pytest.raises(AlreadyExists):
        await store.create("leases", {"id": "lock", "tenantId": "t1", "ttl": 1, "owner": "b"})
    clock.now = time.time() + 5
    taken = await store.create("leases", {"id": "lock", "tenantId": "t1", "ttl": 1, "owner": "b"})
    assert taken["owner"] == "b"


async def test_ttl_not_filtered_without_container_ttl(store: CosmosStore, clock: FakeClock) -> None:
    # Cosmos ignores an item's ttl when the container has TTL off.
    await store.create("docs", {"id": "d1", "tenantId": "t1", "ttl": 1})
    clock.now = time.time() + 5
    assert await store.read("docs", "d1", "t1") is not None


async def test_write_batch_sequential_on_emulator(store: CosmosStore) -> None:
    existing = await store.create("docs", {"id": "old", "tenantId": "t1", "v": 1})
    results = await store.write_batch(
        "docs",
        "t1",
        [
            BatchOperation.create({"id": "b1", "tenantId": "t1"}),
            BatchOperation.upsert({"id": "b2", "tenantId": "t1"}),
            BatchOperation.replace({"id": "old", "tenantId": "t1", "v": 2}, existing["_etag"]),
            BatchOperation.patch("b2", [{"op": "set", "path": "/p", "value": True}]),
            BatchOperation.delete("b1"),
        ],
    )
    assert [r["id"] if r else None for r in results] == ["b1", "b2", "old", "b2", None]
    assert await store.read("docs", "b1", "t1") is None
    patched = await store.read("docs", "b2", "t1")
    assert patched is not None and patched["p"] is True


async def test_write_batch_failure_reports_index(store: CosmosStore) -> None:
    await store.create("docs", {"id": "dup", "tenantId": "t1"})
    with pytest.raises(BatchFailed) as caught:
        await store.write_batch(
            "docs",
            "t1",
            [
                BatchOperation.create({"id": "new", "tenantId": "t1"}),
                BatchOperation.create({"id": "dup", "tenantId": "t1"}),
            ],
        )
    assert caught.value.index == 1
    assert caught.value.status_code == 409
    # Not atomic on the emulator: the first operation stays applied.
    assert await store.read("docs", "new", "t1") is not None


async def test_a_container_found_missing_is_recreated_once_and_the_call_retried(
    cosmos_client: CosmosClient, unique_name: str
) -> None:
    """The emulator restarted empty (here: the database deleted under a running store)."""
    store = CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR, recreate_missing=True)
    await store.ensure_containers([DOCS, LEASES])
    await store.upsert("docs", {"id": "a", "tenantId": "t1"})
    await cosmos_client.delete_database(unique_name)
    try:
        assert await store.query_partition("docs", "t1") == []  # recreated empty, not an error
        await cosmos_client.delete_database(unique_name)
        assert await store.read("docs", "a", "t1") is None
        await cosmos_client.delete_database(unique_name)
        await store.upsert("docs", {"id": "b", "tenantId": "t1"})
        assert [row["id"] for row in await store.query_partition("docs", "t1")] == ["b"]
        assert await store.delete("leases", "x", "t1") is False  # leases recreated too
        assert (await store.read_database())["id"] == unique_name
    finally:
        await cosmos_client.delete_database(unique_name)


async def test_without_rights_to_create_a_missing_container_is_container_missing(
    cosmos_client: CosmosClient, unique_name: str
) -> None:
    """In Azure (DOCGATE_CREATE_RESOURCES=false) the store never creates: ContainerMissing,
    which the edge answers 503, from every operation (a read is not 'no such item')."""
    store = CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR)
    await store.ensure_containers([DOCS])
    await cosmos_client.get_database_client(unique_name).delete_container("docs")
    try:
        operations = [
            store.read("docs", "a", "t1"),
            store.upsert("docs", {"id": "a", "tenantId": "t1"}),
            store.query_partition("docs", "t1"),
            store.delete("docs", "a", "t1"),
            store.replace("docs", {"id": "a", "tenantId": "t1"}, None),
            store.write_batch("docs", "t1", [BatchOperation.upsert({"id": "a", "tenantId": "t1"})]),
        ]
        for operation in operations:
            with pytest.raises(ContainerMissing):
                await operation
    finally:
        await cosmos_client.delete_database(unique_name)
