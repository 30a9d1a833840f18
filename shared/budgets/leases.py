"""Leased budget slices: admission with no round trip, one conditional write per lease.

Without leases (shared/budgets/admission.py) every miss reserves its estimate in each of the
caller's counters (user and tenant, day and month) by compare-and-swap and settles each after
the call: a read and a write per counter, twice. With leases, an instance reserves a slice of
a counter's budget for itself - a lease, an ordinary reservation whose id starts with "lease:"
- with ONE conditional write, and admits requests from it in memory while it covers their
estimates. Requests settle into their lease in memory. A lease is closed (one write: the
existing settle transition, spend = the actual cost of its requests, the rest returned) once
it stops admitting (spent, or `seconds` passed) and its last request has settled.

Guarantees, the same as per-request reservations:
- never over the budget by more than one request's excess: a lease is written only when spent
  + live reservations + it fit under the limit (the same CAS check), and the requests it admits
  together hold at most its amount; only an actual cost above its estimate can pass it;
- crash-safe: a lease never lapses by itself (unlike a request's reservation): after its
  holder died it keeps counting at its full amount until the budget audit sweeps it (once
  past `expires`) and re-derives the spend from the ledger, where every settled request's
  record names its leases (`UsageRecord.leases`; the audit leaves out records of leases still
  held, as it does for reservations). So a crash errs towards under-admission, never over.

Under-admission: an instance's unused lease is unavailable to the others until it closes:
at most `fraction` x limit per instance, for at most `seconds` plus the last request's
duration while the holder lives; after a crash or scale-in, until the next audit (hourly by
default) once the lease expired. Keep `fraction` small where budgets are tight.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from shared.budgets.admission import (
    BudgetGate,
    BudgetOptions,
    BudgetReservation,
    Limited,
    exceeded,
    limited_counters,
)
from shared.budgets.counters import (
    EPSILON_USD,
    LEASE_PREFIX,
    BudgetCounters,
    Counter,
    CounterKey,
    Held,
    Transition,
    without_expired,
)
from shared.routing.cost import Refusal, RouterOptions, TierChoice
from shared.security.principal import Principal
from shared.storage.cas import KeyLocks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseOptions:
    """How big a lease is and how long it admits."""

    fraction: float = 0.02  # a lease is this share of the counter's limit (or one estimate)
    seconds: float = 30.0  # how long an instance admits from one lease

    def __post_init__(self) -> None:
        """Reject options that cannot work."""
        if not 0 < self.fraction <= 1:
            raise ValueError("the lease fraction must be in (0, 1]")
        if self.seconds <= 0:
            raise ValueError("a lease must last some time")


def leasing(lease_id: str, want: float, need: float, expires: float, limit: float) -> Transition:
    """Add a lease of `want` (less when the budget has less headroom, never less than `need`);
    None when even `need` does not fit under `limit`."""

    def apply(counter: Counter, now: float) -> Counter | None:
        counter = without_expired(counter, now)
        headroom = limit - counter.committed_usd(now)
        if headroom + EPSILON_USD < need:
            return None
        amount = max(need, min(want, headroom))
        held = {**counter.reservations, lease_id: Held(amount, expires)}
        return replace(counter, reservations=held)

    return apply


@dataclass
class Allowance:
    """This instance's lease on one counter, and the requests admitted from it."""

    key: CounterKey
    lease_id: str
    amount: float
    usable_until: float
    counter: Counter  # the counter as written with this lease (soft limits, refusals)
    held: dict[str, float] = field(default_factory=dict)  # request id -> estimate
    settled: float = 0.0  # actual cost of its settled requests
    retired: bool = False  # no longer admits (a newer lease replaced it, or it went idle)

    def available(self) -> float:
        """What it can still admit."""
        return self.amount - self.settled - sum(self.held.values())

    def covers(self, usd: float, now: float) -> bool:
        """Whether it can admit `usd` now."""
        usable = not self.retired and now < self.usable_until
        return usable and self.available() + EPSILON_USD >= usd

    def committed(self, now: float) -> float:
        """The counter's committed spend as this instance knows it: its lease counts only
        for what it really holds."""
        return self.counter.committed_usd(now) - max(0.0, self.available())


