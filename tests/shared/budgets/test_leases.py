"""Leased budget slices on the Cosmos emulator: local admission, closing, refusals, crashes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shared.budgets.admission import BudgetOptions, BudgetReservation
from shared.budgets.audit import AuditOptions, BudgetAuditor
from shared.budgets.counters import BudgetCounters, CounterKey, spending
from shared.budgets.leases import LEASE_PREFIX, LeasedBudgetGate, LeaseOptions
from shared.budgets.ledger import UsageLedger
from shared.budgets.policy import Scope, parse_budgets
from shared.routing.cost import Refusal
from shared.security.principal import Principal
from shared.storage.cosmos import CosmosStore
from tests.shared.budgets.conftest import ROUTER, FakeClock
from tests.shared.budgets.helpers import decision_at, usage

pytestmark = pytest.mark.emulators

ALICE = Principal("alice", "contoso")
POLICY = parse_budgets(
    json.dumps({"tenant": {"daily_usd": 1.0, "soft_ratio": 0.8}, "user": {"daily_usd": 0.5}})
)
TENANT_DAY = CounterKey(Scope("tenant", "contoso"), "day", "2023-11-14")
USER_DAY = CounterKey(Scope("user", "contoso", "alice"), "day", "2023-11-14")
LEASES = LeaseOptions(fraction=0.1, seconds=30)  # $0.10 of the tenant, $0.05 of the user


def leased(
    counters: BudgetCounters, holder: str = "a", policy: str | None = None
) -> LeasedBudgetGate:
    budgets = POLICY if policy is None else parse_budgets(policy)
    options = BudgetOptions(budgets, reservation_seconds=60)
    return LeasedBudgetGate(counters, options, ROUTER, LEASES, holder=holder)


def admitted(outcome: BudgetReservation | Refusal) -> BudgetReservation:
    assert isinstance(outcome, BudgetReservation), outcome
    return outcome


def writes(counters: BudgetCounters) -> int:
    ops = counters._items.ops
    return ops.writes - ops.conflicts


async def test_one_lease_per_counter_admits_many_requests_without_a_round_trip(
    counters: BudgetCounters,
) -> None:
    gate = leased(counters)
    first = admitted(await gate.admit(ALICE, decision_at("economy")))  # $0.002
    assert writes(counters) == 2 and len(first.leases) == 2  # tenant day, user day
    reads = counters._items.ops.reads
    for _ in range(20):
        reservation = admitted(await gate.admit(ALICE, decision_at("economy")))
        await gate.settle(reservation, 0.001)
    assert writes(counters) == 2 and counters._items.ops.reads == reads  # all from memory
    tenant = await counters.read(TENANT_DAY)
    [(lease_id, held)] = tenant.reservations.items()
    assert lease_id.startswith(LEASE_PREFIX + "a:") and held.usd == pytest.approx(0.1)


async def test_a_drained_lease_becomes_exactly_the_spend_of_its_requests(
    counters: BudgetCounters,
) -> None:
    gate = leased(counters)
    costs = [0.0015, 0.002, 0.0007]
    for cost in costs:
        reservation = admitted(await gate.admit(ALICE, decision_at("economy")))
        await gate.settle(reservation, cost)
    failed = admitted(await gate.admit(ALICE, decision_at("economy")))
    await gate.release(failed)  # never reached a model: costs nothing
    await gate.drain()
    for key in (TENANT_DAY, USER_DAY):
        counter = await counters.read(key)
        assert counter.reservations == {} and counter.spent_usd == pytest.approx(sum(costs))


async def test_a_lease_shrinks_to_the_headroom_and_refuses_what_does_not_fit(
    counters: BudgetCounters,
) -> None:
    await counters.update(USER_DAY, spending(0.497))
    gate = leased(counters)
    reservation = admitted(await gate.admit(ALICE, decision_at("economy")))  # $0.002 of $0.003
    user = await counters.read(USER_DAY)
    assert sum(h.usd for h in user.reservations.values()) == pytest.approx(0.003)
    refusal = await gate.admit(ALICE, decision_at("economy"))
    assert isinstance(refusal, Refusal) and refusal.code == "budget_exceeded"
    assert "user alice daily" in refusal.reason
    await gate.settle(reservation, 0.002)
    await gate.drain()
    assert (await counters.read(USER_DAY)).spent_usd == pytest.approx(0.499)


async def test_instances_leasing_one_budget_never_commit_more_than_it(
    counters: BudgetCounters,
) -> None:
    policy = json.dumps({"tenant": {"daily_usd": 0.05, "soft_ratio": 1.0}})
    gates = [leased(counters, holder, policy) for holder in "abc"]
    admitted_usd = 0.0
    for _ in range(40):
        for gate in gates:
            outcome = await gate.admit(ALICE, decision_at("economy"))
            if isinstance(outcome, BudgetReservation):
                admitted_usd += outcome.amount_usd
                await gate.settle(outcome, outcome.amount_usd)
    assert admitted_usd <= 0.05 + 1e-9
    for gate in gates:
        await gate.drain()
    tenant = await counters.read(TENANT_DAY)
    assert tenant.reservations == {} and tenant.spent_usd == pytest.approx(admitted_usd)
    assert admitted_usd >= 0.05 - 3 * 0.005  # at most one unused lease per instance was idle


async def test_the_soft_limit_steps_down_from_the_leases_view(counters: BudgetCounters) -> None:
    await counters.update(TENANT_DAY, spending(0.75))
    gate = leased(counters)
    reservation = admitted(await gate.admit(ALICE, decision_at("standard")))  # $0.02
    assert reservation.decision.tier == "standard" and reservation.warning is None
    for _ in range(2):
        await gate.settle(reservation, 0.02)
        reservation = admitted(await gate.admit(ALICE, decision_at("standard")))
    # 0.75 + 0.04 spent: the next standard request would cross 80%: economy, with a warning.
    assert reservation.decision.tier == "economy"
    assert reservation.warning == "tenant:contoso day 79% of $1.00"


async def test_a_crashed_holders_lease_counts_until_the_audit_rebuilds_spend_from_the_ledger(
    budget_store: CosmosStore, counters: BudgetCounters, ledger: UsageLedger, clock: FakeClock
) -> None:
    gate = leased(counters)
    spent = 0.0
    for cost in (0.001, 0.0012):
        reservation = admitted(await gate.admit(ALICE, decision_at("economy")))
        await ledger.record(replace(usage("alice", cost), leases=reservation.leases))
        await gate.settle(reservation, cost)
        spent += cost
    # The instance dies here: its leases are never closed. Long after they expired, they
    # still count in full (never over the budget) ...
    clock.now += 3_600
    tenant = await counters.read(TENANT_DAY)
    assert tenant.committed_usd(clock.now) == pytest.approx(0.1)
    # ... until the audit sweeps them and takes the spend from the ledger.
    audit = BudgetAuditor(budget_store, ledger, counters, POLICY, AuditOptions())
    clock.now -= 3_600  # the audit of that day
    clock.now += 300  # after the leases' expiry (30 s + 60 s reservation)
    await audit.audit()
    for key in (TENANT_DAY, USER_DAY):
        counter = await counters.read(key)
        assert counter.reservations == {} and counter.spent_usd == pytest.approx(spent)
