"""docgate's Azure Functions app (Python v2 model): thin wiring of triggers to the code that
does the work in `orchestrators/`, `activities/` and `shared/`.

The same file runs under Azure, `func start` (Core Tools) and `python -m devhost`.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.inspect_upload import inspect_upload as inspect_upload_activity
from orchestrators.ingest import ingest as ingest_orchestration
from shared.config import get_settings
from shared.health import check_dependencies
from shared.http import endpoint, json_response
from shared.ingestion import Upload, start_ingestion
from shared.services import dependency_probes, get_services, provision
from shared.telemetry import configure_telemetry

# Fail at start-up, naming each missing or invalid setting, rather than on the first request.
settings = get_settings()
logging.getLogger("shared").setLevel(settings.log_level)
configure_telemetry(settings)
provision(settings)

# Least privilege: every route needs a key (later, an Entra identity) unless it opts out.
app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("/api/health")
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """Each dependency's status and latency; 200 when every required one is up, else 503."""
    services = await get_services()
    healthy, report = await check_dependencies(
        dependency_probes(services), services.settings.health_timeout_seconds
    )
    return json_response(report, 200 if healthy else 503)


# Ingestion: a blob lands in the uploads container and a Durable orchestration takes over.
# Azure (Flex Consumption) delivers blob events through Event Grid (UPLOADS_TRIGGER_SOURCE);
# devhost polls Azurite whatever the source says.
@app.blob_trigger(
    arg_name="blob",
    path="%UPLOADS_CONTAINER%/{name}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource(settings.uploads_trigger_source),
)
@app.durable_client_input(client_name="client")
async def on_upload(blob: func.InputStream, client: df.DurableOrchestrationClient) -> None:
    """Starts `ingest` once per blob version."""
    await start_ingestion(client, Upload.from_blob(blob))


@app.orchestration_trigger(context_name="context")
def ingest(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """The ingestion orchestration (see orchestrators/ingest.py)."""
    return (yield from ingest_orchestration(context))


@app.activity_trigger(input_name="upload")
async def inspect_upload(upload: dict[str, Any]) -> dict[str, Any]:
    """Hash, size and type of one blob version, recorded as a document."""
    return await inspect_upload_activity(upload, await get_services())
