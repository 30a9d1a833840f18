"""Token-bucket arithmetic for the rate limiter: pure functions of (state, limit, now).

One bucket item holds two levels that refill continuously: requests (capacity `rpm`, refilling
rpm/60 per second) and tokens (capacity `tpm`, refilling tpm/60 per second). Keeping both in
one item makes a request+tokens reservation a single atomic write.

A missing item is a full bucket. The tokens level may go negative: settle() charges tokens used
beyond the estimate after the fact, and that debt is repaid by refill before the next admission.

Times are wall-clock epoch seconds because instances compare them. When this instance's clock is
behind the stored `at`, elapsed time counts as zero and `at` never moves back, so clock skew can
only delay refill by the skew, never refill twice.

Leases (see shared/resilience/ratelimit.py, "slices"): an instance may take several requests'
worth at once and admit locally from it. The item then records that holder's lease (what it
holds in all, and until when), and refill stops at capacity minus the live leases, so
level + live leases never exceeds capacity: a lease is tokens taken early, never extra tokens.
An expired lease stops counting (its holder stops using it before then).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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
class Lease:
    """What one holder (an instance) took early and may admit from until `expires`."""

    requests: float
    tokens: float
    expires: float


@dataclass(frozen=True)
class BucketState:
    """The stored levels of one bucket item as of `at` (epoch seconds), and its leases."""

    id: str
    requests: float
    tokens: float
    at: float
    leases: Mapping[str, Lease] = field(default_factory=dict)  # holder -> lease

    @classmethod
    def full(cls, bucket_id: str, limit: Limit, now: float) -> BucketState:
        """A bucket nobody has used yet (what a missing item means)."""
        return cls(bucket_id, float(limit.rpm), float(limit.tpm), now)

    def live(self, now: float) -> dict[str, Lease]:
        """The leases that have not expired at `now`."""
        return {holder: lease for holder, lease in self.leases.items() if lease.expires > now}

    def to_item(self) -> dict[str, Any]:
        """The Cosmos item (id is the partition key); `leases` only when there are some."""
        item: dict[str, Any] = {
            "id": self.id, "requests": self.requests, "tokens": self.tokens, "at": self.at
        }  # fmt: skip
        if self.leases:
            item["leases"] = {
                holder: {"requests": each.requests, "tokens": each.tokens, "expires": each.expires}
                for holder, each in self.leases.items()
            }
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> BucketState:
        """Read back what `to_item` wrote, ignoring Cosmos system fields."""
        leases = {
            holder: Lease(float(raw["requests"]), float(raw["tokens"]), float(raw["expires"]))
            for holder, raw in (item.get("leases") or {}).items()
        }
        return cls(
            item["id"], float(item["requests"]), float(item["tokens"]), float(item["at"]), leases
        )


def _leased(leases: Mapping[str, Lease]) -> tuple[float, float]:
    """Requests and tokens held by `leases` (a token debt holds nothing)."""
    requests = sum(lease.requests for lease in leases.values())
    return requests, sum(max(0.0, lease.tokens) for lease in leases.values())


def refill(state: BucketState, limit: Limit, now: float) -> BucketState:
    """The levels at `now`: grown by the elapsed time, capped at capacity minus live leases
    (expired leases are dropped)."""
    elapsed = max(0.0, now - state.at)
    live = state.live(now) if state.leases else {}
    leased_requests, leased_tokens = _leased(live)
    return replace(
        state,
        requests=min(
            limit.rpm - leased_requests, state.requests + elapsed * limit.requests_per_second
        ),
        tokens=min(limit.tpm - leased_tokens, state.tokens + elapsed * limit.tokens_per_second),
        at=max(state.at, now),
        leases=live if len(live) != len(state.leases) else state.leases,
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
    """The bucket with levels moved by (+give back / -charge), capped at capacity (minus live
    leases), never refused."""
    level = refill(state, limit, now)
    leased_requests, leased_tokens = _leased(level.leases)
    return replace(
        level,
        requests=min(limit.rpm - leased_requests, level.requests + requests),
        tokens=min(limit.tpm - leased_tokens, level.tokens + tokens),
    )


def leasing(
    limit: Limit,
    holder: str,
    held: tuple[float, float],
    cost: Cost,
    want: Cost,
    expires: float,
) -> Callable[[BucketState, float], BucketState | None]:
    """A transition renewing `holder`'s lease until `expires` so that it covers `cost`.

    `held` is what the holder still has of its lease (requests, tokens; tokens may be a debt).
    It stays the holder's only while its lease is live in the item; an expired lease's rest is
    forfeit, a debt never is. The grant taken from the level tops `held` up to `want` (or to
    what the level has), and at least to `cost`; None (write nothing) when it cannot.
    """

    def apply(current: BucketState, now: float) -> BucketState | None:
        level = refill(current, limit, now)
        mine = holder in level.leases
        held_requests = held[0] if mine else 0.0
        held_tokens = held[1] if mine else min(0.0, held[1])
        need_requests = cost.requests - held_requests
        need_tokens = cost.tokens - held_tokens
        if level.requests < need_requests or level.tokens < need_tokens:
            return None
        grant_requests = max(need_requests, min(want.requests - held_requests, level.requests))
        grant_tokens = max(need_tokens, min(want.tokens - held_tokens, level.tokens))
        grant_requests, grant_tokens = max(0.0, grant_requests), max(0.0, grant_tokens)
        lease = Lease(held_requests + grant_requests, held_tokens + grant_tokens, expires)
        return replace(
            level,
            requests=level.requests - grant_requests,
            tokens=level.tokens - grant_tokens,
            leases={**level.leases, holder: lease},
        )

    return apply


def returning(holder: str, held: tuple[float, float], limit: Limit) -> Callable[
    [BucketState, float], BucketState
]:  # fmt: skip
    """A transition ending `holder`'s lease: its unused rest goes back to the level (a debt is
    charged). When the lease already expired, only a debt is charged."""

    def apply(current: BucketState, now: float) -> BucketState:
        level = refill(current, limit, now)
        mine = holder in level.leases
        requests = held[0] if mine else 0.0
        tokens = held[1] if mine else min(0.0, held[1])
        rest = {name: lease for name, lease in level.leases.items() if name != holder}
        return adjust(replace(level, leases=rest), limit, requests, tokens, now)

    return apply


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
