"""`merge_layout`: page-range layouts joined in page order, continued tables merged."""

from __future__ import annotations

from activities.context import IngestionContext
from shared.documents.chunking import merge_continued_tables
from shared.documents.layout import Layout
from shared.ingestion.contract import MERGED_LAYOUT, FigureRef, Merged, MergeRequest


async def merge_layout(request: MergeRequest, context: IngestionContext) -> Merged:
    """Writes the whole document's layout; returns counts and the figures to describe."""
    work = context.work_area(request.job)
    layout = Layout()
    engines: dict[str, list[int]] = {}
    for part in sorted(request.parts, key=lambda item: item.first or 0):
        layout.extend(Layout.from_json(await work.get_json(part.layout or "")))
        for engine, pages in (part.engines or {}).items():
            engines.setdefault(engine, []).extend(pages)
    layout.tables = merge_continued_tables(layout.tables, layout.paragraphs)
    await work.put_json(MERGED_LAYOUT, layout.to_json())
    to_describe: dict[str, FigureRef] = {}
    for figure in layout.figures:
        if figure.image_sha256 and figure.image_blob and not figure.skipped:
            to_describe.setdefault(
                figure.image_sha256, FigureRef(figure.image_sha256, figure.image_blob)
            )
    return Merged(
        tables=len(layout.tables),
        figures=list(to_describe.values()),
        figures_total=len(layout.figures),
        engines={engine: sorted(pages) for engine, pages in engines.items()},
        cost_usd=round(sum(part.cost_usd or 0.0 for part in request.parts), 6),
    )
