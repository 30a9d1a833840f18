"""Throttling of repeated bad credentials, per source, shared by every instance.

Each source (client address) has a token bucket of credential failures in the shared
compare-and-swap store (`shared.storage.cas`, the `rate_limits` container, one item per
source): AUTH_FAILURES_PER_MINUTE failures may be spent at once, refilling at that rate. A
failure that finds the bucket empty is answered 429 with Retry-After instead of 401, and from
then on this instance refuses every credentialed request from that source *before* checking
its credentials, until one failure's worth has refilled: a blocked source cannot keep guessing,
and 429 says nothing about whether a guess was right. Once that block runs out, the next
credentialed request from the source re-reads the shared bucket first (one point read), so
failures counted by other instances hold it back too.

Legitimate traffic costs nothing: a request with valid credentials from a source that never
failed makes no store call. An instance that has never seen a blocked source lets through one
credential check before it learns (the failure's compare-and-swap tells it), so at most one
extra guess per instance per block.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.resilience.ratelimit_buckets import BucketState, Cost, Limit, take, wait_seconds
from shared.storage.cas import CasStore, KeyLocks, Versioned, compare_and_swap

ONE_FAILURE = Cost(1, 0)
MAX_TRACKED_SOURCES = 10_000  # sources this instance remembers (least recently used out)


class CredentialsThrottled(Exception):
    """Too many bad credentials from this source: 429 with Retry-After."""

    def __init__(self, retry_after_seconds: float) -> None:
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))
        super().__init__(
            "too many failed authentication attempts from this address; retry after "
            f"{self.retry_after_seconds} s"
        )

    @property
    def headers(self) -> dict[str, str]:
        """Retry-After, whole seconds."""
        return {"Retry-After": str(self.retry_after_seconds)}


def client_source(headers: Mapping[str, str], peer: str | None, header: str | None = None) -> str:
    """The client's address: `header` when the deployment names one its edge sets and clients
    cannot (Azure Front Door's `X-Azure-SocketIP`); else the last `X-Forwarded-For` entry (the
    one the nearest proxy appended; earlier entries are whatever the client wrote); else the
    connection's peer."""
    named = headers.get(header.lower(), "").strip() if header else ""
    forwarded = [part.strip() for part in headers.get("x-forwarded-for", "").split(",")]
    last = next((part for part in reversed(forwarded) if part), None)
    address = named or last or peer or "unknown"
    if address.startswith("["):  # [v6]:port
        return address[1 : address.find("]")] if "]" in address else address
    host, colon, port = address.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else address


def bucket_id(source: str) -> str:
    """The store key of a source (hashed: addresses never become item ids)."""
    return "authfail:" + hashlib.sha256(source.encode()).hexdigest()[:32]


@dataclass
class CredentialThrottle:
    """Counts credential failures per source in a shared store and refuses blocked sources."""

    store: CasStore[BucketState]
    per_minute: int
    clock: Callable[[], float] = time.time
    address_header: str | None = None  # see client_source
    _blocked: OrderedDict[str, float] = field(default_factory=OrderedDict, init=False)
    _locks: KeyLocks = field(default_factory=KeyLocks, init=False)

    def source_of(self, headers: Mapping[str, str], peer: str | None) -> str:
        """The client address a request's failures count against."""
        return client_source(headers, peer, self.address_header)

    @property
    def limit(self) -> Limit:
        """The failure bucket: `per_minute` at once, refilling `per_minute` a minute."""
        return Limit(self.per_minute, 1)

    async def check(self, source: str) -> None:
        """Before the credentials are checked: CredentialsThrottled while `source` is blocked."""
        until = self._blocked.get(source)
        if until is None:
            return
        now = self.clock()
        if now < until:
            raise CredentialsThrottled(until - now)
        stored = await self.store.get(bucket_id(source))
        wait = self._wait(stored, now)
        if wait > 0:
            self._block(source, now + wait)
            raise CredentialsThrottled(wait)
        self._blocked.pop(source, None)

    async def failed(self, source: str) -> CredentialsThrottled | None:
        """Counts one bad credential from `source`; the refusal when its bucket was empty."""
        key = bucket_id(source)
        limit = self.limit
        async with self._locks(key):
            swapped = await compare_and_swap(
                self.store,
                lambda state, now: take(state, limit, ONE_FAILURE, now),
                read=lambda: self._read(key),
                attempts=5,
                clock=self.clock,
                skip_unchanged=False,
            )
        if swapped.outcome == "written":
            return None
        now = self.clock()
        wait = max(self._wait(swapped.current, now), 1.0)
        self._block(source, now + wait)
        return CredentialsThrottled(wait)

    async def _read(self, key: str) -> Versioned[BucketState]:
        stored = await self.store.get(key)
        if stored is None:
            return Versioned(BucketState.full(key, self.limit, self.clock()), None)
        return stored

    def _wait(self, stored: Versioned[BucketState] | None, now: float) -> float:
        """Seconds until the bucket holds one failure again (0: it does now)."""
        if stored is None:
            return 0.0
        return wait_seconds(stored.state, self.limit, ONE_FAILURE, now)

    def _block(self, source: str, until: float) -> None:
        self._blocked[source] = until
        self._blocked.move_to_end(source)
        while len(self._blocked) > MAX_TRACKED_SOURCES:
            self._blocked.popitem(last=False)


__all__ = ["CredentialThrottle", "CredentialsThrottled", "bucket_id", "client_source"]
