"""Benchmarks the governance chain on `POST /api/chat`: what limits, budgets and the cache add.

function_app under devhost against the emulators, a zero-latency Azure OpenAI double (two
regions, a child process: bench/gateway.py's), four small documents ingested per deployment.
Two deployments (own containers and Cosmos database each), started one after the other:

1. baseline: governance off (CACHE_ENABLED=false, RATE_LIMITS_ENABLED=false, no LLM_PRICES and
   no BUDGETS); the ledger write and the injection screen still run, as they always do;
2. governance on, cache MISS: CACHE_ENABLED=true, RATE_LIMITS_ENABLED=true with limits that never
   refuse, LLM_PRICES (tests/test_governance.py's) and large BUDGETS; every request asks a
   different question (a distinct number, which the cache's token guard keeps apart), so each
   is a lookup miss, a model call and a store;
3. governance on, cache HIT: one question repeated on the same host (warmed first).

Each at 1 and 8 keep-alive connections; wall p50/p95/p99, the added overhead (2 - 1, 3 - 1) at
p50 and p99 and the ratios. The `x-docgate-cache` header of every response is checked against
the intended path ("off", "miss", "hit; ...") and the run fails loudly on a mismatch. Then, in
the bench process, the median Cosmos point read and upsert on the emulator, to price the chain's
round trips.

Run: `.venv/bin/python bench/governance.py [--quick]` (starts the emulators when they are not
running and stops only what it started). Compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from bench.gateway import (  # noqa: E402
    CACHE_HEADER,
    PERCENTILES,
    TENANT,
    _load,
    doubles_process,
    emulators,
    ingest,
    percentile,
    remove_namespace,
)

# tests/test_governance.py's PRICES.
PRICES = json.dumps(
    {
        "models": {
            "gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006},
            "gpt-4o": {"input_per_1k": 0.0025, "output_per_1k": 0.01},
        },
        "tiers": {
            "economy": {"*": "gpt-4o-mini"},
            "standard": {"*": "gpt-4o-mini"},
            "premium": {"*": "gpt-4o"},
        },
    }
)
NEVER_REFUSE = {"rpm": 1_000_000, "tpm": 1_000_000_000}
RATE_LIMITS = json.dumps(
    {"roles": {"user": NEVER_REFUSE, "admin": NEVER_REFUSE}, "tenant": NEVER_REFUSE}
)
LARGE = {"daily_usd": 1_000_000, "monthly_usd": 1_000_000}
BUDGETS = json.dumps({"tenant": LARGE, "user": LARGE})
OFF = {"CACHE_ENABLED": "false", "RATE_LIMITS_ENABLED": "false"}
ON = {
    "CACHE_ENABLED": "true",
    "RATE_LIMITS_ENABLED": "true",
    "RATE_LIMITS": RATE_LIMITS,
    "LLM_PRICES": PRICES,
    "BUDGETS": BUDGETS,
}
CONNECTIONS = (1, 8)
# Answered by the double with one cited quote and no warning: cacheable. (gateway.py's fleet
# question is not: its quote splits into an uncited sentence, and warned answers are not stored.)
QUESTION = "Which cranes were replaced at the terminal?"


@dataclass(frozen=True)
class Settings:
    """How much to measure: the full run, or `--quick`."""

    requests: dict[int, int]  # connections -> recorded requests per row and round
    rounds: int
    probes: int  # Cosmos point reads and upserts timed in the bench process


FULL = Settings(requests={1: 80, 8: 200}, rounds=2, probes=100)
QUICK = Settings(requests={1: 30, 8: 64}, rounds=1, probes=40)


@dataclass
class Samples:
    """Wall latencies (ms) of one row, pooled over rounds, and each round's throughput."""

    wall: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)  # x-docgate-cache, reduced to its path
    cpu: dict[str, list[float]] = field(default_factory=dict)  # process -> CPU ms per request

    def p(self, fraction: float) -> float:
        return percentile(self.wall, fraction)

    def cells(self) -> str:
        p50, p95, p99 = (self.p(fraction) for fraction in PERCENTILES)
        return f"{p50:>6.2f} {p95:>7.2f} {p99:>7.2f}"


