"""A breaker opened in one OS process is seen by the others, through Cosmos (the emulator)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from shared.resilience.breaker import (
    BREAKERS_CONTAINER,
    BreakerBoard,
    BreakerPolicy,
    CosmosBreakerStore,
)
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators

KEY = "llm:eastus"
CACHE_SECONDS = 1.0
OPEN_SECONDS = 120.0
POLICY = BreakerPolicy(max_open_seconds=OPEN_SECONDS)


async def _with_board(
    endpoint: str, key: str, database: str, act: Callable[[BreakerBoard], Awaitable[object]]
) -> object:
    """Run `act` on a board of this process, on its own Cosmos client."""
    async with create_cosmos_client(endpoint, key, None) as client:
        store = CosmosStore(client, database, [BREAKERS_CONTAINER], EMULATOR)
        board = BreakerBoard(CosmosBreakerStore(store), POLICY, cache_seconds=CACHE_SECONDS)
        return await act(board)


def open_breaker(endpoint: str, key: str, database: str) -> None:
    """Child process: a throttle with a long Retry-After opens the breaker."""
    asyncio.run(
        _with_board(
            endpoint, key, database, lambda b: b.record_failure(KEY, retry_after_seconds=60)
        )
    )


def exit_with_verdict(endpoint: str, key: str, database: str) -> None:
    """Child process: exit 3 when the breaker refuses calls, 0 when it allows them."""
    allowed = asyncio.run(_with_board(endpoint, key, database, lambda b: b.allows(KEY)))
    raise SystemExit(0 if allowed else 3)


def run_in_child(target: Callable[..., None], *args: str) -> int:
    """Run `target` in a freshly spawned interpreter; return its exit code."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(120)
    if process.is_alive():
        process.kill()
        pytest.fail(f"{target.__name__} did not finish")
    assert process.exitcode is not None
    return process.exitcode


COSMOS_CONTAINERS = (BREAKERS_CONTAINER,)  # what the `cosmos_store` fixture creates


async def test_breaker_opened_in_one_process_is_open_in_others(
    emulators: EmulatorEndpoints, cosmos_store: CosmosStore, unique_name: str
) -> None:
    args = (emulators.cosmos_endpoint, emulators.cosmos_key, unique_name)
    watcher = BreakerBoard(CosmosBreakerStore(cosmos_store), POLICY, cache_seconds=CACHE_SECONDS)
    assert await watcher.allows(KEY)
    assert await asyncio.to_thread(run_in_child, exit_with_verdict, *args) == 0

    assert await asyncio.to_thread(run_in_child, open_breaker, *args) == 0
    opened_seen_by = time.monotonic() + CACHE_SECONDS
    while await watcher.allows(KEY):
        assert time.monotonic() <= opened_seen_by + 0.25, "cached 'closed' outlived its period"
        await asyncio.sleep(0.05)

    assert await asyncio.to_thread(run_in_child, exit_with_verdict, *args) == 3
    state = await watcher.state(KEY)
    assert state.reason == "retry_after" and state.open_until is not None
    assert 50 < state.open_until - time.time() <= 60
