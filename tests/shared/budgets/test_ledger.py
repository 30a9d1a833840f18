"""The usage ledger on the Cosmos emulator: one record per request, totals summed in Python."""

from __future__ import annotations

import pytest

from shared.budgets.ledger import UsageLedger
from tests.shared.budgets.conftest import T0
from tests.shared.budgets.helpers import usage

pytestmark = pytest.mark.emulators
DAY = 86_400


async def test_record_stores_every_field_and_stamps_the_time(ledger: UsageLedger) -> None:
    stored = await ledger.record(usage("alice", 0.01, time=0.0, cached=True))
    assert stored.time == T0  # the ledger's clock
    (record,) = await ledger.records("contoso")
    assert record == stored
    assert (record.day, record.month) == ("2023-11-14", "2023-11")


async def test_totals_per_user_model_day_and_month(ledger: UsageLedger) -> None:
    for record in (
        usage("alice", 0.10),
        usage("alice", 0.05, model="mini", cached=True),
        usage("bob", 0.20),
        usage("bob", 0.40, time=T0 + DAY),  # the next day, same month
        usage("alice", 1.00, time=T0 + 20 * DAY),  # next month
        usage("eve", 9.00, tenant="fabrikam"),  # another tenant: never counted
    ):
        await ledger.record(record)

    month = await ledger.totals("contoso", month="2023-11")
    assert month.total.cost_usd == pytest.approx(0.75)
    assert (month.total.requests, month.total.cached) == (4, 1)
    assert month.total.prompt_tokens == 400
    assert month.by_user["alice"].cost_usd == pytest.approx(0.15)
    assert month.by_user["bob"].cost_usd == pytest.approx(0.60)
    assert month.by_model["mini"].cost_usd == pytest.approx(0.05)
    assert month.by_day["2023-11-14"].cost_usd == pytest.approx(0.35)
    assert month.by_day["2023-11-15"].cost_usd == pytest.approx(0.40)
    assert set(month.by_month) == {"2023-11"}

    day = await ledger.totals("contoso", day="2023-11-14")
    assert day.total.cost_usd == pytest.approx(0.35)
    bob = await ledger.totals("contoso", user="bob", month="2023-11")
    assert bob.total.cost_usd == pytest.approx(0.60) and set(bob.by_user) == {"bob"}
    big = await ledger.totals("contoso", model="big", day="2023-11-14")
    assert big.total.cost_usd == pytest.approx(0.30)
    everything = await ledger.totals("contoso")
    assert set(everything.by_month) == {"2023-11", "2023-12"}
    assert everything.total.cost_usd == pytest.approx(1.75)
