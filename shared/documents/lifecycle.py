"""A document's life outside the orchestration: upload, status, deletion, reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient

from shared.cache import SemanticCache
from shared.documents import index, records
from shared.documents.figures import FigureCache
from shared.documents.names import InvalidName, sanitize_blob_name
from shared.documents.records import Acl, DocumentRecord
from shared.documents.work import delete_prefix
from shared.errors import InvalidRequest, NotFound, PayloadTooLarge
from shared.retrieval.access import can_read
from shared.security.principal import Principal
from shared.storage.cosmos import CosmosStore

log = logging.getLogger(__name__)
STALE_STAGED_SECONDS = 3600


@dataclass(frozen=True)
class UploadRequest:
    """A file to store in the uploads container, with its tenant and ACL."""

    name: str
    content: bytes
    acl: Acl


class DocumentNotFound(NotFound):
    """No such document in the caller's tenant, or one the caller may not read."""


def _multipart(content_type: str, body: bytes) -> tuple[str | None, bytes | None, dict[str, str]]:
    """The file part (name, bytes) and the text fields of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidRequest("the multipart body could not be parsed")
    filename, data, fields = None, None, {}
    for part in message.iter_parts():
        field = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None or field == "file":
            filename, data = part.get_filename() or fields.get("name"), payload
        elif field:
            fields[str(field)] = payload.decode("utf-8", errors="replace")
    return filename, data, fields


def parse_upload(
    content_type: str, body: bytes, params: Mapping[str, str], max_bytes: int
) -> UploadRequest:
    """Reads an upload: a raw body with `?name=`, or multipart with a file part."""
    fields: dict[str, str] = {}
    if content_type.lower().startswith("multipart/form-data"):
        name, content, fields = _multipart(content_type, body)
        if content is None:
            raise InvalidRequest("the multipart body has no file part (field 'file')")
        name = fields.get("name") or name
    else:
        name, content = params.get("name"), body
    if not name:
        raise InvalidRequest("name the document: ?name=report.pdf, or a multipart filename")
    if not content:
        raise InvalidRequest("the document is empty")
    if len(content) > max_bytes:
        raise PayloadTooLarge(f"the document is over {max_bytes:,} bytes (MAX_UPLOAD_BYTES)")
    try:
        safe_name = sanitize_blob_name(name)
        acl = Acl.parse(fields.get("acl") or params.get("acl"))
    except (InvalidName, ValueError) as error:
        raise InvalidRequest(str(error)) from error
    return UploadRequest(safe_name, content, acl)


def _stale(record: DocumentRecord) -> bool:
    updated = datetime.fromisoformat(record.updated)
    return (datetime.now(UTC) - updated).total_seconds() > STALE_STAGED_SECONDS


class DocumentLibrary:
    """The documents API's operations over the uploads container and the document records."""

    def __init__(
        self,
        blobs: BlobServiceClient,
        store: CosmosStore,
        figures: FigureCache,
        uploads_container: str,
        work_container: str,
        max_upload_bytes: int,
        answers: SemanticCache | None = None,
    ) -> None:
        """`answers`, when the cache is on, loses the answers citing a deleted document."""
        self._blobs = blobs
        self._store = store
        self._figures = figures
        self.uploads_container = uploads_container
        self._work_container = work_container
        self.max_upload_bytes = max_upload_bytes
        self._answers = answers

    async def store_upload(self, principal: Principal, upload: UploadRequest) -> DocumentRecord:
        """Writes the blob (its trigger starts ingestion) and records the document as queued."""
        container = self.uploads_container
        blob = self._blobs.get_blob_client(container, upload.name)
        metadata = {"tenant": principal.tenant}
        if not upload.acl.open:
            metadata["acl"] = upload.acl.as_metadata()
        result = await blob.upload_blob(upload.content, overwrite=True, metadata=metadata)
        doc_id = records.document_id(container, upload.name)
        record = await records.read_record(self._store, principal.tenant, doc_id)
        record = record or DocumentRecord(
            id=doc_id, tenant=principal.tenant, name=upload.name, container=container
        )
        record.state, record.step, record.percent, record.error = "queued", "queued", 0, None
        record.etag = str(result["etag"]).strip('"')
        record.acl = upload.acl.as_item()
        await records.save_record(self._store, record)
        return record

    async def readable_record(self, principal: Principal, doc_id: str) -> DocumentRecord:
        """The caller's tenant's document, or DocumentNotFound."""
        record = await records.read_record(self._store, principal.tenant, doc_id)
        if record is None or record.state == "deleted" or not can_read(principal, record.acl):
            # Not found, never forbidden: the caller may not learn that the document exists.
            raise DocumentNotFound(f"no document {doc_id!r} in tenant {principal.tenant!r}")
        return record

    async def readable_records(self, principal: Principal) -> list[DocumentRecord]:
        """The tenant's documents the caller may read (document ACLs applied)."""
        listed = await records.list_records(self._store, principal.tenant)
        return [r for r in listed if r.state != "deleted" and can_read(principal, r.acl)]

    async def delete_document(
        self, record: DocumentRecord, keep_blob: bool = False
    ) -> dict[str, Any]:
        """Removes blob, chunks, figure descriptions, manifest and work files; keeps a tombstone."""
        blob_deleted = False if keep_blob else await self._delete_blob(record)
        removed = await index.remove_document_index(
            self._store, self._figures, record.tenant, record.id
        )
        if self._answers is not None:
            removed["cached_answers"] = await self._answers.invalidate_documents(
                [record.id], record.tenant
            )
        container = self._blobs.get_container_client(self._work_container)
        work_files = await delete_prefix(container, f"{record.id}/")
        record.state, record.step, record.percent = "deleted", "deleted", 100
        record.indexed = None
        await records.save_record(self._store, record)
        log.info("Deleted document %s (%s): %s", record.id, record.name, removed)
        return {"blob": blob_deleted, **removed, "work_files": work_files}

    async def reconcile(self) -> dict[str, int]:
        """Finds documents whose blob was deleted outside the API and removes their index."""
        removed = 0
        for record in await records.all_live_records(self._store):
            if record.state in ("queued", "running") and not _stale(record):
                continue  # its orchestration will notice, and finish or fail
            blob = self._blobs.get_blob_client(record.container, record.name)
            if not await blob.exists():
                await self.delete_document(record, keep_blob=True)
                removed += 1
        return {"documents_removed": removed}

    async def _delete_blob(self, record: DocumentRecord) -> bool:
        blob = self._blobs.get_blob_client(record.container, record.name)
        try:
            await blob.delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            return False
        return True
