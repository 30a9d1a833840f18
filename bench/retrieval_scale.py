"""Retrieval latency as a tenant's corpus grows: the in-memory index next to a plain numpy scan.

```
.venv/bin/python bench/retrieval_scale.py            # 1k, 10k, 100k chunks; ~3-4 min
.venv/bin/python bench/retrieval_scale.py --quick    # 1k and 10k; ~30 s
```

The corpus is generated (tests/shared/retrieval/synthetic.py): 384-d vectors like MiniLM's,
Zipf-distributed words, 100 chunks per document, four ACLs (70% tenant-wide). Questions are
1-6 Zipf-drawn words with a vector near a chunk or random; the reader belongs to one group,
so about 82% of the chunks are readable (the ACL trim is part of every question).

1. **Latency by size.** Per size: the load (chunks/s into `TenantIndex`, and RSS per chunk
   after the generator's copies are freed: an upper bound, Python keeps freed arenas), then
   `TenantIndex.search` (hybrid, top 5: ACL mask, the vector scan, BM25 through postings,
   fusion) p50/p99 over the questions, next to a plain numpy scan of the same matrix
   (`matrix @ q` and an argpartition of the top 50: the floor for exact vector search) and,
   up to 10k, the scan implementation the index replaced (tests/shared/retrieval/
   scan_reference.py). Question embedding (MiniLM, ~5 ms) is not included.
2. **After an ingestion.** At the largest size, a 1,000-page document's 2,870 chunks arrive
   as a delta through the real `PartitionMirror` refresh (from an in-process store double that
   serves the rows: no Cosmos latency or JSON parsing, which the background refresh absorbs
   anyway), while questions arrive every 20 ms. Prints the first question's latency, p50 and
   max over the catch-up, and when the document became searchable; next to the replaced scan,
   whose first question after the same ingestion rebuilt its matrix (at 10k).

Times are on whatever else this machine runs: the load average is printed; compare ratios
(index / numpy scan) rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from shared.retrieval.filters import MATCH_ALL  # noqa: E402
from shared.retrieval.search import (  # noqa: E402
    CANDIDATES,
    LIVE_CHUNKS,
    REFRESH_SECONDS,
    SearchRequest,
    TenantIndex,
)
from shared.security.principal import Principal  # noqa: E402
from shared.storage.mirror import PartitionMirror  # noqa: E402
from tests.shared.retrieval import synthetic  # noqa: E402
from tests.shared.retrieval.scan_reference import ScanIndex  # noqa: E402

READER = Principal(user_id="alice", tenant="acme", groups=("sales",))
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
QUESTIONS = 200
OLD_SCAN_MAX = 10_000  # the replaced scan costs ~1 s per question beyond this
OLD_SCAN_QUESTIONS = 30
INGESTED = 2_870  # chunks of the generated 1,000-page report
QUESTION_EVERY = 0.02  # seconds between questions while a delta is taken in


@dataclass(frozen=True)
class Latency:
    """Per-question milliseconds, summarised."""

    samples: Sequence[float]

    def at(self, quantile: float) -> float:
        """The quantile (0-1) in ms."""
        return float(np.quantile(np.asarray(self.samples), quantile))

    @property
    def cell(self) -> str:
        """ "p50 / p99"."""
        return f"{self.at(0.5):6.2f} / {self.at(0.99):6.2f}"


def timed(run: Callable[[Any], Any], inputs: Sequence[Any]) -> Latency:
    """Milliseconds of `run(x)` for each input."""
    samples = []
    for value in inputs:
        started = time.perf_counter()
        run(value)
        samples.append((time.perf_counter() - started) * 1000)
    return Latency(samples)


def rss() -> int:
    """This process's resident memory in bytes."""
    return psutil.Process().memory_info().rss


def requests(questions: Sequence[synthetic.Question]) -> list[SearchRequest]:
    """Hybrid top-5 requests by READER."""
    return [SearchRequest(q.text, q.vector, READER, MATCH_ALL, 5) for q in questions]


def numpy_scan(matrix: np.ndarray) -> Callable[[SearchRequest], np.ndarray]:
    """The floor: one matrix-vector product and the top CANDIDATES by argpartition."""

    def scan(request: SearchRequest) -> np.ndarray:
        scores = matrix @ np.asarray(request.vector, dtype=np.float32)
        return np.argpartition(-scores, CANDIDATES)[:CANDIDATES]

    return scan


@dataclass
class SizeResult:
    """One row of the table."""

    chunks: int
    load_per_second: float
    bytes_per_chunk: float
    index: Latency
    scan: Latency
    old: Latency | None


def measure_size(size: int, question_count: int) -> tuple[SizeResult, TenantIndex]:
    """Loads `size` generated chunks and times questions on the index, numpy and the old scan."""
    gc.collect()
    before = rss()
    items = synthetic.chunks(size, seed=size, as_lists=False)
    index = TenantIndex()
    started = time.perf_counter()
    for item in items:
        index.upsert(item)
    load = time.perf_counter() - started
    questions = synthetic.questions(question_count, items, seed=size + 1)
    old = None
    if size <= OLD_SCAN_MAX:
        scan_index = ScanIndex()
        for item in items:
            scan_index.upsert(item)
        old = timed(scan_index.search, requests(questions[:OLD_SCAN_QUESTIONS]))
        del scan_index
    del items
    gc.collect()
    held = rss() - before
    batch = requests(questions)
    index.search(batch[0])  # warm: first-use allocations, BLAS threads
    result = SizeResult(
        size,
        size / load,
        held / size,
        timed(index.search, batch),
        timed(numpy_scan(index.matrix), batch),
        old,
    )
    return result, index


