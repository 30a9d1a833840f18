"""docgate's own function_app.py served by devhost against the emulators, end to end."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import CosmosClient
from azure.storage.blob import BlobServiceClient

from devhost.testing import HostProcess, free_port
from tests.apphost import MASTER_KEY, app_environment, start_app
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def app_host(
    tmp_path: Path, emulators: EmulatorEndpoints, unique_name: str
) -> Iterator[HostProcess]:
    host = start_app(tmp_path, app_environment(emulators, unique_name))
    try:
        yield host
    finally:
        host.stop()


def test_health_is_anonymous_and_reports_each_dependency(app_host: HostProcess) -> None:
    status, body = get_json(f"{app_host.base_url}/api/health")
    assert status == 200, body
    assert body["status"] == "healthy"
    for name in ("blob_storage", "cosmos"):
        assert body["dependencies"][name]["status"] == "up"
        assert body["dependencies"][name]["latency_ms"] >= 0


def test_health_is_503_when_cosmos_is_down(
    tmp_path: Path, emulators: EmulatorEndpoints, unique_name: str
) -> None:
    environment = app_environment(
        emulators,
        unique_name,
        COSMOS_ENDPOINT=f"https://127.0.0.1:{free_port()}",
        DOCGATE_CREATE_RESOURCES="false",
        HEALTH_TIMEOUT_SECONDS="2",
    )
    blobs = BlobServiceClient.from_connection_string(emulators.azurite_connection_string)
    blobs.create_container(unique_name)
    host = start_app(tmp_path, environment)
    try:
        status, body = get_json(f"{host.base_url}/api/health")
    finally:
        host.stop()
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["dependencies"]["cosmos"]["status"] == "down"
    assert body["dependencies"]["blob_storage"]["status"] == "up"


def test_missing_setting_stops_start_up_naming_it(
    tmp_path: Path, emulators: EmulatorEndpoints, unique_name: str
) -> None:
    environment = app_environment(emulators, unique_name, COSMOS_ENDPOINT="", LOG_LEVEL="loud")
    host = start_app(tmp_path, environment, wait=False)
    assert host.process is not None
    assert host.process.wait(60) != 0
    log = host.log_text()
    assert "COSMOS_ENDPOINT is required" in log
    assert "LOG_LEVEL='loud' is invalid" in log


def test_upload_starts_an_ingest_orchestration_visible_through_the_durable_api(
    app_host: HostProcess, emulators: EmulatorEndpoints, unique_name: str
) -> None:
    content = (b"Quarterly numbers are up across every region. " * 40).strip()
    blobs = BlobServiceClient.from_connection_string(emulators.azurite_connection_string)
    blobs.get_blob_client(unique_name, "contoso/reports/q3.txt").upload_blob(
        content, metadata={"tenant": "contoso"}
    )

    listing = (
        f"{app_host.base_url}/runtime/webhooks/durabletask/instances"
        f"?instanceIdPrefix=ingest-&code={MASTER_KEY}"
    )
    deadline = time.monotonic() + 60
    instance: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, instances = get_json(listing)
        assert status == 200
        if instances and instances[0]["runtimeStatus"] in ("Completed", "Failed"):
            instance = instances[0]
            break
        time.sleep(0.2)
    assert instance, f"no ingest orchestration finished:\n{app_host.log_tail()}"
    assert instance["runtimeStatus"] == "Completed", instance
    assert instance["customStatus"]["step"] == "done"
    assert instance["customStatus"]["outcome"] == "indexed"
    assert instance["output"]["outcome"] == "indexed"
    assert instance["output"]["chunks_added"] >= 1

    cosmos = CosmosClient(
        emulators.cosmos_endpoint, emulators.cosmos_key, connection_verify=False,
        enable_endpoint_discovery=False,
    )  # fmt: skip
    documents = cosmos.get_database_client(unique_name).get_container_client("documents")
    stored = list(
        documents.query_items(
            "SELECT * FROM c WHERE c.tenant = @t", parameters=[{"name": "@t", "value": "contoso"}]
        )
    )
    assert [item["sha256"] for item in stored] == [hashlib.sha256(content).hexdigest()]
    assert stored[0]["media_type"] == "text/plain" and stored[0]["state"] == "succeeded"
    # One blob version, one orchestration: later polls do not start another.
    time.sleep(1.0)
    assert len(get_json(listing)[1]) == 1