_ASKED = [0]  # distinct questions so far: numbered across rows, rounds and connections


def distinct_question() -> dict[str, Any]:
    """The bench question with a number no other request used (the guard compares numbers)."""
    _ASKED[0] += 1
    number = _ASKED[0]
    return {"messages": [{"role": "user", "content": f"{QUESTION} Reference {number}."}]}


def repeated_question() -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": QUESTION}]}


def check(path: str, state: str, expected: str) -> None:
    """Fails loudly when the response did not take the intended cache path."""
    if path != expected:
        raise RuntimeError(f"{CACHE_HEADER} {state!r}: expected the {expected!r} path")


async def one(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    expected: str,
    samples: Samples | None,
) -> None:
    started = time.perf_counter()
    async with session.post(url, headers=headers, json=body) as response:
        raw = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{url} answered {response.status}: {raw[:300]!r}")
    state = response.headers.get(CACHE_HEADER, "<absent>")
    path = state.split(";")[0].strip()
    check(path, state, expected)
    if samples is not None:
        samples.wall.append(elapsed)
        samples.states[path] = samples.states.get(path, 0) + 1


async def warm(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict[str, Any]
) -> None:
    """Asks the repeated question once, sequentially: a miss the first time (stored), a hit
    after that; either way the recorded requests that follow must all be hits."""
    async with session.post(url, headers=headers, json=body) as response:
        raw = await response.read()
    state = response.headers.get(CACHE_HEADER, "<absent>")
    if response.status != 200 or state.split(";")[0] not in ("miss", "hit"):
        raise RuntimeError(f"warm-up answered {response.status} {state!r}: {raw[:300]!r}")


async def drive(
    base_url: str,
    body: Callable[[], dict[str, Any]],
    expected: str,
    connections: int,
    requests: int,
    samples: Samples,
    processes: dict[str, Any],
) -> None:
    """`requests` calls over `connections` keep-alive connections, after a short warm-up."""
    from tests.apphost import API_KEYS

    url = f"{base_url}/api/chat"
    auth = {"Authorization": f"Bearer {API_KEYS[TENANT]}"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        if expected == "hit":  # one sequential request stores the answer (or finds it stored)
            await warm(session, url, auth, body())
        remaining = 0

        async def worker(record: bool) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one(session, url, auth, body(), expected, samples if record else None)

        remaining = 2 * connections  # opens every connection
        await asyncio.gather(*(worker(False) for _ in range(connections)))
        remaining = requests
        before = {name: cpu_seconds(process) for name, process in processes.items()}
        started = time.perf_counter()
        await asyncio.gather(*(worker(True) for _ in range(connections)))
        samples.rps.append(requests / (time.perf_counter() - started))
        for name, process in processes.items():
            spent = (cpu_seconds(process) - before[name]) * 1000 / requests
            samples.cpu.setdefault(name, []).append(spent)


ROWS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "1 baseline (governance off)": (repeated_question, "off"),
    "2 governance on, cache miss": (distinct_question, "miss"),
    "3 governance on, cache hit": (repeated_question, "hit"),
}


def cpu_seconds(process: Any) -> float:
    """User + system CPU seconds of a psutil process and its children."""
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = each.cpu_times()
            total += times.user + times.system
    return total


def cosmos_process(endpoint: str) -> Any:
    """The process listening on the Cosmos emulator's port."""
    port = urllib.parse.urlsplit(endpoint).port
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return psutil.Process(connection.pid)
    raise RuntimeError(f"no process listens on {endpoint}")


def distinct_sent() -> int:
    """How many distinct questions were asked so far (each a miss that should be stored)."""
    return _ASKED[0]


