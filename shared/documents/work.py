"""Ingestion's intermediate results, kept as blobs so orchestration history stays small.

Activities pass blob names, not payloads: a 1,000-page layout never travels through the Durable
history. Names are keyed by document id and content hash, so a re-run of the same version
overwrites its own results (idempotent) and two versions never collide.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient


class WorkArea:
    """The intermediate blobs of one document version."""

    def __init__(self, blobs: BlobServiceClient, container: str, doc_id: str, sha256: str):
        self._container = blobs.get_container_client(container)
        self.prefix = f"{doc_id}/{sha256[:16]}/"

    def name(self, leaf: str) -> str:
        """The full blob name of `leaf` in this work area."""
        return self.prefix + leaf

    async def put_json(self, leaf: str, payload: Any) -> str:
        """Stores JSON under `leaf`; returns the leaf (activities pass leaves around)."""
        data = json.dumps(payload, separators=(",", ":")).encode()
        await self._container.upload_blob(self.name(leaf), data, overwrite=True)
        return leaf

    async def get_json(self, leaf: str) -> Any:
        """Reads JSON stored by `put_json`."""
        downloader = await self._container.download_blob(self.name(leaf))
        return json.loads(await downloader.readall())

    async def put_bytes(self, leaf: str, data: bytes) -> str:
        """Stores raw bytes (figure crops) under `leaf`; returns the leaf."""
        await self._container.upload_blob(self.name(leaf), data, overwrite=True)
        return leaf

    async def get_bytes(self, leaf: str) -> bytes:
        """Reads bytes stored by `put_bytes`."""
        downloader = await self._container.download_blob(self.name(leaf))
        return await downloader.readall()

    async def clear(self) -> int:
        """Deletes this version's intermediate blobs; returns how many."""
        return await delete_prefix(self._container, self.prefix)


async def delete_prefix(container: ContainerClient, prefix: str) -> int:
    """Deletes every blob whose name starts with `prefix`; returns how many were listed."""
    names = [item.name async for item in container.list_blobs(name_starts_with=prefix)]
    for name in names:
        try:
            await container.delete_blob(name)
        except ResourceNotFoundError:
            continue  # a concurrent clean-up got there first
    return len(names)
