"""Creates docgate's blob containers and Cosmos containers, for local runs.

In Azure the Bicep deployment creates them and `DOCGATE_CREATE_RESOURCES` stays false. Locally
the app's start-up (`shared.services.start`) creates what is missing, with the app's own clients,
before it serves anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from azure.storage.blob.aio import BlobServiceClient

from shared.storage.blobs import ensure_containers
from shared.storage.cosmos import ContainerSpec, CosmosStore

log = logging.getLogger(__name__)


class ProvisioningError(Exception):
    """The resources could not be created: usually the emulators are not running."""


async def create_resources(
    blobs: BlobServiceClient,
    store: CosmosStore,
    blob_containers: Sequence[str],
    cosmos_containers: Sequence[ContainerSpec],
) -> None:
    """Creates what is missing (idempotent, safe with several instances starting at once)."""
    try:
        await ensure_containers(blobs, blob_containers)
        await store.ensure_containers(cosmos_containers)
    except Exception as error:
        raise ProvisioningError(
            f"DOCGATE_CREATE_RESOURCES is true but creating resources failed "
            f"({type(error).__name__}); are the emulators running? (make emulators)"
        ) from error
    log.info("Storage and Cosmos resources are in place")
