"""Serve a chat request from the healthiest Azure OpenAI region, within the request's deadline.

Regions are tried by priority (lowest first), weighted at random within a priority, skipping
those whose shared circuit breaker is open. A retryable failure (429, 5xx, timeout, connection)
fails over to the next region at once: nobody sleeps while another region can serve. Only when
no region can serve does the router back off, and only if the earliest region comes back
within the deadline; otherwise it raises AllRegionsDown with the smallest wait, which the API
returns as Retry-After. Decisions use `LlmError.kind` only, never message text.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from shared.health import DependencyProbe
from shared.llm.types import LlmChunk, LlmClient, LlmError, LlmRequest, LlmResponse
from shared.resilience.breaker import BreakerBoard, BreakerState, phase, seconds_until_allowed
from shared.resilience.retry import Deadline, cap, full_jitter_backoff
from shared.routing.config import RegionConfig
from shared.telemetry import names
from shared.telemetry.instruments import record

T = TypeVar("T")
BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}  # docgate.breaker.state's values
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

PROBE_REQUEST = LlmRequest(messages=[{"role": "user", "content": "ping"}], max_tokens=1)


@dataclass(frozen=True)
class Attempt:
    """One call to one region: "ok" or the error kind, with its status and timing."""

    region: str
    outcome: str
    status: int | None
    elapsed_ms: float
    retry_after: float | None = None


@dataclass(frozen=True)
class Routed:
    """A response and the region that served it, with every attempt made on the way."""

    response: LlmResponse
    region: str
    attempts: list[Attempt]


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one health probe of one region."""

    region: str
    ok: bool
    latency_ms: float
    status: int | None
    error_kind: str | None
    checked_at: float = 0.0  # epoch seconds (the board's clock)


class RoutingError(Exception):
    """No response could be produced for reasons of availability, not of the request."""


class NoRegionForTier(RoutingError, LookupError):
    """No configured region serves the requested tier."""

    def __init__(self, tier: str) -> None:
        super().__init__(f"no region serves tier {tier!r}")
        self.tier = tier


class AllRegionsDown(RoutingError):
    """No region can serve before the deadline; `retry_after_seconds` is the earliest return."""

    def __init__(
        self, states: dict[str, str], retry_after_seconds: float, attempts: list[Attempt]
    ) -> None:
        super().__init__(f"all regions down {states}; retry after {retry_after_seconds:.1f}s")
        self.states = states
        self.retry_after_seconds = retry_after_seconds
        self.attempts = attempts


class DeadlineExceeded(RoutingError):
    """The request's deadline left no time for another attempt."""

    def __init__(self, attempts: list[Attempt]) -> None:
        super().__init__(f"deadline exceeded after {len(attempts)} attempt(s)")
        self.attempts = attempts


@dataclass
class _Opened:
    """A stream whose first chunk has arrived (None: it ended without any)."""

    chunks: AsyncIterator[LlmChunk]
    first: LlmChunk | None


@dataclass
class RoutedStream:
    """A stream already committed to one region: errors from here on propagate."""

    region: str
    attempts: list[Attempt]
    _opened: _Opened
    _on_error: Callable[[LlmError], Awaitable[None]] = field(repr=False)

    def __aiter__(self) -> AsyncIterator[LlmChunk]:
        """The chunks, starting with the one that committed the region."""
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[LlmChunk]:
        """Yield every chunk; a mid-stream failure still counts against the region's breaker."""
        if self._opened.first is None:
            return
        yield self._opened.first
        try:
            async for chunk in self._opened.chunks:
                yield chunk
        except LlmError as error:
            await self._on_error(error)
            raise

    async def aclose(self) -> None:
        """Release the underlying stream (when the caller stops early)."""
        await _close(self._opened.chunks)


async def _close(chunks: AsyncIterator[LlmChunk]) -> None:
    """Close an async generator if it can be closed."""
    closer = getattr(chunks, "aclose", None)
    if closer is not None:
        await closer()


