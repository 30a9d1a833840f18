"""Chaos: kill -9 of the local host AND the Cosmos emulator in the middle of an ingestion and of
a burst of chat requests, then `make run` again (both restarted on the same data). Nothing that
was acknowledged is lost: documents stay searchable, the usage ledger keeps every answered
request, the rate limiter's windows are kept, and the index has no duplicate or missing chunk.

Marked `chaos` (242 s on the shared 2-core machine at load 15); it runs in `make test` like
everything else (`PYTEST_ARGS="-m chaos"` runs it alone, `-m "not chaos"` skips it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apphost import app_environment, request, start_app, wait_until
from tests.conftest import EmulatorEndpoints
from tests.fixtures import documents
from tests.test_local_data import CosmosEmulator

pytestmark = [pytest.mark.emulators, pytest.mark.chaos]

POLICY = b"Refunds are accepted within 30 days of purchase with the original receipt. " * 12
QUESTION = json.dumps(
    {"messages": [{"role": "user", "content": "Within how many days?"}], "cache": "no-store"}
)
KEPT = ("documents", "chunks", "manifests", "usage", "rate_limits")  # acknowledged writes


def item_ids(database: Any, container: str) -> set[str]:
    rows = database.get_container_client(container).query_items(
        "SELECT c.id FROM c", enable_cross_partition_query=True
    )
    return {row["id"] for row in rows}


def chat(host: Any) -> int:
    status, _, _ = request(
        host, "POST", "/api/chat", QUESTION.encode(), {"Content-Type": "application/json"}
    )
    return status


@pytest.fixture
def cosmos(tmp_path: Path) -> Iterator[CosmosEmulator]:
    running = CosmosEmulator(tmp_path / "emulator").start()
    try:
        yield running
    finally:
        if running.process and running.process.poll() is None:
            running.kill()


def test_kill_9_of_host_and_cosmos_mid_ingestion_and_mid_burst_loses_nothing(
    tmp_path: Path, emulators: EmulatorEndpoints, cosmos: CosmosEmulator, unique_name: str
) -> None:
    environment = app_environment(
        emulators, unique_name, COSMOS_ENDPOINT=cosmos.endpoint, PAGES_PER_BATCH="1"
    )
    host = start_app(tmp_path / "app", environment)

    def state(doc_id: str) -> dict[str, Any]:
        code, _, body = request(host, "GET", f"/api/documents/{doc_id}")
        return body if code == 200 else {}

    try:
        status, _, accepted = request(host, "POST", "/api/documents?name=policy.txt", POLICY)
        assert status == 202, accepted
        wait_until(lambda: state(accepted["id"]).get("state") == "succeeded", host=host)
        assert [chat(host) for _ in range(3)] == [200, 200, 200]

        # Mid-ingestion: a scanned PDF is in its page batches; mid-burst: chats are in flight.
        scan = documents.scanned_pages_pdf(6)
        status, _, scanned = request(host, "POST", "/api/documents?name=scan.pdf", scan)
        assert status == 202, scanned
        scan_id = scanned["id"]
        wait_until(lambda: state(scan_id).get("step") == "extract", timeout=90, host=host)
        answered: list[int] = []
        burst = [threading.Thread(target=lambda: answered.append(chat(host))) for _ in range(6)]
        for thread in burst:
            thread.start()
        time.sleep(0.5)
        client = cosmos.client()
        database = client.get_database_client(unique_name)
        before = {name: item_ids(database, name) for name in KEPT}
        cosmos.kill()
        host.kill()
        for thread in burst:
            thread.join(90)

        cosmos.start()  # `make run` again: the same data directory, the same port
        host = start_app(tmp_path / "app", host.env, data_dir=host.data_dir)
        database = cosmos.client().get_database_client(unique_name)

        after = {name: item_ids(database, name) for name in KEPT}
        for name, ids in before.items():
            assert ids <= after[name], f"{name}: acknowledged items lost: {ids - after[name]}"
        # The ledger holds every answered request (and never more than were sent).
        assert 3 + answered.count(200) <= len(after["usage"]) <= 3 + len(burst)

        final = wait_until(lambda: state(scan_id).get("state") == "succeeded" and state(scan_id),
                           timeout=180, host=host)  # fmt: skip
        chunks = list(
            database.get_container_client("chunks").query_items(
                "SELECT c.id, c.pages, c.status FROM c WHERE c.document_id = @d",
                parameters=[{"name": "@d", "value": scan_id}], enable_cross_partition_query=True,
            )
        )  # fmt: skip
        ids = [chunk["id"] for chunk in chunks]
        assert len(ids) == len(set(ids)) == final["counts"]["chunks"]
        assert {page for chunk in chunks for page in chunk["pages"]} == set(range(1, 7))
        assert all(chunk["status"] == "live" for chunk in chunks)

        # Still searchable after the crash.
        status, _, answer = request(
            host, "POST", "/api/chat", QUESTION.encode(), {"Content-Type": "application/json"}
        )
        assert status == 200, answer
        assert any(c["document_id"] == accepted["id"] for c in answer["citations"]), answer
    finally:
        host.stop()
