"""A document's life outside the orchestration: upload, status, deletion, reconciliation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError

from shared.documents import index, records
from shared.documents.names import InvalidName, sanitize_blob_name
from shared.documents.records import Acl, DocumentRecord
from shared.documents.work import delete_prefix
from shared.http import ProblemError
from shared.retrieval.access import can_read
from shared.security.principal import Principal
from shared.services import Services

log = logging.getLogger(__name__)
STALE_STAGED_SECONDS = 3600


@dataclass(frozen=True)
class UploadRequest:
    """A file to store in the uploads container, with its tenant and ACL."""

    name: str
    content: bytes
    acl: Acl


def _multipart(req: func.HttpRequest) -> tuple[str | None, bytes | None, dict[str, str]]:
    """The file part (name, bytes) and the text fields of a multipart/form-data body."""
    content_type = req.headers.get("content-type", "")
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + req.get_body())
    if not message.is_multipart():
        raise ProblemError(400, "the multipart body could not be parsed")
    filename, data, fields = None, None, {}
    for part in message.iter_parts():
        field = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None or field == "file":
            filename, data = part.get_filename() or fields.get("name"), payload
        elif field:
            fields[str(field)] = payload.decode("utf-8", errors="replace")
    return filename, data, fields


def parse_upload(req: func.HttpRequest, max_bytes: int) -> UploadRequest:
    """Reads `POST /api/documents`: a raw body with `?name=`, or multipart with a file part."""
    content_type = req.headers.get("content-type", "").lower()
    fields: dict[str, str] = {}
    if content_type.startswith("multipart/form-data"):
        name, content, fields = _multipart(req)
        if content is None:
            raise ProblemError(400, "the multipart body has no file part (field 'file')")
        name = fields.get("name") or name
    else:
        name, content = req.params.get("name"), req.get_body()
    if not name:
        raise ProblemError(400, "name the document: ?name=report.pdf, or a multipart filename")
    if not content:
        raise ProblemError(400, "the document is empty")
    if len(content) > max_bytes:
        raise ProblemError(413, f"the document is over {max_bytes:,} bytes (MAX_UPLOAD_BYTES)")
    try:
        safe_name = sanitize_blob_name(name)
        acl = Acl.parse(fields.get("acl") or req.params.get("acl"))
    except (InvalidName, ValueError) as error:
        raise ProblemError(400, str(error)) from error
    return UploadRequest(safe_name, content, acl)


async def store_upload(
    services: Services, principal: Principal, upload: UploadRequest
) -> DocumentRecord:
    """Writes the blob (its trigger starts ingestion) and records the document as queued."""
    container = services.settings.storage.uploads_container
    blob = services.blobs.get_blob_client(container, upload.name)
    metadata = {"tenant": principal.tenant}
    if not upload.acl.open:
        metadata["acl"] = upload.acl.as_metadata()
    result = await blob.upload_blob(upload.content, overwrite=True, metadata=metadata)
    doc_id = records.document_id(container, upload.name)
    record = await records.read_record(services.store, principal.tenant, doc_id)
    record = record or DocumentRecord(
        id=doc_id, tenant=principal.tenant, name=upload.name, container=container
    )
    record.state, record.step, record.percent, record.error = "queued", "queued", 0, None
    record.etag = str(result["etag"]).strip('"')
    record.acl = upload.acl.as_item()
    await records.save_record(services.store, record)
    return record


async def readable_record(services: Services, principal: Principal, doc_id: str) -> DocumentRecord:
    """The caller's tenant's document, or a 404 problem."""
    record = await records.read_record(services.store, principal.tenant, doc_id)
    if record is None or record.state == "deleted" or not can_read(principal, record.acl):
        # Not found, never forbidden: the caller may not learn that the document exists.
        raise ProblemError(404, f"no document {doc_id!r} in tenant {principal.tenant!r}")
    return record


async def readable_records(services: Services, principal: Principal) -> list[DocumentRecord]:
    """The tenant's documents the caller may read (document ACLs applied)."""
    listed = await records.list_records(services.store, principal.tenant)
    return [r for r in listed if r.state != "deleted" and can_read(principal, r.acl)]


async def _delete_blob(services: Services, record: DocumentRecord) -> bool:
    blob = services.blobs.get_blob_client(record.container, record.name)
    try:
        await blob.delete_blob(delete_snapshots="include")
    except ResourceNotFoundError:
        return False
    return True


async def _clear_work(services: Services, doc_id: str) -> int:
    """Every version's intermediate blobs of the document."""
    container = services.blobs.get_container_client(services.settings.storage.work_container)
    return await delete_prefix(container, f"{doc_id}/")


async def delete_document(
    services: Services, record: DocumentRecord, keep_blob: bool = False
) -> dict[str, Any]:
    """Removes the blob, chunks, figure descriptions, manifest and work files; keeps a tombstone."""
    blob_deleted = False if keep_blob else await _delete_blob(services, record)
    removed = await index.remove_document_index(services.store, record.tenant, record.id)
    if services.semantic_cache is not None:
        removed["cached_answers"] = await services.semantic_cache.invalidate_documents(
            [record.id], record.tenant
        )
    work_files = await _clear_work(services, record.id)
    record.state, record.step, record.percent = "deleted", "deleted", 100
    record.indexed = None
    await records.save_record(services.store, record)
    log.info("Deleted document %s (%s): %s", record.id, record.name, removed)
    return {"blob": blob_deleted, **removed, "work_files": work_files}


async def _blob_exists(services: Services, record: DocumentRecord) -> bool:
    blob = services.blobs.get_blob_client(record.container, record.name)
    return await blob.exists()


def _stale(record: DocumentRecord) -> bool:
    updated = datetime.fromisoformat(record.updated)
    return (datetime.now(UTC) - updated).total_seconds() > STALE_STAGED_SECONDS


async def reconcile(services: Services) -> dict[str, int]:
    """Finds documents whose blob was deleted outside the API and removes their index."""
    removed = 0
    for record in await records.all_live_records(services.store):
        if record.state in ("queued", "running") and not _stale(record):
            continue  # its orchestration will notice, and finish or fail
        if not await _blob_exists(services, record):
            await delete_document(services, record, keep_blob=True)
            removed += 1
    return {"documents_removed": removed}
