"""N OS processes x concurrent tasks race for one budget through leased slices (emulator).

The set-up of test_budget_race.py (which keeps testing per-request reservations), with each
process admitting from leases: a lease is one conditional write, the requests it admits cost
none. The money spent must still never pass the budget by more than one reservation, every
lease must be closed into spend once drained, and admissions must cost far fewer writes.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TYPE_CHECKING

import pytest

from shared.budgets.admission import BudgetOptions
from shared.budgets.counters import BUDGETS_CONTAINER, BudgetCounters, CounterKey
from shared.budgets.leases import LeasedBudgetGate, LeaseOptions
from shared.budgets.periods import day_of
from shared.budgets.policy import Scope, parse_budgets
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client
from tests.shared.budgets.conftest import ROUTER
from tests.shared.budgets.test_budget_race import (
    BUDGETS,
    LIMIT_USD,
    PROCESSES,
    TASKS,
    Outcome,
    _task,
    database,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators
__all__ = ["database"]  # the fixture, shared with test_budget_race.py

LEASES = LeaseOptions(fraction=0.1, seconds=60.0)  # $0.006 of the day: 2-5 requests


async def _instance(
    endpoint: str, key: str, name: str, start_at: float, seed: int
) -> tuple[Outcome, int]:
    """One Function instance with a leased gate; returns what it saw and its landed writes."""
    async with create_cosmos_client(endpoint, key, None) as client:
        store = CosmosStore(client, name, [], EMULATOR)
        await store.ensure_containers([BUDGETS_CONTAINER])
        counters = BudgetCounters(store)
        gate = LeasedBudgetGate(counters, BudgetOptions(parse_budgets(BUDGETS)), ROUTER, LEASES)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        outcome = Outcome([], [], 0)
        lost = await asyncio.gather(*(_task(gate, seed * 100 + i, outcome) for i in range(TASKS)))
        await gate.drain()  # close every lease: unused money goes back, spend is recorded
        ops = counters._items.ops
        result = Outcome(outcome.reserved, outcome.actual, sum(lost), counters.lost_races)
        return result, ops.writes - ops.conflicts


def run_instance(
    endpoint: str, key: str, name: str, start_at: float, seed: int
) -> tuple[Outcome, int]:
    """Child process entry point."""
    return asyncio.run(_instance(endpoint, key, name, start_at, seed))


async def test_leased_instances_never_overspend_a_budget(
    emulators: EmulatorEndpoints, database: str
) -> None:
    args = (emulators.cosmos_endpoint, emulators.cosmos_key, database)
    start_at = time.time() + 8
    with ProcessPoolExecutor(PROCESSES, mp_context=get_context("spawn")) as pool:
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(pool, run_instance, *args, start_at, seed)
            for seed in range(PROCESSES)
        ]
        results = await asyncio.wait_for(asyncio.gather(*futures), 240)
    outcomes = [outcome for outcome, _ in results]
    reserved = [amount for outcome in outcomes for amount in outcome.reserved]
    actual = sum(amount for outcome in outcomes for amount in outcome.actual)
    assert actual <= LIMIT_USD + max(reserved)  # the required bound
    assert actual <= LIMIT_USD + 1e-9  # what leases give: no overspend at all
    # Leases are first come, first served: a process that starts late (a loaded machine) may
    # find the whole budget leased and spent. At least two must have shared it.
    assert sum(1 for outcome in outcomes if outcome.reserved) >= 2, "no race: one process won"
    assert actual >= LIMIT_USD / 2
    # Per-request reservations write each of the 3 limited counters twice per request
    # (reserve, settle): 6 writes an admission. A lease writes twice (take, close) for several;
    # here the day's leases hold 2-5 requests and each process leases each user once.
    writes = sum(landed for _, landed in results)
    assert writes < 3 * len(reserved), f"{writes} writes for {len(reserved)} admissions"
    print(f"admitted {len(reserved)}, spent ${actual:.4f} of ${LIMIT_USD}, {writes} writes")

    async with create_cosmos_client(emulators.cosmos_endpoint, emulators.cosmos_key, None) as c:
        store = CosmosStore(c, database, [], EMULATOR)
        await store.ensure_containers([BUDGETS_CONTAINER])
        day = CounterKey(Scope("tenant", "contoso"), "day", day_of(time.time()))
        counter = await BudgetCounters(store).read(day)
    assert counter.reservations == {}  # every lease closed
    assert counter.spent_usd == pytest.approx(actual)
