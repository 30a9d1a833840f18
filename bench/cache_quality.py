"""Semantic cache quality: true-hit and false-hit rates across similarity thresholds.

```
.venv/bin/python bench/cache_quality.py
```

The labelled set is shared/cache/labelled_pairs.json: paraphrases that should hit and
near-misses that must not (different numbers/years, entities, negation, same words with another
meaning). Each pair is embedded with the real LocalEmbedder (MiniLM int8); a pair "hits" at a
threshold when its cosine similarity is >= the threshold and, with guards, the token guard of
shared.cache.guards passes too. Prints one table for both variants, the false hits left at the
recommended threshold, and the recommendation: the threshold with the highest true-hit rate
whose false-hit rate (with guards) is the lowest reached anywhere in the sweep; ties go to
the higher, stricter threshold.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from shared.cache.guards import guard_reason  # noqa: E402
from shared.embeddings.local import LocalEmbedder  # noqa: E402

PAIRS = ROOT / "shared" / "cache" / "labelled_pairs.json"
THRESHOLDS = [round(0.70 + 0.02 * step, 2) for step in range(15)]  # 0.70 .. 0.98


@dataclass(frozen=True)
class Scored:
    """One labelled pair with its similarity and what the guard said."""

    question: str
    cached: str
    should_hit: bool
    kind: str
    similarity: float
    guard: str | None


def load_pairs() -> list[dict]:
    """The labelled pairs from the JSON file."""
    return json.loads(PAIRS.read_text(encoding="utf-8"))["pairs"]


async def score(pairs: list[dict]) -> list[Scored]:
    """Embed both sides of every pair and compute cosine similarity and the guard verdict."""
    embedder = LocalEmbedder()
    texts = sorted({p["question"] for p in pairs} | {p["cached"] for p in pairs})
    vectors = dict(zip(texts, np.asarray(await embedder.embed(texts)), strict=True))
    return [
        Scored(p["question"], p["cached"], p["should_hit"], p["kind"],
               float(vectors[p["question"]] @ vectors[p["cached"]]),
               guard_reason(p["question"], p["cached"]))
        for p in pairs
    ]  # fmt: skip


def hits(scored: Scored, threshold: float, guarded: bool) -> bool:
    """Whether the pair would be served from the cache."""
    return scored.similarity >= threshold and (not guarded or scored.guard is None)


def rates(rows: list[Scored], threshold: float, guarded: bool) -> tuple[float, float]:
    """(true-hit rate over should-hit pairs, false-hit rate over must-not-hit pairs)."""
    positives = [row for row in rows if row.should_hit]
    negatives = [row for row in rows if not row.should_hit]
    true_hits = sum(hits(row, threshold, guarded) for row in positives) / len(positives)
    false_hits = sum(hits(row, threshold, guarded) for row in negatives) / len(negatives)
    return true_hits, false_hits


def recommend(rows: list[Scored]) -> float:
    """Highest true-hit rate among thresholds reaching the lowest guarded false-hit rate."""
    table = {threshold: rates(rows, threshold, guarded=True) for threshold in THRESHOLDS}
    lowest = min(false for _, false in table.values())
    eligible = [t for t, (_, false) in table.items() if false == lowest]
    return max(eligible, key=lambda t: (table[t][0], t))


def print_table(rows: list[Scored]) -> None:
    """One line per threshold: both variants side by side."""
    print(f"{'threshold':>9} | {'no guard: TH%':>13} {'FH%':>6} | {'guard: TH%':>10} {'FH%':>6}")
    for threshold in THRESHOLDS:
        plain = rates(rows, threshold, guarded=False)
        guarded = rates(rows, threshold, guarded=True)
        print(f"{threshold:>9.2f} | {100 * plain[0]:>13.1f} {100 * plain[1]:>6.1f} | "
              f"{100 * guarded[0]:>10.1f} {100 * guarded[1]:>6.1f}")  # fmt: skip


def print_breakdown(rows: list[Scored], threshold: float) -> None:
    """Near-misses above the threshold by kind, and which the guard stops."""
    print(f"\nnear-misses with similarity >= {threshold:.2f}, by kind (stopped by guard / total):")
    kinds = sorted({row.kind for row in rows if not row.should_hit})
    for kind in kinds:
        above = [r for r in rows if r.kind == kind and r.similarity >= threshold]
        stopped = sum(r.guard is not None for r in above)
        total = sum(r.kind == kind for r in rows)
        print(f"  {kind:<11} {stopped}/{len(above)} above threshold, {total} pairs")
    for row in rows:
        if not row.should_hit and hits(row, threshold, guarded=True):
            print(f"  FALSE HIT {row.similarity:.3f}: {row.question!r} ~ {row.cached!r}")
    for row in rows:
        if row.should_hit and not hits(row, threshold, guarded=True):
            why = row.guard or "below threshold"
            print(f"  missed paraphrase {row.similarity:.3f} ({why}): {row.question!r}")


async def main() -> None:
    """Score the labelled set and print the table and the recommendation."""
    print(f"load average: {os.getloadavg()[0]:.2f}")
    rows = await score(load_pairs())
    positives = sum(row.should_hit for row in rows)
    print(f"{len(rows)} labelled pairs: {positives} should hit, {len(rows) - positives} must not")
    print("TH = true-hit rate (paraphrases served), FH = false-hit rate (near-misses served)\n")
    print_table(rows)
    chosen = recommend(rows)
    print_breakdown(rows, chosen)
    true_hits, false_hits = rates(rows, chosen, guarded=True)
    print(f"\nrecommended similarity_threshold = {chosen:.2f} with guards: "
          f"true-hit {100 * true_hits:.1f}%, false-hit {100 * false_hits:.1f}%")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
