"""The caller's identity as every data access receives it: user, tenant, groups, roles.

Until Entra ID authentication lands, routes are guarded by function keys, and a key holder acts
for the tenant it names (`?tenant=` or `x-docgate-tenant`, default "default"). Every query
already takes a Principal, so authentication replaces only `principal_from_request`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import azure.functions as func

from shared.documents.records import DEFAULT_TENANT
from shared.http import ProblemError

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_id: str
    tenant: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


def principal_from_request(req: func.HttpRequest) -> Principal:
    """The caller of a key-guarded route: the key holder, acting for the tenant it names."""
    tenant = req.params.get("tenant") or req.headers.get("x-docgate-tenant") or DEFAULT_TENANT
    if not _TENANT.match(tenant):
        raise ProblemError(400, "tenant must be 1-64 letters, digits, '.', '_' or '-'")
    return Principal(user_id="function-key", tenant=tenant, roles=("admin",))
