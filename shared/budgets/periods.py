"""Budget periods: UTC days and months, as the keys counters and ledger records carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")


def day_of(timestamp: float) -> str:
    """The UTC day of epoch seconds `timestamp`, as 2025-01-31."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def month_of(timestamp: float) -> str:
    """The UTC month of epoch seconds `timestamp`, as 2025-01."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m")


def period_key(period: Period, timestamp: float) -> str:
    """The key of the `period` that contains `timestamp`."""
    return day_of(timestamp) if period == "day" else month_of(timestamp)


def period_end(period: Period, timestamp: float) -> float:
    """When the `period` containing `timestamp` ends (epoch seconds): when its budget resets."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start.timestamp() + 86_400
    month_start = start.replace(day=1)
    if month_start.month == 12:
        return month_start.replace(year=month_start.year + 1, month=1).timestamp()
    return month_start.replace(month=month_start.month + 1).timestamp()
