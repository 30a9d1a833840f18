"""`validate_upload`: type by magic bytes, limits, hash; then accept, reject or skip it."""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from activities._common import failed, tag_blob
from shared.documents import records
from shared.documents.index import remove_document_index
from shared.documents.records import Acl, DocumentRecord
from shared.documents.validation import DocumentRejected, ValidationLimits, validate
from shared.services import Services

PAGED_TYPES = frozenset({"application/pdf"})  # read in page ranges; others in one go


def limits_of(services: Services) -> ValidationLimits:
    """The validation limits from settings."""
    settings = services.settings
    return ValidationLimits(
        max_bytes=settings.ingestion.max_upload_bytes,
        max_pages=settings.ingestion.max_pages,
        max_expanded_bytes=settings.ingestion.max_expanded_bytes,
        max_compression_ratio=settings.ingestion.max_compression_ratio,
    )


class _Oversized(int):
    """The size of a blob too large to download."""


async def _download(services: Services, upload: dict[str, Any]) -> bytes | str | _Oversized:
    """The blob version's bytes, its size when over the limit (never downloaded), or why it
    cannot be had ("superseded", "missing")."""
    blob = services.blobs.get_blob_client(upload["container"], upload["name"])
    condition = {"etag": upload["etag"], "match_condition": MatchConditions.IfNotModified}
    try:
        properties = await blob.get_blob_properties(**condition)
        if properties.size > services.settings.ingestion.max_upload_bytes:
            return _Oversized(properties.size)
        downloader = await blob.download_blob(**condition)
        return await downloader.readall()
    except ResourceModifiedError:
        return "superseded"
    except ResourceNotFoundError:
        return "missing"


async def _record_for(
    services: Services, upload: dict[str, Any], tenant: str, acl: Acl
) -> DocumentRecord:
    """The document's record, moved to `tenant` if its tenant changed between versions."""
    doc_id = records.document_id(upload["container"], upload["name"])
    existing = await records.find_record(services.store, doc_id)
    if existing and existing.tenant != tenant:
        await remove_document_index(services.store, existing.tenant, doc_id)
        await services.store.delete(records.DOCUMENTS, doc_id, existing.tenant)
        existing = None
    record = existing or DocumentRecord(
        id=doc_id, tenant=tenant, name=upload["name"], container=upload["container"]
    )
    record.acl = acl.as_item()
    record.instance_id = upload.get("instance_id")
    record.etag = upload["etag"]
    return record


async def _reject(
    services: Services, record: DocumentRecord, upload: dict[str, Any], code: str, reason: str
) -> dict[str, Any]:
    record.state, record.step, record.percent = "failed", "validate", 100
    record.error = {"code": code, "reason": reason, "step": "validate"}
    await records.save_record(services.store, record)
    await tag_blob(services, upload, {"docgate-status": "failed", "docgate-reason": code})
    return {"outcome": "rejected", "document_id": record.id, **failed(code, reason)}


async def validate_upload(upload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Checks one blob version and records the document; returns the job when accepted."""
    content = await _download(services, upload)
    if isinstance(content, str):
        return {
            "outcome": content,
            "document_id": records.document_id(upload["container"], upload["name"]),
        }
    metadata = upload.get("metadata") or {}
    tenant = metadata.get("tenant") or records.DEFAULT_TENANT
    try:
        acl = Acl.parse(metadata.get("acl"))
        acl_error = None
    except ValueError as error:
        acl, acl_error = Acl(), str(error)
    record = await _record_for(services, upload, tenant, acl)
    if acl_error:
        return await _reject(services, record, upload, "invalid_acl", acl_error)
    if isinstance(content, _Oversized):
        limit = services.settings.ingestion.max_upload_bytes
        reason = f"the file is {int(content):,} bytes; the limit is {limit:,} (MAX_UPLOAD_BYTES)"
        return await _reject(services, record, upload, "too_large", reason)
    try:
        checked = validate(upload["name"], content, limits_of(services))
    except DocumentRejected as rejection:
        return await _reject(services, record, upload, rejection.code, rejection.reason)
    embedding_model = services.embedder_model
    indexed = record.indexed or {}
    if (
        indexed.get("sha256") == checked.sha256
        and indexed.get("embedding_model") == embedding_model
    ):
        record.state, record.step, record.percent, record.error = "succeeded", "done", 100, None
        await records.save_record(services.store, record)
        return {"outcome": "unchanged", "document_id": record.id}
    record.state, record.step, record.percent, record.error = "running", "validate", 5, None
    record.sha256, record.size = checked.sha256, checked.size
    record.media_type, record.page_count = checked.media_type, checked.page_count
    await records.save_record(services.store, record)
    paged = checked.media_type in PAGED_TYPES
    job = {
        "document_id": record.id,
        "tenant": tenant,
        "container": upload["container"],
        "name": upload["name"],
        "etag": upload["etag"],
        "sha256": checked.sha256,
        "media_type": checked.media_type,
        "page_count": checked.page_count,
        "pages_per_batch": services.settings.ingestion.pages_per_batch
        if paged
        else max(1, checked.page_count),
        "acl": record.acl,
    }
    return {"outcome": "accepted", "job": job}
