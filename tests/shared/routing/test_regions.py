"""Region routing: priority, weights, immediate failover, backoff, deadlines, probes, streams."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from shared.llm.types import LlmChunk, LlmError, LlmRequest, LlmResponse, Usage
from shared.resilience.breaker import BreakerBoard, BreakerPolicy, MemoryBreakerStore, phase
from shared.resilience.retry import Deadline
from shared.routing.config import RegionConfig
from shared.routing.regions import (
    AllRegionsDown,
    DeadlineExceeded,
    NoRegionForTier,
    RegionRouter,
    weighted_order,
)

T0 = 1_700_000_000.0
REQUEST = LlmRequest(messages=[{"role": "user", "content": "hello"}])
MAX_RETRY_AFTER = 30.0


class FakeClock:
    """One settable clock for the router, the board and the deadline."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSleep:
    """An injected sleep: records each delay and moves the fake clock instead of waiting."""

    clock: FakeClock
    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.now += seconds


Outcome = LlmError | Callable[[], None] | None  # None: answer; a callable runs first (a delay)


@dataclass
class FakeClient:
    """An LlmClient whose calls follow a script, then answer."""

    name: str
    script: list[Outcome] = field(default_factory=list)
    chunks: tuple[str, ...] = ("Hel", "lo")
    fail_after_chunks: LlmError | None = None
    model: str = "gpt-4o-mini"
    timeouts: list[float] = field(default_factory=list)

    def _next(self) -> None:
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, LlmError):
            raise outcome
        if outcome is not None:
            outcome()

    async def complete(self, request: LlmRequest, timeout_seconds: float) -> LlmResponse:
        self.timeouts.append(timeout_seconds)
        self._next()
        return LlmResponse(f"from {self.name}", self.model, Usage(3, 2))

    async def stream(self, request: LlmRequest, timeout_seconds: float) -> AsyncIterator[LlmChunk]:
        self.timeouts.append(timeout_seconds)
        self._next()
        for text in self.chunks:
            yield LlmChunk(text)
        if self.fail_after_chunks is not None:
            raise self.fail_after_chunks
        yield LlmChunk("", Usage(3, 2), "stop")


def throttled(retry_after: float | None) -> LlmError:
    """A 429 as the Azure OpenAI client reports it."""
    return LlmError("throttled", "Too Many Requests", 429, retry_after)


def server_error(status: int = 500) -> LlmError:
    """A 5xx."""
    return LlmError("server", "Internal Server Error", status)


def region(
    name: str, priority: int = 1, weight: float = 1.0, tiers: tuple[str, ...] = ("standard",)
) -> RegionConfig:
    """A region config."""
    return RegionConfig(
        name, f"https://{name}.openai.azure.com", "chat", "gpt-4o-mini", priority, weight, tiers
    )


@dataclass
class Rig:
    """A router over fake clients, with its clock, sleep and board."""

    router: RegionRouter
    clients: dict[str, FakeClient]
    board: BreakerBoard
    clock: FakeClock
    sleep: FakeSleep

    def deadline(self, seconds: float = 60.0) -> Deadline:
        return Deadline(seconds, clock=self.clock)

    def breaker(self, name: str) -> str:
        state = self.board.cached(f"llm:{name}")
        return "closed" if state is None else phase(state, self.clock.now)


def rig(*regions: RegionConfig, seed: int = 1, attempt_timeout: float = 30.0) -> Rig:
    """A router over `regions`, one fake client each."""
    clock = FakeClock()
    sleep = FakeSleep(clock)
    board = BreakerBoard(
        MemoryBreakerStore(),
        BreakerPolicy(failure_threshold=3, open_seconds=20, max_open_seconds=MAX_RETRY_AFTER),
        clock=clock,
    )
    clients = {r.name: FakeClient(r.name) for r in regions}
    router = RegionRouter(
        regions,
        dict(clients),
        board,
        max_retry_after_seconds=MAX_RETRY_AFTER,
        attempt_timeout_seconds=attempt_timeout,
        rng=random.Random(seed),
        clock=clock,
        sleep=sleep,
    )
    return Rig(router, clients, board, clock, sleep)


async def test_throttled_primary_fails_over_at_once_and_opens_for_capped_retry_after() -> None:
    r = rig(region("primary", 1), region("secondary", 2))
    r.clients["primary"].script = [throttled(86_400)]
    routed = await r.router.complete(REQUEST, "standard", r.deadline())
    assert routed.region == "secondary" and routed.response.content == "from secondary"
    assert r.sleep.delays == []
    assert [(a.region, a.outcome, a.status, a.retry_after) for a in routed.attempts] == [
        ("primary", "throttled", 429, MAX_RETRY_AFTER),
        ("secondary", "ok", 200, None),
    ]
    state = r.board.cached("llm:primary")
    assert state is not None and state.open_until == T0 + MAX_RETRY_AFTER
    r.clock.now += MAX_RETRY_AFTER - 0.1
    again = await r.router.complete(REQUEST, "standard", r.deadline())
    assert again.region == "secondary" and len(r.clients["primary"].timeouts) == 1


