"""Starting ingestions from upload events: one orchestration per blob version, never two."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

import azure.durable_functions as df
import azure.functions as func

log = logging.getLogger(__name__)
INGEST_ORCHESTRATOR = "ingest"


@dataclass(frozen=True)
class Upload:
    """A blob version to ingest: where it is and which content version (ETag) it was."""

    container: str
    name: str
    etag: str
    size: int | None
    metadata: dict[str, str]

    @classmethod
    def from_blob(cls, blob: func.InputStream) -> Upload:
        """Reads the trigger's blob path, properties and metadata."""
        container, _, name = (blob.name or "").partition("/")
        properties: dict[str, Any] = blob.blob_properties or {}
        return cls(
            container=container,
            name=name,
            etag=str(properties.get("ETag") or properties.get("Etag") or "").strip('"'),
            size=blob.length,
            metadata={str(k): str(v) for k, v in (blob.metadata or {}).items()},
        )

    def as_input(self) -> dict[str, Any]:
        """The orchestration input (plain JSON)."""
        return asdict(self)


def ingest_instance_id(upload: Upload) -> str:
    """Derived from blob path and content version, so a duplicate event maps to the same id."""
    digest = hashlib.sha256(f"{upload.container}/{upload.name}\n{upload.etag}".encode()).hexdigest()
    return f"ingest-{digest[:40]}"


async def start_ingestion(client: df.DurableOrchestrationClient, upload: Upload) -> str | None:
    """Starts `ingest` for this blob version unless an instance for it already exists."""
    instance_id = ingest_instance_id(upload)
    existing = await client.get_status(instance_id)
    if existing:
        log.info(
            "Upload %s/%s (etag %s) already has %s",
            upload.container,
            upload.name,
            upload.etag,
            instance_id,
        )
        return None
    try:
        payload = {**upload.as_input(), "instance_id": instance_id}
        await client.start_new(INGEST_ORCHESTRATOR, instance_id, payload)
    except Exception:
        # A concurrent duplicate event may have started it between our check and our start.
        if await client.get_status(instance_id):
            return None
        raise
    log.info("Started %s for %s/%s", instance_id, upload.container, upload.name)
    return instance_id
