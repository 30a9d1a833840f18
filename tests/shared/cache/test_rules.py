"""Cache keys, the token guard, bypass rules, eviction order and the L1 matrix (no Cosmos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.cache.bypass import bypass
from shared.cache.eviction import choose_victims
from shared.cache.guards import guard_reason
from shared.cache.keys import cache_partition, normalise_question, question_key
from shared.cache.matrix import PartitionMatrix
from shared.cache.options import CacheOptions
from shared.security.principal import Principal

ALICE = Principal("alice", "contoso", groups=("finance", "staff"))
BOB = Principal("bob", "contoso", groups=("finance", "staff"))
MALLORY = Principal("alice", "fabrikam", groups=("finance", "staff"))
PROMPT = "Answer from the sources only."


def test_partition_differs_by_tenant_scope_user_tier_and_prompt() -> None:
    base = cache_partition(ALICE, ["finance"], "standard", PROMPT)
    assert cache_partition(ALICE, ["finance"], "standard", PROMPT) == base
    assert cache_partition(MALLORY, ["finance"], "standard", PROMPT) != base
    assert cache_partition(ALICE, ["staff"], "standard", PROMPT) != base
    assert cache_partition(BOB, ["finance"], "standard", PROMPT) != base
    assert cache_partition(ALICE, ["finance"], "premium", PROMPT) != base
    assert cache_partition(ALICE, ["finance"], "standard", PROMPT + " ") != base
    assert cache_partition(ALICE, ["finance"], "standard", PROMPT, vary_by={"top_k": 3}) != base


def test_same_groups_share_only_without_user_acls() -> None:
    alice = cache_partition(ALICE, ["staff", "finance"], "standard", PROMPT, user_acls=False)
    bob = cache_partition(BOB, ["finance", "staff", "staff"], "standard", PROMPT, user_acls=False)
    assert alice == bob


def test_scope_groups_must_be_held_by_the_principal() -> None:
    with pytest.raises(ValueError, match="not held"):
        cache_partition(ALICE, ["executives"], "standard", PROMPT)


def test_normalise_question_folds_case_space_punctuation_and_width() -> None:
    assert normalise_question("  What\u2019s the  VPN\tpolicy?? ") == "what s the vpn policy"
    # NFKC folds full-width letters.
    assert normalise_question("\uff36\uff30\uff2e policy") == "vpn policy"
    assert normalise_question("3.5%") != normalise_question("35")
    assert question_key("What is the VPN policy?") == question_key("what is the vpn policy")


@pytest.mark.parametrize(
    ("question", "cached", "reason"),
    [
        ("What was revenue in 2022?", "What was revenue in 2023?", "numbers differ"),
        ("Sales in the north region?", "Sales in the south region?", "directions"),
        ("Revenue of Contoso?", "Revenue of Fabrikam?", "names differ"),
        ("Margin in Q3?", "Margin in Q4?", "codes differ"),
        ("Which costs are covered?", "Which costs are not covered?", "negation differs"),
        ("What is the maximum rate?", "What is the minimum rate?", "opposite terms"),
    ],
)
def test_guard_rejects_near_misses(question: str, cached: str, reason: str) -> None:
    assert reason in (guard_reason(question, cached) or "")


@pytest.mark.parametrize(
    ("question", "cached"),
    [
        ("What was Contoso's revenue in 2022?", "how much revenue did contoso make in 2022"),
        ("Top 3 risks?", "What are the top three risks?"),
        ("Limit above 1,000 USD?", "limit over 1000 usd?"),
        ("What doesn't the plan cover?", "What does the plan not cover?"),
        ("Can I carry over vacation?", "Is it possible to carry over vacation?"),
    ],
)
def test_guard_accepts_paraphrases(question: str, cached: str) -> None:
    assert guard_reason(question, cached) is None


def test_labelled_set_is_large_and_balanced() -> None:
    path = Path(__file__).resolve().parents[3] / "shared" / "cache" / "labelled_pairs.json"
    pairs = json.loads(path.read_text(encoding="utf-8"))["pairs"]
    assert len(pairs) >= 60
    kinds = {pair["kind"] for pair in pairs if not pair["should_hit"]}
    assert {"number", "year", "entity", "negation", "same_words"} <= kinds
    assert sum(pair["should_hit"] for pair in pairs) >= 30


USER = {"role": "user", "content": "What is the travel policy?"}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"cache_control": "no-store"}, "no-store"),
        ({"cache_control": "no-cache"}, "no-cache"),
        ({"tools": True}, "tool calls"),
        ({"temperature": 0.9}, "temperature"),
        ({"messages": [USER, {"role": "tool", "content": "42"}]}, "tool calls"),
        ({"messages": [USER, {"role": "user", "content": "and for 2023?"}]}, "follow-up"),
        (
            {"messages": [USER, {"role": "user", "content": "Who approves it?"}]},
            "follow-up",
        ),
    ],
)
def test_lookup_bypass_reasons(kwargs: dict, reason: str) -> None:
    messages = kwargs.pop("messages", [USER])
    decision = bypass(messages, max_temperature=0.3, **kwargs)
    assert decision.bypass and reason in decision.reason


def test_lookup_is_allowed_for_plain_and_standalone_multi_turn_requests() -> None:
    assert bypass([USER], max_temperature=0.3) == (False, "")
    standalone = [USER, {"role": "user", "content": "What is the parental leave policy?"}]
    assert bypass(standalone, max_temperature=0.3).bypass is False


def test_no_cache_may_store_but_no_store_may_not() -> None:
    store = {"phase": "store", "citations": 1, "max_temperature": 0.3}
    assert bypass([USER], cache_control="no-cache", **store).bypass is False
    assert bypass([USER], cache_control="no-store", **store).reason == "no-store requested"


def test_store_refuses_flagged_and_uncited_answers() -> None:
    flagged = bypass([USER], max_temperature=0.3, phase="store", flagged=True, citations=2)
    assert flagged == (True, "answer flagged by validation")
    uncited = bypass([USER], max_temperature=0.3, phase="store", citations=0)
    assert uncited == (True, "answer has no citations")


def test_unknown_cache_control_is_rejected() -> None:
    with pytest.raises(ValueError):
        bypass([USER], max_temperature=0.3, cache_control="private")


def _meta(entry_id: str, created: float, hits: int, last_hit: float) -> dict:
    return {"id": entry_id, "created": created, "hits": hits, "last_hit": last_hit,
            "expires_at": created + 100}  # fmt: skip


@pytest.mark.parametrize(("policy", "victim"), [("lru", "a"), ("lfu", "b"), ("ttl", "a")])
def test_eviction_order(policy: str, victim: str) -> None:
    items = [_meta("a", 0, 5, 10), _meta("b", 5, 1, 20), _meta("new", 30, 0, 30)]
    assert choose_victims(items, 2, policy, now=31, protect="new") == [victim]  # type: ignore[arg-type]


def test_expired_entries_are_evicted_first() -> None:
    items = [_meta("old", -200, 9, 0), _meta("a", 0, 0, 0)]
    assert choose_victims(items, 5, "lfu", now=1) == ["old"]


def test_matrix_search_threshold_order_expiry_and_removal() -> None:
    matrix = PartitionMatrix()
    basis = np.eye(4, dtype=np.float32)
    matrix.upsert("x", basis[0], "x?", expires=100)
    matrix.upsert("near", basis[0] + 0.1 * basis[1], "near?", expires=100)
    matrix.upsert("y", basis[1], "y?", expires=100)
    matrix.upsert("gone", basis[0], "gone?", expires=5)
    found = matrix.search(basis[0], 0.9, limit=5, now=10)
    assert [c.entry_id for c in found] == ["x", "near"]
    assert found[0].similarity == pytest.approx(1.0)
    assert matrix.remove("x") and not matrix.remove("x")
    assert [c.entry_id for c in matrix.search(basis[0], 0.9, 5, now=1)] == ["gone", "near"]
    assert matrix.fresh_count(now=10) == 2


def test_options_validate() -> None:
    with pytest.raises(ValueError):
        CacheOptions(similarity_threshold=1.5)
    with pytest.raises(ValueError):
        CacheOptions(eviction="fifo")  # type: ignore[arg-type]
    assert CacheOptions().similarity_threshold == 0.90
