"""Benchmarks the chat gateway: what docgate adds around the model call, and what failover costs.

1. Chat-path overhead with a zero-latency LLM: function_app under devhost against the emulators,
   a few small documents ingested once, one Azure OpenAI double (a child process) answering at
   once. `POST /api/chat` and `POST /api/v1/chat/completions` are driven by one aiohttp client at
   1 and 16 keep-alive connections; rows give wall latency and the app's own
   `x-docgate-overhead-ms` header (condense + retrieve + prompt + cite, i.e. everything in
   `ChatService.answer` outside the router call). Baselines in the same run: `GET /api/v1/models`
   (devhost round trip + API-key auth, no I/O) and the LLM double called directly with the
   prompt the app sends it. LiteLLM's published proxy overhead is printed beside them as a
   reference, not measured here.
2. Failover added latency, primary (priority 1) region throttled with 429 + Retry-After, the
   secondary serving. Two cases, each against a direct run under identical settings:
   - first request after the 429 (breaker closed, cold breaker cache: the true failover);
     a second host on the same database with BREAKER_CACHE_SECONDS=0.05 and
     LLM_MAX_RETRY_AFTER_SECONDS=0.1, requests paced and interleaved, the breaker items deleted
     before each, so every request finds the breaker closed and reads it from Cosmos;
   - steady state (breaker open and cached, the primary skipped without a call), on the host of
     section 1 with default breaker settings, interleaved with requests of a tier that only the
     secondary serves (the same double, with no breaker to skip).

Run: `.venv/bin/python bench/gateway.py [--quick]` (starts the emulators when they are not
running and stops only what it started). Compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

TENANT = "contoso"
QUESTION = "How many vessels are in the fleet?"
CHAT_BODY = {"messages": [{"role": "user", "content": QUESTION}]}
COMPLETION_BODY = {"model": "docgate", **CHAT_BODY}
OVERHEAD_HEADER = "x-docgate-overhead-ms"
REGION_HEADER = "x-docgate-region"
CACHE_HEADER = "x-docgate-cache"
PRIMARY, SECONDARY = "eastus", "westus"
LLM_API_VERSION = "2024-10-21"
# LiteLLM's proxy overhead as LiteLLM publishes it (/work/shared/notes/anchors.md).
LITELLM_PUBLISHED = (2.0, 8.0, 13.0)
LITELLM_SETUP = "4 instances x 4 CPU, ~1,170 RPS"
FAILOVER_GAP_SECONDS = 0.15  # > the 0.1 s opening and the 0.05 s breaker cache of host B
PERCENTILES = (0.50, 0.95, 0.99)
WARM_UP = 4  # paced requests before the recorded ones (connection, both regions' clients)


@dataclass(frozen=True)
class Settings:
    """How much to measure: the full run, or `--quick`."""

    requests: dict[int, int]  # connections -> requests per round
    rounds: int
    failover_samples: int  # paced, per case (direct and failover, interleaved)
    steady_requests: int  # sequential, per case (direct and steady state, interleaved)


FULL = Settings(requests={1: 100, 16: 320}, rounds=3, failover_samples=30, steady_requests=100)
QUICK = Settings(requests={1: 40, 16: 160}, rounds=1, failover_samples=10, steady_requests=30)


# The LLM doubles: a child process, scripted over a control route -----------------------------


def serve_doubles() -> None:
    """Two Azure OpenAI doubles (the regions) and a control app; prints their URLs as JSON."""
    from tests.doubles.azure_openai import CHAT_ROUTE, AzureOpenAIDouble

    async def run() -> None:
        regions = {PRIMARY: AzureOpenAIDouble(), SECONDARY: AzureOpenAIDouble()}
        for double in regions.values():
            await double.start()

        async def throttle(request: web.Request) -> web.Response:
            body = await request.json()
            regions[body["region"]].script_throttle(
                times=body["times"], retry_after=body["retry_after"]
            )
            return web.json_response({})

        async def clear(request: web.Request) -> web.Response:
            for double in regions.values():
                double.faults.clear()
                double.requests.clear()  # the log grows with every request
            return web.json_response({})

        async def calls(request: web.Request) -> web.Response:
            return web.json_response(
                {name: len(double.seen(CHAT_ROUTE)) for name, double in regions.items()}
            )

        async def last_body(request: web.Request) -> web.Response:
            return web.json_response(regions[request.query["region"]].chat_bodies()[-1])

        app = web.Application()
        app.add_routes(
            [
                web.post("/throttle", throttle),
                web.post("/clear", clear),
                web.get("/calls", calls),
                web.get("/last-body", last_body),
            ]
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        urls = {name: double.endpoint for name, double in regions.items()}
        keys = {name: double.key for name, double in regions.items()}
        print(json.dumps({"control": f"http://127.0.0.1:{port}", "regions": urls, "keys": keys}))
        sys.stdout.flush()
        await asyncio.Event().wait()  # until terminated

    asyncio.run(run())


@dataclass(frozen=True)
class Doubles:
    """The doubles' child process as seen from here: endpoints, key and the control calls."""

    control: str
    regions: dict[str, str]
    key: str

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        prepared = urllib.request.Request(self.control + path, data=data, method=method)
        with urllib.request.urlopen(prepared, timeout=10) as response:
            return json.loads(response.read())

    def throttle(self, region: str, times: int, retry_after: float) -> None:
        """The next `times` chat calls to `region` answer 429 with this Retry-After."""
        self._call(
            "POST", "/throttle", {"region": region, "times": times, "retry_after": retry_after}
        )

    def clear(self) -> None:
        """Drops scripted faults and the request logs."""
        self._call("POST", "/clear", {})

    def calls(self) -> dict[str, int]:
        """Chat calls received per region since the last `clear`."""
        return dict(self._call("GET", "/calls"))

    def last_body(self, region: str) -> dict[str, Any]:
        """The last chat request body `region` received (the prompt the app sends)."""
        return dict(self._call("GET", f"/last-body?region={region}"))

    def setting(self) -> str:
        """LLM_REGIONS for the two doubles: the primary at priority 1 for economy and standard;
        the secondary at priority 2 for those, and the only region of premium (a direct route to
        the secondary, for section 2's steady-state baseline)."""
        from tests.doubles.azure_openai import CHAT_MODEL

        tiers = {PRIMARY: ["economy", "standard"], SECONDARY: ["economy", "standard", "premium"]}
        return json.dumps(
            [
                {"name": name, "endpoint": endpoint, "deployment": CHAT_MODEL, "model": CHAT_MODEL,
                 "priority": priority, "tiers": tiers[name]}
                for priority, (name, endpoint) in enumerate(self.regions.items(), start=1)
            ]
        )  # fmt: skip


