"""Dependency health: bounded, concurrent probes rolled up by whether they are required."""

from __future__ import annotations

import asyncio

from shared.health import DependencyProbe, check_dependencies

CANARY = "canary-5d1e-AccountKey=abc"
LIMIT = 5.0


async def ok() -> str:
    return "pong"


async def broken() -> None:
    raise ConnectionRefusedError(f"cannot reach {CANARY}")


async def never_answers() -> None:
    await asyncio.Event().wait()


async def test_all_up_is_healthy() -> None:
    healthy, report = await check_dependencies(
        [DependencyProbe("cosmos", ok), DependencyProbe("storage", ok, required=False)], LIMIT
    )
    assert healthy is True
    assert report["status"] == "healthy"
    assert set(report["dependencies"]) == {"cosmos", "storage"}
    cosmos = report["dependencies"]["cosmos"]
    assert cosmos["status"] == "up"
    assert cosmos["required"] is True
    assert "error" not in cosmos
    assert isinstance(cosmos["latency_ms"], float) and cosmos["latency_ms"] >= 0
    assert report["dependencies"]["storage"]["required"] is False


async def test_no_probes_is_healthy() -> None:
    assert await check_dependencies([], LIMIT) == (
        True,
        {"status": "healthy", "dependencies": {}},
    )


async def test_required_probe_failing_is_unhealthy_with_class_name_only() -> None:
    healthy, report = await check_dependencies(
        [DependencyProbe("cosmos", broken), DependencyProbe("storage", ok)], LIMIT
    )
    assert healthy is False
    assert report["status"] == "unhealthy"
    cosmos = report["dependencies"]["cosmos"]
    assert cosmos["status"] == "down"
    assert cosmos["error"] == "ConnectionRefusedError"
    assert CANARY not in repr(report)
    assert report["dependencies"]["storage"]["status"] == "up"


async def test_optional_probe_failing_is_still_healthy() -> None:
    healthy, report = await check_dependencies(
        [DependencyProbe("cosmos", ok), DependencyProbe("telemetry", broken, required=False)],
        LIMIT,
    )
    assert healthy is True
    assert report["status"] == "healthy"
    telemetry = report["dependencies"]["telemetry"]
    assert telemetry["status"] == "down"
    assert telemetry["error"] == "ConnectionRefusedError"
    assert telemetry["required"] is False


async def test_probe_over_the_limit_is_down() -> None:
    healthy, report = await check_dependencies(
        [DependencyProbe("cosmos", never_answers), DependencyProbe("storage", ok)], 0.05
    )
    assert healthy is False
    cosmos = report["dependencies"]["cosmos"]
    assert cosmos["status"] == "down"
    assert cosmos["error"] == "no answer within 0.05s"
    assert report["dependencies"]["storage"]["status"] == "up"


async def test_probes_run_concurrently() -> None:
    # Each probe needs the other to have started: run one after the other, the first would
    # wait for the second until the time limit and be reported down.
    first_started, second_started = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        first_started.set()
        await second_started.wait()

    async def second() -> None:
        second_started.set()
        await first_started.wait()

    healthy, report = await check_dependencies(
        [DependencyProbe("a", first), DependencyProbe("b", second)], LIMIT
    )
    assert report["dependencies"]["a"]["status"] == "up", report
    assert report["dependencies"]["b"]["status"] == "up", report
    assert healthy is True
