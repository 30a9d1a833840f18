"""Blob storage helpers and the ETag/overwrite semantics we rely on, against Azurite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from shared.storage.blobs import create_blob_service_client, ensure_containers

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators


@pytest.fixture
async def service(emulators: EmulatorEndpoints) -> AsyncIterator[BlobServiceClient]:
    """A blob service client on Azurite, closed after the test."""
    async with create_blob_service_client(emulators.azurite_connection_string) as client:
        yield client


@pytest.fixture
async def container(service: BlobServiceClient, unique_name: str) -> AsyncIterator[ContainerClient]:
    """A blob container of this test's own, deleted afterwards."""
    await ensure_containers(service, [unique_name])
    yield service.get_container_client(unique_name)
    await service.delete_container(unique_name)


async def test_ensure_containers_is_idempotent(
    service: BlobServiceClient, container: ContainerClient
) -> None:
    await ensure_containers(service, [container.container_name, container.container_name])
    assert await container.exists()


async def test_upload_download_round_trip(container: ContainerClient) -> None:
    blob = container.get_blob_client("docs/a.txt")
    await blob.upload_blob(b"hello")
    downloaded = await blob.download_blob()
    assert await downloaded.readall() == b"hello"


async def test_stale_etag_upload_raises_412(container: ContainerClient) -> None:
    blob = container.get_blob_client("a.txt")
    first = await blob.upload_blob(b"v1")
    await blob.upload_blob(b"v2", overwrite=True)
    with pytest.raises(ResourceModifiedError) as caught:
        await blob.upload_blob(
            b"v3", overwrite=True, etag=first["etag"], match_condition=MatchConditions.IfNotModified
        )
    assert caught.value.status_code == 412
    assert await (await blob.download_blob()).readall() == b"v2"


async def test_overwrite_false_on_existing_blob_raises_409(container: ContainerClient) -> None:
    blob = container.get_blob_client("a.txt")
    await blob.upload_blob(b"v1")
    with pytest.raises(ResourceExistsError) as caught:
        await blob.upload_blob(b"v2", overwrite=False)
    assert caught.value.status_code == 409


async def test_metadata_round_trip(container: ContainerClient) -> None:
    blob = container.get_blob_client("a.txt")
    await blob.upload_blob(b"x", metadata={"tenant": "t1", "sha256": "abc"})
    properties = await blob.get_blob_properties()
    assert properties.metadata == {"tenant": "t1", "sha256": "abc"}
    await blob.set_blob_metadata({"tenant": "t2"})
    assert (await blob.get_blob_properties()).metadata == {"tenant": "t2"}
