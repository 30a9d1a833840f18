"""Leased slices of rate-limit buckets: what one instance took early and admits from locally.

With slices on, an instance that has no slice of a bucket (or too little) renews its lease
with ONE conditional write on the bucket item: it takes several requests' worth at once (a
share of the per-minute limit) and records the lease in the item; the next requests are
admitted from memory, with no round trip, until the slice is spent or its lease ends.
Token settlements (actual minus estimated) are applied to the slice, also in memory.

Why the limit stays exact: the bucket's refill stops at capacity minus the live leases
(shared/resilience/ratelimit_buckets.py), so level + leases never exceeds capacity and a
slice is only tokens taken early, never extra tokens. A holder stops using its slice
`margin_seconds` before the lease expires, so another instance whose clock is up to that much
ahead never counts it as expired while it is still in use. Worst-case overshoot: none, for
clock skew below the margin.

Under-admission: a slice sitting idle in one instance is unavailable to the others until it is
spent, folded into that instance's next lease, or its lease expires (`seconds`): at most
(instances - 1) x slice for at most `seconds`. A refused request of an instance gives
nothing back to other instances' slices; once the level and every live slice are empty, each
instance refuses. Slices suit buckets that many requests share (tenant buckets, busy users);
`fraction` 0 turns them off (one conditional write per bucket and request, exact and idle-free).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.resilience.ratelimit_buckets import Cost, Lease, Limit


@dataclass(frozen=True)
class SliceOptions:
    """How big a slice is and how long its lease lasts."""

    fraction: float = 0.1  # a slice is this share of the bucket's per-minute requests (>= 1)
    seconds: float = 5.0  # how long a lease lasts
    margin_seconds: float = 1.0  # stop using a slice this long before its lease expires

    def __post_init__(self) -> None:
        """Reject options that cannot work."""
        if not 0 < self.fraction <= 1:
            raise ValueError("the slice fraction must be in (0, 1]")
        if self.margin_seconds < 0 or self.seconds <= self.margin_seconds:
            raise ValueError("a lease must last longer than its safety margin")

    def want(self, limit: Limit, cost: Cost) -> Cost:
        """The slice to lease for requests like `cost`: `fraction` of a minute's requests,
        and as many tokens as that many such requests estimate (never past capacity)."""
        count = max(1, math.floor(self.fraction * limit.rpm))
        return Cost(min(limit.rpm, count * cost.requests), min(limit.tpm, count * cost.tokens))


@dataclass
class Slice:
    """What this instance still holds of its lease on one bucket (tokens may be a debt)."""

    requests: float
    tokens: float
    usable_until: float

    @classmethod
    def of(cls, lease: Lease, cost: Cost, margin_seconds: float) -> Slice:
        """The slice a fresh lease gives, with `cost` already taken from it."""
        return cls(
            lease.requests - cost.requests,
            lease.tokens - cost.tokens,
            lease.expires - margin_seconds,
        )

    def take(self, cost: Cost, now: float) -> bool:
        """Take `cost` locally when the slice covers it and is still usable."""
        if now >= self.usable_until or self.requests < cost.requests or self.tokens < cost.tokens:
            return False
        self.requests -= cost.requests
        self.tokens -= cost.tokens
        return True

    def give(self, requests: float, tokens: float) -> None:
        """Give back (or, negative, charge) an amount; folded into the next lease write."""
        self.requests += requests
        self.tokens += tokens

    @property
    def held(self) -> tuple[float, float]:
        """(requests, tokens) still held."""
        return self.requests, self.tokens


__all__ = ["Slice", "SliceOptions"]
