"""`index_document`: stage the new chunks, commit them, then update the document record last."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from activities.context import IngestionContext
from shared.documents import index, records
from shared.documents.work import WorkArea
from shared.ingestion.contract import (
    Failure,
    Indexed,
    IndexRequest,
    chunks_leaf,
    embeddings_leaf,
)
from shared.security.chunk_screening import audit_flagged_document


class _Batches:
    """The version's chunks joined with their vectors, one embedding batch at a time (an async
    iterable `commit_version` consumes); remembers each chunk's stored verdict."""

    def __init__(self, work: WorkArea, batches: list[tuple[int, int]], model: str) -> None:
        self._work = work
        self._batches = batches
        self.model = model  # the chunk ids were made for it: the vectors must be its
        self.verdicts: list[dict[str, Any] | None] = []

    async def __aiter__(self) -> AsyncIterator[list[tuple[str, index.ChunkDraft]]]:
        for start, end in self._batches:
            chunks = await self._work.get_json(chunks_leaf(start))
            stored = await self._work.get_json(embeddings_leaf(start))
            if len(chunks) != end - start or len(stored["vectors"]) != len(chunks):
                raise RuntimeError(f"chunk batch {start}-{end} and its vectors do not match")
            if stored["model"] != self.model:
                raise index.EmbeddingMismatch(
                    f"batch {start}-{end} was embedded by {stored['model']}, not {self.model}"
                )
            verdicts = stored.get("injection") or [None] * len(chunks)
            self.verdicts += verdicts
            yield [
                (
                    chunk["id"],
                    index.ChunkDraft(
                        chunk["kind"], chunk["text"], chunk["pages"], chunk["headings"], vector,
                        verdict, chunk.get("page_spans") or [],
                    ),
                )
                for chunk, vector, verdict in zip(chunks, stored["vectors"], verdicts, strict=True)
            ]  # fmt: skip


async def index_document(request: IndexRequest, context: IngestionContext) -> Indexed:
    """Makes this version the searchable one; returns what changed in the index."""
    started = time.perf_counter()
    job, summary = request.job, request.summary
    store = context.store
    if not await context.is_current_version(job):
        await index.discard_staged(store, job.tenant, job.document_id)
        return Indexed("superseded", job.document_id)
    record = await records.read_record(store, job.tenant, job.document_id)
    if record is None:
        return Indexed(failed=Failure("deleted", "the document was deleted during ingestion"))
    document = {**record.to_item(), "media_type": job.media_type, "sha256": job.sha256}
    version = index.Version(document, job.etag, summary.figure_hashes)
    batches = _Batches(context.work_area(job), request.batches, context.embedder.model)
    try:
        committed = await index.commit_version(store, version, batches, batches.model)
    except index.EmbeddingMismatch as mismatch:
        return Indexed(failed=Failure("embedding_mismatch", str(mismatch)))
    # A VersionConflict is transient: the orchestration's retry re-runs this step.
    if context.answers is not None:
        # Answers citing the previous version must not be served any more; before the record
        # says "succeeded", so a client that waited for that never gets one of them.
        await context.answers.invalidate_documents([job.document_id], job.tenant)
    record.state, record.step, record.percent, record.error = "succeeded", "done", 100, None
    flagged = await audit_flagged_document(context.audit, context.screen, job, batches.verdicts)
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
    await context.tag(job.container, job.name, {"docgate-status": "indexed"})
    await context.work_area(job).clear()
    return Indexed(
        "indexed",
        job.document_id,
        chunks_added=committed.added,
        chunks_unchanged=committed.unchanged,
        chunks_removed=committed.removed,
    )
