"""The process-wide Azure clients, built once from settings through the one credential path."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from azure.storage.blob.aio import BlobServiceClient

from shared import cosmos, storage
from shared.config import Settings, get_settings
from shared.credentials import get_credential
from shared.health import DependencyProbe
from shared.provisioning import create_local_resources

log = logging.getLogger(__name__)

DOCUMENTS = cosmos.ContainerSpec("documents", "/tenant")
CONTAINERS: tuple[cosmos.ContainerSpec, ...] = (DOCUMENTS,)


@dataclass(frozen=True)
class Services:
    """Clients shared by every invocation in this worker process."""

    settings: Settings
    blobs: BlobServiceClient
    store: cosmos.CosmosStore


_services: Services | None = None
_lock: asyncio.Lock | None = None


def build_services(settings: Settings) -> Services:
    """Creates the clients: keys only for the local emulators, the credential otherwise."""
    needs_credential = not settings.storage_connection_string or not settings.cosmos_key
    credential = get_credential(settings) if needs_credential else None
    blobs = storage.create_blob_service_client(
        connection_string=settings.storage_connection_string,
        account_url=None
        if settings.storage_connection_string
        else settings.storage_blob_service_uri,
        credential=credential,
    )
    client = cosmos.create_cosmos_client(settings.cosmos_endpoint, settings.cosmos_key, credential)
    capabilities = cosmos.EMULATOR if settings.cosmos_emulator else cosmos.AZURE
    store = cosmos.CosmosStore(client, settings.cosmos_database, CONTAINERS, capabilities)
    return Services(settings, blobs, store)


def provision(settings: Settings) -> None:
    """Creates blob and Cosmos containers at start-up when configured (local runs)."""
    if settings.create_resources:
        create_local_resources(settings, [settings.uploads_container], CONTAINERS)


async def get_services() -> Services:
    """The process-wide services, built on first use."""
    global _services, _lock
    if _services is not None:
        return _services
    _lock = _lock or asyncio.Lock()
    async with _lock:
        if _services is None:
            _services = build_services(get_settings())
    return _services


def dependency_probes(services: Services) -> list[DependencyProbe]:
    """Cheap calls proving each required dependency can serve."""

    async def probe_blob_storage() -> None:
        container = services.blobs.get_container_client(services.settings.uploads_container)
        await container.get_container_properties()

    async def probe_cosmos() -> None:
        await services.store.read_database()

    return [
        DependencyProbe("blob_storage", probe_blob_storage),
        DependencyProbe("cosmos", probe_cosmos),
    ]
