"""A document's life outside the orchestration: upload, status, ACL, deletion, reconciliation.

Identity and write rules (README "Documents: identity and write rules"):
- a document is (tenant, name): its blob is `{tenant}/{name}` in the uploads container and its
  id a hash of tenant, container and name, so the same name in two tenants is two documents;
- an upload of a name that exists in the caller's tenant updates that document only when the
  caller may write it (documents:write and readable under its ACL); otherwise 403, saying
  nothing about the document but that the name is taken;
- an update keeps the document's ACL: ACLs change only through `PUT .../acl`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobClient, BlobServiceClient
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.cache import SemanticCache
from shared.documents import index, records
from shared.documents.figures import FigureCache
from shared.documents.names import InvalidName, blob_path, sanitize_blob_name
from shared.documents.pages import (
    NoPageImage,
    Passage,
    check_page,
    has_page_image,
    page_passages,
    render_page,
)
from shared.documents.records import Acl, DocumentRecord
from shared.documents.work import delete_prefix
from shared.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from shared.inputs import QUERY
from shared.retrieval.access import can_read
from shared.security.principal import Principal
from shared.security.rbac import PermissionDenied, has_permission
from shared.storage.cosmos import CosmosStore
from shared.telemetry.context import TRACEPARENT, current_traceparent

log = logging.getLogger(__name__)
STALE_STAGED_SECONDS = 3600
MOVED_FROM = "docgate_moved_from"  # blob metadata: the pre-tenant-folder document it replaced


@dataclass(frozen=True)
class UploadRequest:
    """A file to store in the uploads container, and the ACL asked for (None: not given)."""

    name: str
    content: bytes
    acl: Acl | None


class DocumentWriteDenied(PermissionDenied):
    """The name is taken in the tenant by a document the caller may not write."""

    def __init__(self) -> None:
        super().__init__(
            "documents:write",
            "a document of this name exists in your tenant and its ACL does not let you "
            "write it; choose another name",
        )


class AclChange(BaseModel):
    """`PUT /api/documents/{id}/acl`: who may read (and, with documents:write, write) it.

    Both lists empty means tenant-wide; at least one must be given, so `{}` is not a change."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"groups": ["finance"]}]}
    )
    users: list[str] | None = Field(default=None, max_length=200)
    groups: list[str] | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _explicit(self) -> AclChange:
        if self.users is None and self.groups is None:
            raise ValueError("give users and/or groups (both empty: tenant-wide)")
        for entry in [*(self.users or []), *(self.groups or [])]:
            if not entry.strip() or "," in entry or len(entry) > 256:
                raise ValueError(f"{entry!r} is not a user or group id")
        return self

    def acl(self) -> Acl:
        """The ACL asked for."""
        users = sorted({user.strip() for user in self.users or []})
        groups = sorted({group.strip() for group in self.groups or []})
        return Acl(tuple(users), tuple(groups))


def can_write(principal: Principal, acl: Acl) -> bool:
    """Whether `principal` may replace, delete or re-permission a document with `acl`."""
    return has_permission(principal, "documents:write") and can_read(principal, acl.as_item())


class UploadQuery(BaseModel):
    """`POST /api/documents`'s query string: the document's name (raw bodies) and its ACL."""

    model_config = QUERY
    name: str | None = Field(default=None, max_length=1024)
    acl: str | None = Field(default=None, max_length=4096)


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
            if data is not None:  # which one was meant? Keeping the last would be a guess
                raise InvalidRequest("send one file per upload: the body has several file parts")
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
    acl_text = fields.get("acl", params.get("acl"))
    try:
        safe_name = sanitize_blob_name(name)
        acl = None if acl_text is None else Acl.parse(acl_text)
    except (InvalidName, ValueError) as error:
        raise InvalidRequest(str(error)) from error
    return UploadRequest(safe_name, content, acl)


async def _withdraw(blob: BlobClient, etag: str) -> None:
    """Deletes the blob a refused upload just wrote, unless someone wrote it again since."""
    try:
        await blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
    except Exception:  # the refusal stands; a blob left behind is ingested by its trigger
        log.warning("Could not withdraw the blob of a refused upload", exc_info=True)


def _blob_acl(properties: BlobProperties) -> Acl | None:
    """The ACL in a blob's metadata; None when it cannot be read (then nobody may write)."""
    try:
        return Acl.parse((properties.metadata or {}).get("acl"))
    except ValueError:
        return None


