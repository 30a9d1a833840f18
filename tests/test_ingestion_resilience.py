"""Ingestion through Azure engines (local REST doubles) and across a host crash."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.apphost import start_app, wait_until
from tests.conftest import EmulatorEndpoints
from tests.doubles import HttpDouble
from tests.doubles.document_intelligence import DocumentIntelligenceDouble
from tests.doubles.image_analysis import ImageAnalysisDouble
from tests.fixtures import documents
from tests.test_ingestion import Deployment, deploy

pytestmark = pytest.mark.emulators


@contextmanager
def serving(double: HttpDouble) -> Iterator[HttpDouble]:
    """Runs a double on its own event loop thread, so a devhost child process can call it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(double.start(), loop).result(10)
    double.loop = loop  # type: ignore[attr-defined]  # for scripting coroutines from tests
    try:
        yield double
    finally:
        asyncio.run_coroutine_threadsafe(double.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture
def azure_app(
    tmp_path: Path, emulators: EmulatorEndpoints
) -> Iterator[tuple[Deployment, Any, Any]]:
    with (
        serving(DocumentIntelligenceDouble(retry_after=0)) as layout,
        serving(
            ImageAnalysisDouble(
                caption=("A bar chart of monthly throughput", 0.9), tags=[("chart", 0.9)]
            )
        ) as vision,
    ):
        yield from (
            (app, layout, vision)
            for app in deploy(
                tmp_path,
                emulators,
                EXTRACTION_MODE="auto",
                DOCUMENT_INTELLIGENCE_ENDPOINT=layout.endpoint,
                DOCUMENT_INTELLIGENCE_KEY=layout.key,
                VISION_ENDPOINT=vision.endpoint,
                VISION_KEY=vision.key,
            )
        )


def test_auto_mode_sends_only_scanned_pages_to_document_intelligence(
    azure_app: tuple[Deployment, Any, Any],
) -> None:
    app, layout, _ = azure_app
    doc_id = app.upload("mixed/scan.pdf", documents.scanned_pdf())
    status = app.wait_done(doc_id)
    assert status["state"] == "succeeded", status.get("error")
    # Page 1 has a real text layer: read for free. Page 2 is a scan: Document Intelligence.
    assert status["engines"] == {"pdfium": [1], "document-intelligence": [2]}
    assert status["cost_usd"] == pytest.approx(0.01)
    analyzed = layout.seen("analyze")
    assert [request.query.get("pages") for request in analyzed] == ["2-2"]
    chunks = app.chunks(doc_id)
    assert any(2 in chunk["pages"] for chunk in chunks)
    assert any("real text layer" in chunk["text"] and chunk["pages"] == [1] for chunk in chunks)


def test_figure_descriptions_come_from_vision_and_are_paid_once(
    azure_app: tuple[Deployment, Any, Any],
) -> None:
    app, _, vision = azure_app
    content = documents.figure_pdf()
    doc_id = app.upload("figures/chart.pdf", content)
    first = app.wait_done(doc_id)
    assert first["state"] == "succeeded", first.get("error")
    text = "\n".join(chunk["text"] for chunk in app.chunks(doc_id))
    assert "A bar chart of monthly throughput" in text
    calls = len(vision.received)
    assert calls >= 1
    # The same figure in another document: described from the cache, not paid again.
    other = app.upload("figures/copy.pdf", content, tenant="contoso")
    assert app.wait_done(other)["state"] == "succeeded"
    assert len(vision.received) == calls


def test_host_killed_mid_ingestion_finishes_after_restart_without_duplicates(
    tmp_path: Path, emulators: EmulatorEndpoints
) -> None:
    pages = 6
    deployment_iter = deploy(tmp_path, emulators, PAGES_PER_BATCH="1")
    app = next(deployment_iter)
    doc_id = app.upload("crash/manifest.pdf", documents.scanned_pages_pdf(pages))
    wait_until(lambda: app.status(doc_id).get("step") == "extract", timeout=60, host=app.host)
    time.sleep(1.0)  # some page ranges done, others in flight
    app.host.kill()
    restarted = start_app(tmp_path, app.host.env, data_dir=app.host.data_dir)
    app.host = restarted
    try:
        status = app.wait_done(doc_id)
        assert status["state"] == "succeeded", status.get("error")
        chunks = app.chunks(doc_id)
        ids = [chunk["id"] for chunk in chunks]
        assert len(ids) == len(set(ids)) == status["counts"]["chunks"]
        assert set(ids) == set(app.manifest(doc_id)["chunk_ids"])
        found = {page for chunk in chunks for page in chunk["pages"]}
        assert found == set(range(1, pages + 1))
        assert all(chunk["status"] == "live" for chunk in chunks)
    finally:
        restarted.stop()
        deployment_iter.close()
