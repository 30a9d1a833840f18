"""Load: bounded concurrent chat, OpenAI-compatible completions (plain and streamed) and uploads
against function_app under devhost and the emulators, with latency percentiles per kind and
ZERO unexpected statuses; afterwards the ledger, the limits and the index are checked.

- Workload: `--workers` concurrent clients (bounded: each sends one request at a time) for
  `--requests` requests in all, mixed 70% `POST /api/chat`, 20% `POST /api/v1/chat/completions`
  (half of them `stream: true`), 10% `POST /api/documents` (a small new text document each). Half
  of the chat questions repeat (the semantic cache answers those), half are unique.
- Expected statuses: 200 for chat, 202 for uploads; a 429 is expected only with Retry-After
  and only when the run's RATE_LIMITS are lowered (`--rpm`); anything else is unexpected and
  makes the exit code 1.
- Checked afterwards: every upload reaches `succeeded` with chunks (the index); the ledger
  (`GET /api/usage`) counts exactly the chat and completion requests answered 200 (the
  ledger is written behind the response, so it is read once the host has been stopped and
  started again: what a crash would leave); with `--rpm`, no more requests were admitted than
  the user's token bucket allows (full at the warm-up, refilled at rpm per minute).

Run: `.venv/bin/python bench/load.py [--quick] [--workers 8] [--requests 300] [--rpm N]`
(starts the emulators when they are not running and stops only what it started).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.gateway import DOCUMENTS, emulators, ingest, percentile, remove_namespace  # noqa: E402

TENANT = "contoso"
QUESTIONS = (
    "How many vessels are in the fleet?",
    "What does the handbook say about ordering?",
    "Which terminal got electric cranes?",
    "What are the quarterly orders by region?",
)
PERCENTILES = (0.50, 0.95, 0.99)


@dataclass
class Kind:
    """One kind of request: its latencies (ms) and statuses."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)


@dataclass
class Run:
    """What the load produced."""

    kinds: dict[str, Kind] = field(default_factory=dict)
    uploaded: list[str] = field(default_factory=list)  # document ids answered 202
    answered: int = 0  # chat + completions answered 200
    seconds: float = 0.0
    window: float = 0.0  # seconds from the warm-up request to the end of the load

    def kind(self, name: str) -> Kind:
        return self.kinds.setdefault(name, Kind())


def question(rng: random.Random) -> str:
    """Half repeat (cache hits), half are unique."""
    text = rng.choice(QUESTIONS)
    return text if rng.random() < 0.5 else f"{text} ({uuid.uuid4().hex[:8]})"


async def send(
    session: aiohttp.ClientSession, base: str, rng: random.Random, run: Run, limited: bool
) -> None:
    """One request of the mix; its latency and status recorded, unexpected ones named."""
    draw = rng.random()
    messages = [{"role": "user", "content": question(rng)}]
    if draw < 0.7:
        name, method, url, kwargs = "chat", "POST", "/api/chat", {"json": {"messages": messages}}
    elif draw < 0.9:
        stream = rng.random() < 0.5
        name = "completions (stream)" if stream else "completions"
        body = {"model": "docgate", "messages": messages, "stream": stream}
        method, url, kwargs = "POST", "/api/v1/chat/completions", {"json": body}
    else:
        doc = f"load/{uuid.uuid4().hex[:12]}.txt"
        text = f"Load test note {doc}: the warehouse in Harbour opens at six. " * 20
        name, method, url = "upload", "POST", f"/api/documents?name={doc}"
        kwargs = {"data": text.encode(), "headers": {"Content-Type": "text/plain"}}
    started = time.perf_counter()
    async with session.request(method, f"{base}{url}", **kwargs) as response:
        payload = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    kind = run.kind(name)
    kind.latencies.append(elapsed)
    kind.statuses[response.status] += 1
    expected = 202 if name == "upload" else 200
    if response.status == expected:
        if name == "upload":
            run.uploaded.append(json.loads(payload)["id"])
        else:
            run.answered += 1
            if name == "completions (stream)" and b"data: [DONE]" not in payload:
                kind.unexpected.append("a stream without its [DONE] event")
    elif not (limited and response.status == 429 and "Retry-After" in response.headers):
        kind.unexpected.append(f"{response.status}: {payload[:200]!r}")


async def load(base: str, key: str, workers: int, requests: int, limited: bool) -> Run:
    """`requests` requests over `workers` concurrent clients."""
    run, remaining = Run(), requests
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def worker(seed: int) -> None:
            nonlocal remaining
            rng = random.Random(seed)
            while remaining > 0:
                remaining -= 1
                await send(session, base, rng, run, limited)

        started = time.perf_counter()
        await asyncio.gather(*(worker(seed) for seed in range(workers)))
        run.seconds = time.perf_counter() - started
    return run


