"""Multi-region chat end to end: Azure OpenAI doubles as regions, failover, breakers, deadlines."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apphost import request, start_app
from tests.conftest import EmulatorEndpoints
from tests.doubles.azure_openai import CHAT_MODEL, CHAT_ROUTE, AzureOpenAIDouble
from tests.fixtures import documents
from tests.test_ingestion import Deployment, deploy
from tests.test_ingestion_resilience import serving

pytestmark = pytest.mark.emulators
QUESTION = [{"role": "user", "content": "How many vessels are in the fleet?"}]


class Regions:
    """Two regions: eastus (priority 1) and westus (priority 2)."""

    def __init__(self, east: AzureOpenAIDouble, west: AzureOpenAIDouble) -> None:
        self.east, self.west = east, west

    def setting(self) -> str:
        return json.dumps(
            [
                {"name": "eastus", "endpoint": self.east.endpoint, "deployment": CHAT_MODEL,
                 "model": CHAT_MODEL, "priority": 1},
                {"name": "westus", "endpoint": self.west.endpoint, "deployment": CHAT_MODEL,
                 "model": CHAT_MODEL, "priority": 2},
            ]
        )  # fmt: skip

    def calls(self) -> tuple[int, int]:
        return len(self.east.seen(CHAT_ROUTE)), len(self.west.seen(CHAT_ROUTE))


@pytest.fixture
def regions() -> Iterator[Regions]:
    with serving(AzureOpenAIDouble()) as east, serving(AzureOpenAIDouble()) as west:
        yield Regions(east, west)  # type: ignore[arg-type]


@pytest.fixture
def app(tmp_path: Path, emulators: EmulatorEndpoints, regions: Regions) -> Iterator[Deployment]:
    overrides = {
        "LLM_REGIONS": regions.setting(),
        "LLM_API_KEY": regions.east.key,
        "LLM_MAX_RETRY_AFTER_SECONDS": "60",
        "BREAKER_CACHE_SECONDS": "1",
    }
    for deployment in deploy(tmp_path, emulators, **overrides):
        doc_id = deployment.upload("kb/report.pdf", documents.report_pdf())
        assert deployment.wait_done(doc_id)["state"] == "succeeded"
        yield deployment


def ask(host: Any, deadline_ms: int | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"content-type": "application/json"}
    if deadline_ms:
        headers["x-docgate-deadline-ms"] = str(deadline_ms)
    return request(host, "POST", "/api/chat", json.dumps({"messages": QUESTION}).encode(), headers)


def test_primary_region_serves_and_the_answer_is_grounded(
    app: Deployment, regions: Regions
) -> None:
    status, headers, body = ask(app.host)
    assert status == 200, body
    assert headers["x-docgate-region"] == "eastus" and body["model"] == CHAT_MODEL
    assert body["citations"] and body["usage"]["completion_tokens"] > 0
    prompt = regions.east.chat_bodies()[0]["messages"]
    assert "forty vessels" in json.dumps(prompt)  # the retrieved source reached the model
    assert regions.calls() == (1, 0)


def test_throttled_primary_fails_over_at_once_and_stays_skipped(
    app: Deployment, regions: Regions, tmp_path: Path
) -> None:
    regions.east.script_throttle(times=1, retry_after=40)
    started = time.monotonic()
    status, headers, body = ask(app.host)
    assert status == 200, body
    assert headers["x-docgate-region"] == "westus"
    assert time.monotonic() - started < 10  # no sleep on the 40 s Retry-After
    assert regions.calls() == (1, 1)
    # The breaker is open: the next request does not touch eastus at all...
    assert ask(app.host)[1]["x-docgate-region"] == "westus"
    assert regions.calls() == (1, 2)
    # ...nor does a request served by another instance (another process, the same Cosmos).
    other = start_app(tmp_path / "second", app.host.env)
    try:
        status, headers, _ = ask(other)
        assert status == 200 and headers["x-docgate-region"] == "westus"
        assert regions.calls() == (1, 3)
    finally:
        other.stop()
    _, _, states = request(app.host, "GET", "/api/regions")
    east = next(item for item in states["regions"] if item["name"] == "eastus")
    assert east["breaker"] == "open" and east["open_until"]


def test_every_region_down_is_503_with_the_smallest_retry_after(
    app: Deployment, regions: Regions
) -> None:
    regions.east.script_throttle(times=5, retry_after=40)
    regions.west.script_throttle(times=5, retry_after=12)
    # A deadline shorter than the smallest Retry-After (12 s) forbids waiting for a region, so
    # the answer is 503 at once; it is long enough that retrieval on a loaded machine cannot
    # exhaust it first (which would be the 504 of the next test, not this one).
    status, headers, problem = ask(app.host, deadline_ms=10_000)
    assert status == 503, problem
    assert headers["Retry-After"] == "12"
    assert headers["Content-Type"].startswith("application/problem+json")
    assert set(problem["regions"]) == {"eastus", "westus"}


def test_deadline_exhausted_is_504_and_no_attempt_outlives_it(
    app: Deployment, regions: Regions
) -> None:
    regions.east.script_delay(8, times=3)
    regions.west.script_delay(8, times=3)
    started = time.monotonic()
    status, _, problem = ask(app.host, deadline_ms=2500)
    elapsed = time.monotonic() - started
    assert status == 504, problem
    assert problem["code"] == "deadline_exceeded"
    assert elapsed < 6  # the deadline, not the regions' 8 s, bounded the request


def test_region_outage_with_connection_refused_fails_over(
    app: Deployment, regions: Regions
) -> None:
    east = regions.east  # it runs on its own loop thread (see `serving`)
    asyncio.run_coroutine_threadsafe(east.refuse_connections(), east.loop).result(10)  # type: ignore[attr-defined]
    status, headers, _ = ask(app.host)
    assert status == 200 and headers["x-docgate-region"] == "westus"
