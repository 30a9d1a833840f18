"""Admission on the Cosmos emulator: reserve, settle, soft and hard limits, lapsed reservations."""

from __future__ import annotations

import json

import pytest

from shared.budgets.admission import BudgetGate, BudgetOptions, BudgetReservation, limited_counters
from shared.budgets.counters import BudgetCounters, Counter, CounterKey, spending
from shared.budgets.policy import Scope, parse_budgets
from shared.problems import status_of
from shared.routing.cost import Refusal
from shared.security.principal import Principal
from tests.shared.budgets.conftest import ROUTER, FakeClock
from tests.shared.budgets.helpers import decision_at

pytestmark = pytest.mark.emulators

ALICE = Principal("alice", "contoso")
POLICY = parse_budgets(
    json.dumps(
        {
            "tenant": {"daily_usd": 1.0, "monthly_usd": 10.0, "soft_ratio": 0.8},
            "user": {"daily_usd": 0.5, "monthly_usd": 5.0, "soft_ratio": 0.8},
        }
    )
)
TENANT_DAY = CounterKey(Scope("tenant", "contoso"), "day", "2023-11-14")
USER_DAY = CounterKey(Scope("user", "contoso", "alice"), "day", "2023-11-14")


def gate(
    counters: BudgetCounters, policy_text: str | None = None, seconds: float = 60
) -> BudgetGate:
    """A gate over `counters` with POLICY (or the given BUDGETS text)."""
    policy = POLICY if policy_text is None else parse_budgets(policy_text)
    return BudgetGate(counters, BudgetOptions(policy, reservation_seconds=seconds), ROUTER)


def admitted(outcome: BudgetReservation | Refusal) -> BudgetReservation:
    """The reservation, failing the test on a refusal."""
    assert isinstance(outcome, BudgetReservation), outcome
    return outcome


async def test_admit_reserves_in_every_counter_and_settle_turns_it_into_spend(
    counters: BudgetCounters, clock: FakeClock
) -> None:
    reservation = admitted(await gate(counters).admit(ALICE, decision_at("standard")))
    assert reservation.amount_usd == pytest.approx(0.02)
    assert reservation.warning is None and reservation.decision.tier == "standard"
    assert len(reservation.keys) == 4
    assert reservation.expires == clock.now + 60
    for key in reservation.keys:
        counter = await counters.read(key)
        assert counter.reservations[reservation.id].usd == pytest.approx(0.02)

    await gate(counters).settle(reservation, 0.013)
    for key in reservation.keys:
        counter = await counters.read(key)
        assert counter.spent_usd == pytest.approx(0.013) and counter.reservations == {}


async def test_release_gives_the_reservation_back_without_spend(counters: BudgetCounters) -> None:
    reservation = admitted(await gate(counters).admit(ALICE, decision_at("standard")))
    await gate(counters).release(reservation)
    counter = await counters.read(TENANT_DAY)
    assert (counter.spent_usd, counter.reservations) == (0.0, {})


async def test_soft_threshold_steps_down_a_tier_and_warns(counters: BudgetCounters) -> None:
    await counters.update(TENANT_DAY, spending(0.79))
    reservation = admitted(await gate(counters).admit(ALICE, decision_at("standard")))
    assert reservation.decision.tier == "economy"
    assert reservation.decision.stepped_down_from == "standard"
    assert reservation.amount_usd == pytest.approx(0.002)
    assert reservation.warning == "tenant:contoso day 79% of $1.00"
    assert reservation.decision.reasons[-1] == (
        "tenant contoso daily budget 79% used (soft limit 80%)"
    )


async def test_hard_limit_refuses_with_a_clear_reason(counters: BudgetCounters) -> None:
    await counters.update(USER_DAY, spending(0.4995))
    refusal = await gate(counters).admit(ALICE, decision_at("standard"))
    assert isinstance(refusal, Refusal)
    assert (refusal.code, status_of(refusal)) == ("budget_exceeded", 403)
    assert refusal.reason == (
        "the user alice daily budget of $0.50 is 100% used (spent or reserved: $0.4995); "
        "this request may cost $0.0020"
    )
    assert refusal.extra["scope"] == "user:contoso/alice"
    assert 0 < refusal.extra["retry_after_seconds"] <= 86_400
    assert (await counters.read(TENANT_DAY)).reservations == {}  # nothing was held


async def test_a_counter_refusing_at_reservation_releases_those_already_held(
    budget_store: object, clock: FakeClock
) -> None:
    class Racing(BudgetCounters):
        """Another instance fills the user's day between admission's read and its write."""

        async def reserve(self, key: CounterKey, *args: object) -> Counter | None:
            if key == USER_DAY:
                await self.update(key, spending(0.5))
            return await super().reserve(key, *args)  # type: ignore[arg-type]

    counters = Racing(budget_store, clock=clock)  # type: ignore[arg-type]
    refusal = await gate(counters).admit(ALICE, decision_at("economy"))
    assert isinstance(refusal, Refusal) and refusal.extra["scope"] == "user:contoso/alice"
    for limited in limited_counters(ALICE, POLICY, clock.now):
        assert (await counters.read(limited.key)).reservations == {}


async def test_lapsed_reservations_stop_counting_and_are_released_on_write(
    counters: BudgetCounters, clock: FakeClock
) -> None:
    tight = json.dumps({"tenant": {"daily_usd": 0.005}})  # two economy requests ($0.002)
    first = admitted(await gate(counters, tight).admit(ALICE, decision_at("economy")))
    admitted(await gate(counters, tight).admit(ALICE, decision_at("economy")))
    assert isinstance(await gate(counters, tight).admit(ALICE, decision_at("economy")), Refusal)

    clock.now += 61  # both requests died without settling
    third = admitted(await gate(counters, tight).admit(ALICE, decision_at("economy")))
    counter = await counters.read(first.keys[0])
    assert list(counter.reservations) == [third.id]  # the lapsed ones were dropped by the write


async def test_sweep_releases_lapsed_reservations_everywhere(
    counters: BudgetCounters, clock: FakeClock
) -> None:
    dead = admitted(await gate(counters).admit(ALICE, decision_at("standard")))
    clock.now += 30
    alive = admitted(await gate(counters).admit(ALICE, decision_at("standard")))
    clock.now += 31  # dead has lapsed, alive has not
    assert await counters.sweep() == 4
    for key in dead.keys:
        assert list((await counters.read(key)).reservations) == [alive.id]
    assert await counters.sweep() == 0


async def test_a_late_settle_still_counts_the_money_spent(
    counters: BudgetCounters, clock: FakeClock
) -> None:
    reservation = admitted(await gate(counters).admit(ALICE, decision_at("standard")))
    clock.now += 61
    await counters.sweep()
    await gate(counters).settle(reservation, 0.015)
    assert (await counters.read(TENANT_DAY)).spent_usd == pytest.approx(0.015)


async def test_no_budget_means_no_counter_io(counters: BudgetCounters) -> None:
    reservation = admitted(await gate(counters, "").admit(ALICE, decision_at("premium")))
    assert reservation.keys == ()
    await gate(counters, "").settle(reservation, 1.0)
    assert await counters.all() == []
