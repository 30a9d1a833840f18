"""`embed_chunks`: one batch of chunk texts through the embedding model and the injection screen.

Each chunk is screened here, once, with the same detector (and Prompt Shields when configured)
that screens questions; the verdict travels with the vectors and is stored on the chunk, so chat
applies the documents policy without screening sources per request.
"""

from __future__ import annotations

from activities.context import IngestionContext
from shared.ingestion.contract import CHUNKS, Embedded, EmbedRequest, embeddings_leaf


async def embed_chunks(request: EmbedRequest, context: IngestionContext) -> Embedded:
    """Embeds and screens chunks [start, end); idempotent (the batch overwrites its own blob)."""
    start, end = request.batch
    work = context.work_area(request.job)
    chunks = (await work.get_json(CHUNKS))[start:end]
    texts = [chunk["text"] for chunk in chunks]
    embedder = context.embedder
    vectors = await embedder.embed(texts)
    verdicts = await context.screen.screen_texts(texts)
    await work.put_json(
        embeddings_leaf(start),
        {
            "model": embedder.model,
            "dimensions": embedder.dimensions,
            "vectors": vectors,
            "injection": [verdict.to_item() for verdict in verdicts],
        },
    )
    return Embedded(embedded=len(vectors))
