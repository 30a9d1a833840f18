"""Unit tests of the Cosmos layer's emulator compensations; no emulator needed."""

from __future__ import annotations

from typing import Any

import pytest
from azure.cosmos.aio import CosmosClient
from azure.cosmos.exceptions import CosmosHttpResponseError

from shared.storage.cosmos import (
    AZURE,
    EMULATOR,
    EMULATOR_KEY,
    BatchOperation,
    ContainerSpec,
    CosmosStore,
    UnscopedQueryError,
    create_cosmos_client,
    effective_ttl,
    is_expired,
    is_loopback_endpoint,
    to_query_parameters,
)

EMULATOR_MISSING = "Cannot read properties of undefined (reading 'tenantId')"
DOCS = ContainerSpec("docs", "/tenantId")


def make_store(capabilities: Any) -> CosmosStore:
    """A store whose client is never used for I/O in these tests."""
    client = CosmosClient("https://127.0.0.1:1", EMULATOR_KEY)
    return CosmosStore(client, "db", [DOCS], capabilities=capabilities)


def test_presets() -> None:
    assert AZURE.enforces_ttl and AZURE.transactional_batch and not AZURE.missing_read_is_500
    assert EMULATOR.missing_read_is_500 and not EMULATOR.enforces_ttl
    assert not EMULATOR.transactional_batch and not EMULATOR.vector_distance


@pytest.mark.parametrize(
    ("capabilities", "status", "message", "missing"),
    [
        (AZURE, 404, "NotFound", True),
        (EMULATOR, 404, "NotFound", True),
        (EMULATOR, 500, EMULATOR_MISSING, True),
        (EMULATOR, 500, "Internal Server Error", False),
        (AZURE, 500, EMULATOR_MISSING, False),  # never on real Cosmos
        (EMULATOR, 400, EMULATOR_MISSING, False),
    ],
)
def test_missing_read_detection_is_narrow(
    capabilities: Any, status: int, message: str, missing: bool
) -> None:
    error = CosmosHttpResponseError(status_code=status, message=message)
    assert make_store(capabilities)._is_missing_read(error) is missing


@pytest.mark.parametrize(
    ("item", "default_ttl", "expected"),
    [
        ({"ttl": 5}, None, None),  # TTL off on the container: item ttl ignored
        ({}, -1, None),
        ({"ttl": 5}, -1, 5),
        ({}, 60, 60),
        ({"ttl": -1}, 60, None),
        ({"ttl": 10}, 60, 10),
        ({"ttl": True}, 60, 60),  # a bool is not a TTL
    ],
)
def test_effective_ttl(item: dict[str, Any], default_ttl: int | None, expected: int | None) -> None:
    assert effective_ttl(item, default_ttl) == expected


def test_is_expired() -> None:
    item = {"_ts": 1000, "ttl": 10}
    assert not is_expired(item, 1009.9)
    assert is_expired(item, 1010)
    assert not is_expired(item, 5000, default_ttl=None)
    assert is_expired({"_ts": 1000}, 1060, default_ttl=60)
    assert not is_expired({"ttl": 1}, 10**10)  # no _ts: a projection, cannot tell


def test_ttl_filtering_only_where_server_does_not_expire() -> None:
    spec = ContainerSpec("leases", "/tenantId", default_ttl=1)
    old = {"id": "x", "_ts": 0}
    emulator = CosmosStore(
        CosmosClient("https://127.0.0.1:1", EMULATOR_KEY), "db", [spec], EMULATOR, clock=lambda: 5
    )
    azure = CosmosStore(
        CosmosClient("https://127.0.0.1:1", EMULATOR_KEY), "db", [spec], AZURE, clock=lambda: 5
    )
    assert not emulator._is_live("leases", old)
    assert azure._is_live("leases", old)  # Azure expires items itself; clock skew must not hide


def test_partition_filter_guard() -> None:
    store = make_store(EMULATOR)
    store._require_partition_filter("docs", "SELECT * FROM c WHERE c.tenantId = @pk")
    store._require_partition_filter("docs", "SELECT * FROM c WHERE c['tenantId'] = @pk")
    store._require_partition_filter("docs", 'SELECT * FROM d WHERE d["tenantId"] = @pk')
    with pytest.raises(UnscopedQueryError):
        store._require_partition_filter("docs", "SELECT * FROM c WHERE c.tenant = @pk")


def test_partition_key_helpers() -> None:
    nested = ContainerSpec("x", "/tenant/id")
    assert nested.partition_key_sql == 'c["tenant"]["id"]'
    assert nested.partition_key_field == "id"
    assert nested.partition_key_of({"tenant": {"id": "t1"}}) == "t1"
    assert nested.partition_key_of({"tenant": "flat"}) is None


def test_query_parameters() -> None:
    assert to_query_parameters({"a": 1, "@b": "x"}) == [
        {"name": "@a", "value": 1},
        {"name": "@b", "value": "x"},
    ]
    assert to_query_parameters(None) == []


def test_batch_operations_to_sdk() -> None:
    item = {"id": "a", "tenantId": "t"}
    assert BatchOperation.create(item).to_sdk() == ("create", (item,), {})
    assert BatchOperation.replace(item, "e1").to_sdk() == (
        "replace",
        ("a", item),
        {"if_match_etag": "e1"},
    )
    assert BatchOperation.delete("a").to_sdk() == ("delete", ("a",), {})
    ops = [{"op": "set", "path": "/x", "value": 1}]
    assert BatchOperation.patch("a", ops).to_sdk() == ("patch", ("a", ops), {})


def test_loopback_detection() -> None:
    assert is_loopback_endpoint("https://127.0.0.1:8081")
    assert is_loopback_endpoint("https://localhost:8081/")
    assert is_loopback_endpoint("https://[::1]:8081/")
    assert not is_loopback_endpoint("https://acct.documents.azure.com:443/")


def test_client_factory_refuses_unverified_remote_tls() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        create_cosmos_client("https://acct.documents.azure.com", "key", None, verify_tls=False)
    with pytest.raises(ValueError, match="key or a credential"):
        create_cosmos_client("https://acct.documents.azure.com", None, None)


async def test_unknown_container_is_refused() -> None:
    store = make_store(EMULATOR)
    with pytest.raises(KeyError):
        await store.read("nope", "id", "pk")
