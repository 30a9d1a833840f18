"""Benchmarks docgate's chat path against a peer gateway: the LiteLLM proxy, side by side.

Both gateways sit in front of the same zero-latency Azure OpenAI double (bench/gateway.py's, a
child process) and are driven by one aiohttp client, rows interleaved round by round (the order
reversed every other round), at `--connections` keep-alive connections:

- "LLM double direct": the baseline every "added" latency is measured against;
- "LiteLLM proxy": LiteLLM (pinned, one worker, no database, a master key, logging off) installed
  in its own virtualenv under bench/data/peer/ (created on first run with pip);
- "docgate, governance off": `POST /api/v1/chat/completions`, cache and rate limits off, no
  prices and no budgets (auth, validation, retrieval, the ledger write still run);
- "docgate, governed, cache hit": limits (never refusing), prices, budgets and cache on; one
  cacheable question repeated (warmed first);
- "docgate, governed, cache miss": the same host; every question carries a new number, so
  each is a lookup miss, retrieval, the model and a cache store.

Every docgate response's `x-docgate-cache` header is checked against the row.

Per row: added latency p50/p99 (the row's wall percentile minus the direct call's), the gateway
process tree's own CPU per request (psutil user+system deltas), and for docgate the Cosmos
requests per chat request, counted by a TLS-terminating proxy in front of the emulator (one
listener per docgate host, so each host's traffic is counted apart; the hosts talk to it as
their COSMOS_ENDPOINT). Request units are estimated from the operations, as the emulator does
not report them (Azure's published costs for small items): point read 1 RU per KB returned,
query 2.5 RU + 1 RU per KB returned beyond the first, write (create, replace, upsert, patch,
delete) 6 RU + 2 RU per KB sent beyond the first. Metadata calls (account, database,
container, partition key ranges) are counted apart and not priced.

The counting proxy adds one loopback hop to each Cosmos call of docgate (LiteLLM makes none),
so docgate's latency here is, if anything, pessimistic.

Run: `.venv/bin/python bench/peer.py [--quick] [--connections N]` (starts the emulators when
they are not running and stops only what it started). Compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
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
from aiohttp import web  # noqa: E402

from bench.gateway import (  # noqa: E402
    CACHE_HEADER,
    LLM_API_VERSION,
    PRIMARY,
    TENANT,
    Doubles,
    _load,
    doubles_process,
    emulators,
    ingest,
    percentile,
    remove_namespace,
)
from bench.governance import OFF, ON, QUESTION, cpu_seconds  # noqa: E402

LITELLM_VERSION = "1.110.2"
# LiteLLM's `proxy` extra pins a `litellm-proxy` wheel the index does not carry; the proxy's
# code ships inside the litellm wheel, so its runtime dependencies are installed by name.
# opentelemetry-sdk: without it LiteLLM retries a failing import on every request.
LITELLM_PACKAGES = (
    f"litellm=={LITELLM_VERSION}",
    "uvicorn", "fastapi", "backoff", "orjson", "apscheduler", "pyjwt", "python-multipart",
    "cryptography", "fastapi-sso", "gunicorn", "opentelemetry-api", "opentelemetry-sdk",
    "uvloop", "pynacl", "websockets", "rich", "tomlkit", "semver", "redis", "expression",
    "mcp", "soundfile",
)  # fmt: skip
DATA = HERE / "data" / "peer"
VENV = DATA / "litellm-venv"
EMULATOR_CERT = ROOT / "node_modules" / "@vercel" / "cosmosdb-server"
MODEL = "gpt-4o-mini"
# LiteLLM checks a master key on every request (docgate checks an API key): the same work.
LITELLM_KEY = "sk-bench-peer-" + "0123456789abcdef"
ROWS = ("direct", "litellm", "off", "hit", "miss")
LABELS = {
    "direct": "LLM double direct",
    "litellm": f"LiteLLM proxy {LITELLM_VERSION}",
    "off": "docgate, governance off",
    "hit": "docgate, governed, cache hit",
    "miss": "docgate, governed, cache miss",
}
EXPECTED_CACHE = {"off": "off", "hit": "hit", "miss": "miss"}


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    requests: int  # recorded requests per row and round
    rounds: int
    connections: int


FULL = Settings(requests=120, rounds=3, connections=1)
QUICK = Settings(requests=30, rounds=1, connections=1)


# The Cosmos counting proxy (a child process) --------------------------------------------------


@dataclass
class Counts:
    """Cosmos requests seen by one listener, by kind, with their estimated request units."""

    reads: int = 0
    queries: int = 0
    writes: int = 0
    metadata: int = 0
    ru: float = 0.0

    @property
    def total(self) -> int:
        return self.reads + self.queries + self.writes + self.metadata

    def minus(self, other: Counts) -> Counts:
        return Counts(
            self.reads - other.reads, self.queries - other.queries, self.writes - other.writes,
            self.metadata - other.metadata, self.ru - other.ru,
        )  # fmt: skip


def classify(method: str, path: str, headers: Any, sent: int, received: int) -> tuple[str, float]:
    """The kind of one Cosmos REST call and its estimated request units (see the docstring)."""
    parts = [part for part in path.split("/") if part]
    on_documents = len(parts) >= 5 and parts[4] == "docs"
    if not on_documents:
        return "metadata", 0.0
    kb_in, kb_out = max(1, math.ceil(sent / 1024)), max(1, math.ceil(received / 1024))
    if method == "POST" and headers.get("x-ms-documentdb-isquery", "").lower() == "true":
        return "queries", 2.5 + (kb_out - 1)
    if method == "GET" and len(parts) == 6:
        return "reads", float(kb_out)
    if method == "GET":  # a read feed (change feed, listing): priced like a query
        return "queries", 2.5 + (kb_out - 1)
    return "writes", 6.0 + 2.0 * (kb_in - 1)


def serve_counter(target: str, listeners: int) -> None:
    """`listeners` HTTPS listeners forwarding to the Cosmos emulator `target`, each counting what
    passes, and a control route; prints {"endpoints": [...], "control": url} as JSON."""
    hop = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}

    async def run() -> None:
        counts = [Counts() for _ in range(listeners)]
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False, limit=0), auto_decompress=False
        )

        def forwarder(index: int) -> Callable[[web.Request], Any]:
            async def forward(request: web.Request) -> web.StreamResponse:
                body = await request.read()
                headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
                async with session.request(
                    request.method, target + request.path_qs, headers=headers, data=body
                ) as answer:
                    payload = await answer.read()
                    kind, units = classify(
                        request.method, request.path, request.headers, len(body), len(payload)
                    )
                    count = counts[index]
                    setattr(count, kind, getattr(count, kind) + 1)
                    count.ru += units
                    back = {k: v for k, v in answer.headers.items() if k.lower() not in hop}
                    return web.Response(status=answer.status, headers=back, body=payload)

            return forward

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(EMULATOR_CERT / "cert.pem", EMULATOR_CERT / "key.pem")
        endpoints = []
        runners = []
        for index in range(listeners):
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", forwarder(index))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
            runners.append(runner)
            endpoints.append(f"https://127.0.0.1:{runner.addresses[0][1]}/")

        async def report(request: web.Request) -> web.Response:
            return web.json_response([count.__dict__ for count in counts])

        control = web.Application()
        control.router.add_get("/counts", report)
        control_runner = web.AppRunner(control, access_log=None)
        await control_runner.setup()
        await web.TCPSite(control_runner, "127.0.0.1", 0).start()
        port = control_runner.addresses[0][1]
        print(json.dumps({"endpoints": endpoints, "control": f"http://127.0.0.1:{port}"}))
        sys.stdout.flush()
        await asyncio.Event().wait()

    asyncio.run(run())


@dataclass(frozen=True)
class Counter:
    """The counting proxy as seen from here."""

    endpoints: list[str]
    control: str

    def counts(self) -> list[Counts]:
        with urllib.request.urlopen(self.control + "/counts", timeout=10) as response:
            return [Counts(**entry) for entry in json.loads(response.read())]


@contextlib.contextmanager
def child(command: list[str], **kwargs: Any) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child process and the first line it prints; terminated on exit."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **kwargs)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{command[:3]} exited ({process.wait()})")
        yield process, line
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def counter_process(target: str, listeners: int) -> Iterator[tuple[Counter, Any]]:
    """The counting proxy in a child process (not on the client's GIL)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--cosmos-counter", target,
               str(listeners)]  # fmt: skip
    with child(command) as (process, line):
        info = json.loads(line)
        yield Counter(info["endpoints"], info["control"]), psutil.Process(process.pid)


