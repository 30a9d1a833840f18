"""Starting ingestions from upload events: one orchestration per blob version, never two.

The start is a CONSUMER span continuing the trace of the HTTP upload that wrote the blob (its
`traceparent` metadata) or starting one for a blob dropped directly; its own `traceparent`
travels in the orchestration input, so every activity joins the same trace.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
from opentelemetry import trace

from shared.ingestion.contract import Upload
from shared.telemetry import names
from shared.telemetry.context import TRACEPARENT, continued_span, current_traceparent

log = logging.getLogger(__name__)
INGEST_ORCHESTRATOR = "ingest"


def ingest_instance_id(upload: Upload) -> str:
    """Derived from blob path and content version, so a duplicate event maps to the same id."""
    return upload.instance


async def start_ingestion(client: df.DurableOrchestrationClient, upload: Upload) -> str | None:
    """Starts `ingest` for this blob version unless an instance for it already exists."""
    instance_id = ingest_instance_id(upload)
    with continued_span(
        "ingest.start",
        upload.metadata.get(TRACEPARENT),
        trace.SpanKind.CONSUMER,
        **{names.INSTANCE_ID: instance_id},
    ):
        return await _start(client, upload, instance_id)


async def _start(
    client: df.DurableOrchestrationClient, upload: Upload, instance_id: str
) -> str | None:
    existing = await client.get_status(instance_id)
    if existing:
        log.info(
            "Upload %s/%s (etag %s) already has %s",
            upload.container,
            upload.name,
            upload.etag,
            instance_id,
        )
        return None
    try:
        payload = upload.started_as(instance_id, current_traceparent()).as_input()
        await client.start_new(INGEST_ORCHESTRATOR, instance_id, payload)
    except Exception:
        # A concurrent duplicate event may have started it between our check and our start.
        if await client.get_status(instance_id):
            return None
        raise
    log.info("Started %s for %s/%s", instance_id, upload.container, upload.name)
    return instance_id
