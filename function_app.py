"""docgate's Azure Functions app (Python v2 model): thin wiring of triggers to the code that
does the work in `orchestrators/`, `activities/` and `shared/`.

The same file runs under Azure, `func start` (Core Tools) and `python -m devhost`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import asdict
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.chunk_document import chunk_document as chunk_document_step
from activities.describe_figures import describe_figures as describe_figures_step
from activities.embed_chunks import embed_chunks as embed_chunks_step
from activities.extract_layout import extract_layout as extract_layout_step
from activities.fail_document import fail_document as fail_document_step
from activities.index_document import index_document as index_document_step
from activities.merge_layout import merge_layout as merge_layout_step
from activities.validate_upload import validate_upload as validate_upload_step
from orchestrators.ingest import ingest as ingest_orchestration
from shared.chat.gateway import (
    chat_controls,
    chat_query,
    completion_controls,
    completion_query,
    deadline_for,
    run_chat,
)
from shared.chat.models import ChatRequest, CompletionRequest, parse_model
from shared.chat.responses import (
    chat_response,
    completion_json,
    completion_sse,
    docgate_headers,
    models_json,
    openai_error,
    tier_of_model,
)
from shared.config import get_settings
from shared.documents import lifecycle
from shared.health import check_dependencies
from shared.http import Handler, ProblemError, endpoint, json_response
from shared.ingestion import Upload, start_ingestion
from shared.security.audit import parse_filter
from shared.security.auth import authenticate, build_authenticators
from shared.security.principal import Principal
from shared.security.rbac import has_permission, require_permission
from shared.services import dependency_probes, get_services, provision
from shared.telemetry import configure_telemetry

# Fail at start-up, naming each missing or invalid setting, rather than on the first request.
settings = get_settings()
logging.getLogger("shared").setLevel(settings.telemetry.log_level)
configure_telemetry(settings)
provision(settings)

# Routes are anonymous at the host and authenticated in the app (`secured`): OpenAI clients send
# bearer credentials, which host-level function keys cannot express. Only health opts out.
app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


authenticators = build_authenticators(settings)


def _authorizer(permission: str) -> Callable[[func.HttpRequest], Awaitable[Principal]]:
    async def authorize(req: func.HttpRequest) -> Principal:
        audit = (await get_services()).audit_log
        try:
            principal = await authenticate(req, settings, authenticators)
        except ProblemError as problem:
            await audit.record(
                "auth_failure", actor="-", tenant=None, outcome="denied",
                target=req.url.split("?")[0], reason=problem.detail,
            )  # fmt: skip
            raise
        try:
            require_permission(principal, permission)
        except ProblemError:
            await audit.record(
                "permission_denied", actor=principal.user_id, tenant=principal.tenant,
                outcome="denied", target=req.url.split("?")[0], reason=permission,
            )  # fmt: skip
            raise
        return principal

    return authorize


def secured(route: str, permission: str) -> Callable[[Handler], Handler]:
    """The endpoint wrapper for every route but health: authenticate, then require a
    permission (401 without valid credentials, 403 without the permission)."""
    return endpoint(route, authenticator=_authorizer(permission))


def openai_secured(route: str, permission: str) -> Callable[[Handler], Handler]:
    """`secured`, with errors in OpenAI's shape for the OpenAI-compatible routes."""
    return endpoint(route, authenticator=_authorizer(permission), render=openai_error)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("/api/health")
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """Each dependency's status and latency; 200 when every required one is up, else 503."""
    services = await get_services()
    healthy, report = await check_dependencies(
        dependency_probes(services), services.settings.health.timeout_seconds
    )
    return json_response(report, 200 if healthy else 503)


# Documents API ---------------------------------------------------------------------------------


