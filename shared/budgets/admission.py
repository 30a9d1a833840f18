"""Admission: reserve a request's estimated cost against every budget before dispatch.

`admit` reads the caller's counters (user and tenant, day and month), steps the routing
decision down a tier when a soft threshold would be crossed, then reserves the estimate in each
counter, in a fixed order, each by compare-and-swap that re-checks the limit. If one counter
refuses, the reservations already taken are released. `settle` turns the reservation into the
actual cost once the call has finished (or 0 when it never reached a model).

Overspend bound: a reservation is admitted only when settled spend + live reservations + it
fit under the limit, so the admitted estimates of all instances together never pass a budget.
Spend can pass it only by what a request costs beyond its reservation: an estimate that was too
low (prompt tokens are counted with an approximating tokenizer), or a request that outlived its
reservation (`reservation_seconds`, which should exceed the chat deadline). A dead request's
reservation lapses after `reservation_seconds` and stops counting (lazy release on read; the
audit's sweep deletes it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from shared.budgets.counters import BudgetCounters, CounterKey
from shared.budgets.periods import PERIODS, period_end, period_key
from shared.budgets.policy import BudgetPolicy, Scope
from shared.routing.cost import Refusal, RouterOptions, TierChoice, step_down
from shared.security.principal import Principal

log = logging.getLogger(__name__)
WARNING_HEADER = "X-Budget-Warning"


@dataclass(frozen=True)
class BudgetOptions:
    """Budgets, and how long a reservation holds when its request never settles."""

    policy: BudgetPolicy
    reservation_seconds: float = 300.0


@dataclass(frozen=True)
class Limited:
    """One counter admission must respect: its key, hard limit and soft ratio."""

    key: CounterKey
    limit: float
    soft_ratio: float

    def describe(self) -> str:
        """ "tenant contoso daily" / "user alice monthly", for reasons and headers."""
        scope = self.key.scope
        who = f"tenant {scope.tenant}" if scope.kind == "tenant" else f"user {scope.user}"
        return f"{who} {'daily' if self.key.period == 'day' else 'monthly'}"


@dataclass(frozen=True)
class BudgetReservation:
    """Money held for one admitted request, in each of its counters."""

    id: str
    amount_usd: float
    expires: float
    keys: tuple[CounterKey, ...]
    decision: TierChoice
    warning: str | None = None  # the value of WARNING_HEADER, when a soft limit was crossed
    leases: tuple[str, ...] = ()  # the leases it was admitted from (shared/budgets/leases.py)


def scopes_of(principal: Principal) -> tuple[Scope, Scope]:
    """The budgets a request counts against: its tenant's and its user's."""
    return Scope("tenant", principal.tenant), Scope("user", principal.tenant, principal.user_id)


def limited_counters(principal: Principal, policy: BudgetPolicy, now: float) -> list[Limited]:
    """The caller's counters that have a limit, in id order (every instance locks alike)."""
    counters = []
    for scope in scopes_of(principal):
        limits = policy.limits(scope)
        for period in PERIODS:
            limit = limits.limit(period)
            if limit is not None:
                key = CounterKey(scope, period, period_key(period, now))
                counters.append(Limited(key, limit, limits.soft_ratio))
    return sorted(counters, key=lambda limited: limited.key.id)


def _percent(value: float, limit: float) -> str:
    """`value` as a share of `limit`, for people."""
    return f"{100 * value / limit:.0f}%" if limit else "100%"


def exceeded(limited: Limited, committed: float, amount: float, now: float) -> Refusal:
    """The refusal for a request that would pass a hard limit."""
    resets = period_end(limited.key.period, now)
    return Refusal(
        "budget_exceeded",
        f"the {limited.describe()} budget of ${limited.limit:.2f} is "
        f"{_percent(committed, limited.limit)} used (spent or reserved: ${committed:.4f}); "
        f"this request may cost ${amount:.4f}",
        {
            "scope": limited.key.scope.key,
            "period": limited.key.period,
            "resets_at": resets,
            "retry_after_seconds": max(1, int(resets - now)),
        },
    )


