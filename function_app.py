"""docgate's Azure Functions app (Python v2 model): the declarations of every trigger and route.

Thin wiring: each function hands its input to the code in `orchestrators/`, `activities/` and
`shared/`. Importing this module only declares functions (settings are read for the timer
schedules and the blob path); clients, telemetry and local resources start on first use or in
the warm-up trigger (`shared.services.get_services`). The same file runs under Azure,
`func start` (Core Tools) and `python -m devhost`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import asdict
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.functions.warmup import WarmUpContext
from fastapi import Request
from starlette.responses import Response, StreamingResponse

from activities.registry import blueprint as activities
from orchestrators.ingest import ingest as ingest_orchestration
from shared.budgets.ledger import UsageQuery
from shared.budgets.report import budget_report
from shared.chat.gateway import (
    chat_controls,
    chat_query,
    completion_controls,
    completion_query,
    deadline_for,
)
from shared.chat.models import ChatRequest, CompletionRequest
from shared.chat.responses import (
    chat_events,
    chat_response,
    completion_events,
    completion_json,
    docgate_headers,
    models_json,
    openai_error,
    stream_headers,
    tier_of_model,
)
from shared.config import Settings, get_settings
from shared.console import SignIn, read_asset, security_headers, sign_in
from shared.documents.lifecycle import AclChange, DocumentWriteDenied, UploadQuery, parse_upload
from shared.documents.pages import page_view
from shared.health import check_dependencies
from shared.http import Api, json_response
from shared.ingestion.contract import Upload
from shared.ingestion.start import start_ingestion
from shared.security.audit import AuditQuery
from shared.security.principal import Principal
from shared.security.rbac import SIGNED_IN, PermissionDenied, has_permission, permissions_of
from shared.services import get_services

log = logging.getLogger(__name__)
# Timer schedules and the blob path are declarations: they are read at import, like the host
# reads function.json. A missing or invalid setting stops indexing here, naming each one.
settings = get_settings()

# Routes are anonymous at the host and authenticated in the app (`Api.route`): OpenAI clients
# send bearer credentials, which host-level function keys cannot express. Only health opts out.
app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(activities)


def authorizer(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """Throttles bad credentials, authenticates, then requires `permission`; failures are
    audited (shared.security.gatekeeper)."""

    async def authorize(req: Request) -> Principal:
        gate = (await get_services()).gatekeeper
        peer = req.client.host if req.client else None
        return await gate.admit(req.headers, peer, str(req.url).split("?")[0], permission)

    return authorize


api = Api(app, authorizer, get_services)


@app.warm_up_trigger("warmup")
async def warmup(warmup: WarmUpContext) -> None:
    """A new instance starts its clients, telemetry and (locally) resources before traffic."""
    await get_services()


@api.route("health", ["GET"], permission=None)
async def health(req: Request) -> Response:
    """Each dependency's status and latency; 200 when every required one is up, else 503."""
    services = await get_services()
    healthy, report = await check_dependencies(
        services.health_probes(), services.settings.health.timeout_seconds
    )
    return json_response(report, 200 if healthy else 503)


@api.route("me", ["GET"], SIGNED_IN)
async def me(req: Request, principal: Principal) -> Response:
    """Who the caller is: user, tenant, groups, roles and the permissions they grant."""
    return json_response(
        {
            "user": principal.user_id,
            "tenant": principal.tenant,
            "groups": list(principal.groups),
            "roles": list(principal.roles),
            "permissions": sorted(permissions_of(principal)),
        }
    )


# Web console -------------------------------------------------------------------------------------
# An anonymous static shell (no data in it); every call it makes to the API carries a token.


def _console_sign_in(current: Settings) -> SignIn:
    web, auth = current.web, current.auth
    return sign_in(web.client_id, web.authority, web.api_scopes, auth.client_id, auth.dev_issuer)