def report(run: Run) -> int:
    """Prints the table; returns the number of unexpected statuses."""
    total = sum(len(kind.latencies) for kind in run.kinds.values())
    print(f"\n{total} requests in {run.seconds:.1f} s ({total / run.seconds:.1f} req/s)")
    print(f"{'kind':<22}{'n':>5}  {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses")
    unexpected = 0
    for name, kind in sorted(run.kinds.items()):
        cells = " ".join(f"{percentile(kind.latencies, f):>8.0f}" for f in PERCENTILES)
        statuses = ", ".join(f"{s}x{n}" for s, n in sorted(kind.statuses.items()))
        print(f"{name:<22}{len(kind.latencies):>5}  {cells}  {statuses}")
        for problem in kind.unexpected[:5]:
            print(f"    UNEXPECTED {problem}")
        unexpected += len(kind.unexpected)
    print(f"unexpected statuses: {unexpected}")
    return unexpected


def checks(deployment: Any, run: Run, rpm: int | None) -> list[str]:
    """The index, the ledger and the limits after the load; returns what failed."""
    from tests.apphost import request

    failed: list[str] = []
    for doc_id in run.uploaded:
        status = deployment.wait_done(doc_id, tenant=TENANT)
        if status["state"] != "succeeded" or not status.get("counts", {}).get("chunks"):
            failed.append(f"index: {doc_id} ended {status['state']}: {status.get('error')}")
    code, _, totals = request(deployment.host, "GET", "/api/usage", tenant=TENANT)
    requests = totals["total"]["requests"] if code == 200 else None
    if requests != run.answered + 1:  # + the warm-up question
        failed.append(f"ledger: {requests} requests recorded, {run.answered + 1} answered 200")
    if rpm is not None:
        # A token bucket: full (rpm) at the warm-up, refilled at rpm per minute since.
        admitted, bound = run.answered + 1, rpm + rpm * run.window / 60
        if admitted > bound:
            failed.append(f"limits: {admitted} admitted, the bucket allows {bound:.1f}")
        print(f"limits: {admitted} admitted in {run.window:.1f} s; the bucket allows {bound:.1f}")
    print(f"index: {len(run.uploaded)} uploads indexed; ledger: {requests} requests recorded")
    return failed


def main(argv: list[str] | None = None) -> int:
    """Ingests the fixtures, runs the load, checks, prints; exit 1 on anything unexpected."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 workers, 60 requests")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rpm", type=int, default=None, help="lower the per-user rate limit")
    arguments = parser.parse_args(argv)
    workers, requests = (4, 60) if arguments.quick else (arguments.workers, arguments.requests)
    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    from tests.apphost import API_KEYS, app_environment, request, start_app
    from tests.test_ingestion import Deployment

    rpm = arguments.rpm
    limit = {"rpm": rpm or 100_000, "tpm": 100_000_000}
    limits = {"roles": {"user": limit, "admin": limit}, "tenant": {"rpm": 1_000_000,
              "tpm": 1_000_000_000}}  # fmt: skip
    print(f"load bench: {workers} workers, {requests} requests; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    with emulators() as endpoints, tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        name = f"bench-{uuid.uuid4().hex[:12]}"
        environment = app_environment(endpoints, name, RATE_LIMITS=json.dumps(limits))
        host = start_app(Path(folder) / "app", environment)
        try:
            deployment = Deployment(host, endpoints, name)
            print(f"{len(DOCUMENTS)} documents ingested in {ingest(deployment):.1f} s")
            warm = json.dumps({"messages": [{"role": "user", "content": QUESTIONS[0]}]})
            warmed = time.perf_counter()
            request(host, "POST", "/api/chat", warm.encode(), {"Content-Type": "application/json"})
            run = asyncio.run(
                load(host.base_url, API_KEYS[TENANT], workers, requests, rpm is not None)
            )
            run.window = time.perf_counter() - warmed
            unexpected = report(run)
            host.stop()  # what the ledger holds once the host is gone
            host = start_app(Path(folder) / "app", environment, data_dir=host.data_dir)
            deployment.host = host
            failed = checks(deployment, run, rpm)
        finally:
            host.stop()
            remove_namespace(endpoints, name)
    for failure in failed:
        print(f"CHECK FAILED {failure}")
    return 1 if unexpected or failed else 0


if __name__ == "__main__":
    sys.exit(main())
