"""The budget audit: recompute spend from the ledger, repair counters, record status, warn.

Run it from a timer on any instance (several at once is safe):

1. sweep lapsed reservations out of every counter;
2. for each counter of the current day and month, recompute its settled spend from the ledger
   and repair drift (a settle that failed after its ledger record was written, a lost write);
3. record a status item per counter, emit metrics, and at each warning ratio (80% and 100% by
   default) write one alert item, log a warning and call the webhook.

Leases (shared/budgets/leases.py): a record admitted from a lease names it; while the lease
is held in the counter the record is left out (its amount is inside the lease), once the lease
is closed or swept the record counts. A lease never lapses by itself: a dead holder's lease
counts in full until the sweep, whose spend the repair then takes from the ledger.

Why the repair is race-free: callers write the ledger record BEFORE settling the counter. The
audit reads the counter first (with its ETag), then the ledger, and writes the repaired spend
with If-Match. Records whose reservation is still held in the counter it read are left out
(their amount is still a reservation, not spend). A settle landing after the counter was read
changes the ETag, so the repair write loses and is retried on fresh data.

Notifications happen once per (counter, ratio): the alert item is created with create(), and
only the instance whose create succeeds notifies.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import aiohttp
from opentelemetry.metrics import Meter

from shared.budgets.counters import BudgetCounters, Counter, spending
from shared.budgets.ledger import UsageLedger, UsageRecord
from shared.budgets.periods import day_of, month_of
from shared.budgets.policy import BudgetPolicy
from shared.storage.cosmos import AlreadyExists, CosmosStore
from shared.telemetry import meter

log = logging.getLogger(__name__)
DRIFT_TOLERANCE_USD = 1e-9


@dataclass(frozen=True)
class AuditOptions:
    """Where and when the audit warns."""

    webhook_url: str | None = None
    warn_ratios: tuple[float, ...] = (0.8, 1.0)
    webhook_timeout_seconds: float = 5.0
    max_repair_attempts: int = 5


@dataclass(frozen=True)
class BudgetStatus:
    """One counter's state after the audit."""

    counter_id: str
    scope: str
    period: str
    period_key: str
    spent_usd: float
    reserved_usd: float
    limit_usd: float | None
    ratio: float | None
    drift_usd: float  # what the repair changed (ledger minus counter)
    alerts: tuple[float, ...] = ()  # warning ratios newly crossed by this audit


@dataclass
class AuditReport:
    """What one audit run saw and did."""

    released: int = 0
    statuses: list[BudgetStatus] = field(default_factory=list)

    @property
    def repaired(self) -> list[BudgetStatus]:
        """The counters whose spend was corrected."""
        return [status for status in self.statuses if abs(status.drift_usd) > DRIFT_TOLERANCE_USD]


def belongs(record: UsageRecord, counter: Counter) -> bool:
    """Whether `record` counts in `counter`'s scope and period."""
    scope, key = counter.key.scope, counter.key
    if scope.kind == "user" and record.principal != scope.user:
        return False
    return (record.day if key.period == "day" else record.month) == key.period_key


def settled_spend(records: Iterable[UsageRecord], counter: Counter) -> float:
    """The spend `counter` should hold: its records, less those still reserved in it."""
    held = counter.reservations
    return sum(
        record.cost_usd
        for record in records
        if belongs(record, counter)
        and record.reservation_id not in held
        and not any(lease in held for lease in record.leases)
    )


class _Instruments:
    """The audit's OpenTelemetry instruments."""

    def __init__(self, budget_meter: Meter) -> None:
        """Create them on `budget_meter`."""
        self.spent = budget_meter.create_gauge("docgate.budget.spent", unit="USD")
        self.ratio = budget_meter.create_gauge("docgate.budget.ratio", unit="1")
        self.alerts = budget_meter.create_counter("docgate.budget.alerts")
        self.drift = budget_meter.create_counter("docgate.budget.drift_repairs")