@api.route("app/config.json", ["GET"], permission=None)
async def console_config(req: Request) -> Response:
    """How the console signs people in (Entra ID with MSAL.js, or the devhost's dev sign-in)."""
    signin = _console_sign_in(get_settings())
    return json_response(signin.as_json(), headers=security_headers(signin))


@api.route("app/{*path}", ["GET"], permission=None)
async def console(req: Request) -> Response:
    """The console's static files (web/), with a strict Content-Security-Policy."""
    headers = security_headers(_console_sign_in(get_settings()))
    if not req.url.path.endswith("/") and not req.path_params.get("path"):
        # /api/app -> /api/app/: the page's relative URLs resolve below it
        return Response(status_code=308, headers={**headers, "Location": req.url.path + "/"})
    asset = read_asset(req.path_params.get("path") or "")
    headers["ETag"] = asset.etag
    if req.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


# Documents API ---------------------------------------------------------------------------------


@api.route("documents", ["POST"], "documents:write", query=UploadQuery)
async def upload_document(req: Request, principal: Principal) -> Response:
    """Stores a document in the uploads container; its blob trigger starts ingestion. An
    existing name is updated only by someone who may write that document (else 403)."""
    services = await get_services()
    library = services.documents
    content_type = req.headers.get("content-type", "")
    params = req.state.query.model_dump(exclude_none=True)
    upload = parse_upload(content_type, await req.body(), params, library.max_upload_bytes)
    try:
        record = await library.store_upload(principal, upload)
    except DocumentWriteDenied:
        await services.audit_log.record(
            "permission_denied", actor=principal.user_id, tenant=principal.tenant,
            outcome="denied", target=upload.name, reason="upload over a document not writable",
        )  # fmt: skip
        raise
    await services.audit_log.record(
        "upload", actor=principal.user_id, tenant=principal.tenant, outcome="success",
        target=record.id, reason=record.name,
    )  # fmt: skip
    status_url = f"/api/documents/{record.id}"
    body = {"id": record.id, "name": record.name, "state": record.state, "status_url": status_url}
    return json_response(body, 202, headers={"Location": status_url})


@api.route("documents", ["GET"], "documents:read")
async def list_documents(req: Request, principal: Principal) -> Response:
    """The caller's tenant's documents with their status."""
    listed = await (await get_services()).documents.readable_records(principal)
    return json_response({"documents": [item.public() for item in listed]})


@api.route("documents/{id}", ["GET"], "documents:read", durable_client=True)
async def get_document(
    req: Request, principal: Principal, client: df.DurableOrchestrationClient
) -> Response:
    """One document's status, with live step and percent while it is being ingested."""
    services = await get_services()
    record = await services.documents.readable_record(principal, req.path_params["id"])
    body = record.public()
    if record.state in ("queued", "running") and record.instance_id:
        status = await client.get_status(record.instance_id)
        if status and isinstance(status.custom_status, dict):
            body["step"] = status.custom_status.get("step", record.step)
            body["percent"] = status.custom_status.get("percent", record.percent)
    return json_response(body)


@api.route("documents/{id}/pages/{page:int}", ["GET"], "documents:read")
async def get_document_page(req: Request, principal: Principal) -> Response:
    """One page of a readable document: its indexed passages, and where its image is."""
    library = (await get_services()).documents
    record = await library.readable_record(principal, req.path_params["id"])
    page = int(req.path_params["page"])
    passages = await library.page_passages(record, page)
    return json_response(page_view(record, page, passages))


@api.route("documents/{id}/pages/{page:int}/image", ["GET"], "documents:read")
async def get_document_page_image(req: Request, principal: Principal) -> Response:
    """One page of a readable PDF or image as PNG (404 for formats without page images)."""
    library = (await get_services()).documents
    record = await library.readable_record(principal, req.path_params["id"])
    png = await library.page_image(record, int(req.path_params["page"]))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@api.route("documents/{id}", ["DELETE"], "documents:write", durable_client=True)
