"""`fail_document`: record why ingestion failed, keep (and tag) the blob, drop half-work."""

from __future__ import annotations

from typing import Any

from activities._common import is_current_version, tag_blob, work_area
from shared.documents import index, records
from shared.services import Services


async def fail_document(payload: dict[str, Any], services: Services) -> dict[str, Any]:
    """Discards this version's staged chunks; the previous good version stays searchable.

    When the blob has moved on to a newer version meanwhile, that version's own ingestion owns
    the record, so only the staged chunks are dropped.
    """
    job = payload["job"]
    store = services.store
    discarded = await index.discard_staged(store, job["tenant"], job["document_id"])
    current = await is_current_version(services, job)
    if current:
        await records.update_record(
            store,
            job["tenant"],
            job["document_id"],
            state="failed",
            percent=100,
            step=payload.get("step"),
            error={
                "code": payload["code"],
                "reason": payload["reason"],
                "step": payload.get("step") or "",
            },
        )
        await tag_blob(
            services, job, {"docgate-status": "failed", "docgate-reason": payload["code"]}
        )
    await work_area(services, job).clear()
    return {"discarded": discarded, "recorded": current}
