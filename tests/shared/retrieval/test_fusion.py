"""Reciprocal rank fusion."""

from __future__ import annotations

import pytest

from shared.retrieval.fusion import RRF_K, reciprocal_rank_fusion


def test_scores_are_the_sum_of_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]])
    scores = {item.key: item.score for item in fused}
    assert scores == pytest.approx(
        {"a": 1 / (RRF_K + 1), "b": 1 / (RRF_K + 2) + 1 / (RRF_K + 1), "c": 1 / (RRF_K + 2)}
    )
    assert [item.key for item in fused] == ["b", "a", "c"]
    assert [item.ranks for item in fused] == [(2, 1), (1, None), (None, 2)]


def test_agreement_beats_a_single_first_place() -> None:
    fused = reciprocal_rank_fusion([["solo", "x1", "x2", "both"], ["y1", "y2", "both"]])
    assert fused[0].key == "both"


def test_ties_go_to_the_better_best_rank_then_first_appearance() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]])
    assert [item.key for item in fused] == ["a", "b"]  # equal scores, equal best ranks


def test_a_repeated_key_keeps_its_best_rank() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "a"]])
    assert fused[0].ranks == (1,)


def test_weights_and_k() -> None:
    fused = reciprocal_rank_fusion([["a"], ["b"]], k=1, weights=[1.0, 3.0])
    assert [(item.key, item.score) for item in fused] == [("b", 1.5), ("a", 0.5)]
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion([["a"]], k=0)
    with pytest.raises(ValueError, match="one weight per ranking"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


def test_no_rankings_fuse_to_nothing() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []
