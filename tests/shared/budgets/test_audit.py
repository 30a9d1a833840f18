"""The budget audit on the Cosmos emulator: drift repair, status, alerts, metrics, webhook."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.budgets.admission import BudgetGate, BudgetOptions, BudgetReservation
from shared.budgets.audit import AuditOptions, BudgetAuditor
from shared.budgets.counters import BudgetCounters, CounterKey, spending
from shared.budgets.ledger import UsageLedger
from shared.budgets.policy import Scope, parse_budgets
from shared.security.principal import Principal
from shared.storage.cosmos import CosmosStore
from tests.shared.budgets.conftest import ROUTER, FakeClock
from tests.shared.budgets.helpers import decision_at, usage

pytestmark = pytest.mark.emulators

ALICE = Principal("alice", "contoso")
POLICY = parse_budgets(json.dumps({"tenant": {"daily_usd": 1.0, "monthly_usd": 100.0}}))
TENANT_DAY = CounterKey(Scope("tenant", "contoso"), "day", "2023-11-14")


class Webhook:
    """A tiny local webhook receiver that records the JSON it is sent."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(status=self.status)


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    """The receiver and its URL on a loopback port."""
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield hook, str(server.make_url("/hook"))
    await server.close()


def auditor(
    store: CosmosStore,
    ledger: UsageLedger,
    counters: BudgetCounters,
    url: str | None,
    reader: InMemoryMetricReader | None = None,
) -> BudgetAuditor:
    """An auditor over the test's containers (metrics into `reader` when given)."""
    provider = MeterProvider(metric_readers=[reader] if reader else [])
    return BudgetAuditor(
        store,
        ledger,
        counters,
        POLICY,
        AuditOptions(webhook_url=url),
        budget_meter=provider.get_meter("test"),
    )


async def spend(
    gate: BudgetGate, ledger: UsageLedger, cost: float, *, settle: bool = True
) -> BudgetReservation:
    """One request: admitted, recorded in the ledger, then settled (ledger first, as callers do)."""
    reservation = await gate.admit(ALICE, decision_at("economy"))
    assert isinstance(reservation, BudgetReservation), reservation
    await ledger.record(usage("alice", cost, reservation_id=reservation.id))
    if settle:
        await gate.settle(reservation, cost)
    return reservation


def gauges(reader: InMemoryMetricReader) -> dict[tuple[Any, ...], float]:
    """The last value of each gauge per (name, scope_kind, period, scope): one collection."""
    data = reader.get_metrics_data()
    values = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    a = point.attributes or {}
                    key = (metric.name, a.get("scope_kind"), a.get("period"), a.get("scope"))
                    values[key] = point.value
    return values


async def test_audit_repairs_drift_from_the_ledger(
    budget_store: CosmosStore, ledger: UsageLedger, counters: BudgetCounters
) -> None:
    gate = BudgetGate(counters, BudgetOptions(POLICY), ROUTER)
    await spend(gate, ledger, 0.30)
    await spend(gate, ledger, 0.20)
    in_flight = await spend(gate, ledger, 0.05, settle=False)  # recorded, not yet settled
    await counters.update(TENANT_DAY, spending(0.01))  # drift: a lost settle, say

    reader = InMemoryMetricReader()
    report = await auditor(budget_store, ledger, counters, None, reader).audit()

    repaired = {status.counter_id: status for status in report.repaired}
    assert repaired[TENANT_DAY.id].drift_usd == pytest.approx(0.49)
    counter = await counters.read(TENANT_DAY)
    assert counter.spent_usd == pytest.approx(0.50)  # the in-flight request is not spend yet
    assert list(counter.reservations) == [in_flight.id]
    measured = gauges(reader)
    day = ("tenant", "day", "tenant:contoso")
    assert measured[("docgate.budget.spent", *day)] == pytest.approx(0.50)
    assert measured[("docgate.budget.ratio", *day)] == pytest.approx(0.50)
    assert measured[("docgate.budget.drift_repairs", None, "day", None)] == 1
    status = await budget_store.read(
        "budgets", f"status%7C{TENANT_DAY.id}", f"status%7C{TENANT_DAY.id}"
    )
    assert status is not None and status["spent_usd"] == pytest.approx(0.50)
    assert status["limit_usd"] == 1.0

    again = await auditor(budget_store, ledger, counters, None).audit()
    assert again.repaired == []  # nothing drifted since


