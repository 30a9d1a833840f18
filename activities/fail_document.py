"""`fail_document`: record why ingestion failed, keep (and tag) the blob, drop half-work."""

from __future__ import annotations

from activities.context import IngestionContext
from shared.documents import index, records
from shared.ingestion.contract import FailureRecorded, FailureReport


async def fail_document(report: FailureReport, context: IngestionContext) -> FailureRecorded:
    """Discards this version's staged chunks; the previous good version stays searchable.

    When the blob has moved on to a newer version meanwhile, that version's own ingestion owns
    the record, so only the staged chunks are dropped.
    """
    job = report.job
    discarded = await index.discard_staged(context.store, job.tenant, job.document_id)
    current = await context.is_current_version(job)
    if current:
        await records.update_record(
            context.store,
            job.tenant,
            job.document_id,
            state="failed",
            percent=100,
            step=report.step,
            error={"code": report.code, "reason": report.reason, "step": report.step or ""},
        )
        await context.tag(
            job.container, job.name, {"docgate-status": "failed", "docgate-reason": report.code}
        )
    await context.work_area(job).clear()
    return FailureRecorded(discarded=discarded, recorded=current)
