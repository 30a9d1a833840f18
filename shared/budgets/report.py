"""Budget utilisation against limits for one tenant, as `GET /api/budgets` reports it.

Read from the same counters admission writes (settled spend plus live reservations), for the
current UTC day and month: the tenant's own budget always, and each user of the tenant who has a
counter in those periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.budgets.counters import BudgetCounters, Counter, CounterKey
from shared.budgets.periods import PERIODS, Period, period_key
from shared.budgets.policy import BudgetPolicy, Scope


@dataclass(frozen=True)
class BudgetLine:
    """One scope's spend in one period against its limits."""

    scope: str
    kind: str
    user: str | None
    period: Period
    period_key: str
    spent_usd: float
    reserved_usd: float
    limit_usd: float | None
    soft_limit_usd: float | None

    def as_json(self) -> dict[str, Any]:
        """The line as the API returns it, with the share of the hard limit used."""
        used = self.spent_usd + self.reserved_usd
        share = used / self.limit_usd if self.limit_usd else None
        return {**self.__dict__, "utilisation": None if share is None else round(share, 4)}


def _line(counter: Counter, policy: BudgetPolicy, now: float) -> BudgetLine:
    scope, period = counter.key.scope, counter.key.period
    limits = policy.limits(scope)
    limit = limits.limit(period)
    return BudgetLine(
        scope=scope.key,
        kind=scope.kind,
        user=scope.user,
        period=period,
        period_key=counter.key.period_key,
        spent_usd=round(counter.spent_usd, 6),
        reserved_usd=round(counter.reserved_usd(now), 6),
        limit_usd=limit,
        soft_limit_usd=None if limit is None else round(limit * limits.soft_ratio, 6),
    )


async def budget_report(
    counters: BudgetCounters, policy: BudgetPolicy, tenant: str, now: float
) -> dict[str, Any]:
    """The tenant's and its users' budgets for the current day and month."""
    keys = {period: period_key(period, now) for period in PERIODS}
    found = {
        (counter.key.scope, counter.key.period): counter
        for counter in await counters.all(tuple(keys.values()))
        if counter.key.scope.tenant == tenant and counter.key.period_key == keys[counter.key.period]
    }
    tenant_scope = Scope("tenant", tenant)
    for period in PERIODS:  # the tenant's own lines, even before its first request
        found.setdefault(
            (tenant_scope, period), Counter(CounterKey(tenant_scope, period, keys[period]))
        )
    lines = sorted(
        (_line(counter, policy, now) for counter in found.values()),
        key=lambda line: (line.kind != "tenant", line.user or "", line.period),
    )
    return {
        "enabled": not policy.unlimited,
        "day": keys["day"],
        "month": keys["month"],
        "budgets": [line.as_json() for line in lines],
    }
