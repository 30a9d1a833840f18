"""The `ingest` orchestration: one blob version becomes searchable chunks with page citations.

validate -> extract layout (fanned out over page ranges) -> merge -> describe figures (fanned
out) -> chunk -> embed (fanned out) -> index (stage, then commit). Deterministic: it only
schedules activities, reads `current_utc_datetime` (replay-safe) for step timings and reports
progress through the custom status. Any failure ends in `fail_document`, which records the
reason, keeps the blob (tagged) and discards a half-written version.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from activities import registry as steps
from activities.registry import Step
from shared.ingestion.contract import (
    Checked,
    Contract,
    DescribeRequest,
    EmbedRequest,
    ExtractRequest,
    FailureReport,
    IndexRequest,
    Job,
    Merged,
    MergeRequest,
    PageSpan,
    Summary,
    Upload,
)

Out = TypeVar("Out", bound=Contract)

# Transient failures (throttling, timeouts, 5xx) get spaced retries; the activities raise
# permanent problems as a rejection result instead, so they are not retried.
TRANSIENT_RETRY = df.RetryOptions(
    first_retry_interval_in_milliseconds=2000, max_number_of_attempts=4
)
FIGURES_PER_ACTIVITY = 8

# Percent reached when each step completes.
PROGRESS = {
    "validate": 5,
    "extract": 55,
    "merge": 60,
    "figures": 70,
    "chunk": 75,
    "embed": 90,
    "index": 100,
}


class PermanentFailure(Exception):
    """An activity reported a problem retrying cannot fix (it returns it rather than raise)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def require(results: Out | Sequence[Out]) -> Any:
    """Raises the first permanent failure a step (or a fan-out of them) reported."""
    for item in results if isinstance(results, Sequence) else [results]:
        failed = getattr(item, "failed", None)
        if failed is not None:
            raise PermanentFailure(failed.code, failed.reason)
    return results


def call(
    context: df.DurableOrchestrationContext, step: Step[Any, Out], payload: Contract
) -> TaskBase:
    """Schedules `step` with retries for transient failures."""
    return context.call_activity_with_retry(
        step.activity, TRANSIENT_RETRY, payload.as_json(), expected_type=dict
    )


def progress(step: str, percent: int, **details: Any) -> dict[str, Any]:
    """The custom status: which step runs and how far along the whole ingestion is."""
    return {"step": step, "percent": percent, **details}


def page_batches(page_count: int, pages_per_batch: int) -> list[PageSpan]:
    """Page ranges of at most `pages_per_batch` pages covering the document, in order."""
    return [
        PageSpan(first, min(first + pages_per_batch - 1, page_count))
        for first in range(1, page_count + 1, pages_per_batch)
    ]


def groups(items: list[Any], size: int) -> list[list[Any]]:
    """Consecutive groups of at most `size` items."""
    return [items[start : start + size] for start in range(0, len(items), size)]


class _Clock:
    """Step timings from the orchestration's replay-safe clock."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.last: datetime = context.current_utc_datetime
        self.timings: dict[str, float] = {}

    def lap(self, step: str) -> None:
        now = self.context.current_utc_datetime
        self.timings[step] = round((now - self.last).total_seconds(), 3)
        self.last = now


def ingest(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Runs the pipeline for the upload in the input; returns the outcome."""
    upload = Upload.parse(context.get_input(expected_type=dict))
    clock = _Clock(context)
    context.set_custom_status(progress("validate", 0))
    checked: Checked = steps.validate.result((yield call(context, steps.validate, upload)))
    if checked.outcome != "accepted" or checked.job is None:
        # rejected (already recorded as failed), unchanged, superseded or missing
        context.set_custom_status(progress("done", 100, outcome=checked.outcome))
        return checked.as_json()
    job = checked.job
    clock.lap("validate")
    try:
        result = yield from _index_version(context, job, clock)
    except PermanentFailure as failure:
        return (yield from _fail(context, job, failure.code, failure.reason))
    except Exception as error:  # retries exhausted: the activity's last error, first line
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (yield from _fail(context, job, "step_failed", reason))
    context.set_custom_status(progress("done", 100, outcome="indexed", **result["counts"]))
    return result


def _fail(
    context: df.DurableOrchestrationContext, job: Job, code: str, reason: str
) -> Generator[Any, Any, dict[str, Any]]:
    """Records the failure (the blob is kept and tagged; a half-written version discarded)."""
    step = (context.custom_status or {}).get("step")
    yield call(context, steps.fail, FailureReport(job, step, code, reason))
    context.set_custom_status(progress("failed", 100, step_failed=step, reason=reason))
    return {"outcome": "failed", "code": code, "reason": reason, "document_id": job.document_id}


def _index_version(
    context: df.DurableOrchestrationContext, job: Job, clock: _Clock
) -> Generator[Any, Any, dict[str, Any]]:
    """Extraction through indexing for an accepted document version."""
    batches = page_batches(job.page_count, job.pages_per_batch)
    context.set_custom_status(progress("extract", PROGRESS["validate"], batches=len(batches)))
    extracting = [call(context, steps.extract, ExtractRequest(job, pages)) for pages in batches]
    parts = require([steps.extract.result(raw) for raw in (yield context.task_all(extracting))])
    clock.lap("extract")

    context.set_custom_status(progress("merge", PROGRESS["extract"]))
    raw = yield call(context, steps.merge, MergeRequest(job, parts))
    merged: Merged = require(steps.merge.result(raw))
    clock.lap("merge")

    context.set_custom_status(progress("figures", PROGRESS["merge"], figures=len(merged.figures)))
    describing = [
        call(context, steps.describe, DescribeRequest(job, group))
        for group in groups(merged.figures, FIGURES_PER_ACTIVITY)
    ]
    # task_all of nothing yields None: a document without figures skips the fan-out.
    described = (
        [steps.describe.result(raw) for raw in (yield context.task_all(describing))]
        if describing
        else []
    )
    clock.lap("figures")

    context.set_custom_status(progress("chunk", PROGRESS["figures"]))
    chunked = require(steps.chunk.result((yield call(context, steps.chunk, job))))
    clock.lap("chunk")

    context.set_custom_status(progress("embed", PROGRESS["chunk"], chunks=chunked.chunks))
    embedding = [call(context, steps.embed, EmbedRequest(job, batch)) for batch in chunked.batches]
    require([steps.embed.result(raw) for raw in (yield context.task_all(embedding))])
    clock.lap("embed")

    context.set_custom_status(progress("index", PROGRESS["embed"]))
    summary = Summary(
        counts={
            "pages": job.page_count,
            "tables": merged.tables,
            "figures": len(merged.figures),
            "figures_described": sum(item.described for item in described),
            "chunks": chunked.chunks,
        },
        engines=merged.engines,
        cost_usd=merged.cost_usd,
        figure_hashes=[figure.sha256 for figure in merged.figures],
        timings=clock.timings,
    )
    raw = yield call(context, steps.index, IndexRequest(job, summary, chunked.batches))
    indexed = require(steps.index.result(raw))
    clock.lap("index")
    return {**indexed.as_json(), **summary.as_json(), "timings": clock.timings}
