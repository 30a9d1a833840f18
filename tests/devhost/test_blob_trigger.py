"""Tests for devhost.blob_trigger: path bindings, receipts, retries and poisoning, on Azurite."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueClient

from devhost.blob_trigger import (
    DEVELOPMENT_STORAGE,
    HOSTS_CONTAINER,
    POISON_QUEUE,
    BlobOptions,
    BlobTriggerError,
    BlobTriggerPoller,
    parse_blob_path,
    poison_message,
    read_blob_options,
    resolve_connection,
)
from devhost.config import HostConfig, HostKeys
from devhost.functions import FunctionInfo
from devhost.invoker import Invoker

if TYPE_CHECKING:
    from tests.devhost.conftest import AppLoader, Azurite

POLL_SECONDS = 0.1
WAIT_SECONDS = 15.0
MODULE = "blob_sample_app"


# --- path patterns, settings and message shapes (no storage needed) ---


def test_path_splits_container_and_binds_name() -> None:
    pattern = parse_blob_path("uploads/in/{name}.pdf")
    assert pattern.container == "uploads"
    assert pattern.prefix == "in/"
    assert pattern.match("in/report.pdf") == {"name": "report"}
    assert pattern.match("in/deep/report.v2.pdf") == {"name": "deep/report.v2"}
    assert pattern.match("in/report.txt") is None
    assert pattern.match("out/report.pdf") is None


def test_path_binding_is_greedy_like_the_host() -> None:
    assert parse_blob_path("c/{name}.{ext}").match("a.b.c") == {"name": "a.b", "ext": "c"}
    assert parse_blob_path("c/{name}").match("x/y z.txt") == {"name": "x/y z.txt"}


def test_path_double_braces_are_literal() -> None:
    pattern = parse_blob_path("c/{{raw}}/{name}")
    assert pattern.prefix == "{raw}/"
    assert pattern.match("{raw}/a") == {"name": "a"}


@pytest.mark.parametrize("path", ["{c}/x", "c/{name", "c/{a}/{a}", "/"])
def test_bad_paths_are_rejected(path: str) -> None:
    with pytest.raises(BlobTriggerError):
        parse_blob_path(path)


def test_development_storage_is_expanded() -> None:
    environ = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    assert resolve_connection("AzureWebJobsStorage", environ) == DEVELOPMENT_STORAGE
    assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1" in DEVELOPMENT_STORAGE


def test_connection_prefers_azurewebjobs_prefix_like_the_host() -> None:
    environ = {"AzureWebJobsDocs": "prefixed", "Docs": "plain", "Other": "other"}
    assert resolve_connection("Docs", environ) == "prefixed"
    assert resolve_connection("Other", environ) == "other"
    assert resolve_connection(None, {"AzureWebJobsStorage": "host"}) == "host"


def test_identity_based_connection_is_a_clear_error() -> None:
    environ = {"Docs__blobServiceUri": "https://acct.blob.core.windows.net"}
    with pytest.raises(BlobTriggerError, match="identity-based"):
        resolve_connection("Docs", environ)
    with pytest.raises(BlobTriggerError, match="not set"):
        resolve_connection("Docs", {})


def test_blob_options_come_from_host_json() -> None:
    host_json = {"extensions": {"blobs": {"poisonBlobThreshold": 2, "maxDegreeOfParallelism": 3}}}
    assert read_blob_options(host_json) == BlobOptions(2, 3)
    assert read_blob_options({}).poison_blob_threshold == 5
    with pytest.raises(BlobTriggerError):
        read_blob_options({"extensions": {"blobs": {"poisonBlobThreshold": 0}}})


# --- the poller against Azurite ---


@pytest.fixture
def sample(load_app: AppLoader) -> tuple[ModuleType, list[FunctionInfo]]:
    """The sample app's module (for what its functions saw) and its indexed functions."""
    functions = load_app("blob_sample", MODULE)
    return sys.modules[MODULE], functions


@pytest.fixture
def containers() -> dict[str, str]:
    """Container names of this test's own."""
    suffix = uuid.uuid4().hex[:12]
    return {"UPLOADS_CONTAINER": f"up-{suffix}", "FAILING_CONTAINER": f"fail-{suffix}"}


@pytest.fixture
def environ(azurite: Azurite, containers: dict[str, str]) -> dict[str, str]:
    """App settings as the host would export them from local.settings.json."""
    return {"AzureWebJobsStorage": azurite.connection_string, **containers}


