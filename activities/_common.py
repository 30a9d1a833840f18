"""What the ingestion activities share: the job, its work area, its blob, failure results."""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.documents.work import WorkArea
from shared.services import Services


class BlobGone(Exception):
    """The blob version being ingested was overwritten or deleted meanwhile."""


def failed(code: str, reason: str) -> dict[str, Any]:
    """A permanent failure, returned (not raised) so the orchestration does not retry it."""
    return {"failed": {"code": code, "reason": reason}}


def work_area(services: Services, job: dict[str, Any]) -> WorkArea:
    """The intermediate blobs of the job's document version."""
    return WorkArea(
        services.blobs, services.settings.storage.work_container, job["document_id"], job["sha256"]
    )


async def download_version(services: Services, job: dict[str, Any]) -> bytes:
    """The exact blob version the job names (ETag-conditioned), or BlobGone."""
    blob = services.blobs.get_blob_client(job["container"], job["name"])
    try:
        downloader = await blob.download_blob(
            etag=job["etag"], match_condition=MatchConditions.IfNotModified
        )
        return await downloader.readall()
    except (ResourceModifiedError, ResourceNotFoundError) as error:
        raise BlobGone(f"{job['container']}/{job['name']} changed or was deleted") from error


async def is_current_version(services: Services, job: dict[str, Any]) -> bool:
    """Whether the blob still holds the version the job ingests."""
    blob = services.blobs.get_blob_client(job["container"], job["name"])
    try:
        properties = await blob.get_blob_properties()
    except ResourceNotFoundError:
        return False
    return str(properties.etag).strip('"') == job["etag"]


async def tag_blob(services: Services, job: dict[str, Any], tags: dict[str, str]) -> None:
    """Marks the blob with index tags (they do not change its ETag, so no new trigger fires)."""
    blob = services.blobs.get_blob_client(job["container"], job["name"])
    try:
        await blob.set_blob_tags(tags)
    except (ResourceNotFoundError, ResourceModifiedError):
        return  # deleted or replaced meanwhile: nothing to tag
