"""`describe_figures`: caption, tags and text of figures, cached by image hash."""

from __future__ import annotations

from activities.context import IngestionContext
from shared.ingestion.contract import Described, DescribeRequest


async def describe_figures(request: DescribeRequest, context: IngestionContext) -> Described:
    """Describes each figure not yet in the cache; re-ingestion pays nothing twice."""
    work = context.work_area(request.job)
    described = cached = 0
    for figure in request.figures:
        if await context.figures.has(figure.sha256):
            cached += 1
            continue
        png = await work.get_bytes(figure.blob)
        description = await context.describer.describe(png)
        await context.figures.put(figure.sha256, description, context.describer.name)
        described += 1
    return Described(described=described + cached, cache_hits=cached)
