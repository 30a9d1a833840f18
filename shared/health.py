"""Dependency health: each probe timed and bounded, rolled up into one report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DependencyProbe:
    """A cheap call that succeeds only when the dependency can serve."""

    name: str
    probe: Callable[[], Awaitable[Any]]
    required: bool = True


@dataclass(frozen=True)
class DependencyStatus:
    """One probe's result."""

    name: str
    up: bool
    latency_ms: float
    required: bool
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry `GET /api/health` reports for this dependency."""
        entry: dict[str, Any] = {
            "status": "up" if self.up else "down",
            "latency_ms": round(self.latency_ms, 1),
            "required": self.required,
        }
        if self.error:
            entry["error"] = self.error
        return entry


async def _run_probe(probe: DependencyProbe, limit_seconds: float) -> DependencyStatus:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_seconds):
            await probe.probe()
        error = None
    except TimeoutError:
        error = f"no answer within {limit_seconds:g}s"
    except Exception as failure:  # any failure means down; the class name is safe to show
        error = type(failure).__name__
    elapsed = (time.perf_counter() - started) * 1000
    return DependencyStatus(probe.name, error is None, elapsed, probe.required, error)


async def check_dependencies(
    probes: Sequence[DependencyProbe], limit_seconds: float
) -> tuple[bool, dict[str, Any]]:
    """Runs every probe concurrently; healthy when all required ones are up."""
    results = await asyncio.gather(*(_run_probe(probe, limit_seconds) for probe in probes))
    healthy = all(result.up for result in results if result.required)
    return healthy, {
        "status": "healthy" if healthy else "unhealthy",
        "dependencies": {result.name: result.as_json() for result in results},
    }
