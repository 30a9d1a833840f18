"""Retrieval quality: vector-only, keyword-only and hybrid (RRF) side by side.

```
.venv/bin/python bench/retrieval.py
```

The corpus is tests/shared/retrieval/corpus.py: eleven generated documents, one chunk per
section, embedded with the local MiniLM model, and 34 labelled questions (paraphrases and exact
terms). The index is `TenantIndex`, the in-memory index of RETRIEVAL_MODE=memory, so no Cosmos
is needed. A question is a hit at k when a chunk of its document citing its page is among the
first k; MRR is over the first 10. Prints one table, overall and per question kind.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from shared.embeddings.local import LocalEmbedder  # noqa: E402
from shared.retrieval.filters import MATCH_ALL  # noqa: E402
from shared.retrieval.search import MODES, RetrievedChunk, SearchRequest, TenantIndex  # noqa: E402
from shared.security.principal import Principal  # noqa: E402
from tests.shared.retrieval.corpus import QUESTIONS, Question, chunk_items  # noqa: E402

TENANT = "bench"
KS = (1, 3, 5)
MRR_DEPTH = 10


@dataclass
class Score:
    """Hits at each k and the reciprocal-rank sum of one mode over some questions."""

    hits: dict[int, int]
    reciprocal_ranks: float = 0.0
    questions: int = 0

    def add(self, rank: int | None) -> None:
        """Counts one question whose first relevant chunk is at `rank` (None: not found)."""
        self.questions += 1
        for k in KS:
            self.hits[k] += rank is not None and rank <= k
        self.reciprocal_ranks += 1.0 / rank if rank else 0.0

    def row(self, label: str) -> str:
        """One table line."""
        rates = [self.hits[k] / self.questions for k in KS]
        cells = "".join(f"{rate:>9.2f}" for rate in rates)
        return f"{label:<22}{cells}{self.reciprocal_ranks / self.questions:>9.3f}"


def first_relevant(results: list[RetrievedChunk], question: Question) -> int | None:
    """1-based rank of the first chunk of the right document citing the right page."""
    for rank, chunk in enumerate(results, start=1):
        if chunk.document_name == question.document and question.page in chunk.pages:
            return rank
    return None


async def build_index(embedder: LocalEmbedder) -> TenantIndex:
    """The corpus's chunks in an in-memory tenant index."""
    index = TenantIndex()
    for item in await chunk_items(embedder, TENANT):
        index.upsert(item)
    return index


async def evaluate(index: TenantIndex, embedder: LocalEmbedder) -> dict[tuple[str, str], Score]:
    """Scores per (mode, question kind), "all" included."""
    principal = Principal(user_id="bench", tenant=TENANT)
    vectors = await embedder.embed([question.text for question in QUESTIONS])
    scores: dict[tuple[str, str], Score] = {}
    for question, vector in zip(QUESTIONS, vectors, strict=True):
        for mode in MODES:
            request = SearchRequest(question.text, vector, principal, MATCH_ALL, MRR_DEPTH, mode)
            rank = first_relevant(index.search(request), question)
            for kind in ("all", question.kind):
                scores.setdefault((mode, kind), Score({k: 0 for k in KS})).add(rank)
    return scores


def print_table(scores: dict[tuple[str, str], Score], chunks: int) -> None:
    """The side-by-side table."""
    counts = {kind: scores[("hybrid", kind)].questions for kind in ("all", "paraphrase", "exact")}
    print(
        f"retrieval quality: {chunks} chunks, {counts['all']} questions "
        f"({counts['paraphrase']} paraphrase, {counts['exact']} exact-term)"
    )
    print(
        f"{'mode / questions':<22}"
        + "".join(f"{'hit@' + str(k):>9}" for k in KS)
        + f"{'MRR@10':>9}"
    )
    for kind in ("all", "paraphrase", "exact"):
        for mode in ("vector", "keyword", "hybrid"):
            print(scores[(mode, kind)].row(f"{mode} / {kind}"))


async def main() -> None:
    """Builds the index, evaluates every mode and prints the table."""
    started = time.perf_counter()
    embedder = LocalEmbedder()
    index = await build_index(embedder)
    scores = await evaluate(index, embedder)
    print_table(scores, len(index))
    load = f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    print(f"took {time.perf_counter() - started:.1f} s; load average {load}")


if __name__ == "__main__":
    asyncio.run(main())
