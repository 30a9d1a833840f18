"""ACL trimming: which chunks a principal may retrieve, as Cosmos SQL and as Python.

A chunk is searchable by a principal when all of these hold:
- it is in the principal's tenant (the partition key);
- its status is `live` (staged chunks of a version being ingested are never searchable);
- `acl.tenant_wide` is true, OR the user is in `acl.users`, OR one of the principal's groups
  is in `acl.groups`.

The group test is `EXISTS(SELECT VALUE g FROM g IN c.acl.groups WHERE ARRAY_CONTAINS(@groups,
g))`: one parameter however many groups the principal has, and one row per chunk. It runs on
Azure Cosmos DB and on the emulator (@vercel/cosmosdb-server, checked by the tests). A JOIN
would also work but returns a chunk once per matching group, and the emulator has no DISTINCT
to fold them. No role bypasses the ACL: an admin reads what its user and groups may read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.documents.index import LIVE
from shared.security.principal import Principal


def acl_sql(principal: Principal, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """The WHERE fragment (tenant, live, ACL) and its parameters for `principal`."""
    readable = [
        f"{alias}.acl.tenant_wide = true",
        f"ARRAY_CONTAINS({alias}.acl.users, @acl_user)",
    ]
    parameters: dict[str, Any] = {
        "@acl_tenant": principal.tenant,
        "@acl_live": LIVE,
        "@acl_user": principal.user_id,
    }
    if principal.groups:  # without groups the subquery could only be false: leave it out
        readable.append(
            f"EXISTS(SELECT VALUE g FROM g IN {alias}.acl.groups "
            "WHERE ARRAY_CONTAINS(@acl_groups, g))"
        )
        parameters["@acl_groups"] = list(principal.groups)
    fragment = (
        f"({alias}.tenant = @acl_tenant AND {alias}.status = @acl_live "
        f"AND ({' OR '.join(readable)}))"
    )
    return fragment, parameters


def can_read(principal: Principal, chunk_acl: Mapping[str, Any] | None) -> bool:
    """Whether the ACL lets `principal` read (tenant and status are checked by the caller)."""
    if not isinstance(chunk_acl, Mapping):
        return False  # no ACL recorded: closed, never open by default
    if chunk_acl.get("tenant_wide") is True:
        return True
    users = chunk_acl.get("users")
    if isinstance(users, list) and principal.user_id in users:
        return True
    groups = chunk_acl.get("groups")
    return isinstance(groups, list) and any(group in groups for group in principal.groups)


def is_searchable(principal: Principal, item: Mapping[str, Any]) -> bool:
    """The whole rule of `acl_sql` in Python: tenant, live status and ACL."""
    return (
        item.get("tenant") == principal.tenant
        and item.get("status") == LIVE
        and can_read(principal, item.get("acl"))
    )


__all__ = ["acl_sql", "can_read", "is_searchable"]