@contextlib.contextmanager
def doubles_process() -> Iterator[Doubles]:
    """Runs `serve_doubles` in a child process (not on this process's GIL); yields its handle."""
    command = [sys.executable, str(Path(__file__).resolve()), "--doubles-server"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the doubles process exited ({process.wait()})")
        info = json.loads(line)
        yield Doubles(info["control"], info["regions"], info["keys"][PRIMARY])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The app under devhost ------------------------------------------------------------------------


@contextlib.contextmanager
def emulators() -> Iterator[Any]:
    """The emulators' endpoints; starts them if needed and stops only what this started."""
    from tests.conftest import build_endpoints, load_emulators_cli

    cli = load_emulators_cli()
    configured = cli.configured_emulators(os.environ)
    outcomes = cli.start_all(configured)
    azurite, cosmos = configured
    try:
        yield build_endpoints(*azurite.ports, *cosmos.ports)
    finally:
        cli.stop_started(outcomes)


DOCUMENTS = ("kb/report.pdf", "kb/handbook.docx", "kb/guide.md", "kb/notes.txt")


def ingest(deployment: Any) -> float:
    """Uploads the small documents of tests/fixtures and waits for each; returns seconds."""
    from tests.fixtures import documents

    makers = {
        "kb/report.pdf": documents.report_pdf,
        "kb/handbook.docx": documents.docx_document,
        "kb/guide.md": documents.markdown_text,
        "kb/notes.txt": documents.plain_text,
    }
    started = time.perf_counter()
    ids = [deployment.upload(name, makers[name](), tenant=TENANT) for name in DOCUMENTS]
    for doc_id in ids:
        status = deployment.wait_done(doc_id, tenant=TENANT)
        if status["state"] != "succeeded":
            raise RuntimeError(f"{doc_id} ended {status['state']}: {status.get('error')}")
    return time.perf_counter() - started


def remove_namespace(endpoints: Any, name: str) -> None:
    """Deletes the run's blob containers and Cosmos database."""
    from azure.cosmos import CosmosClient
    from azure.storage.blob import BlobServiceClient

    blobs = BlobServiceClient.from_connection_string(endpoints.azurite_connection_string)
    for container in (name, f"{name[:50]}-work"):
        with contextlib.suppress(Exception):
            blobs.delete_container(container)
    with contextlib.suppress(Exception):
        cosmos = CosmosClient(
            endpoints.cosmos_endpoint, endpoints.cosmos_key, connection_verify=False,
            enable_endpoint_discovery=False,
        )  # fmt: skip
        cosmos.delete_database(name)


def delete_breakers(deployment: Any) -> None:
    """Removes both regions' breaker items from Cosmos: the next reader finds them closed."""
    from shared.resilience.breaker import item_id

    container = deployment.database.get_container_client("breakers")
    for region in (PRIMARY, SECONDARY):
        identifier = item_id(f"llm:{region}")
        with contextlib.suppress(Exception):  # absent: nothing to delete
            container.delete_item(identifier, partition_key=identifier)


# Load and statistics --------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass
class Samples:
    """Latencies (ms) of one row, pooled over rounds, with each round's throughput."""

    wall: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)  # the app's header, when it sends one
    rps: list[float] = field(default_factory=list)
    regions: dict[str, int] = field(default_factory=dict)

    def cells(self, values: list[float]) -> str:
        """p50/p95/p99 of `values`, or dashes."""
        if not values:
            return f"{'-':>22}"
        p50, p95, p99 = (percentile(values, fraction) for fraction in PERCENTILES)
        return f"{p50:>6.2f} {p95:>7.2f} {p99:>7.2f}"

    def p(self, fraction: float, overhead: bool = False) -> float:
        """A percentile of the wall (or header) latency, ms."""
        return percentile(self.overhead if overhead else self.wall, fraction)


