"""Reciprocal rank fusion: merges rankings by rank alone, so scores on different scales mix.

score(d) = sum over rankings r of weight_r / (k + rank_r(d)), ranks from 1. A document missing
from a ranking gets nothing from it. k = 60 (Cormack et al., 2009) flattens the head: rank 1
and rank 5 differ by under 7%, so a document found by both retrievers beats one that only a
single retriever put first.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

RRF_K = 60
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Fused(Generic[Key]):
    """A fused result: its key, RRF score and 1-based rank in each input (None: absent)."""

    key: Key
    score: float
    ranks: tuple[int | None, ...]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Key]],
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[Fused[Key]]:
    """Fuses best-first rankings; ties go to the better best rank, then first appearance."""
    if k < 1:
        raise ValueError("k must be at least 1")
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    ranks: dict[Key, list[int | None]] = {}
    for position, ranking in enumerate(rankings):
        for rank, key in enumerate(ranking, start=1):
            slots = ranks.setdefault(key, [None] * len(rankings))
            if slots[position] is None:  # a repeated key keeps its best rank
                slots[position] = rank
    fused = [Fused(key, _score(slots, weights, k), tuple(slots)) for key, slots in ranks.items()]
    order = {key: index for index, key in enumerate(ranks)}
    fused.sort(key=lambda item: (-item.score, _best_rank(item.ranks), order[item.key]))
    return fused


def _score(ranks: Sequence[int | None], weights: Sequence[float], k: int) -> float:
    """The RRF sum of one key."""
    return sum(w / (k + rank) for rank, w in zip(ranks, weights, strict=True) if rank is not None)


def _best_rank(ranks: Sequence[int | None]) -> int:
    """The key's best rank in any input."""
    return min(rank for rank in ranks if rank is not None)


__all__ = ["RRF_K", "Fused", "reciprocal_rank_fusion"]