@pytest.fixture
async def service(azurite: Azurite, containers: dict[str, str]) -> AsyncIterator[BlobServiceClient]:
    """A blob client on Azurite; deletes this test's containers afterwards."""
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as client:
        for name in containers.values():
            await client.create_container(name)
        yield client
        for name in containers.values():
            with suppress(ResourceNotFoundError):
                await client.delete_container(name)


@pytest.fixture
def invoker() -> Iterator[Invoker]:
    """The host's real invoker."""
    invoker = Invoker(max_threads=4)
    yield invoker
    invoker.close()


def make_config(tmp_path: Path, host_id: str, poll_seconds: float = POLL_SECONDS) -> HostConfig:
    return HostConfig(
        app_dir=tmp_path,
        data_dir=tmp_path / ".devhost",
        keys=HostKeys(master="m", default="d"),
        blob_poll_seconds=poll_seconds,
        host_id=host_id,
    )


@asynccontextmanager
async def running(poller: BlobTriggerPoller) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(poller.run())
    try:
        yield task
        assert not task.done(), task.exception() if task.done() else None
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def settle(polls: int = 5) -> None:
    """Gives the poller a few cycles in which it could (wrongly) fire again."""
    await asyncio.sleep(POLL_SECONDS * polls)


async def receipts(service: BlobServiceClient, host_id: str) -> dict[str, dict[str, str]]:
    hosts = service.get_container_client(HOSTS_CONTAINER)
    found = {}
    async for blob in hosts.list_blobs(
        name_starts_with=f"blobreceipts/{host_id}/", include=["metadata"]
    ):
        found[blob.name] = dict(blob.metadata or {})
    return found


async def take_poison_message(azurite: Azurite, container: str) -> dict[str, str] | None:
    """Removes and returns this test's poison message (the queue is shared by all tests)."""
    async with QueueClient.from_connection_string(azurite.connection_string, POISON_QUEUE) as queue:
        with suppress(ResourceNotFoundError):
            async for message in queue.receive_messages(messages_per_page=32, visibility_timeout=1):
                # The host base64-encodes its queue messages; read the raw text to prove it.
                body = json.loads(base64.b64decode(message.content))
                if body.get("ContainerName") == container:
                    await queue.delete_message(message)
                    return body
    return None


async def test_fires_once_per_blob_version_and_remembers_across_restarts(
    tmp_path: Path,
    sample: tuple[ModuleType, list[FunctionInfo]],
    environ: dict[str, str],
    service: BlobServiceClient,
    invoker: Invoker,
    containers: dict[str, str],
) -> None:
    module, functions = sample
    container = service.get_container_client(containers["UPLOADS_CONTAINER"])
    host_id = f"test-{uuid.uuid4().hex[:8]}"
    config = make_config(tmp_path, host_id)
    report = container.get_blob_client("in/report.pdf")
    first = await report.upload_blob(
        b"%PDF-1",
        metadata={"owner": "ana"},
        content_settings=ContentSettings(content_type="application/pdf"),
    )
    await container.upload_blob("in/notes.txt", b"not a pdf")

    async with running(BlobTriggerPoller(config, functions, invoker, None, environ=environ)):
        await wait_for(lambda: len(module.RECEIVED) == 1, "the initial scan to fire")
        await settle()
        assert len(module.RECEIVED) == 1, "fired twice for one version"
        await report.upload_blob(b"%PDF-22", overwrite=True)
        await wait_for(lambda: len(module.RECEIVED) == 2, "the overwrite to fire")
        await settle()

    seen = module.RECEIVED[0]
    assert seen["name"] == f"{container.container_name}/in/report.pdf"
    assert seen["length"] == 6
    assert seen["content"] == b"%PDF-1"
    assert seen["uri"] == f"{container.url}/in/report.pdf"
    assert seen["metadata"] == {"owner": "ana"}
    assert seen["properties"]["ContentLength"] == 6
    assert seen["properties"]["ContentType"] == "application/pdf"
    assert seen["properties"]["ETag"] == first["etag"]
    assert seen["properties"]["LastModified"]
    assert module.RECEIVED[1]["content"] == b"%PDF-22"
    assert len(module.RECEIVED) == 2

    stored = await receipts(service, host_id)
    expected = (
        f"blobreceipts/{host_id}/Host.Functions.record_upload/{first['etag']}/"
        f"{container.container_name}/in/report.pdf"
    )
    assert expected in stored
    assert len(stored) == 2
    assert all("Incomplete" not in metadata for metadata in stored.values())

    restarted = BlobTriggerPoller(config, functions, invoker, None, environ=environ)
    async with running(restarted):
        await settle(10)
    assert len(module.RECEIVED) == 2, "a restart fired again despite the receipts"


