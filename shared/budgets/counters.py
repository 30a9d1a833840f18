"""Budget counters: one Cosmos item per (scope, period), updated by compare-and-swap.

An item holds the settled spend and the live reservations of one scope in one period:

    {"id": "<quoted tenant:contoso|day|2025-01-31>", "kind": "counter", "scope": ...,
     "spent_usd": 1.25, "reservations": {"<id>": {"usd": 0.02, "expires": 1738...}}, ...}

Every change is read -> pure transition -> replace with If-Match (create for a new item), and
on a lost race (412/409) the item is re-read and the transition re-applied, a bounded number of
times with jittered back-off, as `shared.resilience.breaker` does. A reservation is only added
when spent + live reservations + it stay within the limit, checked by the same write that adds
it: no two instances can both take the last dollars. Expired reservations (their request died)
are ignored by every reader and dropped by the next write ("lazy release"), and `sweep` drops
them everywhere (any instance may run it, e.g. from the audit timer).

The partition key is the id, so every operation is a 1-RU point read or write.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.budgets.periods import Period
from shared.budgets.policy import Scope
from shared.storage.cas import Codec, CosmosCasStore, KeyLocks, Versioned, compare_and_swap
from shared.storage.cosmos import ContainerSpec, CosmosStore

log = logging.getLogger(__name__)

BUDGETS_CONTAINER = ContainerSpec("budgets", "/id")
EPSILON_USD = 1e-9  # float sums of many small costs: never refuse over rounding noise
# Reservations whose id starts with this are an instance's lease (shared/budgets/leases.py):
# they never lapse by themselves, only the audit's sweep drops them once expired.
LEASE_PREFIX = "lease:"


@dataclass(frozen=True)
class CounterKey:
    """Which counter: a scope and one of its periods."""

    scope: Scope
    period: Period
    period_key: str  # "2025-01-31" or "2025-01"

    @property
    def id(self) -> str:
        """The Cosmos id (and partition key) of the counter."""
        return self.scope.counter_id(self.period, self.period_key)


@dataclass(frozen=True)
class Held:
    """One reservation: its amount and when it lapses if never settled."""

    usd: float
    expires: float


@dataclass(frozen=True)
class Counter:
    """A counter as read: settled spend, reservations, and the ETag it was read at."""

    key: CounterKey
    spent_usd: float = 0.0
    reservations: Mapping[str, Held] = field(default_factory=dict)
    etag: str | None = None

    def live(self, now: float) -> dict[str, Held]:
        """The reservations that have not expired (a lease counts until the audit sweeps it:
        its holder may have died with spend not yet turned into `spent_usd`)."""
        return {
            rid: held
            for rid, held in self.reservations.items()
            if held.expires > now or rid.startswith(LEASE_PREFIX)
        }

    def lapsed(self, now: float) -> list[str]:
        """The reservations past their expiry, leases included (what the sweep drops)."""
        return [rid for rid, held in self.reservations.items() if held.expires <= now]

    def reserved_usd(self, now: float) -> float:
        """The sum of live reservations."""
        return sum(held.usd for held in self.live(now).values())

    def committed_usd(self, now: float) -> float:
        """Settled spend plus live reservations: what admission must fit under the limit."""
        return self.spent_usd + self.reserved_usd(now)

    def to_item(self, now: float) -> dict[str, Any]:
        """The Cosmos item."""
        scope = self.key.scope
        return {
            "id": self.key.id,
            "kind": "counter",
            "scope": scope.key,
            "scope_kind": scope.kind,
            "tenant": scope.tenant,
            "user": scope.user,
            "period": self.key.period,
            "period_key": self.key.period_key,
            "spent_usd": self.spent_usd,
            "reservations": {
                rid: {"usd": held.usd, "expires": held.expires}
                for rid, held in self.reservations.items()
            },
            "updated": now,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Counter:
        """The counter a Cosmos item holds."""
        scope = Scope(item["scope_kind"], item["tenant"], item.get("user"))
        held = {
            rid: Held(float(entry["usd"]), float(entry["expires"]))
            for rid, entry in (item.get("reservations") or {}).items()
        }
        key = CounterKey(scope, item["period"], item["period_key"])
        return cls(key, float(item.get("spent_usd", 0.0)), held, item.get("_etag"))


class CounterContention(Exception):
    """A counter kept changing under us: every compare-and-swap attempt lost."""


Transition = Callable[[Counter, float], Counter | None]


# Transitions: pure functions of (counter, now); None means "refuse, write nothing". --------


def without_expired(counter: Counter, now: float) -> Counter:
    """`counter` with lapsed reservations dropped (lazy release)."""
    live = counter.live(now)
    return (
        counter if len(live) == len(counter.reservations) else replace(counter, reservations=live)
    )


def reserving(reservation_id: str, usd: float, expires: float, limit: float | None) -> Transition:
    """Add a reservation, only if it fits under `limit` (None: no limit); idempotent."""

    def apply(counter: Counter, now: float) -> Counter | None:
        if reservation_id in counter.reservations:
            return counter  # a retried write that had in fact landed
        counter = without_expired(counter, now)
        if limit is not None and counter.committed_usd(now) + usd > limit + EPSILON_USD:
            return None
        held = {**counter.reservations, reservation_id: Held(usd, expires)}
        return replace(counter, reservations=held)

    return apply


def settling(reservation_id: str, usd: float) -> Transition:
    """Replace a reservation by the actual spend (added even if the reservation had lapsed)."""

    def apply(counter: Counter, now: float) -> Counter:
        counter = without_expired(counter, now)
        held = {rid: h for rid, h in counter.reservations.items() if rid != reservation_id}
        return replace(counter, spent_usd=counter.spent_usd + usd, reservations=held)

    return apply


def releasing(reservation_id: str) -> Transition:
    """Drop a reservation without spend (the request never reached a model)."""

    def apply(counter: Counter, now: float) -> Counter:
        counter = without_expired(counter, now)
        held = {rid: h for rid, h in counter.reservations.items() if rid != reservation_id}
        return replace(counter, reservations=held)

    return apply


def swept(counter: Counter, now: float) -> Counter:
    """`counter` without any reservation past its expiry, leases included (the audit's sweep:
    the spend of a dead holder's lease is then re-derived from the ledger)."""
    lapsed = set(counter.lapsed(now))
    held = {rid: h for rid, h in counter.reservations.items() if rid not in lapsed}
    return replace(counter, reservations=held) if lapsed else counter


def spending(spent_usd: float) -> Transition:
    """Set the settled spend (the audit's repair from the ledger)."""
    return lambda counter, now: replace(without_expired(counter, now), spent_usd=spent_usd)


# The store ---------------------------------------------------------------------------------


class BudgetCounters:
    """Counters in the Cosmos container `budgets` (partition key /id)."""

    def __init__(
        self,
        store: CosmosStore,
        container: str = BUDGETS_CONTAINER.name,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 40,
        backoff_seconds: float = 0.01,
    ) -> None:
        """Use `container` of `store`; a write gives up after `max_attempts` lost races."""
        self._store = store
        self._container = container
        self._items = CosmosCasStore(
            store,
            container,
            Codec(
                key_of=lambda counter: counter.key.id,
                to_item=lambda counter: counter.to_item(clock()),  # stamped when written
                from_item=Counter.from_item,
            ),
        )
        self._clock = clock
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._lock = KeyLocks()
        self.lost_races = 0  # writes another instance beat: how contended the counters are

    def now(self) -> float:
        """The counters' clock (epoch seconds)."""
        return self._clock()

    async def read(self, key: CounterKey) -> Counter:
        """The counter (a zero counter when it has never been written)."""
        return (await self._read(key)).state

    async def reserve(
        self, key: CounterKey, reservation_id: str, usd: float, expires: float, limit: float | None
    ) -> Counter | None:
        """Hold `usd` for a request; None (nothing written) when it would pass `limit`."""
        return await self.update(key, reserving(reservation_id, usd, expires, limit))

    async def settle(self, key: CounterKey, reservation_id: str, usd: float) -> Counter | None:
        """Turn a reservation into actual spend."""
        return await self.update(key, settling(reservation_id, usd))

    async def release(self, key: CounterKey, reservation_id: str) -> Counter | None:
        """Drop a reservation, spending nothing."""
        return await self.update(key, releasing(reservation_id))

    async def update(self, key: CounterKey, transition: Transition) -> Counter | None:
        """Apply `transition` by compare-and-swap; None when it refused (nothing written).

        Writers in this process take turns per counter (a lock), so races are lost only to
        other instances; each lost race re-reads and backs off a little (jittered) before the
        next attempt, so N instances converge instead of colliding in lockstep.
        """
        async with self._lock(key.id):
            swapped = await compare_and_swap(
                self._items,
                transition,
                read=lambda: self._read(key),
                attempts=self._max_attempts,
                clock=self._clock,
                pause=lambda attempt: random.uniform(0, self._backoff * attempt),
            )
        self.lost_races += swapped.lost
        if swapped.outcome == "contended":
            raise CounterContention(f"budget counter {key.id}: {self._max_attempts} lost races")
        return None if swapped.outcome == "refused" else swapped.current.state

    async def _read(self, key: CounterKey) -> Versioned[Counter]:
        """The counter and its ETag (a zero counter without one when never written)."""
        return await self._items.get(key.id) or Versioned(Counter(key), None)

    async def all(self, period_keys: tuple[str, ...] = ()) -> list[Counter]:
        """Every counter, or those of the given period keys (cross-partition: timers only)."""
        sql = "SELECT * FROM c WHERE c.kind = 'counter'"
        parameters: dict[str, Any] = {}
        if period_keys:
            names = [f"@p{index}" for index in range(len(period_keys))]
            sql += f" AND c.period_key IN ({', '.join(names)})"
            parameters = dict(zip(names, period_keys, strict=True))
        items = await self._store.query(self._container, sql, parameters)
        return [Counter.from_item(item) for item in items]

    async def sweep(self) -> int:
        """Release every lapsed reservation, in every counter; returns how many were dropped."""
        now = self._clock()
        released = 0
        for counter in await self.all():
            lapsed = len(counter.lapsed(now))
            if lapsed:
                await self.update(counter.key, swept)
                released += lapsed
                log.info(
                    "budget counter %s: released %d lapsed reservations", counter.key.id, lapsed
                )
        return released
