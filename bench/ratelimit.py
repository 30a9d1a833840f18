"""Rate limiter decisions per second and Cosmos operations per decision, against the emulator.

```
.venv/bin/python bench/ratelimit.py            # ~35 s
.venv/bin/python bench/ratelimit.py --quick    # ~15 s
```

Every row runs for a fixed time and prints decisions/s, Cosmos round trips per decision
(reads, writes, of which conflicts) and the ratio to the baseline: a bare point read + ETag
replace of one item (the round trips of one optimistic-concurrency update), measured in the
same run at the same concurrency. Limits are wide, so every decision is an admission (user +
tenant bucket), except in the "refused" row. Rows:

- 1 caller, one user;
- 8 callers in one process: 8 users of one tenant (the tenant item is shared), and one user;
- 2 processes x 1 caller on one user, and 2 processes x 8 users of one tenant (buckets shared
  across processes: conflicts appear);
- refused: one caller whose user bucket is empty.
The database is created for the run and deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from shared.resilience.ratelimit import RateLimiter, RateLimits  # noqa: E402
from shared.resilience.ratelimit_buckets import Limit  # noqa: E402
from shared.resilience.ratelimit_store import (  # noqa: E402
    RATE_LIMITS_CONTAINER,
    CosmosBucketStore,
    OpCounts,
)
from shared.security.principal import Principal  # noqa: E402
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client  # noqa: E402

TENANT = "bench"
TOKENS = 100
WIDE = Limit(rpm=1_000_000_000, tpm=1_000_000_000)
LIMITS = RateLimits({"user": WIDE}, tenant=WIDE)
CONTAINER = RATE_LIMITS_CONTAINER.name


@dataclass(frozen=True)
class Target:
    """Where the children connect."""

    endpoint: str
    key: str
    database: str


@dataclass(frozen=True)
class Result:
    """One row: decisions (or baseline updates) made in `seconds`, and store calls."""

    count: int
    seconds: float
    ops: OpCounts

    @property
    def rate(self) -> float:
        """Per second."""
        return self.count / self.seconds

    def per(self, value: int) -> float:
        """`value` per decision."""
        return value / max(1, self.count)


@contextlib.asynccontextmanager
async def cosmos(target: Target) -> AsyncIterator[CosmosStore]:
    """A store on the run's database, on a client of its own."""
    async with create_cosmos_client(target.endpoint, target.key, None) as client:
        store = CosmosStore(client, target.database, [RATE_LIMITS_CONTAINER], EMULATOR)
        await store.read_database()  # connect before any timing starts
        yield store


async def for_seconds(seconds: float, callers: int, step: Callable[[int], Awaitable[None]]) -> int:
    """Run `callers` loops of `step(caller)` for `seconds`; return how many steps finished."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def loop(caller: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await step(caller)
            done += 1

    await asyncio.gather(*(loop(caller) for caller in range(callers)))
    return done


async def baseline(store: CosmosStore, callers: int, seconds: float) -> Result:
    """Bare point read + If-Match replace, one item per caller (no conflicts)."""
    ids = [f"baseline-{uuid.uuid4().hex}" for _ in range(callers)]
    for item_id in ids:
        await store.upsert(CONTAINER, {"id": item_id, "n": 0})

    async def step(caller: int) -> None:
        item = await store.read(CONTAINER, ids[caller], ids[caller])
        assert item is not None
        await store.replace(CONTAINER, {"id": item["id"], "n": item["n"] + 1}, item["_etag"])

    count = await for_seconds(seconds, callers, step)
    return Result(count, seconds, OpCounts(reads=count, writes=count))


async def decide(
    store: CosmosStore, principals: list[Principal], seconds: float, warm: bool = True
) -> Result:
    """Admissions by one caller per principal for `seconds` (after one warming decision each)."""
    buckets = CosmosBucketStore(store)
    limiter = RateLimiter(buckets, LIMITS)
    if warm:
        for principal in principals:
            await limiter.admit(principal, TOKENS)
    before = buckets.ops.snapshot()

    async def step(caller: int) -> None:
        await limiter.admit(principals[caller], TOKENS)

    count = await for_seconds(seconds, len(principals), step)
    return Result(count, seconds, buckets.ops.since(before))


async def refused(store: CosmosStore, seconds: float) -> Result:
    """Decisions of one caller whose user bucket is empty."""
    options = RateLimits({"user": Limit(1, 1_000)}, tenant=WIDE)
    buckets = CosmosBucketStore(store)
    limiter = RateLimiter(buckets, options)
    principal = users("empty", 1)[0]
    await limiter.admit(principal, TOKENS)
    before = buckets.ops.snapshot()

    async def step(_: int) -> None:
        await limiter.admit(principal, TOKENS)

    count = await for_seconds(seconds, 1, step)
    return Result(count, seconds, buckets.ops.since(before))


def users(prefix: str, count: int) -> list[Principal]:
    """`count` principals of the bench tenant."""
    return [Principal(f"{prefix}-{n}", TENANT, roles=("user",)) for n in range(count)]


# Child processes ------------------------------------------------------------------------------


def child(target: Target, names: list[str], seconds: float, barrier: Any, results: Any) -> None:
    """A process's share of a multi-process row: warm, wait for the others, decide, report."""

    async def run() -> Result:
        async with cosmos(target) as store:
            principals = [Principal(name, TENANT, roles=("user",)) for name in names]
            buckets = CosmosBucketStore(store)
            limiter = RateLimiter(buckets, LIMITS)
            for principal in principals:
                await limiter.admit(principal, TOKENS)
            await asyncio.to_thread(barrier.wait, 60)
            before = buckets.ops.snapshot()

            async def step(caller: int) -> None:
                await limiter.admit(principals[caller], TOKENS)

            count = await for_seconds(seconds, len(principals), step)
            return Result(count, seconds, buckets.ops.since(before))

    results.put(asyncio.run(run()))