async def test_failing_function_is_poisoned_after_five_attempts_across_restart(
    tmp_path: Path,
    sample: tuple[ModuleType, list[FunctionInfo]],
    environ: dict[str, str],
    service: BlobServiceClient,
    invoker: Invoker,
    containers: dict[str, str],
    azurite: Azurite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    module, functions = sample
    name = containers["FAILING_CONTAINER"]
    uploaded = await service.get_blob_client(name, "bad.bin").upload_blob(b"x")
    host_id = f"test-{uuid.uuid4().hex[:8]}"
    # A slow first poller: stop it after two attempts, a full poll interval before a third.
    slow = make_config(tmp_path, host_id, poll_seconds=1.0)
    async with running(BlobTriggerPoller(slow, functions, invoker, None, environ=environ)):
        await wait_for(lambda: len(module.FAILED) >= 2, "two failed attempts")
    stored = await receipts(service, host_id)
    assert [metadata["Attempts"] for metadata in stored.values()] == ["2"]

    config = make_config(tmp_path, host_id)
    poller = BlobTriggerPoller(config, functions, invoker, None, environ=environ)
    message: dict[str, str] | None = None

    async def poisoned() -> bool:
        nonlocal message
        message = message or await take_poison_message(azurite, name)
        return message is not None

    with caplog.at_level(logging.ERROR, logger="devhost.blob"):
        async with running(poller):
            for _ in range(int(WAIT_SECONDS / POLL_SECONDS)):
                if await poisoned():
                    break
                await asyncio.sleep(POLL_SECONDS)
            await settle()

    assert len(module.FAILED) == 5, "the attempt count did not survive the restart"
    function = next(function for function in functions if function.name == "always_fail")
    expected = json.loads(poison_message(function, name, "bad.bin", uploaded["etag"], "BlockBlob"))
    assert message == expected
    assert message["FunctionId"] == "Host.Functions.always_fail"
    assert message["Type"] == "BlobTrigger"
    assert "poisoned" in caplog.text
    (metadata,) = (await receipts(service, host_id)).values()
    assert metadata["Attempts"] == "5"
    assert metadata["Poisoned"] == "true"
    assert "Incomplete" not in metadata


async def test_storage_errors_are_logged_and_polling_continues(
    tmp_path: Path,
    sample: tuple[ModuleType, list[FunctionInfo]],
    environ: dict[str, str],
    service: BlobServiceClient,
    invoker: Invoker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, functions = sample
    record = next(function for function in functions if function.name == "record_upload")
    # Port 9 (discard) on loopback refuses connections: every poll fails.
    broken = dataclasses.replace(record, trigger={**record.trigger, "connection": "Broken"})
    environ = {
        **environ,
        "Broken": DEVELOPMENT_STORAGE.replace("127.0.0.1:10000", "127.0.0.1:9"),
    }
    poller = BlobTriggerPoller(
        make_config(tmp_path, "test-broken"), [broken], invoker, None, environ=environ
    )
    with caplog.at_level(logging.WARNING, logger="devhost.blob"):
        async with running(poller) as task:
            await wait_for(lambda: caplog.text.count("Polling") >= 2, "two failed polls")
            assert not task.done()


def test_unsupported_connection_fails_at_construction(
    tmp_path: Path, sample: tuple[ModuleType, list[FunctionInfo]], invoker: Invoker
) -> None:
    _, functions = sample
    environ = {
        "AzureWebJobsStorage__accountName": "acct",
        "UPLOADS_CONTAINER": "u",
        "FAILING_CONTAINER": "f",
    }
    with pytest.raises(BlobTriggerError, match=r"record_upload: .*identity-based"):
        BlobTriggerPoller(make_config(tmp_path, "x"), functions, invoker, None, environ=environ)


def test_durable_client_needs_an_engine(
    tmp_path: Path, sample: tuple[ModuleType, list[FunctionInfo]], invoker: Invoker
) -> None:
    _, functions = sample
    needs_client = dataclasses.replace(functions[0], durable_client_arg="client")
    environ = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "UPLOADS_CONTAINER": "u"}
    with pytest.raises(BlobTriggerError, match="durable"):
        BlobTriggerPoller(
            make_config(tmp_path, "x"), [needs_client], invoker, None, environ=environ
        )