class LeasedBudgetGate(BudgetGate):
    """A BudgetGate that admits from leased slices of each counter (see the module docstring)."""

    def __init__(
        self,
        counters: BudgetCounters,
        options: BudgetOptions,
        router: RouterOptions,
        leases: LeaseOptions,
        holder: str | None = None,
    ) -> None:
        """Leases are named after `holder` (this instance; a fresh id by default)."""
        super().__init__(counters, options, router)
        self._leases = leases
        self._holder = holder or uuid.uuid4().hex[:12]
        self._open: dict[str, Allowance] = {}  # counter id -> the allowance that admits
        self._by_lease: dict[str, Allowance] = {}  # lease id -> allowance, until closed
        self._locks = KeyLocks()
        self._closing: set[asyncio.Task[None]] = set()

    async def admit(
        self, principal: Principal, decision: TierChoice
    ) -> BudgetReservation | Refusal:
        """Hold `decision`'s estimate in a lease of each budget, or refuse with the reason."""
        now = self._counters.now()
        self._retire_idle(now)
        limited = limited_counters(principal, self._options.policy, now)
        if not limited:
            return BudgetReservation(uuid.uuid4().hex, 0.0, now, (), decision)
        committed = await self._committed(limited, now)
        decision, warning = self._soften_committed(decision, limited, committed, now)
        amount = decision.estimated_cost_usd
        for item, spent in zip(limited, committed, strict=True):
            if spent + amount > item.limit + EPSILON_USD:
                return self._refuse(exceeded(item, spent, amount, now))
        request_id = uuid.uuid4().hex
        held = await asyncio.gather(
            *(self._hold(item, request_id, amount, now) for item in limited)
        )
        refused = [item for item, lease in zip(limited, held, strict=True) if lease is None]
        if refused:
            self._drop(request_id, [lease for lease in held if lease is not None], 0.0)
            item = refused[0]
            latest = self._open.get(item.key.id)
            spent = latest.committed(now) if latest else committed[limited.index(item)]
            return self._refuse(exceeded(item, spent, amount, now))
        leases = tuple(lease for lease in held if lease is not None)
        return BudgetReservation(
            id=request_id, amount_usd=amount, expires=now + self._options.reservation_seconds,
            keys=tuple(item.key for item in limited), decision=decision, warning=warning,
            leases=leases,
        )  # fmt: skip

    async def settle(self, reservation: BudgetReservation, actual_cost_usd: float) -> None:
        """The request's actual cost goes to its leases; a retired lease whose last request
        this was is closed (one write each)."""
        if not reservation.leases:
            return await super().settle(reservation, actual_cost_usd)
        self._drop(reservation.id, list(reservation.leases), actual_cost_usd)
        return None

    async def release(self, reservation: BudgetReservation) -> None:
        """The request never reached a model: its estimate goes back to its leases."""
        if not reservation.leases:
            return await super().release(reservation)
        self._drop(reservation.id, list(reservation.leases), 0.0)
        return None

    async def drain(self) -> None:
        """Retire every lease and wait until those without requests in flight are closed
        (shutdown, tests)."""
        for allowance in list(self._open.values()):
            self._retire(allowance)
        while self._closing:
            await asyncio.wait(list(self._closing))

    # leases ---------------------------------------------------------------------------------

    async def _committed(self, limited: list[Limited], now: float) -> list[float]:
        """Each counter's committed spend: from this instance's lease when it has one that
        still admits, else one read (the counters a new lease will be taken on)."""
        allowances = [self._open.get(item.key.id) for item in limited]
        stale = [
            index
            for index, allowance in enumerate(allowances)
            if allowance is None or not allowance.covers(0.0, now)
        ]
        read = await asyncio.gather(*(self._counters.read(limited[i].key) for i in stale))
        fresh = dict(zip(stale, read, strict=True))
        return [
            fresh[index].committed_usd(now) if index in fresh else allowances[index].committed(now)  # type: ignore[union-attr]
            for index in range(len(limited))
        ]

    async def _hold(self, item: Limited, request_id: str, usd: float, now: float) -> str | None:
        """The lease `usd` is held in for this counter (a new lease when the current one
        cannot cover it); None when the budget refuses."""
        current = self._open.get(item.key.id)
        if current is not None and current.covers(usd, now):
            current.held[request_id] = usd
            return current.lease_id
        async with self._locks(item.key.id):
            current = self._open.get(item.key.id)  # another caller may have renewed it
            if current is not None and current.covers(usd, now):
                current.held[request_id] = usd
                return current.lease_id
            lease_id = f"{LEASE_PREFIX}{self._holder}:{uuid.uuid4().hex[:12]}"
            want = max(usd, self._leases.fraction * item.limit)
            expires = now + self._leases.seconds + self._options.reservation_seconds
            transition = leasing(lease_id, want, usd, expires, item.limit)
            counter = await self._counters.update(item.key, transition)
            if counter is None:
                return None
            if current is not None:
                self._retire(current)
            amount = counter.reservations[lease_id].usd
            allowance = Allowance(item.key, lease_id, amount, now + self._leases.seconds, counter)
            allowance.held[request_id] = usd
            self._open[item.key.id] = allowance
            self._by_lease[lease_id] = allowance
            return lease_id

    def _drop(self, request_id: str, leases: Iterable[str], actual_usd: float) -> None:
        """Settle (or release, with 0) one request in each of its leases."""
        for lease_id in leases:
            allowance = self._by_lease.get(lease_id)
            if allowance is None or allowance.held.pop(request_id, None) is None:
                continue  # settled twice, or the lease was closed meanwhile
            allowance.settled += actual_usd
            if allowance.retired and not allowance.held:
                self._close_soon(allowance)

    def _retire_idle(self, now: float) -> None:
        """Leases that stopped admitting (their time is up) are retired: closed once empty."""
        for allowance in list(self._open.values()):
            if now >= allowance.usable_until:
                self._retire(allowance)

    def _retire(self, allowance: Allowance) -> None:
        if self._open.get(allowance.key.id) is allowance:
            del self._open[allowance.key.id]
        allowance.retired = True
        if not allowance.held:
            self._close_soon(allowance)

    def _close_soon(self, allowance: Allowance) -> None:
        """Close a retired, empty lease in the background (it keeps counting until then)."""
        if self._by_lease.pop(allowance.lease_id, None) is None:
            return  # already closing
        task = asyncio.get_running_loop().create_task(self._close(allowance))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, allowance: Allowance) -> None:
        """Turn the lease into its requests' actual spend; the rest goes back to the budget."""
        try:
            await self._counters.settle(allowance.key, allowance.lease_id, allowance.settled)
        except Exception:  # it keeps counting in full until the audit sweeps it: never over
            log.warning("budget lease %s not closed", allowance.lease_id, exc_info=True)


__all__ = ["LEASE_PREFIX", "Allowance", "LeaseOptions", "LeasedBudgetGate", "leasing"]
