"""`embed_chunks`: one batch of chunk texts through the embedding model and the injection screen.

Each chunk is screened here, once, with the same detector (and Prompt Shields when configured)
that screens questions; the verdict travels with the vectors and is stored on the chunk, so chat
applies the documents policy without screening sources per request. The activity reads only its
own batch of chunks.
"""

from __future__ import annotations

from activities.context import IngestionContext
from shared.ingestion.contract import Embedded, EmbedRequest, chunks_leaf, embeddings_leaf


async def embed_chunks(request: EmbedRequest, context: IngestionContext) -> Embedded:
    """Embeds and screens chunks [start, end); idempotent (the batch overwrites its own blob)."""
    start, _ = request.batch
    work = context.work_area(request.job)
    texts = [chunk["text"] for chunk in await work.get_json(chunks_leaf(start))]
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
