"""Requests- and tokens-per-minute admission shared by every instance, reserved before the call.

Each principal is limited by two buckets: its user's (limits from its role) and its tenant's.
Each bucket is one Cosmos item holding both levels (requests and tokens), so one conditional
write reserves a request and its estimated tokens together.

Multi-bucket admission (user, then tenant: a fixed order) never leaves a partial reservation:
1. if this instance's cached copy of the tenant bucket predicts a refusal, the tenant item is
   re-read and, when it really refuses, the request is refused with nothing written;
2. otherwise each bucket is taken in order by compare-and-swap on its ETag (after a conflict:
   a jittered pause of at most 50 ms, a re-read and another try; at most `max_attempts`);
3. when a later bucket refuses, what the earlier ones gave is given back before returning.
Between 2 and 3 the user's reservation is briefly held: a concurrent request of the same user
may be refused that it would otherwise get. That errs towards under-admission only; the limit
is never exceeded, because every take is a CAS that checks the level it replaces.

Cost per decision (Cosmos round trips; 1-RU point reads, ~10-RU replaces on one partition):
- admitted, this instance wrote both items last (warm cache): 0 reads + 2 writes;
- admitted, cold cache: 2 reads + 2 writes;
- each conflict with another instance: +1 read and +1 write (the lost write is retried);
  measured on the emulator: 2 processes on one user ~0.4 conflicts per decision, 2 x 8 users
  of one tenant ~0.2 (bench/ratelimit.py; ~1.2 and ~0.5 without the jittered pause);
- refused, the refusing bucket's cached copy predicted it: 1 read, 0 writes;
- refused by the tenant whose cached copy was stale: 1 write (user) + 1 lost write + 1 read +
  1 give-back write;
- settle: 0 when the estimate was exact, else 1 write per bucket (+ read/write per conflict).
Callers in one process take turns per bucket (an asyncio lock), so they never conflict with
each other; a tenant's item is a single hot item whose writes are serialised by the CAS.

Give-backs and settle corrections are best effort: if one is lost (store error, or
`max_attempts` conflicts), the bucket holds too little, never too much, and refill repairs it
within a minute. A reservation that is never settled (the instance died) simply stays spent.

Leased slices (optional, `slices`; see shared/resilience/ratelimit_slices.py): each instance
leases several requests' worth of a bucket with one conditional write and admits from memory
until the slice is spent or its lease ends; refill stops at capacity minus the live leases, so
the limit stays exact. A decision then costs no round trip, and one lease write per bucket
every `fraction x rpm` requests. The price is under-admission: an idle instance's slice is
unavailable to the others for at most the lease's `seconds`. Without slices, every decision is
the exact CAS path above.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from azure.core.exceptions import AzureError

from shared.resilience.ratelimit_buckets import (
    BucketState,
    Cost,
    Limit,
    adjust,
    full_in,
    leasing,
    refill,
    refusal,
    returning,
    take,
    wait_seconds,
)
from shared.resilience.ratelimit_slices import Slice, SliceOptions
from shared.resilience.ratelimit_store import BucketStore, Stored
from shared.resilience.retry import full_jitter_backoff
from shared.security.principal import Principal
from shared.storage.cas import KeyLocks, compare_and_swap

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Transition = Callable[[BucketState, float], BucketState | None]
Outcome = Literal["written", "refused", "contended"]
FailMode = Literal["open", "closed"]

# What an unreachable Cosmos raises through the SDK (HTTP errors and transport failures).
STORE_ERRORS: tuple[type[BaseException], ...] = (AzureError, OSError, TimeoutError)
# A request refused because the bucket was too contended to write may try again very soon.
CONTENTION_RETRY_AFTER_SECONDS = 1.0
# A correction cannot be refused and a lost one strands quota, so it tries harder than a take.
CORRECTION_ATTEMPTS_FACTOR = 3

DEFAULT_RATE_LIMITS_JSON = json.dumps(
    {
        "roles": {"user": {"rpm": 60, "tpm": 100_000}, "admin": {"rpm": 300, "tpm": 500_000}},
        "default_role": "user",
        "tenant": {"rpm": 1_000, "tpm": 2_000_000},
        "on_store_error": "closed",
        "max_attempts": 10,
        "unavailable_retry_after_seconds": 5,
    }
)


# Options --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimits:
    """Limits per role and per tenant, and what to do when the store cannot answer."""

    by_role: Mapping[str, Limit]
    tenant: Limit | None = None  # None: no tenant-wide bucket
    default_role: str = "user"  # applies to principals holding none of the configured roles
    on_store_error: FailMode = "closed"
    max_attempts: int = 10  # compare-and-swap tries per bucket before refusing as "contention"
    unavailable_retry_after_seconds: float = 5.0

    def __post_init__(self) -> None:
        """Reject options that would leave some principal without a limit."""
        if self.default_role not in self.by_role:
            raise ValueError(f"default_role {self.default_role!r} has no limit in roles")
        if self.on_store_error not in ("open", "closed"):
            raise ValueError("on_store_error must be 'open' or 'closed'")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def from_json(cls, text: str) -> RateLimits:
        """Parse the RATE_LIMITS setting (see DEFAULT_RATE_LIMITS_JSON for its shape)."""
        raw = json.loads(text or DEFAULT_RATE_LIMITS_JSON)
        if not isinstance(raw, dict) or not isinstance(raw.get("roles"), dict):
            raise ValueError('RATE_LIMITS must be a JSON object with "roles"')
        tenant = raw.get("tenant")
        return cls(
            by_role={role: _parse_limit(value) for role, value in raw["roles"].items()},
            tenant=None if tenant is None else _parse_limit(tenant),
            default_role=str(raw.get("default_role", "user")),
            on_store_error=raw.get("on_store_error", "closed"),
            max_attempts=int(raw.get("max_attempts", 10)),
            unavailable_retry_after_seconds=float(raw.get("unavailable_retry_after_seconds", 5)),
        )

    def user_limit(self, principal: Principal) -> Limit:
        """The widest limit among the principal's configured roles, else the default role's."""
        limits = [self.by_role[role] for role in principal.roles if role in self.by_role]
        if not limits:
            return self.by_role[self.default_role]
        widest = limits[0]
        for limit in limits[1:]:
            widest = widest.widest(limit)
        return widest


def _parse_limit(value: Any) -> Limit:
    """A Limit from {"rpm": int, "tpm": int}."""
    if not isinstance(value, dict) or set(value) != {"rpm", "tpm"}:
        raise ValueError(f'a limit must be {{"rpm": int, "tpm": int}}, got {value!r}')
    return Limit(int(value["rpm"]), int(value["tpm"]))


# Decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """One bucket a principal is limited by."""

    id: str
    kind: Literal["user", "tenant"]
    limit: Limit


@dataclass(frozen=True)
class TokenReservation:
    """What an admission took, so settle() can correct it; settle each reservation once."""

    buckets: tuple[Bucket, ...] = ()
    tokens: int = 0


@dataclass(frozen=True)
class Admission:
    """The limiter's answer; remaining/reset describe the tightest bucket it saw.

    reason: why a request was refused ("requests", "tokens", "too_large", "contention",
    "unavailable"), or "unavailable" on an allowed decision made while failing open.
    retry_after_seconds is set on every refusal except "too_large" (retrying cannot help).
    """

    allowed: bool
    remaining_requests: int | None
    remaining_tokens: int | None
    reset_seconds: float
    retry_after_seconds: float | None
    reservation: TokenReservation
    reason: str | None = None
    bucket: Literal["user", "tenant"] | None = None


def headers(decision: Admission) -> dict[str, str]:
    """The x-ratelimit-* response headers, plus Retry-After on a refusal that may retry."""
    result = {"x-ratelimit-reset": str(math.ceil(decision.reset_seconds))}
    if decision.remaining_requests is not None:
        result["x-ratelimit-remaining-requests"] = str(decision.remaining_requests)
    if decision.remaining_tokens is not None:
        result["x-ratelimit-remaining-tokens"] = str(decision.remaining_tokens)
    if not decision.allowed and decision.retry_after_seconds is not None:
        # Whole seconds, rounded up (a client retrying early would just be refused again).
        result["Retry-After"] = str(max(1, math.ceil(decision.retry_after_seconds)))
    return result


class RateLimitRefused(Exception):
    """The limiter refused a request; `headers` are the x-ratelimit-* (and Retry-After) ones."""

    def __init__(self, detail: str, admission: Admission) -> None:
        super().__init__(detail)
        self.admission = admission
        self.headers = headers(admission)


class RateLimitExceeded(RateLimitRefused):
    """A bucket holds too little now; retrying after Retry-After can succeed."""


class TooLargeForRateLimits(RateLimitRefused):
    """The request needs more tokens than a whole minute allows: retrying cannot help."""


class RateLimiterUnavailable(RateLimitRefused):
    """The bucket store could not decide (failing closed)."""


def refusal_of(admission: Admission) -> RateLimitRefused:
    """The exception a refused admission raises."""
    if admission.reason == "too_large":
        return TooLargeForRateLimits(
            "the request needs more tokens than a minute allows", admission
        )
    if admission.reason == "unavailable":
        return RateLimiterUnavailable("the rate limiter cannot decide now", admission)
    return RateLimitExceeded(
        f"rate limit reached ({admission.bucket} {admission.reason} per minute)", admission
    )


def bucket_ids(principal: Principal) -> tuple[str, str]:
    """The (user, tenant) item ids; users are scoped by tenant, parts escaped for Cosmos."""
    tenant = quote(principal.tenant, safe="")
    return f"user:{tenant}:{quote(principal.user_id, safe='')}", f"tenant:{tenant}"


def _taking(limit: Limit, cost: Cost) -> Transition:
    """A transition taking `cost` (None when the bucket refuses)."""
    return lambda state, now: take(state, limit, cost, now)


def _adjusting(limit: Limit, requests: float, tokens: float) -> Transition:
    """A transition moving the levels by (requests, tokens); it never refuses."""
    return lambda state, now: adjust(state, limit, requests, tokens, now)


def _remaining(level: float) -> int:
    """A level as a header count (never negative, fractions not yet usable)."""
    return max(0, math.floor(level))


# The limiter ----------------------------------------------------------------------------------


@dataclass
class RateLimiter:
    """Admits or refuses calls against shared buckets, then settles them with actual usage."""

    store: BucketStore
    limits: RateLimits
    clock: Clock = time.time
    cache_entries: int = 4096  # buckets whose last known state and ETag this instance keeps
    # After a lost write, wait a jittered moment: the winner holds a fresh ETag and needs one
    # round trip where the loser needs two, so without a pause the loser keeps losing.
    backoff_base_seconds: float = 0.002
    backoff_cap_seconds: float = 0.05
    rng: random.Random = field(default_factory=random.Random, repr=False)
    slices: SliceOptions | None = None  # None: one conditional write per bucket and decision
    holder: str = field(default_factory=lambda: uuid.uuid4().hex)  # this instance's lease name
    _cache: OrderedDict[str, Stored] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: KeyLocks = field(default_factory=KeyLocks, init=False, repr=False)
    _slices: dict[str, Slice] = field(default_factory=dict, init=False, repr=False)
    _sliced: dict[str, Bucket] = field(default_factory=dict, init=False, repr=False)

    def buckets_of(self, principal: Principal) -> tuple[Bucket, ...]:
        """The principal's buckets in the fixed admission order: user, then tenant."""
        user_id, tenant_id = bucket_ids(principal)
        buckets = [Bucket(user_id, "user", self.limits.user_limit(principal))]
        if self.limits.tenant is not None:
            buckets.append(Bucket(tenant_id, "tenant", self.limits.tenant))
        return tuple(buckets)

    async def admit(self, principal: Principal, estimated_tokens: int) -> Admission:
        """Reserve 1 request and `estimated_tokens` in every bucket of `principal`, or none."""
        cost = Cost(1, max(0, int(estimated_tokens)))
        buckets = self.buckets_of(principal)
        oversized = next((b for b in buckets if _exceeds(b.limit, cost)), None)
        if oversized is not None:
            return self._too_large(oversized, cost)
        taken: list[tuple[Bucket, Stored]] = []
        try:
            early = None if self.slices else await self._confirmed_refusal(buckets[1:], cost)
            if early is not None:
                return early
            for bucket in buckets:
                if self.slices is not None:
                    outcome, stored = await self._from_slice(bucket, cost, self.slices)
                else:
                    transition = _taking(bucket.limit, cost)
                    attempts = self.limits.max_attempts
                    outcome, stored = await self._swap(bucket, transition, attempts)
                if outcome != "written":
                    await self._give_back([b for b, _ in taken], cost)
                    return self._refused(bucket, stored, cost, outcome)
                taken.append((bucket, stored))
        except STORE_ERRORS as error:
            return await self._store_failed(error, taken, cost)
        return self._allowed(taken, cost)

    async def settle(self, reservation: TokenReservation, actual_tokens: int) -> None:
        """Give back (or charge) the difference between estimated and actual tokens; never raises.

        A bucket charged beyond its level goes into debt and refuses until refill repays it:
        the charge is never refused, as the tokens are already spent.
        """
        difference = reservation.tokens - max(0, int(actual_tokens))
        if difference == 0 or not reservation.buckets:
            return
        remote = [b for b in reservation.buckets if not self._give_local(b, 0, difference)]
        await asyncio.gather(*(self._adjust(bucket, 0, difference) for bucket in remote))

    async def release(self) -> None:
        """Return every slice's unused rest to its bucket (one write each), e.g. at shutdown."""
        for bucket_id, held in list(self._slices.items()):
            bucket = self._sliced[bucket_id]
            del self._slices[bucket_id]
            try:
                await self._swap(bucket, returning(self.holder, held.held, bucket.limit), 3)
            except STORE_ERRORS as error:  # the lease expires by itself
                log.warning("rate limit slice not returned: store error %s", _describe(error))

    # slices -----------------------------------------------------------------------------------

    async def _from_slice(
        self, bucket: Bucket, cost: Cost, options: SliceOptions
    ) -> tuple[Outcome, Stored]:
        """Take `cost` from this instance's slice of `bucket`, renewing its lease (one
        conditional write) when the slice cannot cover it; returns the bucket as last known."""
        current = self._slices.get(bucket.id)
        if current is not None and current.take(cost, self.clock()):
            return "written", self._known(bucket)
        async with self._lock(bucket.id):
            current = self._slices.get(bucket.id)  # another caller may have renewed it
            now = self.clock()
            if current is not None and current.take(cost, now):
                return "written", self._known(bucket)
            held = current.held if current is not None else (0.0, 0.0)
            transition = leasing(
                bucket.limit, self.holder, held, cost, options.want(bucket.limit, cost),
                now + options.seconds,
            )  # fmt: skip
            swapped = await compare_and_swap(
                self.store, transition, read=lambda: self._fetch(bucket),
                first=self._cache.get(bucket.id), attempts=self.limits.max_attempts,
                clock=self.clock, pause=self._backoff, skip_unchanged=False,
            )  # fmt: skip
            if swapped.outcome != "written":
                return swapped.outcome, swapped.current
            stored = self._remember(swapped.current)
            lease = stored.state.leases[self.holder]
            self._slices[bucket.id] = Slice.of(lease, cost, options.margin_seconds)
            self._sliced[bucket.id] = bucket
            return "written", stored

    def _known(self, bucket: Bucket) -> Stored:
        """The bucket as this instance last saw it (full when forgotten: headers only)."""
        known = self._cache.get(bucket.id)
        return known or Stored(BucketState.full(bucket.id, bucket.limit, self.clock()), None)

    def _give_local(self, bucket: Bucket, requests: float, tokens: float) -> bool:
        """Give back to (or charge) this instance's slice of `bucket`; False without one."""
        held = self._slices.get(bucket.id) if self.slices is not None else None
        if held is None:
            return False
        held.give(requests, tokens)
        return True

    # admission steps --------------------------------------------------------------------------

    async def _confirmed_refusal(self, buckets: tuple[Bucket, ...], cost: Cost) -> Admission | None:
        """A refusal by a later bucket, found before anything is taken (None: go ahead).

        Only a cached copy that predicts a refusal costs a read; a bucket this instance has not
        seen is left to the take itself.
        """
        for bucket in buckets:
            cached = self._cache.get(bucket.id)
            if cached is None or refusal(cached.state, bucket.limit, cost, self.clock()) is None:
                continue
            stored = await self._fetch(bucket)
            if refusal(stored.state, bucket.limit, cost, self.clock()) is not None:
                return self._refused(bucket, stored, cost, "refused")
        return None

    async def _give_back(self, buckets: list[Bucket], cost: Cost) -> None:
        """Return `cost` to buckets already taken, after a later one refused (to the slice
        it came from, with slices on)."""
        for bucket in buckets:
            if not self._give_local(bucket, cost.requests, cost.tokens):
                await self._adjust(bucket, cost.requests, cost.tokens)

    async def _adjust(self, bucket: Bucket, requests: float, tokens: float) -> bool:
        """Move a bucket's levels; on failure log and return False (refill heals the bucket)."""
        try:
            attempts = self.limits.max_attempts * CORRECTION_ATTEMPTS_FACTOR
            transition = _adjusting(bucket.limit, requests, tokens)
            outcome, _ = await self._swap(bucket, transition, attempts)
        except STORE_ERRORS as error:
            log.warning(
                "rate limit correction lost on a %s bucket: store error %s",
                bucket.kind,
                _describe(error),
            )
            return False
        if outcome != "written":
            log.warning("rate limit correction lost on a %s bucket: contention", bucket.kind)
        return outcome == "written"

    async def _store_failed(
        self, error: BaseException, taken: list[tuple[Bucket, Stored]], cost: Cost
    ) -> Admission:
        """Fail open (allow, keeping what was reserved) or closed (give back, refuse)."""
        mode = self.limits.on_store_error
        log.warning("rate limit store unavailable (%s); failing %s", _describe(error), mode)
        if mode == "open":
            reservation = TokenReservation(tuple(b for b, _ in taken), cost.tokens)
            return Admission(True, None, None, 0.0, None, reservation, "unavailable")
        await self._give_back([b for b, _ in taken], cost)
        retry = self.limits.unavailable_retry_after_seconds
        return Admission(False, None, None, retry, retry, TokenReservation(), "unavailable")

    # compare-and-swap -------------------------------------------------------------------------

    async def _swap(
        self, bucket: Bucket, transition: Transition, attempts: int
    ) -> tuple[Outcome, Stored]:
        """Apply `transition` by compare-and-swap, re-reading on conflict (at most `attempts`).

        The first try uses the cached state and ETag, so a bucket this instance wrote last costs
        one write. A refusal computed from the cache is confirmed by a fresh read first (another
        instance may have given tokens back). Callers in this process take turns per bucket, so
        only other instances can make a write conflict.
        """
        async with self._lock(bucket.id):
            swapped = await compare_and_swap(
                self.store,
                transition,
                read=lambda: self._fetch(bucket),
                first=self._cache.get(bucket.id),
                attempts=attempts,
                clock=self.clock,
                pause=self._backoff,
                skip_unchanged=False,
            )
        if swapped.outcome == "written":
            return "written", self._remember(swapped.current)
        return swapped.outcome, swapped.current

    def _backoff(self, attempt: int) -> float:
        """The pause after the `attempt`-th lost write (full jitter, capped)."""
        base, ceiling = self.backoff_base_seconds, self.backoff_cap_seconds
        return full_jitter_backoff(attempt - 1, base, ceiling, self.rng)

    async def _fetch(self, bucket: Bucket) -> Stored:
        """One read of the bucket (a missing item is a full bucket not yet created)."""
        stored = await self.store.get(bucket.id)
        if stored is None:
            stored = Stored(BucketState.full(bucket.id, bucket.limit, self.clock()), None)
        return self._remember(stored)

    def _remember(self, stored: Stored) -> Stored:
        """Cache `stored` as the latest known version of its bucket (least recently used out)."""
        self._cache[stored.state.id] = stored
        self._cache.move_to_end(stored.state.id)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)
        return stored

    # decisions --------------------------------------------------------------------------------

    def _allowed(self, taken: list[tuple[Bucket, Stored]], cost: Cost) -> Admission:
        """The admission, reporting the tightest of the buckets as they were written."""
        now = self.clock()
        levels = [self._visible(bucket, stored, now) for bucket, stored in taken]
        return Admission(
            allowed=True,
            remaining_requests=min(_remaining(requests) for requests, _ in levels),
            remaining_tokens=min(_remaining(tokens) for _, tokens in levels),
            reset_seconds=max(full_in(s.state, b.limit, now) for b, s in taken),
            retry_after_seconds=None,
            reservation=TokenReservation(tuple(b for b, _ in taken), cost.tokens),
        )

    def _visible(self, bucket: Bucket, stored: Stored, now: float) -> tuple[float, float]:
        """(requests, tokens) this instance can see: the stored levels as written (refilled,
        with slices: they were read earlier) plus its own slice."""
        held = self._slices.get(bucket.id)
        if held is None:
            return stored.state.requests, stored.state.tokens
        level = refill(stored.state, bucket.limit, now)
        return level.requests + max(0.0, held.requests), level.tokens + max(0.0, held.tokens)

    def _refused(self, bucket: Bucket, stored: Stored, cost: Cost, outcome: Outcome) -> Admission:
        """The refusal by `bucket`, as last read; nothing stays reserved."""
        now = self.clock()
        level = refill(stored.state, bucket.limit, now)
        contended = outcome == "contended"
        # It refused when it decided; if it has refilled since (microseconds), still name a level.
        reason = "contention" if contended else refusal(stored.state, bucket.limit, cost, now)
        reason = reason or "requests"
        wait = wait_seconds(stored.state, bucket.limit, cost, now)
        return Admission(
            allowed=False,
            remaining_requests=_remaining(level.requests),
            remaining_tokens=_remaining(level.tokens),
            reset_seconds=full_in(stored.state, bucket.limit, now),
            retry_after_seconds=CONTENTION_RETRY_AFTER_SECONDS if contended else wait,
            reservation=TokenReservation(),
            reason=reason,
            bucket=bucket.kind,
        )

    def _too_large(self, bucket: Bucket, cost: Cost) -> Admission:
        """A request no bucket refill can ever admit (its estimate exceeds the capacity)."""
        return Admission(
            allowed=False,
            remaining_requests=None,
            remaining_tokens=None,
            reset_seconds=0.0,
            retry_after_seconds=None,
            reservation=TokenReservation(),
            reason="too_large",
            bucket=bucket.kind,
        )


def _exceeds(limit: Limit, cost: Cost) -> bool:
    """Whether `cost` is more than the bucket can ever hold."""
    return cost.requests > limit.rpm or cost.tokens > limit.tpm


def _describe(error: BaseException) -> str:
    """The error's type and HTTP status only: messages may echo request details."""
    status = getattr(error, "status_code", None)
    return type(error).__name__ if status is None else f"{type(error).__name__} {status}"