class BudgetGate:
    """Reserves before dispatch and settles after, against counters shared by all instances."""

    def __init__(
        self, counters: BudgetCounters, options: BudgetOptions, router: RouterOptions
    ) -> None:
        """Use `counters`; `router` prices a stepped-down tier."""
        self._counters = counters
        self._options = options
        self._router = router

    async def admit(
        self, principal: Principal, decision: TierChoice
    ) -> BudgetReservation | Refusal:
        """Reserve `decision`'s estimate in each budget, or refuse with the reason."""
        now = self._counters.now()
        limited = limited_counters(principal, self._options.policy, now)
        if not limited:
            return BudgetReservation(uuid.uuid4().hex, 0.0, now, (), decision)
        read = await asyncio.gather(*(self._counters.read(item.key) for item in limited))
        committed = [counter.committed_usd(now) for counter in read]
        decision, warning = self._soften_committed(decision, limited, committed, now)
        for item, counter in zip(limited, read, strict=True):
            committed = counter.committed_usd(now)
            if committed + decision.estimated_cost_usd > item.limit:
                return self._refuse(exceeded(item, committed, decision.estimated_cost_usd, now))
        return await self._reserve(decision, limited, warning, now)

    def _soften_committed(
        self, decision: TierChoice, limited: list[Limited], committed: list[float], now: float
    ) -> tuple[TierChoice, str | None]:
        """`decision` a tier cheaper when it would cross a soft limit, and the warning;
        `committed` is each counter's spent + reserved."""
        crossing = [
            (item, spent)
            for item, spent in zip(limited, committed, strict=True)
            if spent + decision.estimated_cost_usd > item.soft_ratio * item.limit
        ]
        if not crossing:
            return decision, None
        item, committed = max(crossing, key=lambda pair: pair[1] / pair[0].limit)
        used = _percent(committed, item.limit)
        warning = f"{item.key.scope.key} {item.key.period} {used} of ${item.limit:.2f}"
        reason = f"{item.describe()} budget {used} used (soft limit {item.soft_ratio:.0%})"
        cheaper = step_down(decision, reason, self._router)
        return (cheaper or decision), warning

    async def _reserve(
        self, decision: TierChoice, limited: list[Limited], warning: str | None, now: float
    ) -> BudgetReservation | Refusal:
        """Hold the estimate in every counter in order; on a refusal release what was held."""
        reservation = BudgetReservation(
            id=uuid.uuid4().hex,
            amount_usd=decision.estimated_cost_usd,
            expires=now + self._options.reservation_seconds,
            keys=tuple(item.key for item in limited),
            decision=decision,
            warning=warning,
        )
        held: list[CounterKey] = []
        try:
            for item in limited:
                counter = await self._counters.reserve(
                    item.key,
                    reservation.id,
                    reservation.amount_usd,
                    reservation.expires,
                    item.limit,
                )
                if counter is None:
                    await self._release(reservation.id, held)
                    latest = await self._counters.read(item.key)
                    committed = latest.committed_usd(self._counters.now())
                    return self._refuse(exceeded(item, committed, reservation.amount_usd, now))
                held.append(item.key)
        except BaseException:
            # Lost races or a store failure: hand back what was held (it would lapse anyway).
            await asyncio.shield(self._release(reservation.id, held))
            raise
        return reservation

    async def settle(self, reservation: BudgetReservation, actual_cost_usd: float) -> None:
        """Replace the reservation by what the request really cost (0: it never ran)."""
        await asyncio.gather(
            *(
                self._counters.settle(key, reservation.id, actual_cost_usd)
                for key in reservation.keys
            )
        )

    async def release(self, reservation: BudgetReservation) -> None:
        """Give the reservation back without spend (the request failed before any model)."""
        await self._release(reservation.id, list(reservation.keys))

    async def _release(self, reservation_id: str, keys: list[CounterKey]) -> None:
        """Drop the reservation from `keys`; failures are logged (the reservation lapses)."""
        for key in keys:
            try:
                await self._counters.release(key, reservation_id)
            except Exception:  # it lapses after reservation_seconds: never fail the caller here
                log.warning(
                    "budget: releasing %s on %s failed", reservation_id, key.id, exc_info=True
                )

    def _refuse(self, refusal: Refusal) -> Refusal:
        """Log and return a budget refusal."""
        log.info(
            "budget refused: %s",
            refusal.reason,
            extra={
                "budget_refusal": refusal.code,
                "budget_reason": refusal.reason,
                **{f"budget_{name}": value for name, value in refusal.extra.items()},
            },
        )
        return refusal