@dataclass(frozen=True)
class Target:
    """One HTTP call to repeat: method, URL, headers and JSON body."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None


async def one(session: aiohttp.ClientSession, target: Target, samples: Samples | None) -> str:
    """Sends `target` once; records wall ms, the overhead header and the region; returns the
    region header (empty when absent)."""
    started = time.perf_counter()
    async with session.request(
        target.method, target.url, headers=target.headers, json=target.body
    ) as response:
        body = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{target.url} answered {response.status}: {body[:300]!r}")
    if response.headers.get(CACHE_HEADER, "miss") not in ("miss", "off"):
        # The bench repeats one question: a cache answering it would hide the path measured here.
        raise RuntimeError(f"{target.url}: {CACHE_HEADER} {response.headers[CACHE_HEADER]!r}")
    region = response.headers.get(REGION_HEADER, "")
    if samples is not None:
        samples.wall.append(elapsed)
        if OVERHEAD_HEADER in response.headers:
            samples.overhead.append(float(response.headers[OVERHEAD_HEADER]))
        if region:
            samples.regions[region] = samples.regions.get(region, 0) + 1
    return region


async def drive(target: Target, connections: int, requests: int, samples: Samples) -> None:
    """`requests` calls over `connections` keep-alive connections, after a short warm-up."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = 0

        async def worker(record: bool) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one(session, target, samples if record else None)

        remaining = 2 * connections  # opens every connection
        await asyncio.gather(*(worker(False) for _ in range(connections)))
        remaining = requests
        started = time.perf_counter()
        await asyncio.gather(*(worker(True) for _ in range(connections)))
        samples.rps.append(requests / (time.perf_counter() - started))


# 1. Chat-path overhead ------------------------------------------------------------------------


def targets(base_url: str, doubles: Doubles, prompt: dict[str, Any]) -> dict[str, Target]:
    """The rows of section 1, baselines first."""
    from tests.apphost import API_KEYS
    from tests.doubles.azure_openai import CHAT_MODEL

    auth = {"Authorization": f"Bearer {API_KEYS[TENANT]}"}
    llm_url = (
        f"{doubles.regions[PRIMARY]}/openai/deployments/{CHAT_MODEL}/chat/completions"
        f"?api-version={LLM_API_VERSION}"
    )
    return {
        "GET /api/v1/models": Target("GET", f"{base_url}/api/v1/models", auth),
        "LLM double direct": Target("POST", llm_url, {"api-key": doubles.key}, prompt),
        "POST /api/chat": Target("POST", f"{base_url}/api/chat", auth, CHAT_BODY),
        "POST /api/v1/chat/completions": Target(
            "POST", f"{base_url}/api/v1/chat/completions", auth, COMPLETION_BODY
        ),
    }


