"""`index_document`: stage the new chunks, commit them, then update the document record last."""

from __future__ import annotations

import time
from typing import Any

from activities._common import failed, is_current_version, tag_blob, work_area
from activities.chunk_document import CHUNKS
from activities.embed_chunks import embeddings_leaf
from shared.documents import index, records
from shared.services import Services
from shared.storage.cosmos import PreconditionFailed


async def _drafts(services: Services, job: dict[str, Any]) -> tuple[list[index.ChunkDraft], str]:
    """Chunks joined with their vectors, and the embedding model that made them."""
    work = work_area(services, job)
    chunks = await work.get_json(CHUNKS)
    drafts: list[index.ChunkDraft] = []
    model = ""
    batch_size = services.settings.embedding.batch_size
    for start in range(0, len(chunks), batch_size):
        stored = await work.get_json(embeddings_leaf(start))
        model = stored["model"]
        for chunk, vector in zip(
            chunks[start : start + batch_size], stored["vectors"], strict=True
        ):
            drafts.append(
                index.ChunkDraft(
                    chunk["kind"], chunk["text"], chunk["pages"], chunk["headings"], vector
                )
            )
    return drafts, model


async def index_document(payload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Makes this version the searchable one; returns what changed in the index."""
    started = time.perf_counter()
    job, summary = payload["job"], payload["summary"]
    store = services.store
    tenant, doc_id = job["tenant"], job["document_id"]
    if not await is_current_version(services, job):
        await index.discard_staged(store, tenant, doc_id)
        return {"outcome": "superseded", "document_id": doc_id}
    drafts, model = await _drafts(services, job)
    dimensions = len(drafts[0].embedding)
    try:
        await index.check_embedding_space(store, model, dimensions)
    except index.EmbeddingMismatch as mismatch:
        return failed("embedding_mismatch", str(mismatch))
    record = await records.read_record(store, tenant, doc_id)
    if record is None:
        return failed("deleted", "the document was deleted during ingestion")
    document = {**record.to_item(), "media_type": job["media_type"], "sha256": job["sha256"]}
    ids = index.chunk_ids(doc_id, drafts, model)
    previous = await index.read_manifest(store, tenant, doc_id)
    live = set((previous or {}).get("chunk_ids", []))
    items = [
        index.chunk_item(cid, draft, document, model)
        for cid, draft in zip(ids, drafts, strict=True)
    ]
    staged = await index.stage_chunks(store, items, live)
    manifest = {
        "version": job["sha256"],
        "etag": job["etag"],
        "chunk_ids": ids,
        "figure_hashes": summary.get("figure_hashes", []),
        "embedding_model": model,
        "embedding_dim": dimensions,
    }
    try:
        removed = await index.commit_chunks(store, tenant, doc_id, manifest, previous)
    except PreconditionFailed as conflict:
        # A transient conflict: the orchestration's retry re-runs this step, which re-reads.
        raise RuntimeError("another version of this document committed concurrently") from conflict
    record.state, record.step, record.percent, record.error = "succeeded", "done", 100, None
    record.counts = summary["counts"]
    record.engines = summary["engines"]
    record.cost_usd = summary["cost_usd"]
    record.timings = {**summary["timings"], "index": round(time.perf_counter() - started, 3)}
    record.indexed = {
        "sha256": job["sha256"],
        "etag": job["etag"],
        "chunks": len(ids),
        "embedding_model": model,
        "embedding_dim": dimensions,
        "indexed_at": records.utc_now(),
    }
    await records.save_record(store, record)
    if services.semantic_cache is not None:
        # Answers citing the previous version must not be served any more.
        await services.semantic_cache.invalidate_documents([doc_id], tenant)
    await tag_blob(services, job, {"docgate-status": "indexed"})
    await work_area(services, job).clear()
    return {
        "outcome": "indexed",
        "document_id": doc_id,
        "chunks_added": len(staged),
        "chunks_unchanged": len(ids) - len(staged),
        "chunks_removed": removed,
    }