def check_stored(deployment: Any, expected: int) -> int:
    """Fails loudly unless every miss was stored: the miss row measures lookup + store."""
    container = deployment.database.get_container_client("semantic_cache")
    [stored] = container.query_items(
        "SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True
    )
    if stored < expected:
        raise RuntimeError(f"{stored} cache entries for {expected} distinct questions: not stored")
    return int(stored)


def cosmos_probe(deployment: Any, probes: int) -> tuple[float, float]:
    """Median ms of a point upsert and a point read on the emulator, from the bench process
    (a sync client, one at a time): the price of one of the chain's round trips."""
    container = deployment.database.get_container_client("budgets")
    identifier = f"bench-probe-{uuid.uuid4().hex[:8]}"
    item = {"id": identifier, "value": 0}
    container.upsert_item(item)
    container.read_item(identifier, partition_key=identifier)
    writes, reads = [], []
    for index in range(probes):
        started = time.perf_counter()
        container.upsert_item({**item, "value": index})
        writes.append(time.perf_counter() - started)
        started = time.perf_counter()
        container.read_item(identifier, partition_key=identifier)
        reads.append(time.perf_counter() - started)
    container.delete_item(identifier, partition_key=identifier)
    return statistics.median(writes) * 1000, statistics.median(reads) * 1000


def run_host(
    endpoints: Any,
    doubles: Any,
    folder: Path,
    label: str,
    overrides: dict[str, str],
    rows: list[str],
    settings: Settings,
    results: dict[tuple[str, int], Samples],
) -> tuple[float, float] | None:
    """Starts one deployment, ingests, drives `rows` at each connection count; returns the
    Cosmos probe (governed host only) and removes the deployment."""
    from tests.apphost import app_environment, start_app
    from tests.test_ingestion import Deployment

    name = f"bench-{uuid.uuid4().hex[:12]}"
    environment = app_environment(
        endpoints, name, LLM_REGIONS=doubles.setting(), LLM_API_KEY=doubles.key, **overrides
    )
    try:
        started = time.perf_counter()
        host = start_app(folder / label, environment)
        start_seconds = time.perf_counter() - started
        try:
            deployment = Deployment(host, endpoints, name)
            ingest_seconds = ingest(deployment)
            print(
                f"host {label} started in {start_seconds:.1f} s; documents ingested in"
                f" {ingest_seconds:.1f} s"
            )
            processes = {
                "app": psutil.Process(host.process.pid),
                "cosmos": cosmos_process(endpoints.cosmos_endpoint),
            }
            for connections in CONNECTIONS:
                for round_index in range(settings.rounds):
                    order = rows if round_index % 2 == 0 else list(reversed(rows))
                    for row in order:
                        body, expected = ROWS[row]
                        samples = results.setdefault((row, connections), Samples())
                        asyncio.run(
                            drive(
                                host.base_url, body, expected, connections,
                                settings.requests[connections], samples, processes,
                            )
                        )  # fmt: skip
        finally:
            host.stop()
        if label == "governed":
            sent = distinct_sent()
            stored = check_stored(deployment, sent)
            print(f"  {sent} distinct questions asked, {stored} cache entries stored (+1 repeated)")
        return cosmos_probe(deployment, settings.probes) if label == "governed" else None
    finally:
        remove_namespace(endpoints, name)


