"""OS processes hammering the same buckets in Cosmos (the emulator) admit exactly the limit.

Every child runs its own Cosmos client and limiter with several concurrent callers, and all
start together behind a barrier. The children's clock is frozen at one instant, so no refill
happens during the run: whatever was admitted in total must equal the bucket's capacity.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Barrier
from typing import TYPE_CHECKING, Any

import pytest

from shared.resilience.ratelimit import RateLimiter, RateLimits, bucket_ids
from shared.resilience.ratelimit_store import RATE_LIMITS_CONTAINER, CosmosBucketStore
from shared.security.principal import Principal
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client
from tests.processes import run_together

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators

PROCESSES = 4
CALLERS_PER_PROCESS = 3
TENANT = "contoso"
ROOMY = {"rpm": 100_000, "tpm": 100_000_000}


@dataclass(frozen=True)
class Job:
    """What one child process does."""

    endpoint: str
    key: str
    database: str
    user: str
    limits_json: str
    estimated_tokens: int
    now: float


@dataclass(frozen=True)
class Tally:
    """What one child admitted, and the store calls it made."""

    user: str
    admitted: int
    tokens: int
    contention_refusals: int
    reads: int
    writes: int
    conflicts: int


async def _call_until_refused(limiter: RateLimiter, job: Job, tally: dict[str, int]) -> None:
    """One caller: admit until a bucket refuses (contention refusals are simply retried)."""
    principal = Principal(job.user, TENANT, roles=("user",))
    while True:
        decision = await limiter.admit(principal, job.estimated_tokens)
        if decision.allowed:
            tally["admitted"] += 1
            tally["tokens"] += job.estimated_tokens
        elif decision.reason == "contention":
            tally["contention_refusals"] += 1
        else:
            return


async def _hammer(job: Job, barrier: Barrier) -> Tally:
    """Connect, wait for every process, then run the callers."""
    async with create_cosmos_client(job.endpoint, job.key, None) as client:
        store = CosmosStore(client, job.database, [RATE_LIMITS_CONTAINER], EMULATOR)
        await store.read_database()  # connect before the start line
        buckets = CosmosBucketStore(store)
        limiter = RateLimiter(buckets, RateLimits.from_json(job.limits_json), lambda: job.now)
        await asyncio.to_thread(barrier.wait, 60)
        tally = {"admitted": 0, "tokens": 0, "contention_refusals": 0}
        await asyncio.gather(
            *(_call_until_refused(limiter, job, tally) for _ in range(CALLERS_PER_PROCESS))
        )
        ops = buckets.ops
        return Tally(job.user, **tally, reads=ops.reads, writes=ops.writes, conflicts=ops.conflicts)


def hammer(job: Job, barrier: Barrier, results: Queue[dict[str, Any]]) -> None:
    """Child process entry point: report the tally on `results`."""
    results.put(asdict(asyncio.run(_hammer(job, barrier))))


def run_children(jobs: list[Job]) -> list[Tally]:
    """Run one spawned process per job, started together; return their tallies."""
    return [Tally(**report) for report in run_together(hammer, jobs)]


def limits_json(user: dict[str, int], tenant: dict[str, int]) -> str:
    """The RATE_LIMITS setting for these runs (generous retries: contention is the point)."""
    return json.dumps({"roles": {"user": user}, "tenant": tenant, "max_attempts": 20})


COSMOS_CONTAINERS = (RATE_LIMITS_CONTAINER,)  # what the `cosmos_store` fixture creates


def jobs_for(
    emulators: EmulatorEndpoints, database: str, users: list[str], limits: str, tokens: int
) -> list[Job]:
    """One job per user name (repeat a name to share a user bucket)."""
    now = time.time()
    return [
        Job(emulators.cosmos_endpoint, emulators.cosmos_key, database, user, limits, tokens, now)
        for user in users
    ]


async def stored_levels(store: CosmosStore, bucket_id: str) -> tuple[float, float]:
    """The (requests, tokens) a bucket item holds."""
    item = await store.read(RATE_LIMITS_CONTAINER.name, bucket_id, bucket_id)
    assert item is not None
    return item["requests"], item["tokens"]


async def test_processes_admit_exactly_the_request_limit(
    emulators: EmulatorEndpoints, cosmos_store: CosmosStore, unique_name: str
) -> None:
    limits = limits_json({"rpm": 40, "tpm": 100_000_000}, ROOMY)
    jobs = jobs_for(emulators, unique_name, ["alice"] * PROCESSES, limits, 1)
    tallies = await asyncio.to_thread(run_children, jobs)
    assert sum(t.admitted for t in tallies) == 40
    assert sum(t.conflicts for t in tallies) > 0, "the processes never raced: nothing proven"
    user_id, tenant_id = bucket_ids(Principal("alice", TENANT))
    assert (await stored_levels(cosmos_store, user_id))[0] == 0
    assert (await stored_levels(cosmos_store, tenant_id))[0] == ROOMY["rpm"] - 40


async def test_processes_admit_exactly_the_token_limit(
    emulators: EmulatorEndpoints, cosmos_store: CosmosStore, unique_name: str
) -> None:
    limits = limits_json({"rpm": 100_000, "tpm": 1_000}, ROOMY)
    jobs = jobs_for(emulators, unique_name, ["alice"] * PROCESSES, limits, 40)
    tallies = await asyncio.to_thread(run_children, jobs)
    assert sum(t.tokens for t in tallies) == 1_000
    assert sum(t.admitted for t in tallies) == 25
    assert sum(t.conflicts for t in tallies) > 0, "the processes never raced: nothing proven"
    user_id, _ = bucket_ids(Principal("alice", TENANT))
    assert (await stored_levels(cosmos_store, user_id))[1] == 0


async def test_tenant_limit_across_users_leaves_no_partial_reservation(
    emulators: EmulatorEndpoints, cosmos_store: CosmosStore, unique_name: str
) -> None:
    # Each process is another user of one tenant: the tenant (30) binds before the users (4 x 20),
    # so late callers take their user bucket, get refused by the tenant and must give it back.
    limits = limits_json({"rpm": 20, "tpm": 100_000}, {"rpm": 30, "tpm": 100_000})
    users = [f"user-{n}" for n in range(PROCESSES)]
    tallies = await asyncio.to_thread(
        run_children, jobs_for(emulators, unique_name, users, limits, 10)
    )
    assert sum(t.admitted for t in tallies) == 30
    for tally in tallies:
        user_id, tenant_id = bucket_ids(Principal(tally.user, TENANT))
        assert await stored_levels(cosmos_store, user_id) == (
            20 - tally.admitted,
            100_000 - 10 * tally.admitted,
        )
    assert await stored_levels(cosmos_store, tenant_id) == (0, 100_000 - 300)
