"""`chunk_document`: the merged layout, with figure descriptions, cut into token-sized chunks.

The chunks are stored one embedding batch per blob, with their index ids (document id + content
hash + ordinal, computed here over the whole document), so each embedding activity reads only
its batch and indexing streams the batches: no later step holds a whole document's chunks.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from activities.context import IngestionContext
from shared.documents.chunking import chunk_layout
from shared.documents.detect import PPTX
from shared.documents.index import chunk_ids
from shared.documents.layout import Layout
from shared.ingestion.contract import MERGED_LAYOUT, Chunked, Failure, Job, chunks_leaf


async def _attach_descriptions(context: IngestionContext, layout: Layout) -> None:
    """Fills each figure's description from the cache the previous step filled."""
    for figure in layout.figures:
        if figure.skipped or not figure.image_sha256:
            continue
        description = await context.figures.get(figure.image_sha256)
        if description is not None:
            figure.description = description


def embedding_batches(count: int, size: int) -> list[tuple[int, int]]:
    """[start, end) ranges of chunk indexes, one per embedding activity."""
    return [(start, min(start + size, count)) for start in range(0, count, size)]


async def chunk_document(job: Job, context: IngestionContext) -> Chunked:
    """Writes the chunks, one blob per embedding batch; returns the count and the batches."""
    work = context.work_area(job)
    layout = Layout.from_json(await work.get_json(MERGED_LAYOUT))
    await _attach_descriptions(context, layout)
    # Slides are units of their own: no chunk runs across two of them.
    options = replace(context.chunking, pages_are_slides=job.media_type == PPTX)
    chunks = chunk_layout(layout, options)
    del layout  # the chunks are all that is needed from here on
    if not chunks:
        return Chunked(
            failed=Failure("no_text", "no text was found in the document (nothing to index)")
        )
    ids = chunk_ids(job.document_id, chunks, context.embedder.model)
    batches = embedding_batches(len(chunks), context.embedding_batch_size)
    for start, end in batches:
        items = [
            {**asdict(chunk), "id": chunk_id}
            for chunk, chunk_id in zip(chunks[start:end], ids[start:end], strict=True)
        ]
        await work.put_json(chunks_leaf(start), items)
    return Chunked(chunks=len(chunks), batches=batches)
