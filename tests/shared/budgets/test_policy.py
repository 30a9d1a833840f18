"""The BUDGETS setting: limits per scope kind, overrides over the defaults, clear errors."""

from __future__ import annotations

import json

import pytest

from shared.budgets.periods import day_of, month_of, period_end
from shared.budgets.policy import Limits, Scope, parse_budgets
from tests.shared.budgets.conftest import T0

DOCUMENT = {
    "tenant": {"daily_usd": 50, "monthly_usd": 1000, "soft_ratio": 0.8},
    "user": {"daily_usd": 5, "monthly_usd": 60},
    "overrides": {"tenant:contoso": {"daily_usd": 200}, "user:alice": {"monthly_usd": None}},
}


def test_defaults_and_overrides_merge_field_by_field() -> None:
    policy = parse_budgets(json.dumps(DOCUMENT))
    assert policy.limits(Scope("tenant", "fabrikam")) == Limits(50, 1000, 0.8)
    assert policy.limits(Scope("tenant", "contoso")) == Limits(200, 1000, 0.8)
    assert policy.limits(Scope("user", "contoso", "bob")) == Limits(5, 60, 0.8)
    assert policy.limits(Scope("user", "contoso", "alice")) == Limits(5, None, 0.8)
    assert not policy.unlimited


def test_empty_setting_means_no_budgets() -> None:
    policy = parse_budgets("")
    assert policy.unlimited
    assert policy.limits(Scope("tenant", "contoso")).limit("day") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[1]", "must be a JSON object"),
        ('{"team": {}}', "unknown top-level fields ['team']"),
        ('{"tenant": {"daily": 5}}', "tenant: unknown fields ['daily']"),
        ('{"tenant": {"daily_usd": -1}}', "tenant.daily_usd must be >= 0"),
        ('{"user": {"monthly_usd": "10"}}', "user.monthly_usd must be a number or null"),
        ('{"user": {"soft_ratio": 1.5}}', "user.soft_ratio must be a number in (0, 1]"),
        ('{"overrides": {"alice": {}}}', "override key 'alice' must be \"tenant:<id>\""),
        ('{"overrides": {"user:a": {"daily_usd": true}}}', "overrides.user:a.daily_usd"),
    ],
)
def test_errors_say_what_is_wrong(document: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_budgets(document)
    assert message in str(error.value)


def test_scope_keys_separate_tenants_and_ids_are_cosmos_safe() -> None:
    alice = Scope("user", "contoso", "alice/x")
    assert alice.key == "user:contoso/alice/x"
    assert alice.override_key == "user:alice/x"
    assert "/" not in alice.counter_id("day", "2023-11-14")


def test_periods_are_utc_days_and_months() -> None:
    assert (day_of(T0), month_of(T0)) == ("2023-11-14", "2023-11")
    assert day_of(period_end("day", T0)) == "2023-11-15"
    assert day_of(period_end("month", T0)) == "2023-12-01"
    assert day_of(period_end("month", 1_702_000_000.0 + 30 * 86_400)) == "2024-02-01"
