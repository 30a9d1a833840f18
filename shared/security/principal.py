"""The caller's identity as every data access receives it: user, tenant, groups, roles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_id: str
    tenant: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
