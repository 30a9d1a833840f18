"""OS processes admitting from leased slices of the same buckets in Cosmos (the emulator).

The same set-up as test_ratelimit_multiprocess.py (whose tests stay as they are: the exact
per-request path), with slices on: each process leases several requests' worth at once and
admits from memory. The children's clock is frozen, so no refill and no lease expiry happens:
once every process is refused, the level and every slice are empty, so the total admitted
must be exactly the capacity, with far fewer writes than admissions.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from multiprocessing.synchronize import Barrier
from typing import TYPE_CHECKING, Any

import pytest

from shared.resilience.ratelimit import RateLimiter, RateLimits, bucket_ids
from shared.resilience.ratelimit_slices import SliceOptions
from shared.resilience.ratelimit_store import RATE_LIMITS_CONTAINER, CosmosBucketStore
from shared.security.principal import Principal
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client
from tests.processes import run_together
from tests.shared.resilience.test_ratelimit_multiprocess import (
    CALLERS_PER_PROCESS,
    PROCESSES,
    ROOMY,
    TENANT,
    Job,
    Tally,
    _call_until_refused,
    jobs_for,
    limits_json,
    stored_levels,
)

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators

SLICES = SliceOptions(fraction=0.1, seconds=30.0, margin_seconds=1.0)
COSMOS_CONTAINERS = (RATE_LIMITS_CONTAINER,)


async def _hammer(job: Job, barrier: Barrier, go: Barrier) -> Tally:
    """Connect, wait for every process, take a first slice together, wait again, then run
    the callers on a sliced limiter. (Admitting from memory is fast: without the second
    start line, a child scheduled late on a loaded machine finds all 80 spent.)"""
    async with create_cosmos_client(job.endpoint, job.key, None) as client:
        store = CosmosStore(client, job.database, [RATE_LIMITS_CONTAINER], EMULATOR)
        await store.read_database()
        buckets = CosmosBucketStore(store)
        limits = RateLimits.from_json(job.limits_json)
        limiter = RateLimiter(buckets, limits, lambda: job.now, slices=SLICES)
        await asyncio.to_thread(barrier.wait, 60)
        tally = {"admitted": 0, "tokens": 0, "contention_refusals": 0}
        principal = Principal(job.user, TENANT, roles=("user",))
        first = await limiter.admit(principal, job.estimated_tokens)
        if first.allowed:
            tally["admitted"] += 1
            tally["tokens"] += job.estimated_tokens
        await asyncio.to_thread(go.wait, 60)
        await asyncio.gather(
            *(_call_until_refused(limiter, job, tally) for _ in range(CALLERS_PER_PROCESS))
        )
        ops = buckets.ops
        return Tally(job.user, **tally, reads=ops.reads, writes=ops.writes, conflicts=ops.conflicts)


def hammer(job: Job, barrier: Barrier, go: Barrier, results: Queue[dict[str, Any]]) -> None:
    """Child process entry point: report the tally on `results`."""
    results.put(asdict(asyncio.run(_hammer(job, barrier, go))))


def run_children(jobs: list[Job]) -> list[Tally]:
    """Run one spawned process per job, started together; return their tallies."""
    return [Tally(**report) for report in run_together(hammer, jobs, start_lines=2)]


async def test_sliced_processes_admit_exactly_the_request_limit_with_few_writes(
    emulators: EmulatorEndpoints, cosmos_store: CosmosStore, unique_name: str
) -> None:
    limits = limits_json({"rpm": 80, "tpm": 100_000_000}, ROOMY)
    jobs = jobs_for(emulators, unique_name, ["alice"] * PROCESSES, limits, 1)
    tallies = await asyncio.to_thread(run_children, jobs)
    admitted = sum(t.admitted for t in tallies)
    assert admitted == 80
    landed = sum(t.writes - t.conflicts for t in tallies)
    # Slices of 8 requests on both buckets: about 2 x 80 / 8 lease writes (a last, partial
    # slice per process), against 2 x 80 writes for per-request admission.
    assert landed <= 2 * (80 // 8 + PROCESSES)
    assert all(t.admitted > 0 for t in tallies), "a process never got a slice: nothing proven"
    user_id, _ = bucket_ids(Principal("alice", TENANT))
    assert (await stored_levels(cosmos_store, user_id))[0] == 0


async def test_sliced_tenant_limit_across_users_is_exact(
    emulators: EmulatorEndpoints, cosmos_store: CosmosStore, unique_name: str
) -> None:
    # Each process is another user of one tenant; the tenant (40) binds before the users.
    limits = limits_json({"rpm": 30, "tpm": 100_000}, {"rpm": 40, "tpm": 100_000})
    users = [f"user-{n}" for n in range(PROCESSES)]
    tallies = await asyncio.to_thread(
        run_children, jobs_for(emulators, unique_name, users, limits, 10)
    )
    assert sum(t.admitted for t in tallies) == 40
    _, tenant_id = bucket_ids(Principal("user-0", TENANT))
    item = await cosmos_store.read(RATE_LIMITS_CONTAINER.name, tenant_id, tenant_id)
    assert item is not None and item["requests"] == 0
    assert len(item["leases"]) > 1, "one process held every slice: nothing was shared"