async def test_lowest_priority_number_serves_and_failover_follows_priority() -> None:
    r = rig(region("p2", 2), region("p1", 1), region("p3", 3))
    assert (await r.router.complete(REQUEST, "standard", r.deadline())).region == "p1"
    r.clients["p1"].script = [server_error(503)]
    r.clients["p2"].script = [LlmError("connection", "reset")]
    routed = await r.router.complete(REQUEST, "standard", r.deadline())
    assert routed.region == "p3"
    assert [a.outcome for a in routed.attempts] == ["server", "connection", "ok"]
    assert r.sleep.delays == []


async def test_weighted_split_within_a_priority() -> None:
    r = rig(region("big", 1, weight=3), region("small", 1, weight=1), region("spare", 2), seed=42)
    served = [
        (await r.router.complete(REQUEST, "standard", r.deadline())).region for _ in range(4000)
    ]
    assert served.count("spare") == 0
    assert served.count("big") / len(served) == pytest.approx(0.75, abs=0.025)


def test_weighted_order_puts_every_region_in_the_order() -> None:
    regions = [region("a", weight=5), region("b", weight=1), region("c", weight=0.5)]
    rng = random.Random(9)
    firsts = [weighted_order(regions, rng)[0].name for _ in range(6500)]
    assert sorted(r.name for r in weighted_order(regions, rng)) == ["a", "b", "c"]
    assert firsts.count("a") / 6500 == pytest.approx(5 / 6.5, abs=0.02)


async def test_all_regions_down_carries_the_smallest_retry_after_and_each_state() -> None:
    r = rig(region("a", 1), region("b", 1), region("c", 2))
    r.clients["a"].script = [throttled(12)]
    r.clients["b"].script = [throttled(5)]
    r.clients["c"].script = [throttled(8)]
    with pytest.raises(AllRegionsDown) as caught:
        await r.router.complete(REQUEST, "standard", r.deadline(4.0))
    assert caught.value.retry_after_seconds == pytest.approx(5.0)
    assert caught.value.states == {"a": "open", "b": "open", "c": "open"}
    assert len(caught.value.attempts) == 3 and r.sleep.delays == []
    with pytest.raises(AllRegionsDown) as again:  # open breakers: no call at all
        await r.router.complete(REQUEST, "standard", r.deadline(4.0))
    assert again.value.attempts == [] and again.value.retry_after_seconds == pytest.approx(5.0)


async def test_backs_off_only_when_nobody_can_serve_and_the_wait_fits() -> None:
    r = rig(region("a", 1), region("b", 2))
    r.clients["a"].script = [throttled(3)]
    r.clients["b"].script = [throttled(6)]
    routed = await r.router.complete(REQUEST, "standard", r.deadline(10.0))
    assert routed.region == "a"  # its breaker half-opened first; the probe call succeeded
    assert len(r.sleep.delays) == 1
    assert 3.0 <= r.sleep.delays[0] <= 3.0 + 0.5  # the wait plus jitter of at most the base
    assert r.breaker("a") == "closed" and r.breaker("b") == "open"


async def test_backs_off_and_retries_regions_that_failed_without_retry_after() -> None:
    r = rig(region("a", 1), region("b", 2))
    r.clients["a"].script = [server_error()]
    r.clients["b"].script = [server_error(502)]
    routed = await r.router.complete(REQUEST, "standard", r.deadline(10.0))
    assert routed.region == "a" and len(routed.attempts) == 3
    assert len(r.sleep.delays) == 1 and 0.0 <= r.sleep.delays[0] <= 0.5


async def test_deadline_exhausted_starts_no_attempt_past_it() -> None:
    r = rig(region("a", 1), region("b", 2))

    def slow() -> None:
        r.clock.now += 4.5

    r.clients["a"].script = [_then(slow, server_error())]
    with pytest.raises(DeadlineExceeded) as caught:
        await r.router.complete(REQUEST, "standard", r.deadline(5.0))
    assert [a.region for a in caught.value.attempts] == ["a"]
    assert r.clients["b"].timeouts == [] and r.sleep.delays == []


def _then(before: Callable[[], None], error: LlmError) -> Callable[[], None]:
    """An outcome that runs `before` (e.g. a delay) and then raises `error`."""

    def outcome() -> None:
        before()
        raise error

    return outcome


async def test_attempt_timeout_is_bounded_by_the_time_left() -> None:
    r = rig(region("a", 1), attempt_timeout=30.0)
    await r.router.complete(REQUEST, "standard", r.deadline(7.0))
    assert r.clients["a"].timeouts == [7.0]
    r2 = rig(region("a", 1), attempt_timeout=3.0)
    await r2.router.complete(REQUEST, "standard", r2.deadline(60.0))
    assert r2.clients["a"].timeouts == [3.0]


