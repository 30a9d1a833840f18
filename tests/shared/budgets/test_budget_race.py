"""N OS processes x concurrent tasks race for the last dollars of one budget (Cosmos emulator).

Each process is a Function instance of its own (spawned interpreter, own Cosmos client); each
runs TASKS concurrent requests that keep asking for admission until refused, settling each with
an actual cost at or below its reservation. Whatever the interleaving, the money spent by
admitted requests must never pass the budget by more than one request's reservation (by design:
not at all, since each reservation is checked and added by one compare-and-swap).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING

import pytest

from shared.budgets.admission import BudgetGate, BudgetOptions, BudgetReservation
from shared.budgets.counters import (
    BUDGETS_CONTAINER,
    BudgetCounters,
    CounterContention,
    CounterKey,
)
from shared.budgets.periods import day_of
from shared.budgets.policy import Scope, parse_budgets
from shared.security.principal import Principal
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client
from tests.shared.budgets.conftest import ROUTER
from tests.shared.budgets.helpers import decision_at

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators

PROCESSES = 4
TASKS = 6
LIMIT_USD = 0.06  # about 30 economy requests of $0.0012-$0.003
BUDGETS = json.dumps(
    {
        "tenant": {"daily_usd": LIMIT_USD, "monthly_usd": 100.0, "soft_ratio": 1.0},
        "user": {"daily_usd": 10.0, "soft_ratio": 1.0},
    }
)
USERS = ("alice", "bob", "carol")


@dataclass(frozen=True)
class Outcome:
    """What one process saw: reservations admitted, actual costs settled, races lost."""

    reserved: list[float]
    actual: list[float]
    contention: int  # admissions that lost every race (refused, to be retried)
    lost_races: int = 0  # compare-and-swap writes another process beat


async def _request(gate: BudgetGate, rng: random.Random, outcome: Outcome) -> bool:
    """One request; False once the budget refuses it."""
    principal = Principal(rng.choice(USERS), "contoso")
    decision = decision_at("economy", max_tokens=rng.randint(100, 1_000))
    admitted = await gate.admit(principal, decision)
    if not isinstance(admitted, BudgetReservation):
        return False
    outcome.reserved.append(admitted.amount_usd)
    await asyncio.sleep(rng.uniform(0, 0.02))  # the model call
    actual = admitted.amount_usd * rng.choice((1.0, 1.0, 0.6))
    outcome.actual.append(actual)
    await gate.settle(admitted, actual)
    return True


async def _task(gate: BudgetGate, seed: int, outcome: Outcome) -> int:
    """Requests until the budget refuses; returns how many lost every race."""
    rng, lost = random.Random(seed), 0
    for _ in range(200):
        try:
            if not await _request(gate, rng, outcome):
                return lost
        except CounterContention:  # every race lost: a refusal to retry, never an admission
            lost += 1
    return lost


async def _instance(endpoint: str, key: str, database: str, start_at: float, seed: int) -> Outcome:
    """One Function instance: its own client and gate, TASKS concurrent request loops."""
    async with create_cosmos_client(endpoint, key, None) as client:
        store = CosmosStore(client, database, [], EMULATOR)
        await store.ensure_containers([BUDGETS_CONTAINER])
        counters = BudgetCounters(store)
        gate = BudgetGate(counters, BudgetOptions(parse_budgets(BUDGETS)), ROUTER)
        await asyncio.sleep(max(0.0, start_at - time.time()))  # every process starts together
        outcome = Outcome([], [], 0)
        lost = await asyncio.gather(*(_task(gate, seed * 100 + i, outcome) for i in range(TASKS)))
        return Outcome(outcome.reserved, outcome.actual, sum(lost), counters.lost_races)


def run_instance(endpoint: str, key: str, database: str, start_at: float, seed: int) -> Outcome:
    """Child process entry point."""
    return asyncio.run(_instance(endpoint, key, database, start_at, seed))


@pytest.fixture
async def database(emulators: EmulatorEndpoints, unique_name: str) -> AsyncIterator[str]:
    """A database of the test's own, deleted afterwards."""
    async with create_cosmos_client(
        emulators.cosmos_endpoint, emulators.cosmos_key, None
    ) as client:
        yield unique_name
        await client.delete_database(unique_name)


async def test_concurrent_instances_never_overspend_a_budget(
    emulators: EmulatorEndpoints, database: str
) -> None:
    args = (emulators.cosmos_endpoint, emulators.cosmos_key, database)
    start_at = time.time() + 8  # spawned interpreters need a few seconds to import
    with ProcessPoolExecutor(PROCESSES, mp_context=get_context("spawn")) as pool:
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(pool, run_instance, *args, start_at, seed)
            for seed in range(PROCESSES)
        ]
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), 240)

    reserved = [amount for outcome in outcomes for amount in outcome.reserved]
    actual = sum(amount for outcome in outcomes for amount in outcome.actual)
    largest = max(reserved)
    # Reservations settled below their amount free budget for more admissions, so it is the
    # money actually spent by admitted requests that must stay within the budget.
    assert actual <= LIMIT_USD + largest  # the required bound ...
    assert actual <= LIMIT_USD + 1e-9  # ... and what the design gives: no overspend at all
    # The race was real and the budget was used, not refused wholesale.
    assert all(outcome.reserved for outcome in outcomes), "an instance never got admitted"
    assert actual >= LIMIT_USD / 2
    assert sum(outcome.lost_races for outcome in outcomes) > 0, "the processes never collided"
    print(  # visible with -s: how hard the race was
        f"admitted {len(reserved)}, spent ${actual:.4f} of ${LIMIT_USD}, lost races "
        f"{[o.lost_races for o in outcomes]}, gave up {[o.contention for o in outcomes]}"
    )

    async with create_cosmos_client(emulators.cosmos_endpoint, emulators.cosmos_key, None) as c:
        store = CosmosStore(c, database, [], EMULATOR)
        await store.ensure_containers([BUDGETS_CONTAINER])
        counters = BudgetCounters(store)
        day = CounterKey(Scope("tenant", "contoso"), "day", day_of(time.time()))
        counter = await counters.read(day)
    assert counter.reservations == {}  # every request settled
    assert counter.spent_usd == pytest.approx(actual)
