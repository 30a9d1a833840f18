"""Budgets as data: the `BUDGETS` setting, parsed and validated, and the scopes they apply to."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from shared.budgets.periods import Period

ScopeKind = Literal["tenant", "user"]
LIMIT_FIELDS = ("daily_usd", "monthly_usd", "soft_ratio")


@dataclass(frozen=True)
class Limits:
    """A scope's limits in USD (None: unlimited) and the share of them that is the soft limit."""

    daily_usd: float | None = None
    monthly_usd: float | None = None
    soft_ratio: float = 0.8

    def limit(self, period: Period) -> float | None:
        """The hard limit of `period`."""
        return self.daily_usd if period == "day" else self.monthly_usd


@dataclass(frozen=True)
class Scope:
    """Whose spend a budget counts: a tenant, or one user within a tenant."""

    kind: ScopeKind
    tenant: str
    user: str | None = None

    @property
    def key(self) -> str:
        """Unique across tenants: "tenant:contoso" or "user:contoso/alice"."""
        return (
            f"tenant:{self.tenant}" if self.kind == "tenant" else f"user:{self.tenant}/{self.user}"
        )

    @property
    def override_key(self) -> str:
        """The key overrides are written with: "tenant:contoso" or "user:alice"."""
        return f"tenant:{self.tenant}" if self.kind == "tenant" else f"user:{self.user}"

    def counter_id(self, period: Period, key: str) -> str:
        """The Cosmos id of this scope's counter for one period (quoted: ids forbid '/')."""
        return quote(f"{self.key}|{period}|{key}", safe="")


@dataclass(frozen=True)
class BudgetPolicy:
    """Default limits per scope kind, and overrides for named tenants and users."""

    tenant: Limits = field(default_factory=Limits)
    user: Limits = field(default_factory=Limits)
    overrides: Mapping[str, Limits] = field(default_factory=dict)

    def limits(self, scope: Scope) -> Limits:
        """The limits that apply to `scope` (its override, else its kind's default)."""
        default = self.tenant if scope.kind == "tenant" else self.user
        return self.overrides.get(scope.override_key, default)

    @property
    def unlimited(self) -> bool:
        """True when no scope has any limit: admission can skip the store entirely."""
        every = (self.tenant, self.user, *self.overrides.values())
        return all(limits.daily_usd is None and limits.monthly_usd is None for limits in every)


def _amount(value: object, where: str) -> float | None:
    """A limit in USD: null (unlimited) or a finite number >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a number or null")
    if value < 0:
        raise ValueError(f"{where} must be >= 0")
    return float(value)


def _ratio(value: object, where: str) -> float:
    """The soft ratio: a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{where} must be a number in (0, 1]")
    return float(value)


def _limits(entry: object, where: str, base: Limits | None = None) -> Limits:
    """One limits object; fields it leaves out come from `base` (an override's default)."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a JSON object")
    unknown = sorted(set(entry) - set(LIMIT_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown} (known: {list(LIMIT_FIELDS)})")
    merged: dict[str, Any] = {**(base.__dict__ if base else {}), **entry}
    return Limits(
        daily_usd=_amount(merged.get("daily_usd"), f"{where}.daily_usd"),
        monthly_usd=_amount(merged.get("monthly_usd"), f"{where}.monthly_usd"),
        soft_ratio=_ratio(merged.get("soft_ratio", 0.8), f"{where}.soft_ratio"),
    )


def _overrides(entry: object, tenant: Limits, user: Limits) -> dict[str, Limits]:
    """The "overrides" object: "tenant:<id>" or "user:<id>" -> limits over the kind's default."""
    if not isinstance(entry, dict):
        raise ValueError("overrides must be a JSON object")
    parsed = {}
    for key, limits in entry.items():
        kind, _, name = str(key).partition(":")
        if kind not in ("tenant", "user") or not name:
            raise ValueError(f'override key {key!r} must be "tenant:<id>" or "user:<id>"')
        parsed[key] = _limits(limits, f"overrides.{key}", tenant if kind == "tenant" else user)
    return parsed


def parse_budgets(text: str) -> BudgetPolicy:
    """`BUDGETS`: {"tenant": limits, "user": limits, "overrides": {"tenant:x" | "user:y": limits}}
    where limits = {daily_usd, monthly_usd, soft_ratio}. Empty: no budgets."""
    if not text.strip():
        return BudgetPolicy()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"must be JSON ({error.msg})") from error
    if not isinstance(document, dict):
        raise ValueError("must be a JSON object")
    unknown = sorted(set(document) - {"tenant", "user", "overrides"})
    if unknown:
        raise ValueError(f"unknown top-level fields {unknown}")
    tenant = _limits(document.get("tenant", {}), "tenant")
    user = _limits(document.get("user", {}), "user")
    return BudgetPolicy(tenant, user, _overrides(document.get("overrides", {}), tenant, user))
