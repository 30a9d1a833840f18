"""Semantic cache L1 lookup latency against the memory-bandwidth bound of a full scan.

```
.venv/bin/python bench/cache_latency.py
```

For 1k, 10k and 100k entries in one partition (random unit vectors, 384-d float32), times
`PartitionMatrix.search` (similarity of every row, threshold, top candidates) on random queries
and reports p50/p99. The bound is what merely reading the matrix costs: the best time of
`matrix.sum()` and of a copy of a same-size array, measured in the same run, converted to GB/s.
Ratio = p50 / best scan time (1.0 would be a lookup as fast as reading the matrix once).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from shared.cache.matrix import PartitionMatrix  # noqa: E402

DIMENSIONS = 384
SIZES = (1_000, 10_000, 100_000)
THRESHOLD = 0.90
CANDIDATES = 3


def random_units(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random unit vectors."""
    vectors = rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(count: int, rng: np.random.Generator) -> PartitionMatrix:
    """A partition of `count` entries that never expire during the run."""
    matrix = PartitionMatrix()
    for index, vector in enumerate(random_units(count, rng)):
        matrix.upsert(f"e{index}", vector, f"question {index}", expires=float("inf"))
    return matrix


def best_of(function, rounds: int) -> float:
    """The fastest of `rounds` calls, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def scan_bound(count: int, rng: np.random.Generator, rounds: int) -> tuple[float, float, float]:
    """(sum seconds, copy seconds, GB/s of the faster read) for a same-size float32 array."""
    array = random_units(count, rng)
    target = np.empty_like(array)
    summed = best_of(array.sum, rounds)
    copied = best_of(lambda: np.copyto(target, array), rounds)
    read_seconds = min(summed, copied / 2)  # a copy reads and writes every byte
    return summed, copied, array.nbytes / read_seconds / 1e9


def lookup_times(matrix: PartitionMatrix, queries: np.ndarray) -> np.ndarray:
    """Seconds per search, one per query."""
    times = np.empty(len(queries))
    for index, query in enumerate(queries):
        started = time.perf_counter()
        matrix.search(query, THRESHOLD, CANDIDATES, now=0.0)
        times[index] = time.perf_counter() - started
    return times


def main() -> None:
    """Measure each size and print one line per size."""
    print(f"load average: {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(7)
    print(f"{'entries':>8} {'MB':>6} | {'p50 ms':>7} {'p99 ms':>7} | "
          f"{'sum ms':>7} {'copy ms':>7} {'GB/s':>6} | {'p50/scan':>8}")  # fmt: skip
    for count in SIZES:
        matrix = build(count, rng)
        lookups = 2_000 if count < 100_000 else 300
        times = lookup_times(matrix, random_units(lookups, rng))
        summed, copied, bandwidth = scan_bound(count, rng, rounds=30)
        p50, p99 = np.percentile(times, [50, 99])
        scan = count * DIMENSIONS * 4 / (bandwidth * 1e9)
        megabytes = count * DIMENSIONS * 4 / 1e6
        print(f"{count:>8} {megabytes:>6.1f} | {1e3 * p50:>7.3f} {1e3 * p99:>7.3f} | "
              f"{1e3 * summed:>7.3f} {1e3 * copied:>7.3f} {bandwidth:>6.1f} | "
              f"{p50 / scan:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