def bench_overhead(rows: dict[str, Target], settings: Settings) -> dict[tuple[str, int], Samples]:
    """Every row at each connection count, rounds interleaved (order alternating)."""
    results: dict[tuple[str, int], Samples] = {}
    for connections, requests in settings.requests.items():
        for round_index in range(settings.rounds):
            order = list(rows) if round_index % 2 == 0 else list(reversed(rows))
            for name in order:
                samples = results.setdefault((name, connections), Samples())
                asyncio.run(drive(rows[name], connections, requests, samples))
    return results


def print_overhead(results: dict[tuple[str, int], Samples], settings: Settings) -> None:
    """The section 1 table, LiteLLM's published row, and the ratios."""
    counts = ", ".join(f"{r} at {c} conn" for c, r in settings.requests.items())
    print(
        f"1. Chat-path overhead, zero-latency LLM double: {counts} x {settings.rounds} round(s)"
        " per row, percentiles pooled over rounds, keep-alive, loopback"
    )
    print(
        f"  {'row':<30} {'conns':>5} {'req/s':>7}  {'wall ms p50    p95     p99':>24}"
        f"  {'overhead hdr p50  p95     p99':>28}"
    )
    for (name, connections), samples in results.items():
        print(
            f"  {name:<30} {connections:>5} {statistics.median(samples.rps):>7.0f}"
            f"  {samples.cells(samples.wall)}   {samples.cells(samples.overhead)}"
        )
    p50, p95, p99 = LITELLM_PUBLISHED
    print(
        f"  {'LiteLLM proxy (PUBLISHED)':<30} {'-':>5} {'~1170':>7}  {'-':>22}"
        f"   {p50:>6.2f} {p95:>7.2f} {p99:>7.2f}"
    )
    print(
        f"  (LiteLLM row: their published overhead at {LITELLM_SETUP}; not measured here, other"
        " hardware and no retrieval: a reference, not a comparison)"
    )
    print(
        "  gateway-added = chat wall - LLM double direct wall (same conns, same percentile);"
        " ratios against GET /api/v1/models:"
    )
    for connections in settings.requests:
        models = results[("GET /api/v1/models", connections)]
        llm = results[("LLM double direct", connections)]
        for name in ("POST /api/chat", "POST /api/v1/chat/completions"):
            chat = results[(name, connections)]
            added = " / ".join(f"{chat.p(f) - llm.p(f):.1f}" for f in PERCENTILES)
            print(
                f"    {name:<30} {connections:>2} conn: gateway-added p50/p95/p99 {added} ms;"
                f" wall p50 {chat.p(0.5) / models.p(0.5):.1f}x models,"
                f" header p50 {chat.p(0.5, True):.1f} ms"
                f" = {chat.p(0.5, True) / chat.p(0.5):.0%} of wall"
            )


def breakdown(deployment: Any, repeats: int) -> dict[str, float]:
    """Where the header's time goes, in this process: min and median ms of embedding the question
    (MiniLM on ONNX Runtime, the app's embedder) and of searching the tenant's chunks in a
    `TenantIndex` (the in-memory hybrid index), plus the chunk count."""
    from shared.embeddings.local import LocalEmbedder
    from shared.retrieval.filters import MATCH_ALL
    from shared.retrieval.search import SearchRequest, TenantIndex
    from shared.security.principal import Principal

    container = deployment.database.get_container_client("chunks")
    items = list(
        container.query_items(
            "SELECT * FROM c WHERE c.tenant = @t AND c.status = 'live'",
            parameters=[{"name": "@t", "value": TENANT}],
        )
    )
    index = TenantIndex()
    for item in items:
        index.upsert(item)
    embedder = LocalEmbedder()
    principal = Principal(user_id="bench", tenant=TENANT)

    async def measure() -> dict[str, float]:
        await embedder.embed([QUESTION])  # loads the model
        embeds, searches = [], []
        vector: list[float] = []
        for _ in range(repeats):
            started = time.perf_counter()
            [vector] = await embedder.embed([QUESTION])
            embeds.append(time.perf_counter() - started)
            started = time.perf_counter()
            index.search(SearchRequest(QUESTION, vector, principal, MATCH_ALL, 5, "hybrid"))
            searches.append(time.perf_counter() - started)
        return {
            "embed": statistics.median(embeds) * 1000,
            "embed_min": min(embeds) * 1000,
            "search": statistics.median(searches) * 1000,
            "chunks": float(len(index)),
        }

    return asyncio.run(measure())


