"""Token-bucket arithmetic for the rate limiter: pure functions of (state, limit, now).

One bucket item holds two levels that refill continuously: requests (capacity `rpm`, refilling
rpm/60 per second) and tokens (capacity `tpm`, refilling tpm/60 per second). Keeping both in
one item makes a request+tokens reservation a single atomic write.

A missing item is a full bucket. The tokens level may go negative: settle() charges tokens used
beyond the estimate after the fact, and that debt is repaid by refill before the next admission.

Times are wall-clock epoch seconds because instances compare them. When this instance's clock is
behind the stored `at`, elapsed time counts as zero and `at` never moves back, so clock skew can
only delay refill by the skew, never refill twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

SECONDS_PER_MINUTE = 60.0

Refusal = Literal["requests", "tokens", "too_large"]


@dataclass(frozen=True)
class Limit:
    """Requests and tokens per minute; each is also the bucket's capacity (its burst)."""

    rpm: int
    tpm: int

    def __post_init__(self) -> None:
        """Reject limits the arithmetic cannot honour (a zero rate never refills)."""
        if self.rpm <= 0 or self.tpm <= 0:
            raise ValueError(f"rpm and tpm must be positive, got {self.rpm}/{self.tpm}")

    @property
    def requests_per_second(self) -> float:
        """Refill rate of the requests level."""
        return self.rpm / SECONDS_PER_MINUTE

    @property
    def tokens_per_second(self) -> float:
        """Refill rate of the tokens level."""
        return self.tpm / SECONDS_PER_MINUTE

    def widest(self, other: Limit) -> Limit:
        """The larger of each dimension (a principal with several roles gets the widest)."""
        return Limit(max(self.rpm, other.rpm), max(self.tpm, other.tpm))


@dataclass(frozen=True)
class Cost:
    """What one admission takes from a bucket."""

    requests: int
    tokens: int


@dataclass(frozen=True)
class BucketState:
    """The stored levels of one bucket item as of `at` (epoch seconds)."""

    id: str
    requests: float
    tokens: float
    at: float

    @classmethod
    def full(cls, bucket_id: str, limit: Limit, now: float) -> BucketState:
        """A bucket nobody has used yet (what a missing item means)."""
        return cls(bucket_id, float(limit.rpm), float(limit.tpm), now)

    def to_item(self) -> dict[str, Any]:
        """The Cosmos item (id is the partition key)."""
        return {"id": self.id, "requests": self.requests, "tokens": self.tokens, "at": self.at}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> BucketState:
        """Read back what `to_item` wrote, ignoring Cosmos system fields."""
        return cls(item["id"], float(item["requests"]), float(item["tokens"]), float(item["at"]))


def refill(state: BucketState, limit: Limit, now: float) -> BucketState:
    """The levels at `now`: grown by the elapsed time, capped at capacity."""
    elapsed = max(0.0, now - state.at)
    return replace(
        state,
        requests=min(float(limit.rpm), state.requests + elapsed * limit.requests_per_second),
        tokens=min(float(limit.tpm), state.tokens + elapsed * limit.tokens_per_second),
        at=max(state.at, now),
    )


def refusal(state: BucketState, limit: Limit, cost: Cost, now: float) -> Refusal | None:
    """Why `cost` cannot be taken at `now` (None when it can)."""
    if cost.requests > limit.rpm or cost.tokens > limit.tpm:
        return "too_large"
    level = refill(state, limit, now)
    if level.requests < cost.requests:
        return "requests"
    if level.tokens < cost.tokens:
        return "tokens"
    return None


def take(state: BucketState, limit: Limit, cost: Cost, now: float) -> BucketState | None:
    """The bucket with `cost` taken at `now`, or None when it does not hold enough."""
    if refusal(state, limit, cost, now) is not None:
        return None
    level = refill(state, limit, now)
    return replace(
        level, requests=level.requests - cost.requests, tokens=level.tokens - cost.tokens
    )


def adjust(
    state: BucketState, limit: Limit, requests: float, tokens: float, now: float
) -> BucketState:
    """The bucket with levels moved by (+give back / -charge), capped at capacity, never refused."""
    level = refill(state, limit, now)
    return replace(
        level,
        requests=min(float(limit.rpm), level.requests + requests),
        tokens=min(float(limit.tpm), level.tokens + tokens),
    )


def wait_seconds(state: BucketState, limit: Limit, cost: Cost, now: float) -> float:
    """Seconds until the bucket holds `cost` (0 now, inf when `cost` exceeds the capacity)."""
    if cost.requests > limit.rpm or cost.tokens > limit.tpm:
        return math.inf
    level = refill(state, limit, now)
    missing_requests = max(0.0, cost.requests - level.requests)
    missing_tokens = max(0.0, cost.tokens - level.tokens)
    return max(
        missing_requests / limit.requests_per_second, missing_tokens / limit.tokens_per_second
    )


def full_in(state: BucketState, limit: Limit, now: float) -> float:
    """Seconds until both levels are back at capacity."""
    level = refill(state, limit, now)
    return max(
        (limit.rpm - level.requests) / limit.requests_per_second,
        (limit.tpm - level.tokens) / limit.tokens_per_second,
    )
