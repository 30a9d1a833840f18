"""The `ingest` orchestration: one uploaded blob becomes a recorded, inspected document.

Deterministic: it only schedules activities and reports progress through the custom status,
so replaying it after a crash gives the same decisions.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

# Transient storage or Cosmos failures (throttling, timeouts) deserve a few spaced retries.
TRANSIENT_RETRY = df.RetryOptions(
    first_retry_interval_in_milliseconds=2000, max_number_of_attempts=4
)


def progress(step: str, percent: int, **details: Any) -> dict[str, Any]:
    """The custom status: which step runs and how far along the whole ingestion is."""
    return {"step": step, "percent": percent, **details}


def ingest(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Inspects the upload (type, size, hash) and records the document."""
    upload = context.get_input()
    context.set_custom_status(progress("inspect", 0))
    inspected = yield context.call_activity_with_retry("inspect_upload", TRANSIENT_RETRY, upload)
    context.set_custom_status(progress("done", 100, outcome=inspected["outcome"]))
    return inspected
