"""`describe_figures`: caption, tags and text of figures, cached by image hash."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from activities._common import work_area
from shared.documents.index import FIGURES
from shared.documents.records import utc_now
from shared.services import Services


async def describe_figures(payload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Describes each figure not yet in the cache; re-ingestion pays nothing twice."""
    job = payload["job"]
    work = work_area(services, job)
    described = cached = 0
    for figure in payload["figures"]:
        if await services.store.read(FIGURES, figure["sha256"], figure["sha256"]):
            cached += 1
            continue
        png = await work.get_bytes(figure["blob"])
        description = await services.describer.describe(png)
        await services.store.upsert(
            FIGURES,
            {
                "id": figure["sha256"],
                "description": asdict(description),
                "describer": services.describer.name,
                "created": utc_now(),
            },
        )
        described += 1
    return {"described": described + cached, "cache_hits": cached}