async def delete_document(
    req: Request, principal: Principal, client: df.DurableOrchestrationClient
) -> Response:
    """Removes the blob, its chunks, cached figure descriptions and the manifest."""
    services = await get_services()
    record = await services.documents.readable_record(principal, req.path_params["id"])
    if record.instance_id:
        status = await client.get_status(record.instance_id)
        if status and status.runtime_status in (
            df.OrchestrationRuntimeStatus.Running,
            df.OrchestrationRuntimeStatus.Pending,
        ):
            await client.terminate(record.instance_id, "document deleted")
    removed = await services.documents.delete_document(record)
    await services.audit_log.record(
        "delete", actor=principal.user_id, tenant=principal.tenant, outcome="success",
        target=record.id, reason=record.name,
    )  # fmt: skip
    return json_response({"id": record.id, "state": "deleted", "removed": removed})


@api.route("documents/{id}/acl", ["PUT"], "documents:write", body=AclChange)
async def change_document_acl(req: Request, principal: Principal) -> Response:
    """Sets who may read (and write) a document: its blob, record and chunks, at once."""
    services = await get_services()
    change: AclChange = req.state.body
    acl = change.acl()
    record, chunks = await services.documents.change_acl(principal, req.path_params["id"], acl)
    await services.audit_log.record(
        "acl_change", actor=principal.user_id, tenant=principal.tenant, outcome="success",
        target=record.id, reason=acl.as_metadata() or "tenant-wide",
    )  # fmt: skip
    return json_response({**record.public(), "chunks_changed": chunks})


# Chat ------------------------------------------------------------------------------------------


@api.route("chat", ["POST"], "chat:execute", body=ChatRequest)
async def chat(req: Request, principal: Principal) -> Response:
    """A grounded answer from the documents the caller may read, with citations."""
    services = await get_services()
    chat_settings = services.settings.chat
    request: ChatRequest = req.state.body
    query = chat_query(request, chat_settings.retrieval_top_k)
    controls = chat_controls(req.headers, request)
    deadline = deadline_for(req.headers, chat_settings.deadline_seconds)
    if request.stream:
        stream = await services.governed_chat.stream(principal, query, controls, deadline)
        events = chat_events(stream, "/api/chat")
        return StreamingResponse(
            events, media_type="text/event-stream", headers=stream_headers(stream)
        )
    governed = await services.governed_chat.run(principal, query, controls, deadline)
    return chat_response(governed.result, governed.headers)


@api.route(
    "v1/chat/completions", ["POST"], "chat:execute", render=openai_error, body=CompletionRequest
)
async def chat_completions(req: Request, principal: Principal) -> Response:
    """OpenAI-compatible chat completions; `stream: true` sends server-sent events as the model
    generates them (Functions HTTP streams)."""
    services = await get_services()
    chat_settings = services.settings.chat
    request: CompletionRequest = req.state.body
    tier = tier_of_model(request.model)
    query = completion_query(request, tier, chat_settings.retrieval_top_k)
    controls = completion_controls(req.headers, request, tier)
    deadline = deadline_for(req.headers, chat_settings.deadline_seconds)
    if request.stream:
        stream = await services.governed_chat.stream(principal, query, controls, deadline)
        usage = bool(request.stream_options and request.stream_options.include_usage)
        events = completion_events(stream, request.model, usage)
        return StreamingResponse(
            events, media_type="text/event-stream", headers=stream_headers(stream)
        )
    governed = await services.governed_chat.run(principal, query, controls, deadline)
    headers = docgate_headers(governed.result, governed.headers)
    return json_response(completion_json(governed.result, request.model), headers=headers)


@api.route("v1/models", ["GET"], "chat:execute", render=openai_error)
async def list_models(req: Request, principal: Principal) -> Response:
    """The OpenAI-compatible model list: `docgate` and one id per tier."""
    return json_response(models_json())