# LiteLLM ---------------------------------------------------------------------------------------


def ensure_litellm() -> Path:
    """The pinned LiteLLM in its own virtualenv under bench/data/peer (installed when missing)."""
    executable = VENV / "bin" / "litellm"
    marker = VENV / f"installed-{LITELLM_VERSION}"
    if executable.exists() and marker.exists():
        return executable
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"installing LiteLLM {LITELLM_VERSION} into {VENV} (first run only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", *LITELLM_PACKAGES], check=True)
    marker.write_text(" ".join(LITELLM_PACKAGES) + "\n")
    return executable


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def litellm_process(doubles: Doubles, folder: Path) -> Iterator[tuple[str, Any]]:
    """LiteLLM's proxy, one worker, no database, routing MODEL to the primary double."""
    from tests.doubles.azure_openai import CHAT_MODEL

    executable = ensure_litellm()
    config = folder / "litellm.yaml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"azure/{CHAT_MODEL}",
                            "api_base": doubles.regions[PRIMARY],
                            "api_key": doubles.key,
                            "api_version": LLM_API_VERSION,
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False, "turn_off_message_logging": True},
            }
        )
    )
    port = free_port()
    environment = {
        **os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
        "LITELLM_MODE": "PRODUCTION", "DISABLE_ADMIN_UI": "True", "LITELLM_MASTER_KEY": LITELLM_KEY,
    }  # fmt: skip
    for name in ("DATABASE_URL", "REDIS_HOST"):
        environment.pop(name, None)
    command = [str(executable), "--config", str(config), "--port", str(port), "--host",
               "127.0.0.1", "--num_workers", "1"]  # fmt: skip
    log = (folder / "litellm.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"LiteLLM exited: see {folder / 'litellm.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base}/health/liveliness", timeout=2),
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("LiteLLM did not start within 180 s")
            time.sleep(0.5)
        yield base, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# Rows ------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One row's samples, pooled over rounds."""

    wall: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # per request, one value per round
    cosmos: list[Counts] = field(default_factory=list)  # per round, the totals
    requests: int = 0


@dataclass(frozen=True)
class Target:
    """What one row calls, and whose CPU and Cosmos traffic it is charged with."""

    url: str
    headers: dict[str, str]
    body: Callable[[], dict[str, Any]]
    process: Any | None  # psutil process whose tree is the gateway (None: the direct row)
    listener: int | None  # the counting proxy's listener of this host
    expected_cache: str | None


_ASKED = [0]


def distinct(content: str) -> dict[str, Any]:
    """A question no request asked before (the cache's token guard compares numbers)."""
    _ASKED[0] += 1
    question = f"{content} Reference {_ASKED[0]}."
    return {"model": "docgate", "messages": [{"role": "user", "content": question}]}


def repeated(model: str) -> Callable[[], dict[str, Any]]:
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
    return lambda: body


async def send(session: aiohttp.ClientSession, target: Target) -> float:
    """One call; its wall ms. Fails loudly on an error or the wrong cache path."""
    started = time.perf_counter()
    async with session.post(target.url, headers=target.headers, json=target.body()) as response:
        raw = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{target.url} answered {response.status}: {raw[:300]!r}")
    if target.expected_cache is not None:
        state = response.headers.get(CACHE_HEADER, "<absent>")
        if state.split(";")[0].strip() != target.expected_cache:
            raise RuntimeError(f"{CACHE_HEADER} {state!r}: expected {target.expected_cache!r}")
    return elapsed


async def drive(target: Target, settings: Settings, row: Row, counter: Counter) -> None:
    """Warm-up, then `settings.requests` recorded calls with CPU and Cosmos deltas."""
    connector = aiohttp.TCPConnector(limit=settings.connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = 0
        wall: list[float] = []

        async def worker(record: bool) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                elapsed = await send(session, target)
                if record:
                    wall.append(elapsed)

        remaining = 2 * settings.connections + 2
        await asyncio.gather(*(worker(False) for _ in range(settings.connections)))
        before_cpu = cpu_seconds(target.process) if target.process else 0.0
        before = counter.counts() if target.listener is not None else []
        remaining = settings.requests
        await asyncio.gather(*(worker(True) for _ in range(settings.connections)))
        if target.process is not None:
            spent = cpu_seconds(target.process) - before_cpu
            row.cpu_ms.append(spent * 1000 / settings.requests)
        if target.listener is not None:
            after = counter.counts()
            row.cosmos.append(after[target.listener].minus(before[target.listener]))
        row.wall.extend(wall)
        row.requests += settings.requests


# The run ---------------------------------------------------------------------------------------


def start_host(endpoints: Any, doubles: Doubles, folder: Path, label: str, cosmos: str,
               overrides: dict[str, str]) -> tuple[Any, Any, str]:  # fmt: skip
    """A docgate host on its own database, talking to Cosmos through `cosmos`; ingested."""
    from tests.apphost import app_environment, start_app
    from tests.test_ingestion import Deployment

    name = f"peer-{label}-{uuid.uuid4().hex[:10]}"
    environment = app_environment(
        endpoints, name, LLM_REGIONS=doubles.setting(), LLM_API_KEY=doubles.key,
        COSMOS_ENDPOINT=cosmos, **overrides,
    )  # fmt: skip
    host = start_app(folder / label, environment)
    try:
        deployment = Deployment(host, endpoints, name)
        seconds = ingest(deployment)
    except BaseException:
        host.stop()
        remove_namespace(endpoints, name)
        for log in sorted((folder / label).rglob("*.log")):  # why the host failed
            print(f"--- {log}\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    print(f"docgate host {label!r} up, documents ingested in {seconds:.1f} s", flush=True)
    return host, deployment, name


def run(settings: Settings) -> dict[str, Row]:
    from tests.apphost import API_KEYS
    from tests.doubles.azure_openai import CHAT_MODEL

    rows = {name: Row() for name in ROWS}
    hosts: list[tuple[Any, str]] = []
    with contextlib.ExitStack() as stack:
        endpoints = stack.enter_context(emulators())
        doubles = stack.enter_context(doubles_process())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-peer-")))
        counter, _ = stack.enter_context(counter_process(endpoints.cosmos_endpoint, 2))
        litellm, litellm_tree = stack.enter_context(litellm_process(doubles, folder))
        print(f"LiteLLM {LITELLM_VERSION} up at {litellm}", flush=True)
        try:
            off, _, off_name = start_host(endpoints, doubles, folder, "off",
                                          counter.endpoints[0], OFF)  # fmt: skip
            hosts.append((off, off_name))
            on, _, on_name = start_host(endpoints, doubles, folder, "on",
                                        counter.endpoints[1], ON)  # fmt: skip
            hosts.append((on, on_name))
            auth = {"Authorization": f"Bearer {API_KEYS[TENANT]}"}
            direct_url = (f"{doubles.regions[PRIMARY]}/openai/deployments/{CHAT_MODEL}"
                          f"/chat/completions?api-version={LLM_API_VERSION}")  # fmt: skip
            completions = "/api/v1/chat/completions"
            targets = {
                "direct": Target(direct_url, {"api-key": doubles.key}, repeated(MODEL), None,
                                 None, None),
                "litellm": Target(f"{litellm}/v1/chat/completions",
                                  {"Authorization": f"Bearer {LITELLM_KEY}"}, repeated(MODEL),
                                  litellm_tree, None, None),
                "off": Target(off.base_url + completions, auth, repeated("docgate"),
                              psutil.Process(off.process.pid), 0, "off"),
                "hit": Target(on.base_url + completions, auth, repeated("docgate"),
                              psutil.Process(on.process.pid), 1, "hit"),
                "miss": Target(on.base_url + completions, auth, lambda: distinct(QUESTION),
                               psutil.Process(on.process.pid), 1, "miss"),
            }  # fmt: skip
            # The hit row's question must be stored before any round: ask it once (a miss).
            asyncio.run(warm_hit(targets["hit"]))
            for index in range(settings.rounds):
                order = list(ROWS) if index % 2 == 0 else list(reversed(ROWS))
                for name in order:
                    asyncio.run(drive(targets[name], settings, rows[name], counter))
                print(f"round {index + 1}/{settings.rounds} done", flush=True)
        finally:
            for host, name in hosts:
                host.stop()
                remove_namespace(endpoints, name)
    return rows


async def warm_hit(target: Target) -> None:
    """Stores the repeated question's answer (the first call is a miss, later ones hit)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(target.url, headers=target.headers, json=target.body()) as first,
    ):
        raw = await first.read()
        if first.status != 200:
            raise RuntimeError(f"warm-up answered {first.status}: {raw[:300]!r}")


def report(rows: dict[str, Row], settings: Settings) -> None:
    direct = rows["direct"]
    print(
        f"\nChat completions, zero-latency LLM double, {settings.connections} connection(s),"
        f" {settings.rounds} interleaved round(s) x {settings.requests} requests per row"
    )
    print(
        f"  {'path':<34} {'added p50 / p99 ms':>20} {'ratio p50':>9} {'own CPU ms/req':>14}"
        f" {'Cosmos req/chat':>15} {'(reads/queries/writes/meta)':>27} {'est. RU/chat':>12}"
    )
    base_added = None
    for name in ROWS:
        row = rows[name]
        p50, p99 = percentile(row.wall, 0.5), percentile(row.wall, 0.99)
        if name == "direct":
            print(f"  {LABELS[name]:<34} {'wall ' + f'{p50:.1f} / {p99:.1f}':>20}")
            continue
        added50 = p50 - percentile(direct.wall, 0.5)
        added99 = p99 - percentile(direct.wall, 0.99)
        if name == "litellm":
            base_added = added50
        ratio = f"{added50 / base_added:.1f}x" if base_added else "-"
        cpu = statistics.median(row.cpu_ms)
        if row.cosmos:
            total = Counts()
            for each in row.cosmos:
                total = Counts(
                    total.reads + each.reads, total.queries + each.queries,
                    total.writes + each.writes, total.metadata + each.metadata,
                    total.ru + each.ru,
                )  # fmt: skip
            n = row.requests
            cosmos = f"{total.total / n:>15.2f}"
            split = (f"{total.reads / n:.2f}/{total.queries / n:.2f}/{total.writes / n:.2f}"
                     f"/{total.metadata / n:.2f}")  # fmt: skip
            ru = f"{total.ru / n:>12.1f}"
        else:
            cosmos, split, ru = f"{'-':>15}", "", f"{'-':>12}"
        print(
            f"  {LABELS[name]:<34} {f'{added50:.1f} / {added99:.1f}':>20} {ratio:>9}"
            f" {cpu:>14.1f} {cosmos} {split:>27} {ru}"
        )
    print(
        "  added = the row's wall percentile minus the direct call's; ratio against LiteLLM's"
        " added p50; own CPU = the gateway's process tree (psutil); RU estimated per operation"
        " (point read 1/KB, query 2.5 + 1/KB beyond the first, write 6 + 2/KB beyond the first)"
    )


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--cosmos-counter"]:
        serve_counter(arguments[1], int(arguments[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 30 requests per row")
    parser.add_argument("--rounds", type=int, help="interleaved rounds")
    parser.add_argument("--requests", type=int, help="recorded requests per row and round")
    parser.add_argument("--connections", type=int, help="keep-alive connections (default 1)")
    parsed = parser.parse_args(arguments)
    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    base = QUICK if parsed.quick else FULL
    settings = Settings(
        requests=parsed.requests or base.requests,
        rounds=parsed.rounds or base.rounds,
        connections=parsed.connections or base.connections,
    )
    started = time.perf_counter()
    print(f"peer bench, Python {sys.version.split()[0]}; load average before: {_load()}")
    rows = run(settings)
    report(rows, settings)
    print(f"(total {time.perf_counter() - started:.1f} s; load average after: {_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
