"""Benchmarks the local Functions host (devhost) against baselines measured in the same run.

1. HTTP trigger overhead: a trivial sync HTTP function served by devhost vs. a bare aiohttp
   server returning the same body, both in child processes, driven by the same aiohttp client
   (1 and 8 connections, a fixed request count, rounds interleaved so drift hits both alike).
2. Durable throughput: `fan_out` (n concurrent activities) and `chain` (n sequential ones)
   started and polled through the real client path (HTTP client function -> SDK client ->
   devhost's Durable API), vs. calling the same activity body n times in-process.

Run: `.venv/bin/python bench/devhost.py [--quick]`. Figures are ratios or per-item costs so two
runs on a noisy machine can be compared; absolute numbers only mean something within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0] and this very file would shadow the `devhost`
# package: swap the folder for the repository root.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from devhost.testing import HostProcess, free_port  # noqa: E402

HTTP_APP = HERE / "apps" / "http_echo"
DURABLE_APP = HERE / "apps" / "durable_bench"
ECHO_PATH = "/api/echo"
ECHO_BODY = b"ok"  # bench/apps/http_echo/function_app.py answers the same
POLL_SECONDS = 0.02
DURABLE_TIMEOUT_SECONDS = 60.0
BASELINE_CALLS = 50  # in-process activity calls timed per repeat


@dataclass(frozen=True)
class Settings:
    """How much to measure: the full run, or `--quick`."""

    http_requests: int  # per (server, connections, round)
    http_rounds: int
    durable_repeats: int
    connections: tuple[int, ...] = (1, 8)


FULL = Settings(http_requests=800, http_rounds=5, durable_repeats=5)
QUICK = Settings(http_requests=400, http_rounds=1, durable_repeats=1)


# Child processes ------------------------------------------------------------------------------


def serve_baseline(port: int) -> None:
    """The baseline: a bare aiohttp server answering the echo route like the bench app."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=ECHO_BODY, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get(ECHO_PATH, echo)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextlib.contextmanager
def baseline_server() -> Iterator[str]:
    """Runs `serve_baseline` in a child process; yields its base URL once it answers."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline-server", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_until_answers(base_url + ECHO_PATH, process))
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_until_answers(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"baseline server exited: {process.stderr}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError("baseline server did not answer")


@contextlib.contextmanager
def devhost(app_dir: Path) -> Iterator[HostProcess]:
    """A devhost child on its own port and temporary data folder (nothing written to app_dir)."""
    with tempfile.TemporaryDirectory(prefix="bench-devhost-") as folder:
        data_dir = Path(folder)
        # A settings file that does not exist: keys stay in memory instead of being saved.
        host = HostProcess(
            app_dir, data_dir, "function_app", settings_file=data_dir / "local.settings.json"
        )
        with host:
            yield host


# 1. HTTP trigger overhead ---------------------------------------------------------------------


@dataclass
class LoadResult:
    """One load run: its throughput and every request's latency in seconds."""

    requests_per_second: float
    latencies: list[float]