def across_processes(target: Target, names: list[list[str]], seconds: float) -> Result:
    """One spawned process per name list, started together; their results summed."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(names))
    results = context.Queue()
    processes = [
        context.Process(target=child, args=(target, group, seconds, barrier, results))
        for group in names
    ]
    for process in processes:
        process.start()
    parts: list[Result] = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    ops = OpCounts()
    for part in parts:
        ops = OpCounts(
            ops.reads + part.ops.reads,
            ops.writes + part.ops.writes,
            ops.conflicts + part.ops.conflicts,
            ops.errors + part.ops.errors,
        )
    return Result(sum(p.count for p in parts), seconds, ops)


# Output ---------------------------------------------------------------------------------------


def row(label: str, result: Result, base: Result | None) -> str:
    """One table line."""
    ops = result.ops
    ratio = f"{result.rate / base.rate:>7.2f}" if base else f"{'-':>7}"
    return (
        f"{label:<34}{result.rate:>9.0f}{ratio}{result.per(ops.reads):>8.2f}"
        f"{result.per(ops.writes):>8.2f}{result.per(ops.conflicts):>10.2f}"
    )


def header() -> str:
    """The table's column titles."""
    return (
        f"{'':<34}{'per s':>9}{'ratio':>7}{'reads':>8}{'writes':>8}{'conflicts':>10}\n"
        f"{'':<34}{'':>9}{'':>7}{'per decision (or update)':>26}"
    )


async def in_process_rows(target: Target, seconds: float) -> list[tuple[str, Result, Result]]:
    """Baselines and the one-process rows, each with its baseline."""
    async with cosmos(target) as store:
        base_1 = await baseline(store, 1, seconds)
        base_8 = await baseline(store, 8, seconds)
        rows = [
            ("baseline: read+replace, 1 caller", base_1, base_1),
            ("baseline: read+replace, 8 callers", base_8, base_8),
            ("1 caller, 1 user", await decide(store, users("solo", 1), seconds), base_1),
            (
                "8 callers, 8 users, 1 tenant",
                await decide(store, users("team", 8), seconds),
                base_8,
            ),
            ("8 callers, 1 user", await decide(store, users("same", 1) * 8, seconds), base_8),
            ("refused (user bucket empty)", await refused(store, seconds), base_1),
        ]
    return rows


def load() -> str:
    """The load average, so a busy machine can be recognised."""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


@contextlib.contextmanager
def emulators() -> Iterator[Any]:
    """The emulators' endpoints; starts them if needed and stops only what this started."""
    from tests.conftest import build_endpoints, load_emulators_cli

    cli = load_emulators_cli()
    configured = cli.configured_emulators(os.environ)
    outcomes = cli.start_all(configured)
    azurite, cosmos_emulator = configured
    try:
        yield build_endpoints(*azurite.ports, *cosmos_emulator.ports)
    finally:
        cli.stop_started(outcomes)


async def create_database(target: Target) -> None:
    """The run's database and container."""
    async with create_cosmos_client(target.endpoint, target.key, None) as client:
        await CosmosStore(client, target.database).ensure_containers([RATE_LIMITS_CONTAINER])


async def delete_database(target: Target) -> None:
    """Remove the run's database."""
    async with create_cosmos_client(target.endpoint, target.key, None) as client:
        await client.delete_database(target.database)


def run(seconds: float) -> None:
    """All rows, printed as one table."""
    with emulators() as endpoints:
        target = Target(
            endpoints.cosmos_endpoint, endpoints.cosmos_key, f"bench-rl-{uuid.uuid4().hex[:12]}"
        )
        asyncio.run(create_database(target))
        try:
            rows = asyncio.run(in_process_rows(target, seconds))
            base_1, base_8 = rows[0][1], rows[1][1]
            same = across_processes(target, [["shared"], ["shared"]], seconds)
            rows.append(("2 processes x 1 caller, 1 user", same, base_1))
            team = [[f"p{p}-{n}" for n in range(8)] for p in range(2)]
            spread = across_processes(target, team, seconds)
            rows.append(("2 processes x 8 users, 1 tenant", spread, base_8))
        finally:
            asyncio.run(delete_database(target))
    print(header())
    for label, result, base in rows:
        print(row(label, result, base))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per row instead of 3 s")
    arguments = parser.parse_args(argv)
    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    started = time.perf_counter()
    print(f"rate limit bench ({'quick' if arguments.quick else 'full'}); load average {load()}")
    run(1.0 if arguments.quick else 3.0)
    print(f"(total {time.perf_counter() - started:.1f} s; load average after: {load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
