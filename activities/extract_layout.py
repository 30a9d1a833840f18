"""`extract_layout`: one page range through the engine each page deserves, stored as a blob.

EXTRACTION_MODE decides the engine: `local` reads everything offline; `azure` sends every page
to Document Intelligence; `auto` sends born-digital PDF pages (a real text layer) to the free
local extractor even when Azure is configured, and scanned pages and images to Document
Intelligence when it is configured (else to local OCR). The status shows each page's engine and
cost.
"""

from __future__ import annotations

import hashlib
from itertools import groupby

from activities.context import BlobGone, IngestionContext
from shared.documents.detect import PDF, TEXTUAL_TYPES
from shared.documents.engines.base import ExtractionError, LayoutEngine
from shared.documents.layout import ExtractedLayout, Layout, PageRange, SourceDocument
from shared.ingestion.contract import (
    ExtractedPart,
    ExtractRequest,
    Failure,
    Job,
    figure_leaf,
    layout_leaf,
)


def _runs(pages: list[int]) -> list[PageRange]:
    """Consecutive pages grouped into ranges: [1,2,3,7] -> 1-3, 7-7."""
    ranges = []
    for _, run in groupby(enumerate(pages), key=lambda pair: pair[1] - pair[0]):
        numbers = [page for _, page in run]
        ranges.append(PageRange(numbers[0], numbers[-1]))
    return ranges


def plan_engines(
    context: IngestionContext, source: SourceDocument, pages: PageRange
) -> list[tuple[LayoutEngine, PageRange | None]]:
    """Which engine reads which pages of this range."""
    mode = context.extraction_mode
    cloud = context.azure_engine
    local = context.local_engine
    whole = pages if source.media_type == PDF else None
    if cloud is None or mode == "local" or source.media_type in TEXTUAL_TYPES:
        return [(local, whole)]
    if mode == "azure" or source.media_type != PDF:
        return [(cloud, whole)]
    from shared.documents.engines.local import pdf_text_layer_pages

    layers = pdf_text_layer_pages(source.content, pages)
    digital = [page for page in pages if layers.get(page)]
    scanned = [page for page in pages if not layers.get(page)]
    return [(local, run) for run in _runs(digital)] + [(cloud, run) for run in _runs(scanned)]


async def _store_figures(context: IngestionContext, job: Job, extracted: ExtractedLayout) -> None:
    """Stores each figure's PNG by hash; marks tiny (decorative) ones skipped."""
    work = context.work_area(job)
    minimum = context.figure_min_pixels
    for figure in extracted.layout.figures:
        png = extracted.figure_images.get(figure.id)
        if png is None:
            figure.skipped = "no image"
            continue
        if (figure.width_px or minimum) < minimum or (figure.height_px or minimum) < minimum:
            figure.skipped = f"smaller than {minimum} px"
            continue
        figure.image_sha256 = hashlib.sha256(png).hexdigest()
        figure.image_blob = await work.put_bytes(figure_leaf(figure.image_sha256), png)


def _engines_by_page(layout: Layout) -> dict[str, list[int]]:
    engines: dict[str, list[int]] = {}
    for page in layout.pages:
        engines.setdefault(page.engine, []).append(page.number)
    return engines


async def extract_layout(request: ExtractRequest, context: IngestionContext) -> ExtractedPart:
    """Extracts the pages named in the request; returns where the layout blob is."""
    job = request.job
    pages = PageRange(request.pages.first, request.pages.last)
    try:
        content = await context.download_version(job)
    except BlobGone as gone:
        return ExtractedPart(failed=Failure("superseded", str(gone)))
    source = SourceDocument(job.name, job.media_type, content, job.page_count)
    layout = Layout()
    try:
        for engine, subset in plan_engines(context, source, pages):
            extracted = await engine.extract(source, subset)
            await _store_figures(context, job, extracted)
            layout.extend(extracted.layout)
    except ExtractionError as error:
        return ExtractedPart(failed=Failure("unreadable", f"pages {pages.pages}: {error}"))
    layout.pages.sort(key=lambda page: page.number)
    blob = await context.work_area(job).put_json(layout_leaf(request.pages), layout.to_json())
    return ExtractedPart(
        layout=blob,
        first=pages.first,
        engines=_engines_by_page(layout),
        cost_usd=round(sum(page.cost_usd for page in layout.pages), 6),
    )
