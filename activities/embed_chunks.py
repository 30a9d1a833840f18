"""`embed_chunks`: one batch of chunk texts through the embedding model."""

from __future__ import annotations

from activities.context import IngestionContext
from shared.ingestion.contract import CHUNKS, Embedded, EmbedRequest, embeddings_leaf


async def embed_chunks(request: EmbedRequest, context: IngestionContext) -> Embedded:
    """Embeds chunks [start, end); idempotent (the same batch overwrites its own blob)."""
    start, end = request.batch
    work = context.work_area(request.job)
    chunks = (await work.get_json(CHUNKS))[start:end]
    embedder = context.embedder
    vectors = await embedder.embed([chunk["text"] for chunk in chunks])
    await work.put_json(
        embeddings_leaf(start),
        {"model": embedder.model, "dimensions": embedder.dimensions, "vectors": vectors},
    )
    return Embedded(embedded=len(vectors))