@api.route("regions", ["GET"], "regions:read")
async def regions(req: Request, principal: Principal) -> Response:
    """Each LLM region's state, breaker and recent latency (admins)."""
    router = (await get_services()).region_router
    return json_response({"regions": router.region_states() if router else []})


@app.timer_trigger(arg_name="timer", schedule=settings.llm.health_schedule)
async def check_regions(timer: func.TimerRequest) -> None:
    """Probes each region with a cheap call; closes or opens breakers."""
    router = (await get_services()).region_router
    if router is not None:
        results = await router.probe_all()
        log.info("Region probes: %s", results)


# Governance ------------------------------------------------------------------------------------


@api.route("usage", ["GET"], "chat:execute", query=UsageQuery)
async def usage(req: Request, principal: Principal) -> Response:
    """Daily and monthly totals per user, tenant and model; users see only themselves."""
    services = await get_services()
    params: UsageQuery = req.state.query
    user = params.user
    if not has_permission(principal, "usage:read-all"):
        if user not in (None, principal.user_id):
            raise PermissionDenied(
                "usage:read-all", "only admins (usage:read-all) may read other users' usage"
            )
        user = principal.user_id
    await services.write_behind.flush()  # this instance's settlements still under way
    totals = await services.ledger.totals(
        principal.tenant, user=user, model=params.model, day=params.day, month=params.month,
    )  # fmt: skip
    return json_response(asdict(totals))


@api.route("budgets", ["GET"], "usage:read-all")
async def budgets(req: Request, principal: Principal) -> Response:
    """The tenant's and its users' spend this UTC day and month against their limits."""
    services = await get_services()
    report = await budget_report(
        services.budget_counters, services.settings.budgets.policy, principal.tenant, time.time()
    )
    return json_response(report)


@api.route("cache/stats", ["GET"], "cache:admin")
async def cache_stats(req: Request, principal: Principal) -> Response:
    """The caller's tenant's hits, misses, hit rate, size and evictions, per partition and
    overall (no other tenant's partitions)."""
    cache = (await get_services()).semantic_cache
    return json_response(await cache.stats(principal.tenant) if cache else {"enabled": False})


@api.route("cache", ["DELETE"], "cache:admin")
async def clear_cache(req: Request, principal: Principal) -> Response:
    """Empties the caller's tenant's semantic cache (never another tenant's)."""
    services = await get_services()
    cache = services.semantic_cache
    await services.write_behind.flush()  # stores still under way would survive the clear
    deleted = await cache.clear(principal.tenant) if cache else 0
    await services.audit_log.record(
        "admin_action", actor=principal.user_id, tenant=principal.tenant, outcome="success",
        target="semantic_cache", reason=f"cleared {deleted} cached answers",
    )  # fmt: skip
    return json_response({"deleted": deleted})


@api.route("audit", ["GET"], "audit:read", query=AuditQuery)
async def audit_log(req: Request, principal: Principal) -> Response:
    """The tenant's audit records, newest first; filters: action, actor, outcome, since, until,
    limit, min_score."""
    audit_filter = req.state.query.to_filter(principal.tenant)  # their tenant only
    records = await (await get_services()).audit_log.search(audit_filter)
    return json_response({"records": [record.to_json() for record in records]})


@app.timer_trigger(arg_name="timer", schedule=settings.budgets.audit_schedule)
async def audit_budgets(timer: func.TimerRequest) -> None:
    """Recomputes budget totals from the ledger, repairs drift, warns at 80% and 100%."""
    services = await get_services()
    await services.write_behind.flush()  # this instance's settlements first
    report = await services.budget_auditor.audit()
    log.info("Budget audit: %s", report)


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
    """Documents whose blob was deleted outside the API lose their chunks; documents from
    before tenant folders move into theirs."""
    summary = await (await get_services()).documents.reconcile()
    log.info("Reconciliation: %s", summary)


@app.orchestration_trigger(context_name="context")
def ingest(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """The ingestion orchestration (see orchestrators/ingest.py)."""
    return (yield from ingest_orchestration(context))