@app.route(route="documents", methods=["POST"])
@secured("/api/documents", "documents:write")
async def upload_document(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """Stores a document in the uploads container; its blob trigger starts ingestion."""
    services = await get_services()
    upload = lifecycle.parse_upload(req, services.settings.ingestion.max_upload_bytes)
    record = await lifecycle.store_upload(services, principal, upload)
    await services.audit_log.record(
        "upload", actor=principal.user_id, tenant=principal.tenant, outcome="success",
        target=record.id, reason=record.name,
    )  # fmt: skip
    status_url = f"/api/documents/{record.id}"
    body = {"id": record.id, "name": record.name, "state": record.state, "status_url": status_url}
    return json_response(body, 202, headers={"Location": status_url})


@app.route(route="documents", methods=["GET"])
@secured("/api/documents", "documents:read")
async def list_documents(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """The caller's tenant's documents with their status."""
    services = await get_services()
    listed = await lifecycle.readable_records(services, principal)
    return json_response({"documents": [item.public() for item in listed]})


@app.route(route="documents/{id}", methods=["GET"])
@app.durable_client_input(client_name="client")
@secured("/api/documents/{id}", "documents:read")
async def get_document(
    req: func.HttpRequest, principal: Principal, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """One document's status, with live step and percent while it is being ingested."""
    services = await get_services()
    record = await lifecycle.readable_record(services, principal, req.route_params["id"])
    body = record.public()
    if record.state in ("queued", "running") and record.instance_id:
        status = await client.get_status(record.instance_id)
        if status and isinstance(status.custom_status, dict):
            body["step"] = status.custom_status.get("step", record.step)
            body["percent"] = status.custom_status.get("percent", record.percent)
    return json_response(body)


@app.route(route="documents/{id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
@secured("/api/documents/{id}", "documents:write")
async def delete_document(
    req: func.HttpRequest, principal: Principal, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Removes the blob, its chunks, cached figure descriptions and the manifest."""
    services = await get_services()
    record = await lifecycle.readable_record(services, principal, req.route_params["id"])
    if record.instance_id:
        status = await client.get_status(record.instance_id)
        if status and status.runtime_status in (
            df.OrchestrationRuntimeStatus.Running,
            df.OrchestrationRuntimeStatus.Pending,
        ):
            await client.terminate(record.instance_id, "document deleted")
    removed = await lifecycle.delete_document(services, record)
    await services.audit_log.record(
        "delete", actor=principal.user_id, tenant=principal.tenant, outcome="success",
        target=record.id, reason=record.name,
    )  # fmt: skip
    return json_response({"id": record.id, "state": "deleted", "removed": removed})


# Chat ------------------------------------------------------------------------------------------


@app.route(route="chat", methods=["POST"])
@secured("/api/chat", "chat:execute")
async def chat(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """A grounded answer from the documents the caller may read, with citations."""
    services = await get_services()
    request = parse_model(ChatRequest, req.get_body(), req.headers.get("content-type"))
    query = chat_query(request, settings)
    controls = chat_controls(req, request)
    governed = await run_chat(services, principal, query, controls, deadline_for(req, settings))
    return chat_response(governed.result, governed.headers)


@app.route(route="v1/chat/completions", methods=["POST"])
@openai_secured("/api/v1/chat/completions", "chat:execute")
async def chat_completions(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """OpenAI-compatible chat completions (plain and `stream: true` server-sent events)."""
    services = await get_services()
    request = parse_model(CompletionRequest, req.get_body(), req.headers.get("content-type"))
    tier = tier_of_model(request.model)
    query = completion_query(request, tier, settings)
    controls = completion_controls(req, request, tier)
    governed = await run_chat(services, principal, query, controls, deadline_for(req, settings))
    result = governed.result
    headers = docgate_headers(result, governed.headers)
    if request.stream:
        usage = bool(request.stream_options and request.stream_options.include_usage)
        return func.HttpResponse(
            completion_sse(result, request.model, usage),
            mimetype="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    return json_response(completion_json(result, request.model), headers=headers)


@app.route(route="v1/models", methods=["GET"])
@openai_secured("/api/v1/models", "chat:execute")
async def list_models(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """The OpenAI-compatible model list: `docgate` and one id per tier."""
    return json_response(models_json())


@app.route(route="regions", methods=["GET"])
@secured("/api/regions", "regions:read")
async def regions(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """Each LLM region's state, breaker and recent latency (admins)."""
    router = (await get_services()).region_router
    return json_response({"regions": router.region_states() if router else []})


@app.timer_trigger(arg_name="timer", schedule=settings.llm.health_schedule)
async def check_regions(timer: func.TimerRequest) -> None:
    """Probes each region with a cheap call; closes or opens breakers."""
    router = (await get_services()).region_router
    if router is not None:
        results = await router.probe_all()
        logging.getLogger(__name__).info("Region probes: %s", results)


# Governance ------------------------------------------------------------------------------------


@app.route(route="usage", methods=["GET"])
@secured("/api/usage", "chat:execute")
async def usage(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """Daily and monthly totals per user, tenant and model; users see only themselves."""
    services = await get_services()
    user = req.params.get("user")
    if not has_permission(principal, "usage:read-all"):
        if user not in (None, principal.user_id):
            raise ProblemError(403, "only admins (usage:read-all) may read other users' usage")
        user = principal.user_id
    totals = await services.ledger.totals(
        principal.tenant, user=user, model=req.params.get("model"),
        day=req.params.get("day"), month=req.params.get("month"),
    )  # fmt: skip
    return json_response(asdict(totals))


@app.route(route="cache/stats", methods=["GET"])
@secured("/api/cache/stats", "cache:admin")
async def cache_stats(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """Hits, misses, hit rate, size and evictions, per partition and overall."""
    cache = (await get_services()).semantic_cache
    return json_response(await cache.stats() if cache else {"enabled": False})


@app.route(route="cache", methods=["DELETE"])
@secured("/api/cache", "cache:admin")
async def clear_cache(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """Empties the semantic cache, optionally for one tenant (`?tenant=`)."""
    services = await get_services()
    cache = services.semantic_cache
    deleted = await cache.clear(principal.tenant) if cache else 0
    await services.audit_log.record(
        "admin_action", actor=principal.user_id, tenant=principal.tenant, outcome="success",
        target="semantic_cache", reason=f"cleared {deleted} cached answers",
    )  # fmt: skip
    return json_response({"deleted": deleted})


@app.route(route="audit", methods=["GET"])
@secured("/api/audit", "audit:read")
async def audit_log(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """The tenant's audit records, newest first; filters: action, actor, outcome, since, until,
    limit."""
    params = {**dict(req.params), "tenant": principal.tenant}  # an admin reads their tenant only
    try:
        audit_filter = parse_filter(params)
    except ValueError as error:
        raise ProblemError(400, str(error)) from None
    records = await (await get_services()).audit_log.search(audit_filter)
    return json_response({"records": [record.to_json() for record in records]})


@app.timer_trigger(arg_name="timer", schedule=settings.budgets.audit_schedule)
async def audit_budgets(timer: func.TimerRequest) -> None:
    """Recomputes budget totals from the ledger, repairs drift, warns at 80% and 100%."""
    report = await (await get_services()).budget_auditor.audit()
    logging.getLogger(__name__).info("Budget audit: %s", report)


# Ingestion ---------------------------------------------------------------------------------------
# Azure (Flex Consumption) delivers blob events through Event Grid (UPLOADS_TRIGGER_SOURCE);
# devhost polls Azurite whatever the source says.


@app.blob_trigger(
    arg_name="blob",
    path=f"{settings.storage.uploads_container}/{{name}}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource(settings.storage.uploads_trigger_source),
)
@app.durable_client_input(client_name="client")
async def on_upload(blob: func.InputStream, client: df.DurableOrchestrationClient) -> None:
    """Starts `ingest` once per blob version."""
    await start_ingestion(client, Upload.from_blob(blob))


@app.timer_trigger(
    arg_name="timer", schedule=settings.ingestion.reconcile_schedule, run_on_startup=False
)
async def reconcile_documents(timer: func.TimerRequest) -> None:
    """Documents whose blob was deleted outside the API lose their chunks."""
    summary = await lifecycle.reconcile(await get_services())
    logging.getLogger(__name__).info("Reconciliation: %s", summary)


@app.orchestration_trigger(context_name="context")
def ingest(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """The ingestion orchestration (see orchestrators/ingest.py)."""
    return (yield from ingest_orchestration(context))


@app.activity_trigger(input_name="upload")
async def validate_upload(upload: dict[str, Any]) -> dict[str, Any]:
    """Type, limits and hash of one blob version; accepted, rejected or unchanged."""
    return await validate_upload_step(upload, await get_services())


@app.activity_trigger(input_name="payload")
async def extract_layout(payload: dict[str, Any]) -> dict[str, Any]:
    """One page range's layout, from the engine each page deserves."""
    return await extract_layout_step(payload, await get_services())


@app.activity_trigger(input_name="payload")
async def merge_layout(payload: dict[str, Any]) -> dict[str, Any]:
    """Page ranges joined in order; continued tables merged."""
    return await merge_layout_step(payload, await get_services())


@app.activity_trigger(input_name="payload")
async def describe_figures(payload: dict[str, Any]) -> dict[str, Any]:
    """Figure descriptions, cached by image hash."""
    return await describe_figures_step(payload, await get_services())


@app.activity_trigger(input_name="job")
async def chunk_document(job: dict[str, Any]) -> dict[str, Any]:
    """The layout cut into token-sized chunks with headings and pages."""
    return await chunk_document_step(job, await get_services())


@app.activity_trigger(input_name="payload")
async def embed_chunks(payload: dict[str, Any]) -> dict[str, Any]:
    """One batch of chunks embedded."""
    return await embed_chunks_step(payload, await get_services())


@app.activity_trigger(input_name="payload")
async def index_document(payload: dict[str, Any]) -> dict[str, Any]:
    """The new version staged, committed and recorded."""
    return await index_document_step(payload, await get_services())


@app.activity_trigger(input_name="payload")
async def fail_document(payload: dict[str, Any]) -> dict[str, Any]:
    """The failure recorded; the blob kept and tagged; half-work discarded."""
    return await fail_document_step(payload, await get_services())