async def test_a_hung_region_times_out_and_fails_over() -> None:
    slow, fast = region("slow", 1), region("fast", 2)
    r = rig(slow, fast, attempt_timeout=0.05)
    hung = asyncio.Event()

    async def never(request: LlmRequest, timeout_seconds: float) -> LlmResponse:
        await hung.wait()
        raise AssertionError("unreachable")

    r.clients["slow"].complete = never  # type: ignore[method-assign]
    r.router._min_attempt = 0.01  # the real 50 ms timeout needs a smaller useful minimum
    routed = await r.router.complete(REQUEST, "standard", r.deadline(10.0))
    assert routed.region == "fast"
    assert [a.outcome for a in routed.attempts] == ["timeout", "ok"]


async def test_a_client_error_is_returned_without_failover() -> None:
    r = rig(region("a", 1), region("b", 2))
    r.clients["a"].script = [LlmError("client", "context_length_exceeded", 400)]
    with pytest.raises(LlmError) as caught:
        await r.router.complete(REQUEST, "standard", r.deadline())
    assert caught.value.status == 400
    assert r.clients["b"].timeouts == []
    state = r.board.cached("llm:a")
    assert state is not None and state.failures == ()  # not the region's fault


async def test_probe_closes_a_half_open_breaker_and_a_failed_probe_reopens_it() -> None:
    r = rig(region("a", 1), region("b", 2))
    r.clients["a"].script = [throttled(10)]
    assert (await r.router.complete(REQUEST, "standard", r.deadline())).region == "b"
    r.clock.now += 10
    r.clients["a"].script = [server_error(503)]
    failed = await r.router.probe("a")
    assert not failed.ok and failed.status == 503 and failed.error_kind == "server"
    assert r.breaker("a") == "open"
    r.clock.now += 20
    ok = await r.router.probe("a")
    assert ok.ok and ok.error_kind is None and r.breaker("a") == "closed"
    assert (await r.router.complete(REQUEST, "standard", r.deadline())).region == "a"
    assert r.router.latest_probes()["a"] == ok


async def test_half_open_region_gets_one_probe_while_others_serve() -> None:
    r = rig(region("a", 1), region("b", 2))
    r.clients["a"].script = [throttled(10)]
    await r.router.complete(REQUEST, "standard", r.deadline())
    r.clock.now += 10
    release = asyncio.Event()
    original = r.clients["a"].complete

    async def held(request: LlmRequest, timeout_seconds: float) -> LlmResponse:
        await release.wait()
        return await original(request, timeout_seconds)

    r.clients["a"].complete = held  # type: ignore[method-assign]
    probe = asyncio.create_task(r.router.complete(REQUEST, "standard", r.deadline()))
    await asyncio.sleep(0)
    others = [await r.router.complete(REQUEST, "standard", r.deadline()) for _ in range(3)]
    assert [o.region for o in others] == ["b", "b", "b"]
    release.set()
    assert (await probe).region == "a" and r.breaker("a") == "closed"


async def test_stream_fails_over_before_the_first_chunk() -> None:
    r = rig(region("a", 1), region("b", 2))
    r.clients["a"].script = [throttled(4)]
    routed = await r.router.stream(REQUEST, "standard", r.deadline())
    text = "".join([chunk.delta async for chunk in routed])
    assert routed.region == "b" and text == "Hello"
    assert [a.outcome for a in routed.attempts] == ["throttled", "ok"]
    assert r.sleep.delays == [] and r.breaker("a") == "open"


async def test_stream_error_after_the_first_chunk_propagates() -> None:
    r = rig(region("a", 1), region("b", 2))
    r.clients["a"].fail_after_chunks = server_error(500)
    routed = await r.router.stream(REQUEST, "standard", r.deadline())
    received: list[str] = []
    with pytest.raises(LlmError) as caught:
        async for chunk in routed:
            received.append(chunk.delta)
    assert caught.value.kind == "server" and received == ["Hel", "lo"]
    assert r.clients["b"].timeouts == []
    state = r.board.cached("llm:a")
    assert state is not None and len(state.failures) == 1  # still counts against the region


async def test_unknown_tier_and_missing_client_are_rejected() -> None:
    r = rig(region("a", 1, tiers=("economy",)))
    with pytest.raises(NoRegionForTier):
        await r.router.complete(REQUEST, "premium", r.deadline())
    with pytest.raises(ValueError, match="no client"):
        RegionRouter(
            (region("x"),),
            {},
            r.board,
            max_retry_after_seconds=30,
            attempt_timeout_seconds=30,
        )


async def test_region_states_and_probe_all() -> None:
    r = rig(region("a", 1), region("b", 2, weight=2))
    assert [s["breaker"] for s in r.router.region_states()] == ["unknown", "unknown"]
    r.clients["b"].script = [throttled(15)]
    results = await r.router.probe_all()
    assert [(p.region, p.ok) for p in results] == [("a", True), ("b", False)]
    states = {s["name"]: s for s in r.router.region_states()}
    assert states["a"]["breaker"] == "closed" and states["a"]["latency_ms"]["samples"] == 1
    assert states["b"]["breaker"] == "open" and states["b"]["open_until"] == T0 + 15
    assert states["b"]["weight"] == 2 and states["b"]["probe"]["error_kind"] == "throttled"
    assert set(states["a"]) >= {"endpoint", "deployment", "model", "priority", "tiers"}
