"""Creates docgate's storage and Cosmos resources at start-up, for local runs.

In Azure the Bicep deployment creates them and `DOCGATE_CREATE_RESOURCES` stays false. Locally
the app creates them when it starts, before any trigger fires: the synchronous SDK clients are
used because the Functions worker offers no async start-up hook.
"""

from __future__ import annotations

import logging
import warnings

from azure.cosmos import CosmosClient, PartitionKey
from azure.storage.blob import BlobServiceClient
from urllib3.exceptions import InsecureRequestWarning

from shared.config import Settings
from shared.storage.cosmos import ContainerSpec, is_loopback_endpoint

log = logging.getLogger(__name__)


class ProvisioningError(Exception):
    """The resources could not be created: usually the emulators are not running."""


def _create_blob_containers(settings: Settings, names: list[str]) -> None:
    if not settings.storage.connection_string:
        raise ProvisioningError("creating blob containers needs AzureWebJobsStorage (local only)")
    service = BlobServiceClient.from_connection_string(settings.storage.connection_string)
    with service:
        for name in names:
            container = service.get_container_client(name)
            if not container.exists():
                container.create_container()


def _create_cosmos_containers(settings: Settings, specs: tuple[ContainerSpec, ...]) -> None:
    if not settings.cosmos.key:
        raise ProvisioningError("creating Cosmos containers needs COSMOS_KEY (local only)")
    loopback = is_loopback_endpoint(settings.cosmos.endpoint)
    with warnings.catch_warnings():
        if loopback:  # the emulator's self-signed certificate; never skipped for real accounts
            warnings.simplefilter("ignore", InsecureRequestWarning)
        client = CosmosClient(
            settings.cosmos.endpoint,
            credential=settings.cosmos.key,
            connection_verify=not loopback,
            enable_endpoint_discovery=False,
        )
        database = client.create_database_if_not_exists(settings.cosmos.database)
        for spec in specs:
            database.create_container_if_not_exists(
                id=spec.name,
                partition_key=PartitionKey(path=spec.partition_key_path),
                default_ttl=spec.default_ttl,
            )


def create_local_resources(
    settings: Settings, blob_containers: list[str], cosmos_containers: tuple[ContainerSpec, ...]
) -> None:
    """Creates what is missing (idempotent, safe with several instances starting at once)."""
    try:
        _create_blob_containers(settings, blob_containers)
        _create_cosmos_containers(settings, cosmos_containers)
    except ProvisioningError:
        raise
    except Exception as error:
        raise ProvisioningError(
            f"DOCGATE_CREATE_RESOURCES is true but creating resources failed "
            f"({type(error).__name__}); are the emulators running? (make emulators)"
        ) from error
    log.info("Storage and Cosmos resources are in place")
