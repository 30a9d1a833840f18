"""A Cosmos database of its own per test, with the containers the test module names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.storage.cosmos import EMULATOR, CosmosStore


@pytest.fixture
async def cosmos_store(
    request: pytest.FixtureRequest, cosmos_client: Any, unique_name: str
) -> AsyncIterator[CosmosStore]:
    """A store over a fresh database holding the module's `COSMOS_CONTAINERS`; deleted after."""
    store = CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR)
    await store.ensure_containers(list(request.module.COSMOS_CONTAINERS))
    yield store
    await cosmos_client.delete_database(unique_name)
