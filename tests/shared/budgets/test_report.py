"""GET /api/budgets' report: the tenant's and its users' spend against their limits, today and
this month, read from the counters admission writes."""

from __future__ import annotations

from shared.budgets.counters import BudgetCounters, CounterKey, reserving, spending
from shared.budgets.policy import Scope, parse_budgets
from shared.budgets.report import budget_report
from tests.shared.budgets.conftest import T0

POLICY = parse_budgets(
    '{"tenant": {"daily_usd": 10, "monthly_usd": 100, "soft_ratio": 0.5},'
    ' "user": {"daily_usd": 2}, "overrides": {"user:bob": {"daily_usd": 4}}}'
)
DAY, MONTH = "2023-11-14", "2023-11"


async def test_lines_for_the_tenant_and_each_user_with_spend_against_limits(
    counters: BudgetCounters,
) -> None:
    contoso, alice = Scope("tenant", "contoso"), Scope("user", "contoso", "alice")
    await counters.update(CounterKey(contoso, "day", DAY), spending(2.5))
    await counters.update(CounterKey(alice, "day", DAY), spending(1.0))
    await counters.update(CounterKey(alice, "day", DAY), reserving("r1", 0.5, T0 + 60, 2.0))
    await counters.update(CounterKey(Scope("user", "contoso", "bob"), "day", DAY), spending(1.0))
    await counters.update(CounterKey(Scope("tenant", "fabrikam"), "day", DAY), spending(9.0))
    await counters.update(CounterKey(contoso, "day", "2023-11-13"), spending(9.0))  # yesterday

    report = await budget_report(counters, POLICY, "contoso", T0)

    assert (report["enabled"], report["day"], report["month"]) == (True, DAY, MONTH)
    lines = {(line["scope"], line["period"]): line for line in report["budgets"]}
    assert set(lines) == {
        ("tenant:contoso", "day"),
        ("tenant:contoso", "month"),  # no spend yet this month: a zero line
        ("user:contoso/alice", "day"),
        ("user:contoso/bob", "day"),
    }
    tenant_day = lines[("tenant:contoso", "day")]
    assert (tenant_day["spent_usd"], tenant_day["limit_usd"]) == (2.5, 10.0)
    assert (tenant_day["soft_limit_usd"], tenant_day["utilisation"]) == (5.0, 0.25)
    assert lines[("tenant:contoso", "month")]["spent_usd"] == 0.0
    alice_day = lines[("user:contoso/alice", "day")]
    assert (alice_day["reserved_usd"], alice_day["utilisation"]) == (0.5, 0.75)
    assert lines[("user:contoso/bob", "day")]["limit_usd"] == 4.0  # his override
    assert [line["kind"] for line in report["budgets"]][:2] == ["tenant", "tenant"]


async def test_without_budgets_the_report_says_so_and_limits_are_null(
    counters: BudgetCounters,
) -> None:
    report = await budget_report(counters, parse_budgets(""), "contoso", T0)
    assert report["enabled"] is False
    assert all(line["limit_usd"] is None for line in report["budgets"])
    assert all(line["utilisation"] is None for line in report["budgets"])
