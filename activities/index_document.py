"""`index_document`: stage the new chunks, commit them, then update the document record last."""

from __future__ import annotations

import time

from activities.context import IngestionContext
from shared.documents import index, records
from shared.ingestion.contract import (
    CHUNKS,
    Failure,
    Indexed,
    IndexRequest,
    Job,
    embeddings_leaf,
)
from shared.security.chunk_screening import audit_flagged_document


async def _drafts(context: IngestionContext, job: Job) -> tuple[list[index.ChunkDraft], str]:
    """Chunks joined with their vectors, and the embedding model that made them."""
    work = context.work_area(job)
    chunks = await work.get_json(CHUNKS)
    drafts: list[index.ChunkDraft] = []
    model = ""
    batch_size = context.embedding_batch_size
    for start in range(0, len(chunks), batch_size):
        stored = await work.get_json(embeddings_leaf(start))
        model = stored["model"]
        batch = chunks[start : start + batch_size]
        verdicts = stored.get("injection") or [None] * len(batch)
        for chunk, vector, verdict in zip(batch, stored["vectors"], verdicts, strict=True):
            drafts.append(
                index.ChunkDraft(
                    chunk["kind"], chunk["text"], chunk["pages"], chunk["headings"], vector,
                    verdict, chunk.get("page_spans") or [],
                )
            )  # fmt: skip
    return drafts, model


async def index_document(request: IndexRequest, context: IngestionContext) -> Indexed:
    """Makes this version the searchable one; returns what changed in the index."""
    started = time.perf_counter()
    job, summary = request.job, request.summary
    store = context.store
    if not await context.is_current_version(job):
        await index.discard_staged(store, job.tenant, job.document_id)
        return Indexed("superseded", job.document_id)
    drafts, model = await _drafts(context, job)
    record = await records.read_record(store, job.tenant, job.document_id)
    if record is None:
        return Indexed(failed=Failure("deleted", "the document was deleted during ingestion"))
    document = {**record.to_item(), "media_type": job.media_type, "sha256": job.sha256}
    version = index.Version(document, job.etag, summary.figure_hashes)
    try:
        committed = await index.commit_version(store, version, drafts, model)
    except index.EmbeddingMismatch as mismatch:
        return Indexed(failed=Failure("embedding_mismatch", str(mismatch)))
    # A VersionConflict is transient: the orchestration's retry re-runs this step.
    record.state, record.step, record.percent, record.error = "succeeded", "done", 100, None
    flagged = await audit_flagged_document(
        context.audit, context.screen, job, [draft.injection for draft in drafts]
    )
    record.counts = {**summary.counts, "chunks_flagged": flagged}
    record.engines = summary.engines
    record.cost_usd = summary.cost_usd
    record.timings = {**summary.timings, "index": round(time.perf_counter() - started, 3)}
    record.indexed = {
        "sha256": job.sha256,
        "etag": job.etag,
        "chunks": len(committed.chunk_ids),
        "embedding_model": committed.embedding_model,
        "embedding_dim": committed.embedding_dim,
        "indexed_at": records.utc_now(),
    }
    await records.save_record(store, record)
    if context.answers is not None:
        # Answers citing the previous version must not be served any more.
        await context.answers.invalidate_documents([job.document_id], job.tenant)
    await context.tag(job.container, job.name, {"docgate-status": "indexed"})
    await context.work_area(job).clear()
    return Indexed(
        "indexed",
        job.document_id,
        chunks_added=committed.added,
        chunks_unchanged=committed.unchanged,
        chunks_removed=committed.removed,
    )
