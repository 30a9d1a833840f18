"""Blob storage helpers over azure.storage.blob.aio: one client factory and idempotent setup.

Works the same against Azure Storage and Azurite. Nothing here reads the environment: the
connection string or account URL and credential are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient

from shared.health import DependencyProbe

# Azurite's fixed development account, with explicit loopback endpoints: "UseDevelopmentStorage"
# would also work but hides which ports are used, and ports are overridable locally.
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_connection_string(
    host: str = "127.0.0.1",
    blob_port: int = 10000,
    queue_port: int = 10001,
    table_port: int = 10002,
) -> str:
    """Return the connection string of Azurite's development account on explicit endpoints."""
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT_NAME};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{AZURITE_ACCOUNT_NAME};"
        f"QueueEndpoint=http://{host}:{queue_port}/{AZURITE_ACCOUNT_NAME};"
        f"TableEndpoint=http://{host}:{table_port}/{AZURITE_ACCOUNT_NAME};"
    )


def create_blob_service_client(
    connection_string: str | None = None,
    account_url: str | None = None,
    credential: AsyncTokenCredential | None = None,
) -> BlobServiceClient:
    """Build the async blob client from a connection string (local) or account URL + credential.

    Exactly one of `connection_string` and `account_url` must be given; `credential` is the
    Azure identity (managed identity path) used with `account_url`.
    """
    if (connection_string is None) == (account_url is None):
        raise ValueError("pass exactly one of connection_string and account_url")
    if connection_string is not None:
        return BlobServiceClient.from_connection_string(connection_string)
    if credential is None:
        raise ValueError("account_url needs a credential")
    return BlobServiceClient(account_url=account_url, credential=credential)


async def ensure_containers(service: BlobServiceClient, names: Iterable[str]) -> None:
    """Create each blob container in `names` unless it already exists."""
    for name in names:
        try:
            await service.create_container(name)
        except ResourceExistsError:
            continue  # another instance (or an earlier start) created it first


def container_probe(service: BlobServiceClient, container: str) -> DependencyProbe:
    """Health: the container's properties can be read."""

    async def probe() -> None:
        await service.get_container_client(container).get_container_properties()

    return DependencyProbe("blob_storage", probe)
