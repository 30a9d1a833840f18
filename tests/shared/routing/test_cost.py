"""Cost-aware routing: the price table, complexity tiers and reasons, overrides, cost caps."""

from __future__ import annotations

import json
import logging

import pytest

from shared.llm.types import Usage
from shared.problems import status_of
from shared.routing.config import RegionConfig
from shared.routing.cost import (
    Refusal,
    RouteRequest,
    RouterOptions,
    TierChoice,
    log_outcome,
    parse_prices,
    route,
    score_complexity,
    step_down,
)
from shared.security.principal import Principal

PRICES = {
    "models": {
        "gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006},
        "gpt-4o": {"input_per_1k": 0.0025, "output_per_1k": 0.01},
        "gpt-4o-eu": {"input_per_1k": 0.003, "output_per_1k": 0.012},
        "o1": {"input_per_1k": 0.015, "output_per_1k": 0.06},
    },
    "tiers": {
        "economy": {"*": "gpt-4o-mini"},
        "standard": {"swedencentral": "gpt-4o-eu", "*": "gpt-4o"},
        "premium": {"*": "o1"},
    },
}
TABLE = parse_prices(json.dumps(PRICES))
OPTIONS = RouterOptions(TABLE, override_roles=frozenset({"tier-admin"}))
USER = Principal("alice", "contoso")
ADMIN = Principal("root", "contoso", roles=("tier-admin",))

CODE = 'Why does this raise a KeyError?\n```python\ndef f(d):\n    return d["x"]\n```'
VENDORS = (
    "Compare the three vendor proposals, evaluate the trade-offs in cost and risk, and "
    "recommend one. First summarise each, then rank them, finally justify the ranking. "
    "Which is cheapest? Which has the best SLA?"
)
INCIDENT = (
    "Analyze the incident report and the logs: what was the root cause, why did failover not "
    "trigger, and what should we change? Compare with last year's outage and recommend "
    "priorities."
)
MIGRATION = (
    "Walk me through migrating our on-prem SQL Server to Azure step by step, then explain the "
    "rollback plan."
)
TRACEBACK = (
    'Traceback (most recent call last):\n  File "app.py", line 3, in main\n    run()\n'
    "ValueError: bad input\nHow do I fix this?"
)

# (question, retrieval context tokens, expected tier)
EXAMPLES = [
    ("Hi, thanks!", 0, "economy"),
    ("What is our vacation policy?", 1_500, "economy"),
    ("Who is the contact for payroll?", 1_200, "economy"),
    ("List the public holidays in 2024.", 800, "economy"),
    ("When was the security policy last updated?", 1_500, "economy"),
    ("How do I request a new laptop?", 1_500, "economy"),
    ("What are the steps to onboard a contractor? First HR, then IT?", 2_000, "economy"),
    ("Explain why Q3 revenue dropped compared to Q2.", 2_500, "standard"),
    (CODE, 0, "standard"),
    (TRACEBACK, 0, "standard"),
    ("Summarize the contract.", 9_000, "standard"),
    (MIGRATION, 2_000, "standard"),
    (VENDORS, 4_000, "premium"),
    (INCIDENT, 8_000, "premium"),
]


def request(question: str = "What is X?", **fields: object) -> RouteRequest:
    """A route request with small token counts unless told otherwise."""
    values: dict[str, object] = {"prompt_tokens": 1_000, "max_tokens": 500, **fields}
    return RouteRequest(question, **values)  # type: ignore[arg-type]


def decided(outcome: TierChoice | Refusal) -> TierChoice:
    """The decision, failing the test on a refusal."""
    assert isinstance(outcome, TierChoice), outcome
    return outcome


# Prices ------------------------------------------------------------------------------------


