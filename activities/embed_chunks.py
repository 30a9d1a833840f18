"""`embed_chunks`: one batch of chunk texts through the embedding model."""

from __future__ import annotations

from typing import Any

from activities._common import work_area
from activities.chunk_document import CHUNKS
from shared.services import Services


def embeddings_leaf(start: int) -> str:
    """Where the vectors of the batch starting at `start` are stored."""
    return f"embeddings-{start:06d}.json"


async def embed_chunks(payload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Embeds chunks [start, end); idempotent (the same batch overwrites its own blob)."""
    job = payload["job"]
    start, end = payload["batch"]
    work = work_area(services, job)
    chunks = (await work.get_json(CHUNKS))[start:end]
    embedder = services.embedder
    vectors = await embedder.embed([chunk["text"] for chunk in chunks])
    await work.put_json(
        embeddings_leaf(start),
        {"model": embedder.model, "dimensions": embedder.dimensions, "vectors": vectors},
    )
    return {"embedded": len(vectors)}
