"""ACL trimming: the SQL fragment and its Python twin, which must select the same chunks."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from azure.cosmos import CosmosClient, PartitionKey

from shared.retrieval.access import acl_sql, can_read, is_searchable
from shared.security.principal import Principal

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

ALICE = Principal(user_id="alice", tenant="acme", groups=("sales",))
BOB = Principal(user_id="bob", tenant="acme", groups=("finance", "legal"))
CAROL = Principal(user_id="carol", tenant="acme")
EVE = Principal(user_id="alice", tenant="other", groups=("finance",))  # same names, other tenant
PRINCIPALS = (ALICE, BOB, CAROL, EVE)


def acl(users: tuple[str, ...] = (), groups: tuple[str, ...] = (), open_: bool = False) -> dict:
    """A chunk ACL as index.chunk_item stores it."""
    return {"users": list(users), "groups": list(groups), "tenant_wide": open_}


def test_tenant_wide_chunks_are_readable_by_everyone() -> None:
    assert can_read(CAROL, acl(open_=True))


def test_named_users_and_groups_grant_access() -> None:
    assert can_read(ALICE, acl(users=("alice",)))
    assert can_read(BOB, acl(groups=("legal",)))
    assert not can_read(CAROL, acl(users=("alice",), groups=("finance",)))
    assert not can_read(ALICE, acl(groups=("finance",)))


def test_missing_or_malformed_acls_are_closed() -> None:
    assert not can_read(ALICE, None)
    assert not can_read(ALICE, {})
    assert not can_read(ALICE, {"tenant_wide": "true", "users": "alice", "groups": "sales"})


def test_is_searchable_also_needs_the_tenant_and_live_status() -> None:
    chunk = {"tenant": "acme", "status": "live", "acl": acl(open_=True)}
    assert is_searchable(ALICE, chunk)
    assert not is_searchable(EVE, chunk)
    assert not is_searchable(ALICE, {**chunk, "status": "staged"})


def test_acl_sql_is_parameterised() -> None:
    sql, parameters = acl_sql(Principal(user_id="x' OR 1=1 --", tenant="t'", groups=("g'",)))
    assert "'" not in sql
    assert parameters == {
        "@acl_tenant": "t'",
        "@acl_live": "live",
        "@acl_user": "x' OR 1=1 --",
        "@acl_groups": ["g'"],
    }
    assert sql == (
        "(c.tenant = @acl_tenant AND c.status = @acl_live AND (c.acl.tenant_wide = true OR "
        "ARRAY_CONTAINS(c.acl.users, @acl_user) OR EXISTS(SELECT VALUE g FROM g IN "
        "c.acl.groups WHERE ARRAY_CONTAINS(@acl_groups, g))))"
    )


def test_without_groups_the_group_test_is_left_out() -> None:
    sql, parameters = acl_sql(CAROL)
    assert "EXISTS" not in sql and "@acl_groups" not in parameters


# On the emulator ----------------------------------------------------------------------------

ACLS = (
    acl(open_=True),
    acl(users=("alice",)),
    acl(users=("bob", "carol")),
    acl(groups=("finance",)),
    acl(groups=("sales", "legal")),
    acl(users=("dave",), groups=("hr",)),
    acl(),  # nobody (closed)
)


def chunks() -> list[dict[str, Any]]:
    """Every ACL in both tenants and both statuses."""
    combos = itertools.product(enumerate(ACLS), ("acme", "other"), ("live", "staged"))
    return [
        {"id": f"{tenant}-{status}-{index}", "tenant": tenant, "status": status, "acl": chunk_acl}
        for (index, chunk_acl), tenant, status in combos
    ]


@pytest.fixture(scope="module")
def acl_container(emulators: EmulatorEndpoints) -> Iterator[Any]:
    """A chunks container on the emulator holding every ACL combination."""
    client = CosmosClient(
        emulators.cosmos_endpoint,
        emulators.cosmos_key,
        connection_verify=False,
        enable_endpoint_discovery=False,
    )
    name = f"t-acl-{uuid.uuid4().hex[:12]}"
    container = client.create_database(name).create_container("chunks", PartitionKey("/tenant"))
    try:
        for item in chunks():
            container.upsert_item(item)
        yield container
    finally:
        client.delete_database(name)


@pytest.mark.emulators
@pytest.mark.parametrize("principal", PRINCIPALS, ids=lambda p: f"{p.user_id}@{p.tenant}")
def test_the_emulator_selects_exactly_what_can_read_allows(
    acl_container: Any, principal: Principal
) -> None:
    where, parameters = acl_sql(principal)
    sql = f"SELECT c.id FROM c WHERE c.tenant = @pk AND {where}"
    query = [{"name": k, "value": v} for k, v in {**parameters, "@pk": principal.tenant}.items()]
    rows = list(acl_container.query_items(sql, parameters=query, partition_key=principal.tenant))
    selected = [row["id"] for row in rows]
    assert len(selected) == len(set(selected))  # one row per chunk, however many groups match
    assert set(selected) == {item["id"] for item in chunks() if is_searchable(principal, item)}
    assert selected  # every principal reads at least the tenant-wide chunk
