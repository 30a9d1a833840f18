"""`validate_upload`: type by magic bytes, limits, hash; then accept, reject or skip it.

The blob's tenant folder is its tenant (`{tenant}/{name}`, shared.documents.names): the
document id is derived from tenant and name, so one tenant's blob can never replace another
tenant's document.
"""

from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from activities.context import IngestionContext
from shared.documents import records
from shared.documents.detect import PAGED_TYPES
from shared.documents.index import set_chunk_acl
from shared.documents.names import split_blob_path
from shared.documents.records import Acl, DocumentRecord
from shared.documents.validation import DocumentRejected, validate
from shared.ingestion.contract import Checked, Failure, Job, Upload

# An ACL no principal satisfies (never "tenant-wide because it could not be read").
CLOSED_ACL = {"users": [], "groups": [], "tenant_wide": False}


class _Oversized(int):
    """The size of a blob too large to download."""


async def _download(context: IngestionContext, upload: Upload) -> bytes | str | _Oversized:
    """The blob version's bytes, its size when over the limit (never downloaded), or why it
    cannot be had ("superseded", "missing")."""
    blob = context.blobs.get_blob_client(upload.container, upload.name)
    condition = {"etag": upload.etag, "match_condition": MatchConditions.IfNotModified}
    try:
        properties = await blob.get_blob_properties(**condition)
        if properties.size > context.limits.max_bytes:
            return _Oversized(properties.size)
        downloader = await blob.download_blob(**condition)
        return await downloader.readall()
    except ResourceModifiedError:
        return "superseded"
    except ResourceNotFoundError:
        return "missing"


async def _record_for(
    context: IngestionContext, upload: Upload, tenant: str, name: str, acl: Acl
) -> DocumentRecord:
    """The document's record in `tenant` (a fresh one when there is none or it was deleted:
    a new document inherits nothing from a deleted one of the same name)."""
    doc_id = records.document_id(tenant, upload.container, name)
    existing = await records.read_record(context.store, tenant, doc_id)
    if existing is None or existing.state == "deleted":
        existing = DocumentRecord(
            id=doc_id, tenant=tenant, name=name, container=upload.container, blob=upload.name
        )
    existing.acl = acl.as_item()
    existing.instance_id = upload.instance_id
    existing.etag = upload.etag
    return existing


async def _unowned(context: IngestionContext, upload: Upload) -> Checked:
    """A blob outside any tenant folder belongs to no tenant: kept, tagged, never indexed."""
    reason = (
        f"{upload.name!r} is not in a tenant folder: drop files as <tenant>/<name> "
        "(the API does this for you)"
    )
    await context.tag(
        upload.container, upload.name,
        {"docgate-status": "failed", "docgate-reason": "no_tenant_folder"},
    )  # fmt: skip
    return Checked("rejected", failed=Failure("no_tenant_folder", reason))


async def _reject(
    context: IngestionContext, record: DocumentRecord, upload: Upload, code: str, reason: str
) -> Checked:
    record.state, record.step, record.percent = "failed", "validate", 100
    record.error = {"code": code, "reason": reason, "step": "validate"}
    await records.save_record(context.store, record)
    await context.tag(
        upload.container, upload.name, {"docgate-status": "failed", "docgate-reason": code}
    )
    return Checked("rejected", record.id, failed=Failure(code, reason))


async def validate_upload(upload: Upload, context: IngestionContext) -> Checked:
    """Checks one blob version and records the document; returns the job when accepted."""
    located = split_blob_path(upload.name)
    if located is None:
        return await _unowned(context, upload)
    tenant, name = located
    content = await _download(context, upload)
    if isinstance(content, str):
        return Checked(content, records.document_id(tenant, upload.container, name))  # type: ignore[arg-type]
    try:
        acl = Acl.parse(upload.metadata.get("acl"))
        acl_error = None
    except ValueError as error:
        acl, acl_error = Acl(), str(error)
    record = await _record_for(context, upload, tenant, name, acl)
    if acl_error:
        record.acl = CLOSED_ACL  # unreadable: nobody reads it until its metadata is fixed
        return await _reject(context, record, upload, "invalid_acl", acl_error)
    claimed = upload.metadata.get("tenant")
    if claimed is not None and claimed != tenant:
        reason = f"the blob is in tenant {tenant!r}'s folder but its metadata names {claimed!r}"
        return await _reject(context, record, upload, "tenant_mismatch", reason)
    limits = context.limits
    if isinstance(content, _Oversized):
        size, limit = int(content), limits.max_bytes
        reason = f"the file is {size:,} bytes; the limit is {limit:,} (MAX_UPLOAD_BYTES)"
        return await _reject(context, record, upload, "too_large", reason)
    try:
        checked = validate(upload.name, content, limits)
    except DocumentRejected as rejection:
        return await _reject(context, record, upload, rejection.code, rejection.reason)
    indexed = record.indexed or {}
    if (
        indexed.get("sha256") == checked.sha256
        and indexed.get("embedding_model") == context.embedder.model
    ):
        record.state, record.step, record.percent, record.error = "succeeded", "done", 100, None
        await records.save_record(context.store, record)
        # Same content, maybe a new ACL (metadata changed): the chunks follow the blob's ACL.
        if await set_chunk_acl(context.store, tenant, record.id, record.acl) and context.answers:
            await context.answers.invalidate_documents([record.id], tenant)
        return Checked("unchanged", record.id)
    record.state, record.step, record.percent, record.error = "running", "validate", 5, None
    record.sha256, record.size = checked.sha256, checked.size
    record.media_type, record.page_count = checked.media_type, checked.page_count
    await records.save_record(context.store, record)
    paged = checked.media_type in PAGED_TYPES
    job = Job(
        document_id=record.id,
        tenant=tenant,
        container=upload.container,
        name=upload.name,
        etag=upload.etag,
        sha256=checked.sha256,
        media_type=checked.media_type,
        page_count=checked.page_count,
        pages_per_batch=context.pages_per_batch if paged else max(1, checked.page_count),
        acl=record.acl,
        traceparent=upload.traceparent,
    )
    return Checked("accepted", job=job)
