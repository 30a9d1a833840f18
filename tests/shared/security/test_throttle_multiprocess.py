"""OS processes counting bad credentials from one source in Cosmos (the emulator) let exactly
AUTH_FAILURES_PER_MINUTE through, then refuse, and each then blocks the source locally.

Each child is one instance: its own Cosmos client and throttle, several concurrent callers,
started together behind a barrier, the clock frozen (no refill during the run).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Barrier
from typing import TYPE_CHECKING, Any

import pytest

from shared.resilience.ratelimit_store import RATE_LIMITS_CONTAINER, CosmosBucketStore
from shared.security.throttle import CredentialsThrottled, CredentialThrottle, bucket_id
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client
from tests.processes import run_together

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators

PROCESSES = 4
CALLERS_PER_PROCESS = 4
ATTEMPTS_PER_CALLER = 6  # 96 bad credentials in all
LIMIT = 25
SOURCE = "198.51.100.23"


@dataclass(frozen=True)
class Job:
    endpoint: str
    key: str
    database: str
    now: float


@dataclass(frozen=True)
class Tally:
    counted: int  # answered 401: the failure was counted within the allowance
    refused: int  # answered 429 after counting found the allowance spent
    blocked: int  # answered 429 before the credentials were even checked
    conflicts: int


async def _caller(throttle: CredentialThrottle, tally: dict[str, int]) -> None:
    for _ in range(ATTEMPTS_PER_CALLER):
        try:
            await throttle.check(SOURCE)
        except CredentialsThrottled:
            tally["blocked"] += 1
            continue
        tally["counted" if await throttle.failed(SOURCE) is None else "refused"] += 1


async def _run(job: Job, barrier: Barrier) -> Tally:
    async with create_cosmos_client(job.endpoint, job.key, None) as client:
        store = CosmosStore(client, job.database, [RATE_LIMITS_CONTAINER], EMULATOR)
        await store.read_database()
        buckets = CosmosBucketStore(store)
        throttle = CredentialThrottle(buckets, LIMIT, lambda: job.now)
        await asyncio.to_thread(barrier.wait, 60)
        tally = {"counted": 0, "refused": 0, "blocked": 0}
        await asyncio.gather(*(_caller(throttle, tally) for _ in range(CALLERS_PER_PROCESS)))
        return Tally(**tally, conflicts=buckets.ops.conflicts)


def child(job: Job, barrier: Barrier, results: Queue[dict[str, Any]]) -> None:
    """Child process entry point: report the tally on `results`."""
    results.put(asdict(asyncio.run(_run(job, barrier))))


def run_children(jobs: list[Job]) -> list[Tally]:
    """Run one spawned process per job, started together; return their tallies."""
    return [Tally(**report) for report in run_together(child, jobs)]


async def test_processes_count_exactly_the_allowance_then_block(
    emulators: EmulatorEndpoints, cosmos_client: Any, unique_name: str
) -> None:
    store = CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR)
    await store.ensure_containers([RATE_LIMITS_CONTAINER])
    try:
        now = time.time()
        job = Job(emulators.cosmos_endpoint, emulators.cosmos_key, unique_name, now)
        tallies = await asyncio.to_thread(run_children, [job] * PROCESSES)
        total = PROCESSES * CALLERS_PER_PROCESS * ATTEMPTS_PER_CALLER
        assert sum(t.counted + t.refused + t.blocked for t in tallies) == total
        assert sum(t.counted for t in tallies) == LIMIT  # never more, across processes
        assert sum(t.conflicts for t in tallies) > 0, "the processes never raced: nothing proven"
        # Each instance checks credentials at most once after the allowance is spent: its
        # callers in flight when it learned, at most CALLERS_PER_PROCESS of them.
        assert all(t.refused <= CALLERS_PER_PROCESS for t in tallies), tallies
        assert sum(t.blocked for t in tallies) >= total - LIMIT - PROCESSES * CALLERS_PER_PROCESS
        item = await store.read(RATE_LIMITS_CONTAINER.name, bucket_id(SOURCE), bucket_id(SOURCE))
        assert item is not None and item["requests"] == 0
    finally:
        await cosmos_client.delete_database(unique_name)
