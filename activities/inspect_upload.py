"""The `inspect_upload` activity: hash, size and type of one blob version, then its record."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.documents.detect import SNIFF_BYTES, detect_type
from shared.services import DOCUMENTS, Services

DEFAULT_TENANT = "default"


def document_id(container: str, name: str) -> str:
    """A document's id: stable per blob path, so a re-upload updates the same document."""
    return hashlib.sha256(f"{container}/{name}".encode()).hexdigest()[:32]


async def inspect_upload(upload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Streams the blob version named by the upload's ETag and upserts its document record.

    Idempotent: the same blob version always yields the same record; a second run rewrites it.
    A version overwritten or deleted meanwhile is reported, not failed: its successor (or the
    deletion) is handled by its own event.
    """
    blob = services.blobs.get_blob_client(upload["container"], upload["name"])
    try:
        downloader = await blob.download_blob(
            etag=upload["etag"], match_condition=MatchConditions.IfNotModified
        )
    except ResourceModifiedError:
        return {"outcome": "superseded", "document": None}
    except ResourceNotFoundError:
        return {"outcome": "missing", "document": None}
    digest = hashlib.sha256()
    head = b""
    size = 0
    async for chunk in downloader.chunks():
        digest.update(chunk)
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
        size += len(chunk)
    document = {
        "id": document_id(upload["container"], upload["name"]),
        "tenant": upload["metadata"].get("tenant") or DEFAULT_TENANT,
        "name": upload["name"],
        "container": upload["container"],
        "etag": upload["etag"],
        "sha256": digest.hexdigest(),
        "size": size,
        "media_type": detect_type(head),
        "status": "inspected",
        "updated": datetime.now(UTC).isoformat(),
    }
    await services.store.upsert(DOCUMENTS.name, document)
    return {"outcome": "inspected", "document": document}
