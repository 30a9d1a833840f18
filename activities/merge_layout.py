"""`merge_layout`: page-range layouts joined in page order, continued tables merged."""

from __future__ import annotations

from typing import Any

from activities._common import work_area
from shared.documents.chunking import merge_continued_tables
from shared.documents.layout import Layout
from shared.services import Services

MERGED = "layout.json"


async def merge_layout(payload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Writes the whole document's layout; returns counts and the figures to describe."""
    job = payload["job"]
    work = work_area(services, job)
    layout = Layout()
    engines: dict[str, list[int]] = {}
    for part in sorted(payload["parts"], key=lambda item: item["first"]):
        layout.extend(Layout.from_json(await work.get_json(part["layout"])))
        for engine, pages in part["engines"].items():
            engines.setdefault(engine, []).extend(pages)
    layout.tables = merge_continued_tables(layout.tables, layout.paragraphs)
    await work.put_json(MERGED, layout.to_json())
    to_describe: dict[str, dict[str, Any]] = {}
    for figure in layout.figures:
        if figure.image_sha256 and not figure.skipped:
            to_describe.setdefault(
                figure.image_sha256, {"sha256": figure.image_sha256, "blob": figure.image_blob}
            )
    return {
        "tables": len(layout.tables),
        "figures": list(to_describe.values()),
        "figures_total": len(layout.figures),
        "engines": {engine: sorted(pages) for engine, pages in engines.items()},
        "cost_usd": round(sum(part["cost_usd"] for part in payload["parts"]), 6),
    }
