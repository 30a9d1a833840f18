"""Helpers the budget tests share: decisions at a tier, usage records."""

from __future__ import annotations

from shared.budgets.ledger import UsageRecord
from shared.routing.cost import TierChoice, estimate_for, models_for
from tests.shared.budgets.conftest import ROUTER, T0


def decision_at(tier: str, prompt_tokens: int = 1_000, max_tokens: int = 500) -> TierChoice:
    """A routing decision at `tier` (standard: $0.02, economy: $0.002 at the defaults)."""
    return TierChoice(
        tier=tier,
        reasons=(f"test: {tier}",),
        estimated_cost_usd=estimate_for(tier, prompt_tokens, max_tokens, ROUTER),
        model_by_region=models_for(tier, ROUTER),
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
    )


def usage(
    user: str,
    cost: float,
    *,
    tenant: str = "contoso",
    model: str = "big",
    time: float = T0,
    reservation_id: str | None = None,
    cached: bool = False,
) -> UsageRecord:
    """A usage record of `cost` USD."""
    return UsageRecord(
        principal=user,
        tenant=tenant,
        model=model,
        region="eastus",
        tier="standard",
        prompt_tokens=100,
        completion_tokens=50,
        cost_usd=cost,
        cached=cached,
        trace_id="0" * 32,
        reservation_id=reservation_id,
        time=time,
    )