# 2. Failover ----------------------------------------------------------------------------------


async def paced_failover(
    base_url: str, deployment: Any, doubles: Doubles, samples: int
) -> tuple[Samples, Samples]:
    """Direct and first-after-429 requests, interleaved, each with the breakers deleted and
    the host's breaker cache expired first (host B: 0.05 s cache, 0.1 s cap on Retry-After)."""
    target = targets(base_url, doubles, {})["POST /api/chat"]
    direct, failover = Samples(), Samples()
    async with aiohttp.ClientSession() as session:
        for index in range(-WARM_UP, 2 * samples):  # negative: warm-up, not recorded
            throttled = (index % 2 == 0) == (index // 2 % 2 == 0)  # ABBA order
            delete_breakers(deployment)
            await asyncio.sleep(FAILOVER_GAP_SECONDS)
            if throttled:
                doubles.throttle(PRIMARY, 1, 30)
            record = (failover if throttled else direct) if index >= 0 else None
            region = await one(session, target, record)
            expected = SECONDARY if throttled else PRIMARY
            if region != expected:
                raise RuntimeError(f"expected {expected}, served by {region!r}")
    return direct, failover


async def steady_state(
    base_url: str, doubles: Doubles, requests: int
) -> tuple[Samples, Samples, float, dict[str, int]]:
    """On host A (default breaker settings), the primary throttled for the rest of the run: the
    first request after that is timed alone, then steady state (tier standard: the primary is
    skipped, the secondary serves) interleaved with the direct baseline (tier premium, which only
    the secondary serves). Returns direct, steady, the first request's ms and the primary's
    calls during the interleaved part."""
    rows = targets(base_url, doubles, {})
    standard = rows["POST /api/chat"]
    premium = Target(
        standard.method, standard.url, standard.headers, {**CHAT_BODY, "tier": "premium"}
    )
    direct, steady, first = Samples(), Samples(), Samples()
    async with aiohttp.ClientSession() as session:
        for _ in range(5):  # the secondary's client and connection, not used by section 1
            await one(session, premium, None)
        doubles.throttle(PRIMARY, 10**6, 30)  # every call in the run: 429, Retry-After: 30
        await one(session, standard, first)
        before = doubles.calls()
        for index in range(2 * requests):
            skipped = (index % 2 == 0) == (index // 2 % 2 == 0)  # ABBA order
            await one(session, standard if skipped else premium, steady if skipped else direct)
        after = doubles.calls()
    during = {name: after[name] - before[name] for name in after}
    if set(steady.regions) | set(direct.regions) != {SECONDARY}:
        raise RuntimeError(f"served by {steady.regions} and {direct.regions}")
    return direct, steady, first.wall[0], during


def print_failover(
    paced: tuple[Samples, Samples],
    steady: tuple[Samples, Samples, float, dict[str, int]],
    settings: Settings,
) -> None:
    """The section 2 table: each failover case against its own direct run."""
    print(
        f"2. Failover: {PRIMARY} (priority 1) answers 429 + Retry-After: 30, {SECONDARY} serves;"
        " POST /api/chat, one client, zero-latency doubles"
    )
    print(f"  {'case':<44} {'n':>4}  {'wall ms p50    p95     p99':>24}  {'overhead hdr p50':>16}")
    direct_b, failover = paced
    direct_a, steady_rows, first_ms, during = steady
    rows = (
        ("B direct (paced, cold breaker cache)", direct_b),
        ("B first after 429: true failover", failover),
        (f"A direct: {SECONDARY} alone (tier premium)", direct_a),
        ("A steady state: breaker open, primary skipped", steady_rows),
    )
    for label, samples in rows:
        print(
            f"  {label:<44} {len(samples.wall):>4}  {samples.cells(samples.wall)}"
            f"  {percentile(samples.overhead, 0.5):>16.2f}"
        )
    for label, base, case in (
        ("true failover", direct_b, failover),
        ("steady state ", direct_a, steady_rows),
    ):
        print(
            f"  {label}: p50 {case.p(0.5) / base.p(0.5):.2f}x ({case.p(0.5) - base.p(0.5):+.1f}"
            f" ms), p99 {case.p(0.99) / base.p(0.99):.2f}x ({case.p(0.99) - base.p(0.99):+.1f} ms)"
        )
    print(
        f"  host A's first request after the 429 (one sample, breaker cache warm): {first_ms:.1f}"
        f" ms; {PRIMARY} calls during steady state: {during[PRIMARY]}"
        f" (of {settings.steady_requests})"
    )
    print(
        "  (B: a second host on the same database, BREAKER_CACHE_SECONDS=0.05,"
        " LLM_MAX_RETRY_AFTER_SECONDS=0.1, breaker items deleted and"
        f" {FAILOVER_GAP_SECONDS * 1000:.0f} ms waited before each request: every request reads"
        " the breaker from Cosmos; a failover also writes it open and reads the secondary's)"
    )


# Entry point ---------------------------------------------------------------------------------


def _load() -> str:
    """The 1-minute load average against the core count: is someone else using the machine?"""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def run(settings: Settings) -> None:
    """Starts the doubles and host A, ingests, runs section 1 and host A's part of 2, then
    host B for the paced failover; prints both tables."""
    from tests.apphost import app_environment, start_app
    from tests.test_ingestion import Deployment

    with (
        emulators() as endpoints,
        doubles_process() as doubles,
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder,
    ):
        name = f"bench-{uuid.uuid4().hex[:12]}"
        # The path around the model without the governance chain (bench/governance.py adds it).
        environment = app_environment(
            endpoints, name, LLM_REGIONS=doubles.setting(), LLM_API_KEY=doubles.key,
            CACHE_ENABLED="false", RATE_LIMITS_ENABLED="false",
        )  # fmt: skip
        try:
            started = time.perf_counter()
            host_a = start_app(Path(folder) / "a", environment)
            start_seconds = time.perf_counter() - started
            try:
                deployment = Deployment(host_a, endpoints, name)
                ingest_seconds = ingest(deployment)
                print(
                    f"host A started in {start_seconds:.1f} s; {len(DOCUMENTS)} documents"
                    f" ingested in {ingest_seconds:.1f} s"
                )
                base_url = host_a.base_url
                # One chat call, so the double holds the prompt the app sends (the LLM baseline).
                rows = targets(base_url, doubles, {})
                asyncio.run(drive(rows["POST /api/chat"], 1, 20, Samples()))
                prompt = doubles.last_body(PRIMARY)
                rows = targets(base_url, doubles, prompt)
                results = bench_overhead(rows, settings)
                doubles.clear()
                steady = asyncio.run(steady_state(base_url, doubles, settings.steady_requests))
                doubles.clear()
            finally:
                host_a.stop()
            print_overhead(results, settings)
            parts = breakdown(deployment, 50)
            print(
                "  in this process (host stopped): embed the question (MiniLM, ONNX) median"
                f" {parts['embed']:.2f} ms, min {parts['embed_min']:.2f} ms; hybrid search of"
                f" {parts['chunks']:.0f} chunks median {parts['search']:.2f} ms;"
                " the tenant index also refreshes from Cosmos (2 queries) once per 5 s, inside"
                " one request"
            )
            print()
            environment_b = {
                **environment,
                "BREAKER_CACHE_SECONDS": "0.05",
                "LLM_MAX_RETRY_AFTER_SECONDS": "0.1",
            }
            host_b = start_app(Path(folder) / "b", environment_b)
            try:
                paced = asyncio.run(
                    paced_failover(host_b.base_url, deployment, doubles, settings.failover_samples)
                )
            finally:
                host_b.stop()
            print_failover(paced, steady, settings)
        finally:
            remove_namespace(endpoints, name)


def main(argv: list[str] | None = None) -> int:
    """Runs both sections and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, one round")
    parser.add_argument("--doubles-server", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.doubles_server:
        serve_doubles()
        return 0
    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    settings = QUICK if arguments.quick else FULL
    started = time.perf_counter()
    print(
        f"gateway bench ({'quick' if arguments.quick else 'full'}), Python {sys.version.split()[0]}"
    )
    print(f"load average before: {_load()}")
    run(settings)
    print(f"(total {time.perf_counter() - started:.1f} s; load average after: {_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