async def test_audit_warns_at_80_and_100_percent_once_and_calls_the_webhook(
    budget_store: CosmosStore,
    ledger: UsageLedger,
    counters: BudgetCounters,
    webhook: tuple[Webhook, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook, url = webhook
    gate = BudgetGate(counters, BudgetOptions(POLICY), ROUTER)
    for _ in range(17):
        await spend(gate, ledger, 0.05)  # $0.85 of $1.00

    with caplog.at_level(logging.WARNING, logger="shared.budgets.audit"):
        first = await auditor(budget_store, ledger, counters, url).audit()
    day = next(s for s in first.statuses if s.counter_id == TENANT_DAY.id)
    assert day.alerts == (0.8,)
    (payload,) = hook.received
    assert payload == {
        "event": "budget.threshold",
        "level": "warning",
        "threshold": 0.8,
        "scope": "tenant:contoso",
        "period": "day",
        "period_key": "2023-11-14",
        "spent_usd": pytest.approx(0.85),
        "limit_usd": 1.0,
        "ratio": pytest.approx(0.85),
        "at": pytest.approx(1_700_000_000.0),
    }
    assert any("reached 80%" in record.getMessage() for record in caplog.records)

    await auditor(budget_store, ledger, counters, url).audit()
    assert len(hook.received) == 1  # already notified: another audit stays quiet

    for _ in range(3):
        await ledger.record(usage("alice", 0.05))  # $1.00: recorded by a path without budget
    third = await auditor(budget_store, ledger, counters, url).audit()
    day = next(s for s in third.statuses if s.counter_id == TENANT_DAY.id)
    assert day.alerts == (1.0,) and day.drift_usd == pytest.approx(0.15)
    assert [p["level"] for p in hook.received] == ["warning", "exceeded"]
    alert = await budget_store.read(
        "budgets", f"alert%7C{TENANT_DAY.id}%7C1", f"alert%7C{TENANT_DAY.id}%7C1"
    )
    assert alert is not None and alert["level"] == "exceeded"


async def test_a_failing_webhook_is_logged_and_the_audit_goes_on(
    budget_store: CosmosStore,
    ledger: UsageLedger,
    counters: BudgetCounters,
    webhook: tuple[Webhook, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook, url = webhook
    hook.status = 500
    gate = BudgetGate(counters, BudgetOptions(POLICY), ROUTER)
    await spend(gate, ledger, 0.9)
    with caplog.at_level(logging.WARNING, logger="shared.budgets.audit"):
        report = await auditor(budget_store, ledger, counters, url).audit()
    assert len(hook.received) == 1
    assert any(s.alerts == (0.8,) for s in report.statuses)
    assert any("budget webhook" in record.getMessage() for record in caplog.records)

    unreachable = auditor(budget_store, ledger, counters, "http://127.0.0.1:9/hook")
    await ledger.record(usage("alice", 0.2))
    report = await unreachable.audit()  # the 100% alert's webhook cannot connect: no raise
    assert any(s.alerts == (1.0,) for s in report.statuses)


async def test_audit_sweeps_lapsed_reservations(
    budget_store: CosmosStore, ledger: UsageLedger, counters: BudgetCounters, clock: FakeClock
) -> None:
    gate = BudgetGate(counters, BudgetOptions(POLICY, reservation_seconds=10), ROUTER)
    await spend(gate, ledger, 0.1, settle=False)
    clock.now += 11
    report = await auditor(budget_store, ledger, counters, None).audit()
    assert report.released == 2  # tenant day and month
    assert (await counters.read(TENANT_DAY)).reservations == {}
    assert (await counters.read(TENANT_DAY)).spent_usd == pytest.approx(0.1)