async def drive(url: str, connections: int, requests: int) -> LoadResult:
    """Sends `requests` GETs over `connections` keep-alive connections, after a warm-up."""
    connector = aiohttp.TCPConnector(limit=connections)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = 0

        async def worker(record: bool) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.get(url) as response:
                    body = await response.read()
                if response.status != 200 or body != ECHO_BODY:
                    raise RuntimeError(f"{url} answered {response.status} {body[:200]!r}")
                if record:
                    latencies.append(time.perf_counter() - started)

        remaining = 20 * connections  # opens every connection and warms both ends
        await asyncio.gather(*(worker(False) for _ in range(connections)))
        remaining = requests
        started = time.perf_counter()
        await asyncio.gather(*(worker(True) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return LoadResult(requests / elapsed, latencies)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass
class HttpRow:
    """One (server, connections) pair: each round's throughput and p50/p99 latency.

    Rows report the median over rounds, so a burst of load from a neighbour spoils one round
    rather than the figure.
    """

    rps: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)

    def add(self, result: LoadResult) -> None:
        """Records one round."""
        self.rps.append(result.requests_per_second)
        self.p50s.append(percentile(result.latencies, 0.50))
        self.p99s.append(percentile(result.latencies, 0.99))

    @property
    def median_rps(self) -> float:
        """Requests per second, median over rounds."""
        return statistics.median(self.rps)

    @property
    def spread(self) -> float:
        """(max - min) / median of the rounds' throughput: how far rounds disagree."""
        return (max(self.rps) - min(self.rps)) / self.median_rps

    def ms(self, fraction: float) -> float:
        """The median over rounds of the p50 (fraction 0.5) or p99 latency, in ms."""
        return statistics.median(self.p50s if fraction == 0.5 else self.p99s) * 1000


def bench_http(settings: Settings) -> dict[tuple[str, int], HttpRow]:
    """Interleaves baseline and devhost rounds at each connection count."""
    rows: dict[tuple[str, int], HttpRow] = {}
    with baseline_server() as baseline_url, devhost(HTTP_APP) as host:
        targets = {
            "baseline": baseline_url + ECHO_PATH,
            "devhost": host.base_url + ECHO_PATH,
            "dh-async": host.base_url + ECHO_PATH + "-async",
        }
        for connections in settings.connections:
            for round_index in range(settings.http_rounds):
                # Alternate the order so slow drift of the machine hits every target alike.
                order = list(targets) if round_index % 2 == 0 else list(reversed(targets))
                for name in order:
                    result = asyncio.run(drive(targets[name], connections, settings.http_requests))
                    rows.setdefault((name, connections), HttpRow()).add(result)
    return rows


def print_http(rows: dict[tuple[str, int], HttpRow], settings: Settings) -> None:
    """The HTTP table, then the devhost/baseline ratios."""
    print(
        f"HTTP trigger overhead: GET {ECHO_PATH} ('ok'), {settings.http_requests} requests"
        f" x {settings.http_rounds} round(s) per row, keep-alive, loopback"
    )
    print(f"  {'server':<9} {'conns':>5} {'req/s':>8} {'spread':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for (name, connections), row in rows.items():
        print(
            f"  {name:<9} {connections:>5} {row.median_rps:>8.0f} {row.spread:>7.0%}"
            f" {row.ms(0.50):>8.2f} {row.ms(0.99):>8.2f}"
        )
    print("  ratio devhost/baseline (dh-async: the same function declared async, no thread hop):")
    for connections in settings.connections:
        base = rows[("baseline", connections)]
        for name in ("devhost", "dh-async"):
            host = rows[(name, connections)]
            print(
                f"    {name:<8} {connections} conn: req/s {host.median_rps / base.median_rps:.2f}x,"
                f" p50 {host.ms(0.5) / base.ms(0.5):.2f}x,"
                f" p99 {host.ms(0.99) / base.ms(0.99):.2f}x;"
                f" adds {host.ms(0.5) - base.ms(0.5):.2f} ms at p50"
            )


# 2. Durable throughput ------------------------------------------------------------------------


@dataclass
class DurableRun:
    """One orchestration: client wall time (POST to seen Completed) and engine time."""

    wall_seconds: float
    engine_seconds: float


async def run_orchestration(
    session: aiohttp.ClientSession, base_url: str, name: str, count: int
) -> DurableRun:
    """Starts `name` with input `count` via the client function and polls its status."""
    started = time.perf_counter()
    async with session.post(f"{base_url}/api/orchestrators/{name}", json=count) as response:
        body = await response.json()
        if response.status != 202:
            raise RuntimeError(f"start {name} answered {response.status}: {body}")
    status_url = f"{base_url}/api/instances/{body['id']}"
    deadline = time.monotonic() + DURABLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        async with session.get(status_url) as response:
            status = await response.json() if response.status == 200 else {}
        state = status.get("runtimeStatus")
        if state == "Completed":
            wall = time.perf_counter() - started
            created = datetime.fromisoformat(status["createdTime"])
            updated = datetime.fromisoformat(status["lastUpdatedTime"])
            return DurableRun(wall, (updated - created).total_seconds())
        if state in ("Failed", "Terminated"):
            raise RuntimeError(f"{name}({count}) ended {state}: {status.get('output')}")
        await asyncio.sleep(POLL_SECONDS)
    raise TimeoutError(f"{name}({count}) did not complete in {DURABLE_TIMEOUT_SECONDS} s")


# chain(0) is the fixed cost of an orchestration; the n=20/25 rows show how cost grows with n.
SCENARIOS: tuple[tuple[str, int], ...] = (
    ("chain", 0),
    ("chain", 10),
    ("chain", 20),
    ("fan_out", 25),
    ("fan_out", 50),
)


def bench_durable_host(settings: Settings) -> dict[tuple[str, int], list[DurableRun]]:
    """Each scenario `durable_repeats` times on one warm devhost, after a warm-up."""
    runs: dict[tuple[str, int], list[DurableRun]] = {}

    async def measure(base_url: str) -> None:
        async with aiohttp.ClientSession() as session:
            await run_orchestration(session, base_url, "chain", 2)  # warm-up
            await run_orchestration(session, base_url, "fan_out", 2)
            for _ in range(settings.durable_repeats):
                for name, count in SCENARIOS:
                    run = await run_orchestration(session, base_url, name, count)
                    runs.setdefault((name, count), []).append(run)

    with devhost(DURABLE_APP) as host:
        asyncio.run(measure(host.base_url))
    return runs


def time_in_process(call: Callable[[int], Any], count: int, repeats: int = 200) -> float:
    """Best-of-`repeats` seconds to make `count` calls (best: the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for value in range(count):
            call(value)
        best = min(best, time.perf_counter() - started)
    return best


def bench_activity_baselines(count: int) -> tuple[float, float]:
    """Seconds for `count` calls of the `double` activity body, direct and via devhost's Invoker.

    The function is the one devhost itself would call: indexed from the same bench app.
    """
    from devhost.functions import load_functions
    from devhost.invoker import Invoker

    functions = {f.name: f for f in load_functions(DURABLE_APP, "function_app")}
    double = functions["double"]
    direct = time_in_process(double.user_function, count)

    async def through_invoker() -> float:
        invoker = Invoker()
        best = float("inf")
        try:
            for _ in range(20):
                started = time.perf_counter()
                for value in range(count):
                    await invoker.invoke(double, "activity", {double.trigger_arg: value})
                best = min(best, time.perf_counter() - started)
        finally:
            invoker.close()
        return best

    return direct, asyncio.run(through_invoker())


def print_durable(
    runs: dict[tuple[str, int], list[DurableRun]], direct: float, invoked: float, settings: Settings
) -> None:
    """The Durable table: times, activities/s and the per-activity overhead."""
    per_call_direct = direct / BASELINE_CALLS
    per_call_invoked = invoked / BASELINE_CALLS
    print(
        f"Durable throughput: best of {settings.durable_repeats} run(s) (spread = median/best - 1),"
        f" status polled every {POLL_SECONDS * 1000:.0f} ms;"
        " engine = instance created -> completed (ms stamps)"
    )
    print(
        f"  {'orchestration':<13} {'wall ms':>8} {'engine ms':>9} {'spread':>7} {'act/s':>7}"
        f" {'ms/act':>7} {'marginal':>8}"
    )
    empty = min(run.engine_seconds for run in runs[("chain", 0)])
    for (name, count), items in runs.items():
        wall = min(run.wall_seconds for run in items)
        engine = min(run.engine_seconds for run in items)
        typical = statistics.median(run.engine_seconds for run in items)
        spread = (typical - engine) / engine if engine else 0.0
        label = f"{name}({count})"
        if count == 0:
            print(f"  {label:<13} {wall * 1000:>8.1f} {engine * 1000:>9.1f} {spread:>7.0%}")
            continue
        baseline = per_call_direct * count
        per_activity = (engine - baseline) / count * 1000
        marginal = (engine - empty) / count * 1000
        print(
            f"  {label:<13} {wall * 1000:>8.1f} {engine * 1000:>9.1f} {spread:>7.0%}"
            f" {count / engine:>7.0f} {per_activity:>7.2f} {marginal:>8.2f}"
        )
    print(
        f"  in-process baselines per activity call: direct {per_call_direct * 1e6:.2f} us,"
        f" via devhost Invoker (thread pool + log line) {per_call_invoked * 1e6:.0f} us"
    )
    print("  ms/act = (engine - direct baseline) / n; marginal = (engine - empty chain(0)) / n")
    print(
        "  (engine ms stops at the start of the final episode, so chain(0) reads ~0; wall ms adds"
        " the client start call, the last episode and up to one poll interval)"
    )


# Entry point ---------------------------------------------------------------------------------


def _load() -> str:
    """The 1-minute load average against the core count: is someone else using the machine?"""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    """Runs both benchmarks and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, one round/repeat")
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.baseline_server:
        serve_baseline(arguments.baseline_server)
        return 0
    settings = QUICK if arguments.quick else FULL
    started = time.perf_counter()
    print(
        f"devhost bench ({'quick' if arguments.quick else 'full'}), Python {sys.version.split()[0]}"
    )
    print(f"load average before: {_load()}")
    print_http(bench_http(settings), settings)
    print()
    runs = bench_durable_host(settings)
    direct, invoked = bench_activity_baselines(BASELINE_CALLS)
    print_durable(runs, direct, invoked, settings)
    print(f"(total {time.perf_counter() - started:.1f} s; load average after: {_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