class BudgetAuditor:
    """Recomputes, repairs, records and warns; see the module docstring."""

    def __init__(
        self,
        store: CosmosStore,
        ledger: UsageLedger,
        counters: BudgetCounters,
        policy: BudgetPolicy,
        options: AuditOptions,
        container: str = "budgets",
        post: Callable[[str, dict[str, Any], float], Any] | None = None,
        budget_meter: Meter | None = None,
    ) -> None:
        """Status and alert items go to `container` (the counters' container by default);
        `post` and `budget_meter` replace the webhook call and docgate's meter (tests)."""
        self._store = store
        self._ledger = ledger
        self._counters = counters
        self._policy = policy
        self._options = options
        self._container = container
        self._post = post or post_json
        self._instruments = _Instruments(budget_meter or meter())

    async def audit(self) -> AuditReport:
        """One full audit pass over the current day's and month's counters."""
        now = self._counters.now()
        report = AuditReport(released=await self._counters.sweep())
        counters = await self._counters.all((day_of(now), month_of(now)))
        by_tenant: dict[str, list[Counter]] = defaultdict(list)
        for counter in counters:
            by_tenant[counter.key.scope.tenant].append(counter)
        for tenant, tenant_counters in sorted(by_tenant.items()):
            # One ledger query per tenant, made after its counters were read (see the docstring).
            records = await self._ledger.records(tenant, month=month_of(now))
            for counter in tenant_counters:
                report.statuses.append(await self._audit_counter(counter, records, now))
        return report

    async def _audit_counter(
        self, counter: Counter, records: list[UsageRecord], now: float
    ) -> BudgetStatus:
        """Repair one counter, then record its status and any alerts."""
        repaired, drift = await self._repair(counter, records)
        limit = self._policy.limits(counter.key.scope).limit(counter.key.period)
        ratio = None if not limit else repaired.spent_usd / limit
        status = BudgetStatus(
            counter_id=counter.key.id,
            scope=counter.key.scope.key,
            period=counter.key.period,
            period_key=counter.key.period_key,
            spent_usd=repaired.spent_usd,
            reserved_usd=repaired.reserved_usd(now),
            limit_usd=limit,
            ratio=ratio,
            drift_usd=drift,
        )
        status = replace(status, alerts=await self._alert(status, now))
        await self._record(status, now)
        self._measure(status)
        return status

    async def _repair(self, counter: Counter, records: list[UsageRecord]) -> tuple[Counter, float]:
        """Set the counter's spend to the ledger's; returns it and the drift it corrected.

        `counter` must have been read before `records`; a retry re-reads both in that order.
        """
        key, fresh = counter.key, counter
        for attempt in range(self._options.max_repair_attempts):
            if attempt:
                fresh = await self._counters.read(key)
                records = await self._ledger.records(key.scope.tenant, month=key.period_key[:7])
            target = settled_spend(records, fresh)
            drift = target - fresh.spent_usd
            if abs(drift) <= DRIFT_TOLERANCE_USD:
                return fresh, 0.0
            written = await self._counters.update(key, _unless_changed(fresh.etag, target))
            if written is not None:
                log.warning(
                    "budget counter %s drifted by $%.6f: repaired from the ledger",
                    key.id,
                    drift,
                    extra={"budget_counter": key.id, "budget_drift_usd": drift},
                )
                self._instruments.drift.add(1, {"period": key.period})
                return written, drift
        log.warning("budget counter %s: repair kept losing races; next audit retries", key.id)
        return counter, 0.0

    async def _alert(self, status: BudgetStatus, now: float) -> tuple[float, ...]:
        """Alert once for each warning ratio the spend has reached; returns the new ones."""
        if status.ratio is None:
            return ()
        crossed = [ratio for ratio in self._options.warn_ratios if status.ratio >= ratio]
        fired = []
        for ratio in crossed:
            if await self._claim_alert(status, ratio, now):
                fired.append(ratio)
                await self._notify(status, ratio, now)
        return tuple(fired)

    async def _claim_alert(self, status: BudgetStatus, ratio: float, now: float) -> bool:
        """Write the alert record; False when another audit already did (it notified)."""
        item = {
            "id": f"alert%7C{status.counter_id}%7C{ratio:g}",
            "kind": "alert",
            **alert_payload(status, ratio, now),
        }
        try:
            await self._store.create(self._container, item)
        except AlreadyExists:
            return False
        return True

    async def _notify(self, status: BudgetStatus, ratio: float, now: float) -> None:
        """Log the warning, count it, and call the webhook (never raising)."""
        payload = alert_payload(status, ratio, now)
        log.warning(
            "budget %s %s reached %.0f%% ($%.4f of $%.2f)",
            status.scope,
            status.period_key,
            100 * ratio,
            status.spent_usd,
            status.limit_usd or 0.0,
            extra={f"budget_{name}": value for name, value in payload.items()},
        )
        self._instruments.alerts.add(1, {"period": status.period, "threshold": ratio})
        if self._options.webhook_url:
            await self._call_webhook(payload)

    async def _call_webhook(self, payload: dict[str, Any]) -> None:
        """POST the alert; a failing webhook is logged, never raised (the audit goes on)."""
        url = self._options.webhook_url or ""
        try:
            await self._post(url, payload, self._options.webhook_timeout_seconds)
        except Exception:  # the webhook is a courtesy: its failure must not stop the audit
            log.warning("budget webhook %s failed", url, exc_info=True)

    async def _record(self, status: BudgetStatus, now: float) -> None:
        """Upsert the status item of the counter (last audit wins: it is a snapshot)."""
        item = {"id": f"status%7C{status.counter_id}", "kind": "status", **asdict(status)}
        item["alerts"] = list(status.alerts)
        item["audited_at"] = now
        await self._store.upsert(self._container, item)

    def _measure(self, status: BudgetStatus) -> None:
        """Record the spend and its ratio as gauges (scope kind and period as attributes)."""
        kind = status.scope.split(":", 1)[0]
        attributes = {"scope_kind": kind, "period": status.period}
        if kind == "tenant":  # user ids would explode the metric's cardinality
            attributes["scope"] = status.scope
        self._instruments.spent.set(status.spent_usd, attributes)
        if status.ratio is not None:
            self._instruments.ratio.set(status.ratio, attributes)


def _unless_changed(etag: str | None, spent_usd: float) -> Callable[[Counter, float], Any]:
    """The repair transition, refused when the counter changed since the audit read it."""
    repair = spending(spent_usd)
    return lambda counter, now: repair(counter, now) if counter.etag == etag else None


def alert_payload(status: BudgetStatus, ratio: float, now: float) -> dict[str, Any]:
    """The webhook's JSON body (and the alert record's fields)."""
    return {
        "event": "budget.threshold",
        "level": "exceeded" if ratio >= 1.0 else "warning",
        "threshold": ratio,
        "scope": status.scope,
        "period": status.period,
        "period_key": status.period_key,
        "spent_usd": round(status.spent_usd, 6),
        "limit_usd": status.limit_usd,
        "ratio": round(status.ratio or 0.0, 4),
        "at": now,
    }


async def post_json(url: str, payload: dict[str, Any], timeout_seconds: float) -> None:
    """POST `payload` as JSON; raises on a transport error or a non-2xx answer."""
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json=payload) as response,
    ):
        response.raise_for_status()
