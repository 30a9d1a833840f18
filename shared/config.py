"""docgate's settings: one typed object read once from the environment.

In Azure the environment holds the App Settings; locally the host loads `local.settings.json`
`Values` into it. Every setting is declared once in `SETTINGS`, which also documents it: the
tests check that `local.settings.sample.json` and the README list exactly these names.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any
from urllib.parse import urlparse

_CONTAINER_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


class SettingsError(Exception):
    """One or more settings are missing or invalid; the message names each of them."""


def _text(value: str) -> str:
    return value


def _url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    return value


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _positive_number(value: str) -> float:
    number = float(value)
    if not 0 < number < math.inf:  # also rejects nan and inf, which float() accepts
        raise ValueError("must be a finite number greater than zero")
    return number


def _non_negative_integer(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be a whole number, zero or more")
    return number


def _positive_integer(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a whole number greater than zero")
    return number


def _non_negative_number(value: str) -> float:
    number = float(value)
    if not 0 <= number < math.inf:
        raise ValueError("must be a finite number, zero or more")
    return number


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _container_name(value: str) -> str:
    if not _CONTAINER_NAME.match(value):
        raise ValueError("must be a valid blob container name (3-63 of a-z, 0-9 and -)")
    return value


def _regions(value: str) -> tuple[Any, ...]:
    from shared.routing.config import parse_regions

    return parse_regions(value)


def _api_keys(value: str) -> tuple[dict[str, Any], ...]:
    entries = json.loads(value or "[]")
    if not isinstance(entries, list) or not all(
        isinstance(item, dict) and item.get("key") and item.get("tenant") for item in entries
    ):
        raise ValueError("must be a JSON list of {key, user, tenant, groups, roles}")
    return tuple(entries)


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError("must be a number in (0, 1]")
    return number


def _rate_limits(value: str) -> Any:
    from shared.resilience.ratelimit import RateLimits

    return RateLimits.from_json(value)  # empty: the documented defaults


def _prices(value: str) -> Any:
    from shared.routing.cost import parse_prices

    return parse_prices(value) if value.strip() else None


def _budgets(value: str) -> Any:
    from shared.budgets.policy import parse_budgets

    return parse_budgets(value)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _auth_tenants(value: str) -> Any:
    from shared.security.jwt import parse_tenants

    return parse_tenants(value) if value.strip() else {}


def _role_map(value: str) -> Any:
    from shared.security.jwt import parse_role_map

    return parse_role_map(value)


def _log_level(value: str) -> str:
    return _choice("DEBUG", "INFO", "WARNING", "ERROR")(value.upper())


@dataclass(frozen=True)
class Setting:
    """One environment variable: its field, meaning, default and parser."""

    env: str
    field: str
    doc: str
    default: str | None = None
    parse: Callable[[str], Any] = _text
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AzureWebJobsStorage",
        "storage_connection_string",
        "Storage connection string. Locally Azurite (UseDevelopmentStorage=true). In Azure leave "
        "it unset and use the identity-based AzureWebJobsStorage__blobServiceUri instead.",
        secret=True,
    ),
    Setting(
        "AzureWebJobsStorage__blobServiceUri",
        "storage_blob_service_uri",
        "Blob endpoint for identity-based access (managed identity), e.g. "
        "https://<account>.blob.core.windows.net. Used when AzureWebJobsStorage is unset.",
        parse=_url,
    ),
    Setting(
        "UPLOADS_CONTAINER",
        "uploads_container",
        "Blob container that teams drop documents into; its blob trigger starts ingestion.",
        default="uploads",
        parse=_container_name,
    ),
    Setting(
        "UPLOADS_TRIGGER_SOURCE",
        "uploads_trigger_source",
        "How the blob trigger learns of uploads: EventGrid (Azure, required on Flex Consumption) "
        "or LogsAndContainerScan (polling: `func start` against Azurite). devhost always polls.",
        default="EventGrid",
        parse=_choice("EventGrid", "LogsAndContainerScan"),
    ),
    Setting(
        "COSMOS_ENDPOINT",
        "cosmos_endpoint",
        "Cosmos DB (NoSQL) account endpoint, e.g. https://<account>.documents.azure.com:443/.",
        parse=_url,
    ),
    Setting(
        "COSMOS_KEY",
        "cosmos_key",
        "Cosmos account key: for the local emulator only. In Azure leave it unset; the managed "
        "identity is used.",
        secret=True,
    ),
    Setting("COSMOS_DATABASE", "cosmos_database", "Cosmos database name.", default="docgate"),
    Setting(
        "COSMOS_EMULATOR",
        "cosmos_emulator",
        "true when COSMOS_ENDPOINT is the local emulator: turns on the workarounds for its gaps "
        "(missing items read as 500, no TTL, no batch).",
        default="false",
        parse=_boolean,
    ),
    Setting(
        "DOCGATE_CREATE_RESOURCES",
        "create_resources",
        "Create the Cosmos database, containers and blob containers at start-up. true locally; "
        "false in Azure, where the Bicep deployment creates them.",
        default="false",
        parse=_boolean,
    ),
    Setting(
        "AZURE_CLIENT_ID",
        "azure_client_id",
        "Client id of a user-assigned managed identity. Unset: the system-assigned identity (or "
        "your developer login) is used.",
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "applicationinsights_connection_string",
        "Application Insights connection string: export traces and metrics to Azure Monitor.",
        secret=True,
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "otlp_endpoint",
        "OTLP/HTTP collector endpoint (e.g. http://127.0.0.1:4318): export traces and metrics.",
        parse=_url,
    ),
    Setting("OTEL_SERVICE_NAME", "service_name", "Service name on traces and metrics.", "docgate"),
    Setting(
        "HEALTH_TIMEOUT_SECONDS",
        "health_timeout_seconds",
        "Time limit for each dependency probe of GET /api/health.",
        default="3",
        parse=_positive_number,
    ),
    Setting(
        "LOG_LEVEL", "log_level", "Log level of docgate's own loggers.", "INFO", parse=_log_level
    ),
    # Ingestion ----------------------------------------------------------------------------
    Setting(
        "WORK_CONTAINER",
        "work_container",
        "Blob container for ingestion's intermediate results (layouts, figure crops, chunks).",
        default="ingest-work",
        parse=_container_name,
    ),
    Setting(
        "MAX_UPLOAD_BYTES",
        "max_upload_bytes",
        "Largest accepted document, in bytes.",
        default=str(200 * 1024 * 1024),
        parse=_positive_integer,
    ),
    Setting(
        "MAX_PAGES", "max_pages", "Most pages accepted in one document.", "2000", _positive_integer
    ),
    Setting(
        "MAX_EXPANDED_BYTES",
        "max_expanded_bytes",
        "Largest decoded size of a DOCX/PPTX archive (all members uncompressed) or of an image "
        "(width x height x bands): the decompression-bomb guard.",
        default=str(500 * 1024 * 1024),
        parse=_positive_integer,
    ),
    Setting(
        "MAX_COMPRESSION_RATIO",
        "max_compression_ratio",
        "Highest compression ratio allowed for any member of a DOCX/PPTX archive.",
        default="200",
        parse=_positive_number,
    ),
    Setting(
        "PAGES_PER_BATCH",
        "pages_per_batch",
        "Pages extracted per activity: big documents fan out over page ranges of this size.",
        default="20",
        parse=_positive_integer,
    ),
    Setting(
        "EXTRACTION_MODE",
        "extraction_mode",
        "auto: born-digital pages go to the free local extractor, scanned or complex pages to "
        "Document Intelligence when configured (else local OCR); azure: every page to Document "
        "Intelligence; local: everything offline.",
        default="auto",
        parse=_choice("auto", "azure", "local"),
    ),
    Setting(
        "DOCUMENT_INTELLIGENCE_ENDPOINT",
        "document_intelligence_endpoint",
        "Azure AI Document Intelligence endpoint. Unset: layout and OCR run locally.",
        parse=_url,
    ),
    Setting(
        "DOCUMENT_INTELLIGENCE_KEY",
        "document_intelligence_key",
        "Document Intelligence key, for local test doubles only; in Azure the managed identity "
        "is used.",
        secret=True,
    ),
    Setting(
        "DOCUMENT_INTELLIGENCE_PRICE_PER_PAGE",
        "document_intelligence_price_per_page",
        "USD per page of prebuilt-layout, shown per page in the document status.",
        default="0.01",
        parse=_non_negative_number,
    ),
    Setting(
        "VISION_ENDPOINT",
        "vision_endpoint",
        "Azure AI Vision (Image Analysis 4.0) endpoint for figure descriptions. Unset: figures "
        "are described locally from OCR text and image properties.",
        parse=_url,
    ),
    Setting(
        "VISION_KEY",
        "vision_key",
        "Vision key, for local test doubles only; in Azure the managed identity is used.",
        secret=True,
    ),
    Setting(
        "FIGURE_MIN_PIXELS",
        "figure_min_pixels",
        "Figures narrower or shorter than this many pixels are skipped as decorative.",
        default="48",
        parse=_positive_integer,
    ),
    Setting(
        "AZURE_OPENAI_EMBEDDING_ENDPOINT",
        "embedding_endpoint",
        "Azure OpenAI endpoint for embeddings. Unset: all-MiniLM-L6-v2 runs locally (ONNX).",
        parse=_url,
    ),
    Setting(
        "AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
        "embedding_deployment",
        "Azure OpenAI embeddings deployment name.",
        default="text-embedding-3-small",
    ),
    Setting(
        "AZURE_OPENAI_EMBEDDING_MODEL",
        "embedding_model",
        "The model behind the embeddings deployment (text-embedding-3-small, -3-large, ada-002).",
        default="text-embedding-3-small",
    ),
    Setting(
        "AZURE_OPENAI_EMBEDDING_DIMENSIONS",
        "embedding_dimensions",
        "Vector size to request from a text-embedding-3 model. Unset: the model's native size.",
        parse=_positive_integer,
    ),
    Setting(
        "AZURE_OPENAI_API_VERSION",
        "openai_api_version",
        "Azure OpenAI data-plane API version.",
        default="2024-10-21",
    ),
    Setting(
        "AZURE_OPENAI_KEY",
        "openai_key",
        "Azure OpenAI key, for local test doubles only; in Azure the managed identity is used.",
        secret=True,
    ),
    Setting(
        "EMBEDDING_BATCH_SIZE",
        "embedding_batch_size",
        "Chunks embedded per activity.",
        default="64",
        parse=_positive_integer,
    ),
    Setting(
        "CHUNK_MAX_TOKENS",
        "chunk_max_tokens",
        "Largest chunk, in tokens (the embedding model's tokenizer).",
        default="400",
        parse=_positive_integer,
    ),
    Setting(
        "CHUNK_OVERLAP_TOKENS",
        "chunk_overlap_tokens",
        "Tokens repeated between consecutive text chunks.",
        default="40",
        parse=_non_negative_integer,
    ),
    # Chat --------------------------------------------------------------------------------
    Setting(
        "LLM_REGIONS",
        "llm_regions",
        "JSON list of Azure OpenAI regions: [{name, endpoint, deployment, model, priority, weight, "
        "tiers}]. Empty: chat answers offline with the extractive answerer (local-extractive).",
        default="[]",
        parse=_regions,
    ),
    Setting(
        "LLM_API_KEY",
        "llm_api_key",
        "Azure OpenAI key for every region, for local test doubles only; in Azure the managed "
        "identity is used.",
        secret=True,
    ),
    Setting("LLM_API_VERSION", "llm_api_version", "Azure OpenAI chat API version.", "2024-10-21"),
    Setting(
        "LLM_TIMEOUT_SECONDS",
        "llm_timeout_seconds",
        "Time limit of one call to one region (a timeout fails over to the next region).",
        default="30",
        parse=_positive_number,
    ),
    Setting(
        "CHAT_DEADLINE_SECONDS",
        "chat_deadline_seconds",
        "Total time budget of a chat request; a client may lower it with the x-docgate-deadline-ms "
        "header. No retry starts that cannot finish inside it.",
        default="60",
        parse=_positive_number,
    ),
    Setting(
        "LLM_MAX_RETRY_AFTER_SECONDS",
        "llm_max_retry_after_seconds",
        "Cap on a region's Retry-After / retry-after-ms (values near a day have been seen).",
        default="30",
        parse=_positive_number,
    ),
    Setting(
        "BREAKER_FAILURES",
        "breaker_failures",
        "Failures within BREAKER_WINDOW_SECONDS that open a region's circuit breaker.",
        default="5",
        parse=_positive_integer,
    ),
    Setting(
        "BREAKER_WINDOW_SECONDS",
        "breaker_window_seconds",
        "Window in which breaker failures are counted.",
        default="30",
        parse=_positive_number,
    ),
    Setting(
        "BREAKER_OPEN_SECONDS",
        "breaker_open_seconds",
        "How long an opened breaker stays open before half-open probes (a 429's Retry-After "
        "sets it instead, capped by LLM_MAX_RETRY_AFTER_SECONDS).",
        default="30",
        parse=_positive_number,
    ),
    Setting(
        "BREAKER_CACHE_SECONDS",
        "breaker_cache_seconds",
        "How long an instance trusts its cached copy of the shared breaker state.",
        default="2",
        parse=_positive_number,
    ),
    Setting(
        "REGION_HEALTH_SCHEDULE",
        "region_health_schedule",
        "NCRONTAB schedule of the region health-check timer.",
        default="0 * * * * *",
    ),
    Setting(
        "RETRIEVAL_MODE",
        "retrieval_mode",
        "memory: exact in-process vector search over the tenant's chunks, kept fresh from "
        "Cosmos (the emulator; small tenants). cosmos: Cosmos VectorDistance with a vector index "
        "(Azure; large tenants).",
        default="memory",
        parse=_choice("memory", "cosmos"),
    ),
    Setting(
        "RETRIEVAL_TOP_K",
        "retrieval_top_k",
        "Chunks retrieved per question unless the request asks for another top_k.",
        default="5",
        parse=_positive_integer,
    ),
    Setting(
        "DOCGATE_API_KEYS",
        "api_keys",
        "JSON list of API keys and the principal each one acts as: [{key, user, tenant, groups, "
        "roles}]. Sent as `Authorization: Bearer <key>` (what OpenAI clients send) or "
        "`x-api-key`. Entra ID tokens replace them in the security work.",
        default="[]",
        parse=_api_keys,
        secret=True,
    ),
    # Governance -----------------------------------------------------------------------------
    Setting(
        "CACHE_ENABLED",
        "cache_enabled",
        "Serve repeated and paraphrased questions from the semantic cache.",
        default="true",
        parse=_boolean,
    ),
    Setting(
        "CACHE_SIMILARITY_THRESHOLD",
        "cache_similarity_threshold",
        "Cosine SIMILARITY in [0, 1] (not a distance) a cached question needs to be reused; "
        "0.90 measured 62.5% true hits and 0% false hits with the token guard (README).",
        default="0.90",
        parse=_fraction,
    ),
    Setting(
        "CACHE_TTL_SECONDS",
        "cache_ttl_seconds",
        "How long a cached answer lives (Cosmos TTL in Azure; checked in code everywhere).",
        default="86400",
        parse=_positive_integer,
    ),
    Setting(
        "CACHE_MAX_ENTRIES_PER_PARTITION",
        "cache_max_entries",
        "Cached answers kept per partition (tenant x access scope x tier x system prompt).",
        default="1000",
        parse=_positive_integer,
    ),
    Setting(
        "CACHE_EVICTION",
        "cache_eviction",
        "Which entries go when a partition is full: lru, lfu or ttl.",
        default="lru",
        parse=_choice("lru", "lfu", "ttl"),
    ),
    Setting(
        "CACHE_MAX_TEMPERATURE",
        "cache_max_temperature",
        "Requests with a higher temperature bypass the cache (they ask for variety).",
        default="0.3",
        parse=_non_negative_number,
    ),
    Setting(
        "RATE_LIMITS_ENABLED",
        "rate_limits_enabled",
        "Enforce RATE_LIMITS (false when a gateway in front, e.g. API Management, already does).",
        default="true",
        parse=_boolean,
    ),
    Setting(
        "RATE_LIMITS",
        "rate_limits",
        'JSON: requests and tokens per minute per role and per tenant, e.g. {"roles": {"user": '
        '{"rpm": 60, "tpm": 100000}}, "tenant": {"rpm": 1000, "tpm": 2000000}, '
        '"on_store_error": "closed"}. Empty: those defaults.',
        default="",
        parse=_rate_limits,
    ),
    Setting(
        "LLM_PRICES",
        "llm_prices",
        'JSON: model prices per 1K tokens and the model of each tier per region: {"models": '
        '{"gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006}}, "tiers": '
        '{"economy": {"*": "gpt-4o-mini"}, ...}}. Empty: no cost routing and no budgets.',
        default="",
        parse=_prices,
    ),
    Setting(
        "LLM_TIER_OVERRIDE_ROLES",
        "tier_override_roles",
        "Comma-separated roles allowed to choose a tier per request (others get the router's).",
        default="admin",
        parse=_csv,
    ),
    Setting(
        "BUDGETS",
        "budgets",
        'JSON: {"tenant": {"daily_usd", "monthly_usd", "soft_ratio"}, "user": {...}, '
        '"overrides": {"tenant:contoso": {...}, "user:alice": {...}}}. Soft: step down a '
        "tier and warn; hard: refuse. Empty: no budgets. Needs LLM_PRICES.",
        default="",
        parse=_budgets,
    ),
    Setting(
        "BUDGET_RESERVATION_SECONDS",
        "budget_reservation_seconds",
        "How long a budget reservation holds if its request never settles (longer than "
        "CHAT_DEADLINE_SECONDS).",
        default="300",
        parse=_positive_number,
    ),
    Setting(
        "BUDGET_WEBHOOK_URL",
        "budget_webhook_url",
        "Optional URL the budget audit POSTs a JSON alert to at 80% and 100% of a budget.",
        parse=_url,
    ),
    Setting(
        "BUDGET_AUDIT_SCHEDULE",
        "budget_audit_schedule",
        "NCRONTAB schedule of the budget audit (recompute from the ledger, repair, alert).",
        default="0 0 * * * *",
    ),
    # Security -----------------------------------------------------------------------------
    Setting(
        "AUTH_CLIENT_ID",
        "auth_client_id",
        "The API's Entra ID app registration (client) id: bearer tokens must carry it (or "
        "api://<id>) as audience. Unset: Entra ID tokens are not accepted.",
    ),
    Setting(
        "AUTH_AUTHORITY",
        "auth_authority",
        "OIDC authority whose metadata and JWKS sign the tokens. Locally: the dev issuer, "
        "http://127.0.0.1:7071/runtime/dev-issuer.",
        default="https://login.microsoftonline.com/organizations",
        parse=_url,
    ),
    Setting(
        "AUTH_TENANTS",
        "auth_tenants",
        'Allowed Entra tenant ids (tid) and the docgate tenant each maps to: {"<tid>": '
        '"contoso"} or a comma-separated list when they are the same.',
        default="",
        parse=_auth_tenants,
    ),
    Setting(
        "AUTH_APP_ROLE_MAP",
        "auth_app_role_map",
        "JSON: Entra app roles -> docgate roles (viewer, user, developer, admin).",
        default='{"viewer": "viewer", "user": "user", "developer": "developer", "admin": "admin"}',
        parse=_role_map,
    ),
    Setting(
        "AUTH_SCOPE_MAP",
        "auth_scope_map",
        'JSON: delegated scopes (scp) -> docgate roles, e.g. {"Chat.Use": "user"}.',
        default="{}",
        parse=_role_map,
    ),
    Setting(
        "AUTH_LEEWAY_SECONDS",
        "auth_leeway_seconds",
        "Clock skew tolerated on exp/nbf/iat.",
        default="60",
        parse=_non_negative_number,
    ),
    Setting(
        "AUTH_DEV_ISSUER",
        "auth_dev_issuer",
        "The authority is devhost's local dev issuer (`python -m devhost token ...` mints "
        "tokens). Refused when running in Azure (WEBSITE_INSTANCE_ID set).",
        default="false",
        parse=_boolean,
    ),
    Setting(
        "EASYAUTH_ENABLED",
        "easyauth_enabled",
        "Trust App Service authentication's X-MS-CLIENT-PRINCIPAL header. Only with the "
        "platform feature on: otherwise any caller could forge it.",
        default="false",
        parse=_boolean,
    ),
    Setting(
        "KEY_VAULT_URL",
        "key_vault_url",
        "Key Vault read by the secret store (managed identity); unset: environment only. App "
        "settings may also use Key Vault references (@Microsoft.KeyVault(...)).",
        parse=_url,
    ),
    Setting(
        "SECRETS_TTL_SECONDS",
        "secrets_ttl_seconds",
        "How long a secret is cached: a rotated secret is picked up within this time.",
        default="300",
        parse=_positive_number,
    ),
    Setting(
        "INJECTION_USER_POLICY",
        "injection_user_policy",
        "Prompt-injection policy for user messages: block (400), flag (answer, never cache) or "
        "allow.",
        default="block",
        parse=_choice("block", "flag", "allow"),
    ),
    Setting(
        "INJECTION_DOCUMENTS_POLICY",
        "injection_documents_policy",
        "Policy for retrieved chunks that try to instruct the model: block, flag or allow.",
        default="block",
        parse=_choice("block", "flag", "allow"),
    ),
    Setting(
        "INJECTION_DOCUMENT_ACTION",
        "injection_document_action",
        "What block does to a suspicious chunk: fence (keep it, marked as data) or drop it.",
        default="fence",
        parse=_choice("fence", "drop"),
    ),
    Setting(
        "INJECTION_THRESHOLD",
        "injection_threshold",
        "Score in (0, 1] from which the heuristic detector flags a text.",
        default="0.5",
        parse=_fraction,
    ),
    Setting(
        "CONTENT_SAFETY_ENDPOINT",
        "content_safety_endpoint",
        "Azure AI Content Safety endpoint: Prompt Shields joins the heuristics. Unset: "
        "heuristics only.",
        parse=_url,
    ),
    Setting(
        "CONTENT_SAFETY_KEY",
        "content_safety_key",
        "Content Safety key, for local test doubles only; in Azure the managed identity is used.",
        secret=True,
    ),
    Setting(
        "RECONCILE_SCHEDULE",
        "reconcile_schedule",
        "NCRONTAB schedule of the reconciliation timer (documents whose blob was deleted "
        "outside the API lose their chunks).",
        default="0 */10 * * * *",
    ),
)


@dataclass(frozen=True)
class Settings:
    """All of docgate's settings, parsed and validated."""

    storage_connection_string: str | None
    storage_blob_service_uri: str | None
    uploads_container: str
    uploads_trigger_source: str
    cosmos_endpoint: str
    cosmos_key: str | None
    cosmos_database: str
    cosmos_emulator: bool
    create_resources: bool
    azure_client_id: str | None
    applicationinsights_connection_string: str | None
    otlp_endpoint: str | None
    service_name: str
    health_timeout_seconds: float
    log_level: str
    work_container: str
    max_upload_bytes: int
    max_pages: int
    max_expanded_bytes: int
    max_compression_ratio: float
    pages_per_batch: int
    extraction_mode: str
    document_intelligence_endpoint: str | None
    document_intelligence_key: str | None
    document_intelligence_price_per_page: float
    vision_endpoint: str | None
    vision_key: str | None
    figure_min_pixels: int
    embedding_endpoint: str | None
    embedding_deployment: str
    embedding_model: str
    embedding_dimensions: int | None
    openai_api_version: str
    openai_key: str | None
    embedding_batch_size: int
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    llm_regions: tuple[Any, ...]
    llm_api_key: str | None
    llm_api_version: str
    llm_timeout_seconds: float
    chat_deadline_seconds: float
    llm_max_retry_after_seconds: float
    breaker_failures: int
    breaker_window_seconds: float
    breaker_open_seconds: float
    breaker_cache_seconds: float
    region_health_schedule: str
    retrieval_mode: str
    retrieval_top_k: int
    api_keys: tuple[dict[str, Any], ...]
    cache_enabled: bool
    cache_similarity_threshold: float
    cache_ttl_seconds: int
    cache_max_entries: int
    cache_eviction: str
    cache_max_temperature: float
    rate_limits_enabled: bool
    rate_limits: Any
    llm_prices: Any
    tier_override_roles: tuple[str, ...]
    budgets: Any
    budget_reservation_seconds: float
    budget_webhook_url: str | None
    budget_audit_schedule: str
    auth_client_id: str | None
    auth_authority: str
    auth_tenants: Any
    auth_app_role_map: Any
    auth_scope_map: Any
    auth_leeway_seconds: float
    auth_dev_issuer: bool
    easyauth_enabled: bool
    key_vault_url: str | None
    secrets_ttl_seconds: float
    injection_user_policy: str
    injection_documents_policy: str
    injection_document_action: str
    injection_threshold: float
    content_safety_endpoint: str | None
    content_safety_key: str | None
    reconcile_schedule: str

    def __repr__(self) -> str:
        """Shows every setting but masks secrets, so a logged Settings never leaks one."""
        secret_fields = {item.field for item in SETTINGS if item.secret}
        shown = ", ".join(
            f"{f.name}=" + ("'***'" if f.name in secret_fields and value else repr(value))
            for f in fields(self)
            for value in [getattr(self, f.name)]
        )
        return f"Settings({shown})"


REQUIRED = {"COSMOS_ENDPOINT"}


def _parse_all(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw.strip() == "":
            raw = setting.default
        if raw is None:
            values[setting.field] = None
            if setting.env in REQUIRED:
                problems.append(f"{setting.env} is required: {setting.doc}")
            continue
        try:
            values[setting.field] = setting.parse(raw.strip())
        except ValueError as error:
            if setting.secret:  # the parser's message may quote the value (float() does)
                problems.append(f"{setting.env}=*** is invalid (details hidden: secret)")
            else:
                problems.append(f"{setting.env}={raw!r} is invalid: {error}")
    return values, problems


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads and validates every setting; raises SettingsError naming each bad one."""
    values, problems = _parse_all(os.environ if environ is None else environ)
    if not values.get("storage_connection_string") and not values.get("storage_blob_service_uri"):
        problems.append(
            "AzureWebJobsStorage is required (a connection string), or "
            "AzureWebJobsStorage__blobServiceUri for identity-based access"
        )
    if problems:
        raise SettingsError("Invalid docgate settings:\n- " + "\n- ".join(problems))
    return Settings(**values)


@cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()