def print_table(results: Sequence[SizeResult]) -> None:
    """The latency table (ms)."""
    print("\n1. Latency by corpus size (hybrid, top 5, ms p50 / p99; embedding not included)")
    header = (
        f"{'chunks':>8} | {'index':>15} | {'numpy scan':>15} | {'index/scan':>10} | "
        f"{'replaced scan':>15} | {'load chunks/s':>13} | {'RSS/chunk':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        old = row.old.cell if row.old else "not run"
        ratio = row.index.at(0.5) / row.scan.at(0.5)
        print(
            f"{row.chunks:>8,} | {row.index.cell:>15} | {row.scan.cell:>15} | {ratio:>10.2f} | "
            f"{old:>15} | {row.load_per_second:>13,.0f} | {row.bytes_per_chunk / 1024:>6.1f} KB"
        )


class DeltaStore:
    """A store double for PartitionMirror: the index's rows are in Cosmos already; `pending`
    rows arrive with the next delta (ts 2). Counts follow, so no id listing happens."""

    def __init__(self, live: int) -> None:
        self.live = live
        self.pending: list[dict[str, Any]] = []

    async def query_partition(
        self, container: str, partition: str, where: str, parameters: Any, **options: Any
    ) -> list[Any]:
        await asyncio.sleep(0)  # a round trip's yield (its latency is not modelled)
        if options["select"] == "VALUE COUNT(1)":
            return [self.live + len(self.pending)]
        since = parameters.get("@since", 0)
        return [row for row in self.pending if row["_ts"] >= since]


@dataclass(frozen=True)
class AfterIngestion:
    """Question latencies while a delta is taken in."""

    first: float
    during: Latency
    searchable_after: float
    questions: int


async def after_ingestion(index: TenantIndex, wait_seconds: float) -> AfterIngestion:
    """Questions every QUESTION_EVERY while INGESTED new chunks arrive through the mirror."""
    store = DeltaStore(len(index))
    now = [0.0]
    mirror: PartitionMirror[TenantIndex] = PartitionMirror(
        store, "chunks", ("id",), LIVE_CHUNKS, lambda: index, REFRESH_SECONDS,  # type: ignore[arg-type]
        monotonic=lambda: now[0],
    )  # fmt: skip
    await mirror.view("acme")  # loaded: the index already holds the tenant
    now[0] += REFRESH_SECONDS  # the next question finds the tenant due for a refresh
    document = synthetic.chunks(INGESTED, seed=99, prefix="new", as_lists=False)
    store.pending = [{**item, "status": "live", "_ts": 2} for item in document]
    wanted = {item["id"] for item in document}
    questions = requests(synthetic.questions(400, document, seed=98))
    latencies: list[float] = []
    started = time.perf_counter()
    searchable_after = float("nan")
    for request in questions:
        asked = time.perf_counter()
        view = await mirror.view("acme", wait_seconds)
        view.search(request)
        latencies.append((time.perf_counter() - asked) * 1000)
        if wanted <= view.ids:
            searchable_after = time.perf_counter() - started
            break
        await asyncio.sleep(QUESTION_EVERY)
    await mirror.settle()
    return AfterIngestion(latencies[0], Latency(latencies), searchable_after, len(latencies))


def old_scan_after_ingestion(size: int) -> float:
    """The replaced scan: ms of the first question after INGESTED chunks were added."""
    items = synthetic.chunks(size, seed=size, as_lists=False)
    scan = ScanIndex()
    for item in items:
        scan.upsert(item)
    [request] = requests(synthetic.questions(1, items, seed=5))
    scan.search(request)
    for item in synthetic.chunks(INGESTED, seed=99, prefix="new", as_lists=False):
        scan.upsert(item)
    started = time.perf_counter()
    scan.search(request)
    return (time.perf_counter() - started) * 1000


def load_average() -> str:
    """The 1-minute load average and the core count."""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    """Runs both sections and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k chunks only")
    parser.add_argument("--questions", type=int, default=QUESTIONS)
    parser.add_argument("--wait-ms", type=float, default=50.0, help="RETRIEVAL_REFRESH_WAIT_MS")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    started = time.perf_counter()
    print(f"load average at start: {load_average()}")
    results, index = [], None
    for size in sizes:
        index = None
        gc.collect()
        result, index = measure_size(size, args.questions)
        results.append(result)
    print_table(results)
    assert index is not None
    print(
        f"\n2. After an ingestion: {INGESTED:,} new chunks reach a {len(index):,}-chunk index "
        f"through the mirror; a question every {QUESTION_EVERY * 1000:.0f} ms, "
        f"RETRIEVAL_REFRESH_WAIT_MS={args.wait_ms:g}"
    )
    after = asyncio.run(after_ingestion(index, args.wait_ms / 1000))
    print(
        f"   first question {after.first:.1f} ms; p50 / p99 / max over the {after.questions} "
        f"questions until searchable {after.during.cell} / {max(after.during.samples):.1f} ms; "
        f"searchable after {after.searchable_after:.2f} s"
    )
    old = old_scan_after_ingestion(min(OLD_SCAN_MAX, sizes[-1]))
    print(
        f"   the replaced scan at {min(OLD_SCAN_MAX, sizes[-1]):,} chunks: first question after "
        f"the same ingestion {old:.1f} ms (matrix rebuilt, BM25 over every chunk)"
    )
    print(f"\ntook {time.perf_counter() - started:.0f} s; load average {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
