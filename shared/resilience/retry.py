"""Retry building blocks: deadlines, server-sent Retry-After hints, caps and jittered backoff.

Shared by the LLM region router and the ingestion activities' calls to Azure AI services, so
every retry loop in docgate reads hints and spends time budgets the same way.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]

# Millisecond hints are more precise than Retry-After's whole seconds, so they win when present.
_MS_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms")
# 2**60 is already far beyond any cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 60


class Deadline:
    """A fixed point in monotonic time by which a piece of work must be finished."""

    def __init__(self, total_seconds: float, *, clock: Clock = time.monotonic) -> None:
        """Start a budget of `total_seconds` now."""
        self._clock = clock
        self.total_seconds = max(0.0, total_seconds)
        self.expires_at = clock() + self.total_seconds

    @classmethod
    def from_budget(
        cls,
        budget_seconds: float,
        client_seconds: float | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> Deadline:
        """The server's budget, lowered (never raised) by a client's own positive deadline."""
        total = budget_seconds
        if client_seconds is not None and math.isfinite(client_seconds) and client_seconds > 0:
            total = min(total, client_seconds)
        return cls(total, clock=clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - self._clock())

    @property
    def expired(self) -> bool:
        """Whether no time is left."""
        return self.remaining() <= 0.0

    def can_fit(self, seconds: float) -> bool:
        """Whether work needing `seconds` can still finish before the deadline."""
        return not self.expired and self.remaining() >= seconds

    def __repr__(self) -> str:
        """Shows the remaining time, which is what a log reader wants."""
        return f"Deadline(remaining={self.remaining():.3f}s of {self.total_seconds:.3f}s)"


def _lowered(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased (HTTP names are case-insensitive; plain dicts are not)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {str(name).lower(): str(value).strip() for name, value in pairs}


def _finite_non_negative(value: float) -> float | None:
    """`value` clamped at zero; None for NaN. An infinite wait stays infinite: `cap` bounds it."""
    return None if math.isnan(value) else max(0.0, value)


def _milliseconds(text: str) -> float | None:
    """A millisecond hint in seconds, or None when it is not a number."""
    try:
        seconds = float(text) / 1000.0
    except ValueError:
        return None
    return _finite_non_negative(seconds)


def _retry_after(text: str, now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date, in seconds from `now` (epoch)."""
    try:
        return _finite_non_negative(float(text))
    except ValueError:
        pass  # not a number: RFC 9110 also allows an HTTP-date
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        return None
    return max(0.0, when.timestamp() - now)


def parse_retry_after(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], *, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait (retry-after-ms, x-ms-retry-after-ms, Retry-After).

    Returns None when no header is present or none parses. `now` (epoch seconds) resolves an
    HTTP-date; it defaults to the wall clock. The result is not capped: see `cap`.
    """
    lowered = _lowered(headers)
    for name in _MS_HEADERS:
        if name in lowered and (seconds := _milliseconds(lowered[name])) is not None:
            return seconds
    if "retry-after" in lowered:
        return _retry_after(lowered["retry-after"], time.time() if now is None else now)
    return None


def cap(value: float, maximum: float) -> float:
    """`value` limited to [0, maximum]; a NaN becomes the maximum (the safe, longer wait)."""
    if math.isnan(value):
        return maximum
    return min(max(0.0, value), maximum)


def full_jitter_backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """AWS "full jitter": uniform in [0, min(cap, base * 2**attempt)], attempt counted from 0."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    return rng.uniform(0.0, max(0.0, ceiling))