async def _properties(blob: BlobClient) -> BlobProperties | None:
    try:
        return await blob.get_blob_properties()
    except ResourceNotFoundError:
        return None


def _metadata(tenant: str, acl: Acl, kept: dict[str, str] | None = None) -> dict[str, str]:
    metadata = {key: value for key, value in (kept or {}).items() if key != "acl"}
    metadata["tenant"] = tenant
    if not acl.open:
        metadata["acl"] = acl.as_metadata()
    return metadata


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
        """Writes the blob (its trigger starts ingestion) and records the document as queued.

        A new name gets the ACL asked for (default tenant-wide); an existing one is replaced
        only by someone who may write it, and keeps its ACL. The blob write is conditional
        (create-only, or on the ETag whose ACL was checked), so a concurrent upload or ACL
        change cannot slip between the check and the write: the loser gets a 409.
        """
        tenant, container = principal.tenant, self.uploads_container
        try:
            path = blob_path(tenant, upload.name)
        except InvalidName as error:
            raise InvalidRequest(str(error)) from error
        blob = self._blobs.get_blob_client(container, path)
        doc_id = records.document_id(tenant, container, upload.name)
        # Cosmos first: while it is down the upload is refused before any blob is written.
        record = await records.read_record(self._store, tenant, doc_id)
        current = await _properties(blob)
        if current is None:
            acl = upload.acl or Acl()
            condition: dict[str, Any] = {"overwrite": False}
        else:
            existing_acl = _blob_acl(current)
            if existing_acl is None or not can_write(principal, existing_acl):
                raise DocumentWriteDenied()
            if upload.acl is not None and upload.acl != existing_acl:
                raise Conflict(
                    "an upload does not change a document's ACL; change it with "
                    f"PUT /api/documents/{doc_id}/acl",
                    code="acl_change_needs_acl_route",
                )
            acl = existing_acl
            condition = {
                "overwrite": True, "etag": current.etag,
                "match_condition": MatchConditions.IfNotModified,
            }  # fmt: skip
        metadata = _metadata(tenant, acl, current.metadata if current else None)
        metadata.pop(TRACEPARENT, None)  # an earlier upload's trace is not this one's
        traceparent = current_traceparent()
        if traceparent:  # the blob trigger continues this request's trace
            metadata[TRACEPARENT] = traceparent
        try:
            result = await blob.upload_blob(upload.content, metadata=metadata, **condition)
        except (ResourceExistsError, ResourceModifiedError):
            raise Conflict(
                "another upload or ACL change of this document landed meanwhile; retry",
                code="concurrent_write",
            ) from None
        if record is not None and current is None and record.state != "deleted":
            # Its blob was deleted outside the API: what reconciliation would do, done now.
            await self.delete_document(record, keep_blob=True)
        if record is None or current is None or record.state == "deleted":
            record = DocumentRecord(
                id=doc_id, tenant=tenant, name=upload.name, container=container, blob=path
            )
        record.state, record.step, record.percent, record.error = "queued", "queued", 0, None
        record.etag = str(result["etag"]).strip('"')
        record.acl = acl.as_item()
        try:
            await records.save_record(self._store, record)
        except Exception:
            if current is None:  # a new name: refused means not kept
                await _withdraw(blob, record.etag)
            raise  # (an update stays: its blob trigger ingests it like any dropped version)
        return record

    async def change_acl(
        self, principal: Principal, doc_id: str, acl: Acl
    ) -> tuple[DocumentRecord, int]:
        """Gives a document a new ACL: blob metadata (what re-ingestion reads), record and every
        chunk; answers citing it are invalidated. Returns the record and the chunks changed."""
        record = await self.readable_record(principal, doc_id)
        if not can_write(principal, Acl.from_item(record.acl)):
            raise DocumentWriteDenied()
        if not record.blob:
            raise Conflict(
                "this document predates tenant folders: upload it again (a new document) and "
                "delete this one", code="legacy_document",
            )  # fmt: skip
        if record.state in ("queued", "running"):
            raise Conflict(
                "the document is being ingested; change its ACL when it is done",
                code="ingestion_in_progress",
            )
        blob = self._blobs.get_blob_client(record.container, record.blob)
        current = await _properties(blob)
        if current is None:
            raise DocumentNotFound(f"no document {doc_id!r} in tenant {principal.tenant!r}")
        try:
            result = await blob.set_blob_metadata(
                _metadata(record.tenant, acl, current.metadata),
                etag=current.etag, match_condition=MatchConditions.IfNotModified,
            )  # fmt: skip
        except ResourceModifiedError:
            raise Conflict(
                "the document changed meanwhile; retry", code="concurrent_write"
            ) from None
        record.acl, record.etag = acl.as_item(), str(result["etag"]).strip('"')
        await records.save_record(self._store, record)
        changed = await index.set_chunk_acl(self._store, record.tenant, record.id, record.acl)
        if self._answers is not None:
            await self._answers.invalidate_documents([record.id], record.tenant)
        return record, changed

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

    async def page_passages(self, record: DocumentRecord, page: int) -> list[Passage]:
        """The indexed passages on one page of a readable document."""
        check_page(page, record.page_count)
        return await page_passages(self._store, record.tenant, record.id, page)

    async def page_image(self, record: DocumentRecord, page: int) -> bytes:
        """One page of a readable PDF or image, rendered as PNG from the upload."""
        if not has_page_image(record.media_type):
            raise NoPageImage(
                f"{record.media_type or 'this'} documents have no page images; PDFs and images do"
            )
        check_page(page, record.page_count)
        blob = self._blobs.get_blob_client(record.container, record.blob_name)
        try:
            content = await (await blob.download_blob()).readall()
        except ResourceNotFoundError:
            raise DocumentNotFound(f"the file of document {record.id!r} is gone") from None
        # PDFium and Pillow are CPU-bound: off the event loop, so other requests go on.
        media_type = record.media_type or ""
        return await asyncio.to_thread(render_page, content, media_type, page)

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
        """Finds documents whose blob was deleted outside the API and removes their index;
        moves documents from before tenant folders into theirs."""
        removed = moved = 0
        for record in await records.all_live_records(self._store):
            if record.state in ("queued", "running") and not _stale(record):
                continue  # its orchestration will notice, and finish or fail
            blob = self._blobs.get_blob_client(record.container, record.blob_name)
            if not await blob.exists():
                await self.delete_document(record, keep_blob=True)
                removed += 1
            elif not record.blob and await self._move_to_tenant_folder(record):
                moved += 1
        return {"documents_removed": removed, "documents_moved": moved}

    async def _move_to_tenant_folder(self, record: DocumentRecord) -> bool:
        """A document from before tenant folders (its blob at the container's root): the blob is
        copied to `{tenant}/{name}` with its tenant and ACL, where the trigger ingests it as the
        document of that tenant and name, then the old document is deleted (its blob, index and
        cached answers; a tombstone stays under the old id). Idempotent: a copy this move made
        is recognised by its `docgate_moved_from` metadata. False when it cannot move now."""
        acl = record.acl
        if not (acl.get("tenant_wide") or acl.get("users") or acl.get("groups")):
            return False  # readable by nobody (an unreadable ACL): left for its owner to fix
        try:
            path = blob_path(record.tenant, sanitize_blob_name(record.name))
        except InvalidName:
            log.warning("Document %s (%s) cannot move to a tenant folder", record.id, record.name)
            return False
        target = self._blobs.get_blob_client(record.container, path)
        copied = await _properties(target)
        if copied is None:
            source = self._blobs.get_blob_client(record.container, record.name)
            try:
                await self._copy(source, target, record)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False  # raced by an upload or a change: the next run decides again
        elif (copied.metadata or {}).get(MOVED_FROM) != record.id:
            log.warning(
                "Document %s (%s) stays at the root: %s already holds another document",
                record.id, record.name, path,
            )  # fmt: skip
            return False
        await self.delete_document(record)
        log.info("Moved document %s (%s) to %s", record.id, record.name, path)
        return True

    async def _copy(self, source: BlobClient, target: BlobClient, record: DocumentRecord) -> None:
        """Copies exactly the version read (ETag-conditioned), create-only."""
        properties = await source.get_blob_properties()
        downloader = await source.download_blob(
            etag=properties.etag, match_condition=MatchConditions.IfNotModified
        )
        metadata = _metadata(record.tenant, Acl.from_item(record.acl), properties.metadata)
        metadata[MOVED_FROM] = record.id
        await target.upload_blob(await downloader.readall(), metadata=metadata, overwrite=False)

    async def _delete_blob(self, record: DocumentRecord) -> bool:
        blob = self._blobs.get_blob_client(record.container, record.blob_name)
        try:
            await blob.delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            return False
        return True