def test_prices_parse_models_and_tiers() -> None:
    assert TABLE.price("gpt-4o").output_per_1k == 0.01
    assert TABLE.model_for("standard", "swedencentral") == "gpt-4o-eu"
    assert TABLE.model_for("standard", "eastus") == "gpt-4o"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "must be JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({**PRICES, "extra": 1}), "unknown top-level fields ['extra']"),
        (json.dumps({**PRICES, "models": {}}), "at least one model"),
        (
            json.dumps({**PRICES, "models": {"m": {"input_per_1k": -1, "output_per_1k": 1}}}),
            "models.m.input_per_1k must be a finite number >= 0",
        ),
        (
            json.dumps({**PRICES, "models": {"m": {"input_per_1k": "1", "output_per_1k": 1}}}),
            "models.m.input_per_1k must be a number",
        ),
        (
            json.dumps(
                {**PRICES, "models": {"m": {"input_per_1k": 1, "output_per_1k": 1, "x": 1}}}
            ),
            "models.m: unknown fields ['x']",
        ),
        (
            json.dumps({**PRICES, "tiers": {"economy": {"*": "gpt-4o-mini"}}}),
            "missing ['standard', 'premium']",
        ),
        (
            json.dumps({**PRICES, "tiers": {**PRICES["tiers"], "ultra": {"*": "o1"}}}),
            "unknown ['ultra']",
        ),
        (
            json.dumps({**PRICES, "tiers": {**PRICES["tiers"], "economy": {"eastus": "o1"}}}),
            'tiers.economy needs a "*" entry',
        ),
        (
            json.dumps({**PRICES, "tiers": {**PRICES["tiers"], "premium": {"*": "gpt-5"}}}),
            "tiers.premium.*: model 'gpt-5' has no price",
        ),
    ],
)
def test_prices_errors_say_what_is_wrong(document: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_prices(document)
    assert message in str(error.value)


def test_estimate_is_prompt_plus_max_tokens_and_actual_uses_usage() -> None:
    assert TABLE.estimate_cost("gpt-4o", 1_000, 500) == pytest.approx(0.0025 + 0.005)
    usage = Usage(prompt_tokens=1_000, completion_tokens=120)
    assert TABLE.actual_cost("gpt-4o", usage) == pytest.approx(0.0025 + 0.0012)
    assert TABLE.actual_cost("gpt-4o", usage) <= TABLE.estimate_cost("gpt-4o", 1_000, 500)
    with pytest.raises(KeyError, match="no price for model 'gpt-9'"):
        TABLE.estimate_cost("gpt-9", 1, 1)


# Tiers and reasons -------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "context", "tier"), EXAMPLES)
def test_example_questions_get_their_tier(question: str, context: int, tier: str) -> None:
    decision = decided(route(request(question, context_tokens=context), USER, OPTIONS))
    assert decision.tier == tier, decision.reasons
    assert decision.reasons[-1].endswith(f"-> {tier}")


def test_the_table_covers_every_tier() -> None:
    tiers = [tier for _, _, tier in EXAMPLES]
    assert len(EXAMPLES) >= 12
    assert {tiers.count(t) >= 2 for t in ("economy", "standard", "premium")} == {True}


def test_reasons_name_the_signals_that_fired() -> None:
    reasons = score_complexity(VENDORS, 4_000).reasons
    assert any(r.startswith("reasoning markers: compare, evaluate, trade-offs") for r in reasons)
    assert any(r.startswith("multi-step: first, then, finally") for r in reasons)
    assert "2 questions (+0.05)" in reasons
    assert any(r.startswith("retrieval context of 4000 tokens") for r in reasons)
    code = score_complexity(CODE).reasons
    assert any(r.startswith("code: ") and "```" in r for r in code)
    simple = score_complexity("What is our vacation policy?").reasons
    assert simple == ("short lookup or small-talk question (-0.15)",)


def test_scoring_reads_a_bounded_part_of_huge_questions() -> None:
    huge = "why " * 200_000  # 800 kB: the pattern signals read 1,200 characters of it
    complexity = score_complexity(huge)
    assert 0 <= complexity.score <= 1
    assert any(reason.startswith("about 200000 question tokens") for reason in complexity.reasons)
    pasted = "Clause 4 applies. " * 5_000 + "Why does clause 4 conflict with clause 9?"
    assert any("reasoning markers: why" in r for r in score_complexity(pasted).reasons)


def test_regions_get_their_tier_model_and_the_estimate_uses_the_dearest() -> None:
    regions = (
        RegionConfig("eastus", "https://e.example", "d", "gpt-4o"),
        RegionConfig("swedencentral", "https://s.example", "d", "gpt-4o"),
        RegionConfig("westus", "https://w.example", "d", "gpt-4o", tiers=("economy",)),
    )
    options = RouterOptions(TABLE, regions)
    decision = decided(route(request(CODE), USER, options))
    assert decision.model_by_region == {"eastus": "gpt-4o", "swedencentral": "gpt-4o-eu"}
    assert decision.estimated_cost_usd == pytest.approx(TABLE.estimate_cost("gpt-4o-eu", 1000, 500))


def test_a_tier_no_region_serves_falls_back_to_a_cheaper_one() -> None:
    regions = (
        RegionConfig("eastus", "https://e.example", "d", "m", tiers=("economy", "standard")),
    )
    decision = decided(
        route(request(VENDORS, context_tokens=4_000), USER, RouterOptions(TABLE, regions))
    )
    assert decision.tier == "standard"
    assert "no region serves premium: using standard" in decision.reasons


# Overrides ---------------------------------------------------------------------------------


def test_override_is_allowed_for_the_configured_role() -> None:
    decision = decided(route(request("Hi", tier_override="premium"), ADMIN, OPTIONS))
    assert decision.tier == "premium"
    assert decision.reasons[-1] == "tier premium requested by the caller"


def test_override_is_refused_for_other_roles_with_a_reason() -> None:
    refusal = route(request("Hi", tier_override="premium"), USER, OPTIONS)
    assert isinstance(refusal, Refusal)
    assert (refusal.code, status_of(refusal)) == ("tier_override_forbidden", 403)
    assert refusal.reason == "choosing a tier requires the role tier-admin"
    closed = route(request("Hi", tier_override="premium"), ADMIN, RouterOptions(TABLE))
    assert isinstance(closed, Refusal) and "overrides are disabled" in closed.reason


def test_override_to_an_unknown_tier_is_a_bad_request() -> None:
    refusal = route(request("Hi", tier_override="ultra"), ADMIN, OPTIONS)
    assert isinstance(refusal, Refusal) and (refusal.code, status_of(refusal)) == (
        "tier_unknown",
        400,
    )


# Cost caps ---------------------------------------------------------------------------------


def test_max_cost_steps_down_until_the_estimate_fits() -> None:
    # premium (o1) costs 0.045, standard (gpt-4o) 0.0075, economy 0.00045 at 1000 + 500 tokens
    decision = decided(
        route(request(VENDORS, context_tokens=4_000, max_cost_usd=0.005), USER, OPTIONS)
    )
    assert decision.tier == "economy"
    assert decision.stepped_down_from == "premium"
    assert decision.estimated_cost_usd <= 0.005
    steps = [reason for reason in decision.reasons if "over max_cost_usd" in reason]
    assert steps == [
        "estimate $0.045000 at premium is over max_cost_usd $0.005000",
        "estimate $0.007500 at standard is over max_cost_usd $0.005000",
    ]


def test_max_cost_that_fits_changes_nothing() -> None:
    decision = decided(route(request(CODE, max_cost_usd=1.0), USER, OPTIONS))
    assert (decision.tier, decision.stepped_down_from) == ("standard", None)


def test_max_cost_below_the_floor_is_refused_with_the_numbers() -> None:
    refusal = route(request(CODE, max_cost_usd=0.0001), USER, OPTIONS)
    assert isinstance(refusal, Refusal)
    assert (refusal.code, status_of(refusal)) == ("max_cost_exceeded", 400)
    assert "economy is the cheapest tier" in refusal.reason
    assert "lower max_tokens (500)" in refusal.reason
    assert refusal.extra["estimated_cost_usd"] == pytest.approx(0.00045)


def test_step_down_stops_at_economy() -> None:
    economy = decided(route(request("Hi"), USER, OPTIONS))
    assert step_down(economy, "soft budget", OPTIONS) is None


# Logging -----------------------------------------------------------------------------------


def test_decisions_and_outcomes_are_logged_with_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="shared.routing.cost"):
        decision = decided(route(request(CODE), USER, OPTIONS))
        cost = log_outcome(decision, "gpt-4o", Usage(1_000, 100), TABLE)
    routed, outcome = caplog.records
    assert routed.route_tier == "standard"  # type: ignore[attr-defined]
    assert routed.route_reasons == list(decision.reasons)  # type: ignore[attr-defined]
    assert routed.route_estimated_cost_usd == decision.estimated_cost_usd  # type: ignore[attr-defined]
    assert outcome.route_actual_cost_usd == cost == pytest.approx(0.0035)  # type: ignore[attr-defined]
    assert outcome.route_estimated_cost_usd == pytest.approx(0.0075)  # type: ignore[attr-defined]
