"""Budget fixtures: a Cosmos database of the test's own, a settable clock, prices and a router."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from shared.budgets.counters import BUDGETS_CONTAINER, BudgetCounters
from shared.budgets.ledger import USAGE_CONTAINER, UsageLedger
from shared.routing.cost import RouterOptions, parse_prices
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
PRICES = parse_prices(
    json.dumps(
        {
            "models": {
                "mini": {"input_per_1k": 0.001, "output_per_1k": 0.002},
                "big": {"input_per_1k": 0.01, "output_per_1k": 0.02},
                "huge": {"input_per_1k": 0.1, "output_per_1k": 0.2},
            },
            "tiers": {
                "economy": {"*": "mini"},
                "standard": {"*": "big"},
                "premium": {"*": "huge"},
            },
        }
    )
)
ROUTER = RouterOptions(PRICES)


class FakeClock:
    """A settable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """Time stands still at T0 until a test moves it."""
    return FakeClock()


@pytest.fixture
async def budget_store(
    emulators: EmulatorEndpoints, unique_name: str
) -> AsyncIterator[CosmosStore]:
    """The usage and budgets containers in a database of the test's own, deleted afterwards."""
    async with create_cosmos_client(
        emulators.cosmos_endpoint, emulators.cosmos_key, None
    ) as client:
        store = CosmosStore(client, unique_name, capabilities=EMULATOR)
        await store.ensure_containers([USAGE_CONTAINER, BUDGETS_CONTAINER])
        yield store
        await client.delete_database(unique_name)


@pytest.fixture
def counters(budget_store: CosmosStore, clock: FakeClock) -> BudgetCounters:
    """Counters on the test's clock."""
    return BudgetCounters(budget_store, clock=clock)


@pytest.fixture
def ledger(budget_store: CosmosStore, clock: FakeClock) -> UsageLedger:
    """The ledger on the test's clock."""
    return UsageLedger(budget_store, clock=clock)
