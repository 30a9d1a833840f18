"""Outages end to end: a dependency down is a 503 problem with Retry-After on every route (never
a 500), an upload refused while Cosmos is down keeps no blob, and a Cosmos database that comes
back empty (the emulator restarted) is recreated lazily, without restarting the app."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import CosmosClient
from azure.storage.blob import BlobServiceClient

from devhost.testing import HostProcess, free_port
from tests.apphost import app_environment, request, start_app, wait_until
from tests.conftest import EmulatorEndpoints
from tests.test_inputs import route_table

pytestmark = pytest.mark.emulators

CHAT = json.dumps({"messages": [{"role": "user", "content": "What is the refund policy?"}]})
# What each route is sent: enough to get past input validation to the dependency.
SENT: dict[tuple[str, str], tuple[str, bytes | None]] = {
    ("POST", "documents"): ("documents?name=notes.txt", b"Refunds within 30 days."),
    ("GET", "documents/{id}"): ("documents/0123456789abcdef", None),
    ("DELETE", "documents/{id}"): ("documents/0123456789abcdef", None),
    ("GET", "documents/{id}/pages/{page:int}"): ("documents/0123456789abcdef/pages/1", None),
    ("GET", "documents/{id}/pages/{page:int}/image"): (
        "documents/0123456789abcdef/pages/1/image",
        None,
    ),
    ("PUT", "documents/{id}/acl"): ("documents/0123456789abcdef/acl", b'{"groups": ["finance"]}'),
    ("POST", "chat"): ("chat", CHAT.encode()),
    ("POST", "v1/chat/completions"): ("v1/chat/completions", CHAT.encode()),
}
# Answer from code and settings alone: no dependency involved (no LLM regions configured).
NO_DEPENDENCY = {
    ("GET", "v1/models"),
    ("GET", "regions"),
    ("GET", "me"),
    ("GET", "app/config.json"),
    ("GET", "app/{*path}"),
}


@pytest.fixture(scope="module")
def cosmos_down(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[tuple[HostProcess, str]]:
    """The app with Cosmos unreachable (nothing listens on its port); Blob Storage is up."""
    name = f"t-outage-{free_port()}"
    environment = app_environment(
        emulators,
        name,
        COSMOS_ENDPOINT=f"https://127.0.0.1:{free_port()}",
        DOCGATE_CREATE_RESOURCES="false",
        HEALTH_TIMEOUT_SECONDS="2",
    )
    blobs = BlobServiceClient.from_connection_string(emulators.azurite_connection_string)
    blobs.create_container(name)
    host = start_app(tmp_path_factory.mktemp("outage"), environment)
    try:
        yield host, name
    finally:
        host.stop()
        blobs.delete_container(name)


def test_every_route_answers_503_with_retry_after_while_cosmos_is_down(
    cosmos_down: tuple[HostProcess, str],
) -> None:
    host, _ = cosmos_down
    answered: dict[str, int] = {}
    for route in route_table():
        for method in route["methods"]:
            if (method, route["path"]) in NO_DEPENDENCY or route["path"] == "health":
                continue
            path, body = SENT.get((method, route["path"]), (route["path"], None))
            headers = {"Content-Type": "application/json"} if body and body[:1] == b"{" else {}
            started = time.monotonic()
            status, got, answer = request(host, method, f"/api/{path}", body, headers)
            answered[f"{method} {path}"] = status
            assert status == 503, (method, path, answer, host.log_tail(30))
            assert int(got["Retry-After"]) >= 1
            if route["openai"]:
                assert answer["error"]["type"] and answer["error"]["message"]
            else:
                assert got["Content-Type"].startswith("application/problem+json")
                assert answer["status"] == 503 and answer["detail"]
            assert time.monotonic() - started < 30
    assert {"GET documents", "GET usage", "GET audit", "POST documents?name=notes.txt"} <= set(
        answered
    )
    status, _, report = request(host, "GET", "/api/health", tenant=None)
    assert status == 503 and report["dependencies"]["cosmos"]["status"] == "down"


def test_an_upload_refused_while_cosmos_is_down_keeps_no_blob(
    cosmos_down: tuple[HostProcess, str], emulators: EmulatorEndpoints
) -> None:
    host, container = cosmos_down
    status, _, answer = request(
        host, "POST", "/api/documents?name=kept-or-not.txt", b"Refunds within 30 days."
    )
    assert status == 503, answer
    blobs = BlobServiceClient.from_connection_string(emulators.azurite_connection_string)
    names = [blob.name for blob in blobs.get_container_client(container).list_blobs()]
    assert names == []  # refused means not kept: it never becomes a half-known document


def documents(host: HostProcess) -> list[dict[str, Any]]:
    status, _, body = request(host, "GET", "/api/documents")
    assert status == 200, body
    return body["documents"]


def test_a_cosmos_database_that_comes_back_empty_is_recreated_without_a_restart(
    tmp_path: Path, emulators: EmulatorEndpoints, unique_name: str
) -> None:
    cosmos = CosmosClient(
        emulators.cosmos_endpoint, emulators.cosmos_key, connection_verify=False,
        enable_endpoint_discovery=False, connection_timeout=60,
    )  # fmt: skip
    host = start_app(tmp_path, app_environment(emulators, unique_name))
    try:
        assert documents(host) == []
        cosmos.delete_database(unique_name)  # what an emulator restarted empty looks like
        assert documents(host) == []  # the containers come back on first use
        status, _, usage = request(host, "GET", "/api/usage")
        assert status == 200, usage
        status, _, health = request(host, "GET", "/api/health", tenant=None)
        assert status == 200, health
        body = b"Refunds are accepted within 30 days of purchase. " * 20
        status, _, accepted = request(host, "POST", "/api/documents?name=policy.txt", body)
        assert status == 202, accepted

        def indexed() -> bool:
            listed = documents(host)
            return bool(listed) and listed[0]["state"] == "succeeded"

        wait_until(indexed, timeout=120, host=host)
    finally:
        host.stop()
        cosmos.delete_database(unique_name)


def test_an_upload_while_blob_storage_is_down_is_a_503(
    tmp_path: Path, emulators: EmulatorEndpoints, unique_name: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    storage = emulators.azurite_connection_string.replace(emulators.blob_endpoint, dead)
    environment = app_environment(
        emulators, unique_name, AzureWebJobsStorage=storage, DOCGATE_CREATE_RESOURCES="false"
    )
    host = start_app(tmp_path, environment)
    try:
        status, got, answer = request(host, "POST", "/api/documents?name=a.txt", b"some text")
        assert status == 503, (answer, host.log_tail(30))
        assert got["Content-Type"].startswith("application/problem+json")
        assert int(got["Retry-After"]) >= 1
    finally:
        host.stop()
