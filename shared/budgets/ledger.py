"""The usage ledger: one Cosmos record per request, and totals computed from the records.

Records live in the container `usage`, partitioned by tenant, so a tenant's totals are one
partition query. The emulator has no GROUP BY, so totals are summed here in Python over the
query's rows: the cost is one row read per request in the filtered period (a tenant-month of
100,000 requests reads 100,000 small rows, a few hundred RU on Azure and some seconds). That is
fine for the audit timer and admin views; the hot path never reads the ledger, it uses the
per-(scope, period) counters of `shared.budgets.counters`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from shared.budgets.periods import day_of, month_of
from shared.inputs import QUERY
from shared.storage.cosmos import ContainerSpec, CosmosStore

USAGE_CONTAINER = ContainerSpec("usage", "/tenant")


@dataclass(frozen=True)
class UsageRecord:
    """What one request consumed, and whose it was."""

    principal: str  # the user id
    tenant: str
    model: str
    region: str
    tier: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool = False
    trace_id: str | None = None
    reservation_id: str | None = None  # the budget reservation this request settled
    time: float = 0.0  # epoch seconds
    leases: tuple[str, ...] = ()  # the budget leases it was admitted from (the audit needs them)

    @property
    def day(self) -> str:
        """The UTC day of the request."""
        return day_of(self.time)

    @property
    def month(self) -> str:
        """The UTC month of the request."""
        return month_of(self.time)

    def to_item(self) -> dict[str, Any]:
        """The Cosmos item: the record plus its id, day and month (queried fields)."""
        return {"id": uuid.uuid4().hex, **asdict(self), "day": self.day, "month": self.month}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> UsageRecord:
        """The record a Cosmos item holds."""
        names = cls.__dataclass_fields__
        fields = {key: value for key, value in item.items() if key in names}
        fields["leases"] = tuple(fields.get("leases") or ())
        return cls(**fields)


@dataclass
class Amount:
    """Spend and tokens summed over some records."""

    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cached: int = 0

    def add(self, record: UsageRecord) -> None:
        """Count one record."""
        self.cost_usd += record.cost_usd
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.requests += 1
        self.cached += record.cached


@dataclass
class Totals:
    """A tenant's spend over the filtered records: overall, and per user, model, day and month."""

    tenant: str
    total: Amount = field(default_factory=Amount)
    by_user: dict[str, Amount] = field(default_factory=dict)
    by_model: dict[str, Amount] = field(default_factory=dict)
    by_day: dict[str, Amount] = field(default_factory=dict)
    by_month: dict[str, Amount] = field(default_factory=dict)

    def add(self, record: UsageRecord) -> None:
        """Count one record everywhere it belongs."""
        self.total.add(record)
        self.by_user.setdefault(record.principal, Amount()).add(record)
        self.by_model.setdefault(record.model, Amount()).add(record)
        self.by_day.setdefault(record.day, Amount()).add(record)
        self.by_month.setdefault(record.month, Amount()).add(record)


def _filters(
    user: str | None, model: str | None, day: str | None, month: str | None
) -> tuple[str | None, dict[str, Any]]:
    """The WHERE clause (beyond the tenant) and its parameters for the given filters."""
    wanted = {"principal": user, "model": model, "day": day, "month": month}
    present = {name: value for name, value in wanted.items() if value is not None}
    where = " AND ".join(f"c.{name} = @{name}" for name in present) or None
    return where, {f"@{name}": value for name, value in present.items()}


class UsageQuery(BaseModel):
    """`GET /api/usage`'s query string: which records to total."""

    model_config = QUERY
    user: str | None = Field(default=None, max_length=256)
    model: str | None = Field(default=None, max_length=256)
    day: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    month: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}$")


class UsageLedger:
    """Append-only usage records in Cosmos, and totals over them."""

    def __init__(
        self,
        store: CosmosStore,
        container: str = USAGE_CONTAINER.name,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Use `container` of `store` (registered by the caller: see USAGE_CONTAINER)."""
        self._store = store
        self._container = container
        self._clock = clock

    async def record(self, record: UsageRecord) -> UsageRecord:
        """Store one request's usage (stamped with the current time when it has none)."""
        stamped = (
            record if record.time else UsageRecord(**{**asdict(record), "time": self._clock()})
        )
        await self._store.create(self._container, stamped.to_item())
        return stamped

    async def records(
        self,
        tenant: str,
        user: str | None = None,
        model: str | None = None,
        day: str | None = None,
        month: str | None = None,
    ) -> list[UsageRecord]:
        """The tenant's records matching the filters (one partition query)."""
        where, parameters = _filters(user, model, day, month)
        items = await self._store.query_partition(self._container, tenant, where, parameters)
        return [UsageRecord.from_item(item) for item in items]

    async def totals(
        self,
        tenant: str,
        user: str | None = None,
        model: str | None = None,
        day: str | None = None,
        month: str | None = None,
    ) -> Totals:
        """The tenant's totals over the matching records, summed here (no GROUP BY needed)."""
        totals = Totals(tenant)
        for record in await self.records(tenant, user, model, day, month):
            totals.add(record)
        return totals