def report(
    results: dict[tuple[str, int], Samples], settings: Settings, probe: tuple[float, float]
) -> None:
    counts = ", ".join(f"{r} at {c} conn" for c, r in settings.requests.items())
    print(
        f"POST /api/chat, zero-latency LLM double: {counts} x {settings.rounds} round(s) per row,"
        " percentiles pooled over rounds, keep-alive, loopback"
    )
    print(
        f"  {'row':<30} {'conns':>5} {'req/s':>7}  {'wall ms p50    p95     p99':>24}"
        f"  {'CPU ms/req app cosmos':>21}  {CACHE_HEADER}"
    )
    for connections in CONNECTIONS:
        for row in ROWS:
            samples = results[(row, connections)]
            states = ", ".join(f"{path} x{count}" for path, count in samples.states.items())
            print(
                f"  {row:<30} {connections:>5} {statistics.median(samples.rps):>7.0f}"
                f"  {samples.cells()}  {statistics.median(samples.cpu['app']):>10.1f}"
                f" {statistics.median(samples.cpu['cosmos']):>6.1f}  {states}"
            )
    print("  added by the chain (governed row - baseline, same conns and percentile):")
    for connections in CONNECTIONS:
        base = results[("1 baseline (governance off)", connections)]
        for row, short in (("2 governance on, cache miss", "miss"),
                           ("3 governance on, cache hit", "hit ")):  # fmt: skip
            case = results[(row, connections)]
            print(
                f"    {short} {connections} conn: p50 {case.p(0.5) - base.p(0.5):+7.1f} ms"
                f" ({case.p(0.5) / base.p(0.5):.2f}x), p99 {case.p(0.99) - base.p(0.99):+7.1f} ms"
                f" ({case.p(0.99) / base.p(0.99):.2f}x)"
            )
    write_ms, read_ms = probe
    # Round trips per request (from the code): limiter admit 2 writes (user + tenant buckets) and
    # settle; budget admit ~4 reads + 4 writes and settle ~4; cache lookup 1 read (hit) or store:
    # cited chunks re-read + 1 upsert + 1 count query; ledger 1 write (baseline too).
    print(
        f"  Cosmos emulator from the bench process (sync, sequential): point upsert median"
        f" {write_ms:.2f} ms, point read {read_ms:.2f} ms"
    )
    print(
        "  (miss path adds ~2 limiter writes + settle, ~4 budget reads + 4 writes + ~4 settles,"
        " cited-chunk re-reads + 1 cache upsert + 1 count query: ~16-20 sequential round trips;"
        " the ledger write is in the baseline too; a hit skips retrieval, the model and the store)"
    )


def embed_ms(repeats: int) -> float:
    """Median ms to embed one question with the app's local MiniLM, in this process: the
    cache lookup embeds the question and retrieval embeds it again (no shared vector)."""
    from shared.embeddings.local import LocalEmbedder

    embedder = LocalEmbedder()

    async def measure() -> float:
        await embedder.embed([QUESTION])  # loads the model
        times = []
        for index in range(repeats):
            started = time.perf_counter()
            await embedder.embed([f"{QUESTION} Reference {index}."])
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    return asyncio.run(measure())


def run(settings: Settings) -> None:
    results: dict[tuple[str, int], Samples] = {}
    with (
        emulators() as endpoints,
        doubles_process() as doubles,
        tempfile.TemporaryDirectory(prefix="bench-governance-") as folder,
    ):
        run_host(
            endpoints, doubles, Path(folder), "baseline", OFF,
            ["1 baseline (governance off)"], settings, results,
        )  # fmt: skip
        doubles.clear()
        probe = run_host(
            endpoints, doubles, Path(folder), "governed", ON,
            ["2 governance on, cache miss", "3 governance on, cache hit"], settings, results,
        )  # fmt: skip
        doubles.clear()
    assert probe is not None
    report(results, settings, probe)
    print(
        f"  embed one question (MiniLM, ONNX, this process, host stopped): median"
        f" {embed_ms(settings.probes // 2):.2f} ms; a miss embeds twice (cache lookup, then"
        " retrieval), a hit once, the baseline once"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, one round")
    arguments = parser.parse_args(argv)
    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    settings = QUICK if arguments.quick else FULL
    started = time.perf_counter()
    print(
        f"governance bench ({'quick' if arguments.quick else 'full'}),"
        f" Python {sys.version.split()[0]}"
    )
    print(f"load average before: {_load()}")
    run(settings)
    print(f"(total {time.perf_counter() - started:.1f} s; load average after: {_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
