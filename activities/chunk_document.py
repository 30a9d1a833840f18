"""`chunk_document`: the merged layout, with figure descriptions, cut into token-sized chunks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from activities._common import failed, work_area
from activities.merge_layout import MERGED
from shared.documents.chunking import ChunkingOptions, chunk_layout
from shared.documents.index import FIGURES
from shared.documents.layout import FigureDescription, Layout
from shared.services import Services

CHUNKS = "chunks.json"


async def _attach_descriptions(services: Services, layout: Layout) -> None:
    """Fills each figure's description from the cache the previous step filled."""
    for figure in layout.figures:
        if figure.skipped or not figure.image_sha256:
            continue
        item = await services.store.read(FIGURES, figure.image_sha256, figure.image_sha256)
        if item:
            figure.description = FigureDescription(**item["description"])


def embedding_batches(count: int, size: int) -> list[list[int]]:
    """[start, end) ranges of chunk indexes, one per embedding activity."""
    return [[start, min(start + size, count)] for start in range(0, count, size)]


async def chunk_document(job: dict[str, Any], services: Services) -> dict[str, Any]:
    """Writes the chunks blob; returns the count and the embedding batches."""
    work = work_area(services, job)
    layout = Layout.from_json(await work.get_json(MERGED))
    await _attach_descriptions(services, layout)
    settings = services.settings
    # A chunk longer than the embedding model reads would be embedded truncated.
    max_tokens = min(settings.ingestion.chunk_max_tokens, services.embedder_max_tokens)
    options = ChunkingOptions(
        max_tokens=max_tokens,
        overlap_tokens=min(settings.ingestion.chunk_overlap_tokens, max_tokens // 4),
    )
    chunks = chunk_layout(layout, options)
    if not chunks:
        return failed("no_text", "no text was found in the document (nothing to index)")
    await work.put_json(CHUNKS, [asdict(chunk) for chunk in chunks])
    return {
        "chunks": len(chunks),
        "batches": embedding_batches(len(chunks), settings.embedding.batch_size),
    }
