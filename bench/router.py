"""Cost of a routing decision: complexity scoring and the full `route()`, vs `count_tokens`.

```
.venv/bin/python bench/router.py            # ~5 s
.venv/bin/python bench/router.py --quick    # ~1 s
```

The texts are the example table of tests/shared/routing/test_cost.py (14 questions, from a
greeting to a multi-part analysis with code), plus one 40 kB pasted document to show the cost
stays bounded on huge input. Each row times one call per text, many rounds, interleaved with
the baseline: `count_tokens` alone (the MiniLM WordPiece tokenizer) on the same text. Prints
p50/p99 in microseconds per decision and the ratio to the baseline's p50.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from shared.routing.cost import RouteRequest, route, score_complexity  # noqa: E402
from shared.security.principal import Principal  # noqa: E402
from shared.tokens import count_tokens  # noqa: E402
from tests.shared.routing.test_cost import EXAMPLES, OPTIONS  # noqa: E402

PRINCIPAL = Principal("bench", "bench")
HUGE = ("The supplier shall deliver the goods described in Annex A. " * 700, 9_000, "")


def timings(call: Callable[[], object], rounds: int) -> list[float]:
    """Microseconds per call, one sample per round."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1_000)
    return samples


def percentile(samples: list[float], share: float) -> float:
    """The `share` percentile of `samples`."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(texts: list[tuple[str, int, str]], rounds: int) -> dict[str, list[float]]:
    """Samples per contender over `texts`, contenders interleaved round by round."""
    contenders: dict[str, Callable[[str, int], object]] = {
        "count_tokens (baseline)": lambda text, _: count_tokens(text),
        "score_complexity": score_complexity,
        "route (score+price+log)": lambda text, context: route(
            RouteRequest(text, 1_000, 500, context), PRINCIPAL, OPTIONS
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, contender in contenders.items():
            for text, context, _ in texts:
                samples[name] += timings(lambda c=contender, t=text, x=context: c(t, x), 1)
    return samples


def report(title: str, samples: dict[str, list[float]]) -> None:
    """One table: p50, p99 and the ratio to the baseline's p50."""
    baseline = statistics.median(samples["count_tokens (baseline)"])
    print(f"\n{title}")
    print(f"{'':<26}{'p50 µs':>10}{'p99 µs':>10}{'vs baseline':>13}")
    for name, values in samples.items():
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"{name:<26}{p50:>10.1f}{p99:>10.1f}{p50 / baseline:>12.2f}x")


def main() -> None:
    """Warm up, then time the example table and the huge document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    rounds = 60 if parser.parse_args().quick else 400
    print(f"load average: {os.getloadavg()[0]:.2f}; rounds: {rounds}")
    examples = [(text, context, tier) for text, context, tier in EXAMPLES]
    measure(examples, 5)  # warm-up: the tokenizer loads, regexes compile
    report(f"example table ({len(examples)} questions)", measure(examples, rounds))
    report(f"one pasted document ({len(HUGE[0]):,} chars)", measure([HUGE], rounds // 4))


if __name__ == "__main__":
    main()
