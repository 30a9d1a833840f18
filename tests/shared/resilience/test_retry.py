"""Deadlines, Retry-After parsing, caps and full-jitter backoff."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from shared.resilience.retry import Deadline, cap, full_jitter_backoff, parse_retry_after


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_deadline_counts_down_and_expires() -> None:
    clock = FakeClock()
    deadline = Deadline(10.0, clock=clock)
    assert deadline.remaining() == 10.0 and not deadline.expired
    clock.now += 7.5
    assert deadline.remaining() == 2.5
    assert deadline.can_fit(2.5) and not deadline.can_fit(2.6)
    clock.now += 5
    assert deadline.remaining() == 0.0 and deadline.expired and not deadline.can_fit(0.0)


@pytest.mark.parametrize(
    ("client", "expected"),
    [(None, 60.0), (5.0, 5.0), (600.0, 60.0), (0.0, 60.0), (-3.0, 60.0), (math.nan, 60.0)],
)
def test_deadline_from_budget_is_only_lowered_by_the_client(
    client: float | None, expected: float
) -> None:
    deadline = Deadline.from_budget(60.0, client, clock=FakeClock())
    assert deadline.remaining() == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"x-ms-retry-after-ms": "1200"}, 1.2),
        ({"Retry-After": "7", "Retry-After-Ms": "6500"}, 6.5),  # the precise hint wins
        ({"retry-after-ms": "soon", "Retry-After": "3"}, 3.0),  # a bad ms hint falls back
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "86400"}, 86400.0),  # not capped here: cap() does that
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "later"}, None),
        ({"Content-Type": "application/json"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2025, 3, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    earlier = format_datetime(datetime(2025, 3, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"Retry-After": later}, now=now) == 30.0
    assert parse_retry_after({"Retry-After": earlier}, now=now) == 0.0


def test_parse_retry_after_accepts_header_pairs() -> None:
    assert parse_retry_after([("RETRY-AFTER-MS", "10")]) == 0.01


@pytest.mark.parametrize(
    ("value", "expected"), [(5.0, 5.0), (86400.0, 30.0), (-1.0, 0.0), (math.nan, 30.0)]
)
def test_cap(value: float, expected: float) -> None:
    assert cap(value, 30.0) == expected


def test_full_jitter_stays_within_the_exponential_ceiling_and_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(10.0, 0.5 * 2**attempt)
        samples = [full_jitter_backoff(attempt, 0.5, 10.0, rng) for _ in range(500)]
        assert all(0.0 <= sample <= ceiling for sample in samples)
        assert max(samples) > 0.8 * ceiling  # full jitter spans the whole range


def test_full_jitter_is_reproducible_and_survives_huge_attempts() -> None:
    first = [full_jitter_backoff(n, 1.0, 20.0, random.Random(3)) for n in range(5)]
    second = [full_jitter_backoff(n, 1.0, 20.0, random.Random(3)) for n in range(5)]
    assert first == second
    assert 0.0 <= full_jitter_backoff(10_000, 1.0, 20.0, random.Random(1)) <= 20.0
    assert full_jitter_backoff(-1, 1.0, 20.0, random.Random(1)) <= 1.0