def weighted_order(regions: list[RegionConfig], rng: random.Random) -> list[RegionConfig]:
    """A random order where each region comes first with probability weight / total weights.

    Efraimidis-Spirakis: sort by u ** (1 / weight), u uniform in [0, 1), descending.
    """
    return sorted(regions, key=lambda region: rng.random() ** (1.0 / region.weight), reverse=True)


def _as_llm_error(error: BaseException) -> LlmError:
    """A client's LlmError as is; our own attempt timeout as a "timeout" LlmError."""
    if isinstance(error, LlmError):
        return error
    return LlmError("timeout", "attempt timed out", status=None)


class RegionRouter:
    """Routes completions and streams over regions, sharing breaker state across instances."""

    def __init__(
        self,
        regions: tuple[RegionConfig, ...],
        clients: dict[str, LlmClient],
        board: BreakerBoard,
        *,
        max_retry_after_seconds: float,
        attempt_timeout_seconds: float,
        backoff_base_seconds: float = 0.5,
        min_attempt_seconds: float = 1.0,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        key_prefix: str = "llm:",
        latency_samples: int = 20,
    ) -> None:
        """Bind each region to its client; every region needs one."""
        missing = [region.name for region in regions if region.name not in clients]
        if missing:
            raise ValueError(f"no client for regions {missing}")
        self.regions = regions
        self._clients = clients
        self._board = board
        self._max_retry_after = max_retry_after_seconds
        self._attempt_timeout = attempt_timeout_seconds
        self._backoff_base = backoff_base_seconds
        self._min_attempt = min_attempt_seconds
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._key_prefix = key_prefix
        self._latencies = {r.name: deque[float](maxlen=latency_samples) for r in regions}
        self._probes: dict[str, ProbeResult] = {}

    # public -------------------------------------------------------------------------------

    async def complete(self, request: LlmRequest, tier: str, deadline: Deadline) -> Routed:
        """The completion from the first region that can serve `tier` within `deadline`."""

        async def call(region: RegionConfig, timeout_seconds: float) -> LlmResponse:
            return await self._clients[region.name].complete(request, timeout_seconds)

        response, region, attempts = await self._route(tier, deadline, call)
        return Routed(response, region, attempts)

    async def serve(
        self, request: LlmRequest, tier: str, deadline: Deadline
    ) -> tuple[LlmResponse, str]:
        """The chat path's model call: the completion and the region that served it."""
        routed = await self.complete(request, tier, deadline)
        return routed.response, routed.region

    async def serve_stream(
        self, request: LlmRequest, tier: str, deadline: Deadline
    ) -> tuple[AsyncIterator[LlmChunk], str, str]:
        """The chat path's streaming model call: chunks, the region serving, its model."""
        routed = await self.stream(request, tier, deadline)
        model = next(region.model for region in self.regions if region.name == routed.region)
        return aiter(routed), routed.region, model

    async def stream(self, request: LlmRequest, tier: str, deadline: Deadline) -> RoutedStream:
        """A stream from the first region that yields a first chunk; no failover after that."""

        async def call(region: RegionConfig, timeout_seconds: float) -> _Opened:
            return await _open_stream(self._clients[region.name], request, timeout_seconds)

        opened, region, attempts = await self._route(tier, deadline, call)

        async def on_error(error: LlmError) -> None:
            await self._record_error(region, error)

        return RoutedStream(region, attempts, opened, on_error)

    async def probe(self, region_name: str) -> ProbeResult:
        """A one-token call to one region; its outcome updates the region's breaker."""
        client = self._clients[region_name]
        began, started = self._board.now(), self._clock()
        try:
            async with asyncio.timeout(self._attempt_timeout):
                await client.complete(PROBE_REQUEST, self._attempt_timeout)
        except (LlmError, TimeoutError) as raw:
            error = _as_llm_error(raw)
            await self._record_error(region_name, error)
            result = ProbeResult(
                region_name, False, self._ms_since(started), error.status, error.kind, began
            )
        else:
            elapsed = self._ms_since(started)
            self._latencies[region_name].append(elapsed)
            # fresh=True: the timer's probe must close a breaker another instance opened.
            await self._board.record_success(self._key(region_name), started_at=began, fresh=True)
            result = ProbeResult(region_name, True, elapsed, 200, None, began)
        self._probes[region_name] = result
        self._observe(region_name)
        return result

    async def probe_all(self) -> list[ProbeResult]:
        """Probe every region concurrently."""
        return list(await asyncio.gather(*(self.probe(region.name) for region in self.regions)))

    def latest_probes(self) -> dict[str, ProbeResult]:
        """The last probe result per region, from this process."""
        return dict(self._probes)

    def region_states(self) -> list[dict[str, Any]]:
        """Each region's configuration (no secrets), breaker state and recent latency.

        No I/O: the breaker states are this instance's cached copies, refreshed by traffic and
        at least once per health-timer run (probe_all); "unknown" when never read here. The
        store's own view of every breaker is `await board.snapshot()`.
        """
        now = self._board.now()
        return [self._describe(region, now) for region in self.regions]

    # routing ------------------------------------------------------------------------------

    async def _route(
        self,
        tier: str,
        deadline: Deadline,
        call: Callable[[RegionConfig, float], Awaitable[T]],
    ) -> tuple[T, str, list[Attempt]]:
        """Run `call` on candidates pass after pass until one succeeds or time runs out."""
        serving = self._serving(tier)
        attempts: list[Attempt] = []
        for pass_number in itertools.count():
            for region in self._candidates(serving):
                self._require_time(deadline, attempts)
                if not await self._board.allows(self._key(region.name)):
                    continue
                try:
                    result = await self._attempt(region, call, deadline, attempts)
                except LlmError as error:
                    if not error.retryable:
                        raise  # a bad request fails the same way in every region
                    continue  # fail over at once: no sleep while another region may serve
                if attempts[0].region != region.name:
                    moved = {names.FROM_REGION: attempts[0].region, names.REGION: region.name}
                    record(names.FAILOVERS, 1, moved)
                return result, region.name, attempts
            await self._back_off_or_give_up(serving, pass_number, deadline, attempts)
        raise AssertionError("unreachable: itertools.count() never ends")

    def _serving(self, tier: str) -> list[RegionConfig]:
        """The regions configured for `tier`."""
        serving = [region for region in self.regions if tier in region.tiers]
        if not serving:
            raise NoRegionForTier(tier)
        return serving

    def _candidates(self, serving: list[RegionConfig]) -> list[RegionConfig]:
        """Lowest priority number first; weighted random order within each priority."""
        priorities = sorted({region.priority for region in serving})
        return [
            region
            for priority in priorities
            for region in weighted_order([r for r in serving if r.priority == priority], self._rng)
        ]

    def _require_time(self, deadline: Deadline, attempts: list[Attempt]) -> None:
        """Refuse to start an attempt that could not do useful work before the deadline."""
        if not deadline.can_fit(self._min_attempt):
            raise DeadlineExceeded(attempts)

    async def _attempt(
        self,
        region: RegionConfig,
        call: Callable[[RegionConfig, float], Awaitable[T]],
        deadline: Deadline,
        attempts: list[Attempt],
    ) -> T:
        """One call bounded by min(attempt timeout, time left); outcome goes to the breaker."""
        timeout = min(self._attempt_timeout, deadline.remaining())
        began, started = self._board.now(), self._clock()
        try:
            async with asyncio.timeout(timeout):
                result = await call(region, timeout)
        except (LlmError, TimeoutError) as raw:
            error = _as_llm_error(raw)
            attempts.append(self._failed_attempt(region.name, error, started))
            await self._record_error(region.name, error)
            self._observe(region.name)
            if error is raw:
                raise
            raise error from raw
        elapsed = self._ms_since(started)
        attempts.append(Attempt(region.name, "ok", 200, elapsed))
        self._latencies[region.name].append(elapsed)
        await self._board.record_success(self._key(region.name), started_at=began)
        self._observe(region.name)
        return result

    def _failed_attempt(self, region: str, error: LlmError, started: float) -> Attempt:
        """The record of a failed attempt."""
        return Attempt(
            region, error.kind, error.status, self._ms_since(started), self._retry_after(error)
        )

    async def _record_error(self, region: str, error: LlmError) -> None:
        """Count a retryable failure against the region; a Retry-After opens it that long."""
        if error.retryable:
            await self._board.record_failure(self._key(region), self._retry_after(error))

    def _retry_after(self, error: LlmError) -> float | None:
        """The error's Retry-After, capped (values near a day have been seen)."""
        if error.retry_after_seconds is None:
            return None
        return cap(error.retry_after_seconds, self._max_retry_after)

    async def _back_off_or_give_up(
        self,
        serving: list[RegionConfig],
        pass_number: int,
        deadline: Deadline,
        attempts: list[Attempt],
    ) -> None:
        """Nobody could serve: sleep until the earliest region returns, or raise."""
        self._require_time(deadline, attempts)
        now = self._board.now()
        states = {region.name: self._cached_state(region) for region in serving}
        wait = min(seconds_until_allowed(state, now) for state in states.values())
        if not deadline.can_fit(wait + self._min_attempt):
            phases = {name: phase(state, now) for name, state in states.items()}
            raise AllRegionsDown(phases, wait, attempts)
        # Jitter on top of the wait spreads the instances that all wait for the same region;
        # it grows with each pass but never beyond the wait itself (or the base when wait is 0).
        jitter = full_jitter_backoff(
            pass_number, self._backoff_base, max(wait, self._backoff_base), self._rng
        )
        await self._sleep(min(wait + jitter, deadline.remaining() - self._min_attempt))

    # views --------------------------------------------------------------------------------

    def _key(self, region: str) -> str:
        """The breaker key of a region."""
        return f"{self._key_prefix}{region}"

    def _cached_state(self, region: RegionConfig) -> BreakerState:
        """The breaker state the last `allows` saw (no I/O)."""
        key = self._key(region.name)
        return self._board.cached(key) or BreakerState(key=key)

    def _observe(self, region: str) -> None:
        """The region's breaker state as this instance now sees it, on docgate.breaker.state."""
        state = self._board.cached(self._key(region))
        current = phase(state, self._board.now()) if state else "closed"
        record(names.BREAKER_STATE, BREAKER_LEVELS[current], {names.REGION: region})

    def _ms_since(self, started: float) -> float:
        """Milliseconds elapsed on the router's clock."""
        return (self._clock() - started) * 1000.0

    def _describe(self, region: RegionConfig, now: float) -> dict[str, Any]:
        """One region for GET /api/regions."""
        samples = list(self._latencies[region.name])
        probe = self._probes.get(region.name)
        state = self._board.cached(self._key(region.name))
        return {
            "name": region.name,
            "endpoint": region.endpoint,
            "deployment": region.deployment,
            "model": region.model,
            "priority": region.priority,
            "weight": region.weight,
            "tiers": list(region.tiers),
            "breaker": phase(state, now) if state else "unknown",
            "open_until": state.open_until if state else None,
            "reason": state.reason if state else None,
            "latency_ms": {
                "last": samples[-1] if samples else None,
                "median": statistics.median(samples) if samples else None,
                "samples": len(samples),
            },
            "probe": asdict(probe) if probe else None,
        }


async def _open_stream(client: LlmClient, request: LlmRequest, timeout_seconds: float) -> _Opened:
    """Start a stream and wait for its first chunk (failover is still possible until then)."""
    chunks = aiter(client.stream(request, timeout_seconds))
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        return _Opened(chunks, None)
    except BaseException:  # includes our timeout's cancellation: never leak an open stream
        await _close(chunks)
        raise
    return _Opened(chunks, first)


class RegionUnavailable(Exception):
    """The region's circuit breaker is open."""


def region_probes(router: RegionRouter) -> list[DependencyProbe]:
    """Health: each region as its breaker sees it (optional: the app answers offline without
    any). No model call is made: the region health timer probes regions and feeds breakers."""

    def probe_of(state: dict[str, Any]) -> DependencyProbe:
        async def probe() -> None:
            if state["breaker"] == "open":
                raise RegionUnavailable(state["name"])

        return DependencyProbe(f"llm:{state['name']}", probe, required=False)

    return [probe_of(state) for state in router.region_states()]
