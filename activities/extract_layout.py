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
from typing import Any

from activities._common import BlobGone, download_version, failed, work_area
from shared.documents.engines.base import ExtractionError, LayoutEngine
from shared.documents.layout import ExtractedLayout, Layout, PageRange, SourceDocument
from shared.services import Services

PDF = "application/pdf"
TEXTUAL = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "text/plain",
        "text/markdown",
        "text/html",
    }
)


def _runs(pages: list[int]) -> list[PageRange]:
    """Consecutive pages grouped into ranges: [1,2,3,7] -> 1-3, 7-7."""
    ranges = []
    for _, run in groupby(enumerate(pages), key=lambda pair: pair[1] - pair[0]):
        numbers = [page for _, page in run]
        ranges.append(PageRange(numbers[0], numbers[-1]))
    return ranges


def plan_engines(
    services: Services, source: SourceDocument, pages: PageRange
) -> list[tuple[LayoutEngine, PageRange | None]]:
    """Which engine reads which pages of this range."""
    mode = services.settings.extraction.mode
    cloud = services.azure_engine
    local = services.local_engine
    whole = pages if source.media_type == PDF else None
    if cloud is None or mode == "local" or source.media_type in TEXTUAL:
        return [(local, whole)]
    if mode == "azure" or source.media_type != PDF:
        return [(cloud, whole)]
    from shared.documents.engines.local import pdf_text_layer_pages

    layers = pdf_text_layer_pages(source.content, pages)
    digital = [page for page in pages if layers.get(page)]
    scanned = [page for page in pages if not layers.get(page)]
    return [(local, run) for run in _runs(digital)] + [(cloud, run) for run in _runs(scanned)]


async def _store_figures(
    services: Services, job: dict[str, Any], extracted: ExtractedLayout
) -> None:
    """Stores each figure's PNG by hash; marks tiny (decorative) ones skipped."""
    work = work_area(services, job)
    minimum = services.settings.ingestion.figure_min_pixels
    for figure in extracted.layout.figures:
        png = extracted.figure_images.get(figure.id)
        if png is None:
            figure.skipped = "no image"
            continue
        if (figure.width_px or minimum) < minimum or (figure.height_px or minimum) < minimum:
            figure.skipped = f"smaller than {minimum} px"
            continue
        figure.image_sha256 = hashlib.sha256(png).hexdigest()
        figure.image_blob = await work.put_bytes(f"figures/{figure.image_sha256}.png", png)


def _engines_by_page(layout: Layout) -> dict[str, list[int]]:
    engines: dict[str, list[int]] = {}
    for page in layout.pages:
        engines.setdefault(page.engine, []).append(page.number)
    return engines


async def extract_layout(payload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Extracts the pages named in the payload; returns where the layout blob is."""
    job = payload["job"]
    pages = PageRange(payload["pages"]["first"], payload["pages"]["last"])
    try:
        content = await download_version(services, job)
    except BlobGone as gone:
        return failed("superseded", str(gone))
    source = SourceDocument(job["name"], job["media_type"], content, job["page_count"])
    layout = Layout()
    try:
        for engine, subset in plan_engines(services, source, pages):
            extracted = await engine.extract(source, subset)
            await _store_figures(services, job, extracted)
            layout.extend(extracted.layout)
    except ExtractionError as error:
        return failed("unreadable", f"pages {pages.pages}: {error}")
    layout.pages.sort(key=lambda page: page.number)
    blob = await work_area(services, job).put_json(
        f"layout-{pages.first:05d}-{pages.last:05d}.json", layout.to_json()
    )
    return {
        "layout": blob,
        "first": pages.first,
        "engines": _engines_by_page(layout),
        "cost_usd": round(sum(page.cost_usd for page in layout.pages), 6),
    }
