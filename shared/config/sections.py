"""docgate's settings, one small typed section per feature; each setting declared once here.

A field's `setting(...)` names its environment variable and carries its documentation, default
(as text, parsed like any value), parser and whether it is a secret. The loader
(`shared.config.load_settings`) reads them all; the tests check that `local.settings.sample.json`
and the README list exactly these names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.budgets.policy import BudgetPolicy, parse_budgets
from shared.config import parsers
from shared.resilience.ratelimit import RateLimits
from shared.routing.config import RegionConfig, parse_regions
from shared.routing.cost import PriceTable, parse_prices
from shared.security.claims import parse_role_map, parse_tenants

DECLARATION = "docgate.setting"


@dataclass(frozen=True)
class Declaration:
    """What a section field says about its environment variable."""

    env: str
    doc: str
    default: str | None = None
    parse: Callable[[str], Any] = parsers.text
    secret: bool = False
    required: bool = False


def setting(
    env: str,
    doc: str,
    default: str | None = None,
    parse: Callable[[str], Any] = parsers.text,
    *,
    secret: bool = False,
    required: bool = False,
) -> Any:
    """A section field read from `env` (blank counts as unset, then `default` applies)."""
    return field(metadata={DECLARATION: Declaration(env, doc, default, parse, secret, required)})


def _share(value: str) -> float:
    """A number in [0, 1]."""
    number = parsers.non_negative_number(value)
    if number > 1:
        raise ValueError("must be a number from 0 to 1")
    return number


def _prices(value: str) -> PriceTable | None:
    return parse_prices(value) if value.strip() else None


def _tenants(value: str) -> Mapping[str, str]:
    return parse_tenants(value) if value.strip() else {}


# Platform -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """Blob Storage: the account, the uploads container and ingestion's work container."""

    connection_string: str | None = setting(
        "AzureWebJobsStorage",
        "Storage connection string. Locally Azurite (UseDevelopmentStorage=true). In Azure leave "
        "it unset and use the identity-based AzureWebJobsStorage__blobServiceUri instead.",
        secret=True,
    )
    blob_service_uri: str | None = setting(
        "AzureWebJobsStorage__blobServiceUri",
        "Blob endpoint for identity-based access (managed identity), e.g. "
        "https://<account>.blob.core.windows.net. Used when AzureWebJobsStorage is unset.",
        parse=parsers.url,
    )
    uploads_container: str = setting(
        "UPLOADS_CONTAINER",
        "Blob container that teams drop documents into; its blob trigger starts ingestion.",
        default="uploads",
        parse=parsers.container_name,
    )
    uploads_trigger_source: str = setting(
        "UPLOADS_TRIGGER_SOURCE",
        "How the blob trigger learns of uploads: EventGrid (Azure, required on Flex Consumption) "
        "or LogsAndContainerScan (polling: `func start` against Azurite). devhost always polls.",
        default="EventGrid",
        parse=parsers.choice("EventGrid", "LogsAndContainerScan"),
    )
    work_container: str = setting(
        "WORK_CONTAINER",
        "Blob container for ingestion's intermediate results (layouts, figure crops, chunks).",
        default="ingest-work",
        parse=parsers.container_name,
    )

    def problems(self) -> list[str]:
        """One of the two ways to reach the account is needed."""
        if self.connection_string or self.blob_service_uri:
            return []
        return [
            "AzureWebJobsStorage is required (a connection string), or "
            "AzureWebJobsStorage__blobServiceUri for identity-based access"
        ]


@dataclass(frozen=True, kw_only=True)
class CosmosSettings:
    """The Cosmos DB (NoSQL) account and database."""

    endpoint: str = setting(
        "COSMOS_ENDPOINT",
        "Cosmos DB (NoSQL) account endpoint, e.g. https://<account>.documents.azure.com:443/.",
        parse=parsers.url,
        required=True,
    )
    key: str | None = setting(
        "COSMOS_KEY",
        "Cosmos account key: for the local emulator only. In Azure leave it unset; the managed "
        "identity is used.",
        secret=True,
    )
    database: str = setting("COSMOS_DATABASE", "Cosmos database name.", default="docgate")
    emulator: bool = setting(
        "COSMOS_EMULATOR",
        "true when COSMOS_ENDPOINT is the local emulator: turns on the workarounds for its gaps "
        "(missing items read as 500, no TTL, no batch).",
        default="false",
        parse=parsers.boolean,
    )
    proxy: str | None = setting(
        "COSMOS_PROXY",
        "HTTP(S) proxy URL for Cosmos calls, e.g. http://proxy.corp:3128. Unset: direct. The "
        "client is configured once and does not consult HTTPS_PROXY, NO_PROXY or ~/.netrc per "
        "call. Secret: it may carry credentials (http://user:password@host:port).",
        parse=parsers.url,
        secret=True,
    )


@dataclass(frozen=True, kw_only=True)
class ProvisioningSettings:
    """Whether the app creates its storage and Cosmos resources itself (local runs)."""

    create_resources: bool = setting(
        "DOCGATE_CREATE_RESOURCES",
        "Create the Cosmos database, containers and blob containers at start-up, and again "
        "when one is found missing at run time (an emulator restarted empty). true locally; "
        "false in Azure, where the Bicep deployment creates them and the app's identity has "
        "data-plane rights only (a missing container is then a 503).",
        default="false",
        parse=parsers.boolean,
    )


@dataclass(frozen=True, kw_only=True)
class IdentitySettings:
    """The managed identity, and the Key Vault read through it."""

    client_id: str | None = setting(
        "AZURE_CLIENT_ID",
        "Client id of a user-assigned managed identity. Unset: the system-assigned identity (or "
        "your developer login) is used.",
    )
    key_vault_url: str | None = setting(
        "KEY_VAULT_URL",
        "Key Vault read by the secret store (managed identity); unset: environment only. App "
        "settings may also use Key Vault references (@Microsoft.KeyVault(...)).",
        parse=parsers.url,
    )
    secrets_ttl_seconds: float = setting(
        "SECRETS_TTL_SECONDS",
        "How long a secret is cached: a rotated secret is picked up within this time.",
        default="300",
        parse=parsers.positive_number,
    )


@dataclass(frozen=True, kw_only=True)
class TelemetrySettings:
    """Where traces and metrics go, and how much docgate logs."""

    applicationinsights_connection_string: str | None = setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "Application Insights connection string: export traces and metrics to Azure Monitor.",
        secret=True,
    )
    otlp_endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTLP/HTTP collector endpoint (e.g. http://127.0.0.1:4318): export traces and metrics.",
        parse=parsers.url,
    )
    service_name: str = setting(
        "OTEL_SERVICE_NAME", "Service name on traces and metrics.", default="docgate"
    )
    log_level: str = setting(
        "LOG_LEVEL", "Log level of docgate's own loggers.", default="INFO", parse=parsers.log_level
    )


@dataclass(frozen=True, kw_only=True)
class HealthSettings:
    """`GET /api/health`."""

    timeout_seconds: float = setting(
        "HEALTH_TIMEOUT_SECONDS",
        "Time limit for each dependency probe of GET /api/health.",
        default="3",
        parse=parsers.positive_number,
    )


# Ingestion ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IngestionSettings:
    """What an upload may be, how it is split into work, and when orphans are reconciled."""

    max_upload_bytes: int = setting(
        "MAX_UPLOAD_BYTES",
        "Largest accepted document, in bytes.",
        default=str(200 * 1024 * 1024),
        parse=parsers.positive_integer,
    )
    max_pages: int = setting(
        "MAX_PAGES", "Most pages accepted in one document.", "2000", parsers.positive_integer
    )
    max_expanded_bytes: int = setting(
        "MAX_EXPANDED_BYTES",
        "Largest decoded size of a DOCX/PPTX archive (all members uncompressed) or of an image "
        "(width x height x bands): the decompression-bomb guard.",
        default=str(500 * 1024 * 1024),
        parse=parsers.positive_integer,
    )
    max_compression_ratio: float = setting(
        "MAX_COMPRESSION_RATIO",
        "Highest compression ratio allowed for any member of a DOCX/PPTX archive.",
        default="200",
        parse=parsers.positive_number,
    )
    pages_per_batch: int = setting(
        "PAGES_PER_BATCH",
        "Pages extracted per activity: big documents fan out over page ranges of this size.",
        default="20",
        parse=parsers.positive_integer,
    )
    figure_min_pixels: int = setting(
        "FIGURE_MIN_PIXELS",
        "Figures narrower or shorter than this many pixels are skipped as decorative.",
        default="48",
        parse=parsers.positive_integer,
    )
    chunk_max_tokens: int = setting(
        "CHUNK_MAX_TOKENS",
        "Largest chunk, in tokens (the embedding model's tokenizer).",
        default="400",
        parse=parsers.positive_integer,
    )
    chunk_overlap_tokens: int = setting(
        "CHUNK_OVERLAP_TOKENS",
        "Tokens repeated between consecutive text chunks.",
        default="40",
        parse=parsers.non_negative_integer,
    )
    reconcile_schedule: str = setting(
        "RECONCILE_SCHEDULE",
        "NCRONTAB schedule of the reconciliation timer (documents whose blob was deleted "
        "outside the API lose their chunks).",
        default="0 */10 * * * *",
    )


@dataclass(frozen=True, kw_only=True)
class ExtractionSettings:
    """Which engine reads pages and describes figures: Azure AI services or the local ones."""

    mode: str = setting(
        "EXTRACTION_MODE",
        "auto: born-digital pages go to the free local extractor, scanned or complex pages to "
        "Document Intelligence when configured (else local OCR); azure: every page to Document "
        "Intelligence; local: everything offline.",
        default="auto",
        parse=parsers.choice("auto", "azure", "local"),
    )
    document_intelligence_endpoint: str | None = setting(
        "DOCUMENT_INTELLIGENCE_ENDPOINT",
        "Azure AI Document Intelligence endpoint. Unset: layout and OCR run locally.",
        parse=parsers.url,
    )
    document_intelligence_key: str | None = setting(
        "DOCUMENT_INTELLIGENCE_KEY",
        "Document Intelligence key, for local test doubles only; in Azure the managed identity "
        "is used.",
        secret=True,
    )
    document_intelligence_price_per_page: float = setting(
        "DOCUMENT_INTELLIGENCE_PRICE_PER_PAGE",
        "USD per page of prebuilt-layout, shown per page in the document status.",
        default="0.01",
        parse=parsers.non_negative_number,
    )
    vision_endpoint: str | None = setting(
        "VISION_ENDPOINT",
        "Azure AI Vision (Image Analysis 4.0) endpoint for figure descriptions. Unset: figures "
        "are described locally from OCR text and image properties.",
        parse=parsers.url,
    )
    vision_key: str | None = setting(
        "VISION_KEY",
        "Vision key, for local test doubles only; in Azure the managed identity is used.",
        secret=True,
    )


@dataclass(frozen=True, kw_only=True)
class EmbeddingSettings:
    """The embedding model: an Azure OpenAI deployment, or MiniLM in process."""

    endpoint: str | None = setting(
        "AZURE_OPENAI_EMBEDDING_ENDPOINT",
        "Azure OpenAI endpoint for embeddings. Unset: all-MiniLM-L6-v2 runs locally (ONNX).",
        parse=parsers.url,
    )
    deployment: str = setting(
        "AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
        "Azure OpenAI embeddings deployment name.",
        default="text-embedding-3-small",
    )
    model: str = setting(
        "AZURE_OPENAI_EMBEDDING_MODEL",
        "The model behind the embeddings deployment (text-embedding-3-small, -3-large, ada-002).",
        default="text-embedding-3-small",
    )
    dimensions: int | None = setting(
        "AZURE_OPENAI_EMBEDDING_DIMENSIONS",
        "Vector size to request from a text-embedding-3 model. Unset: the model's native size.",
        parse=parsers.positive_integer,
    )
    api_version: str = setting(
        "AZURE_OPENAI_API_VERSION", "Azure OpenAI data-plane API version.", default="2024-10-21"
    )
    key: str | None = setting(
        "AZURE_OPENAI_KEY",
        "Azure OpenAI key, for local test doubles only; in Azure the managed identity is used.",
        secret=True,
    )
    batch_size: int = setting(
        "EMBEDDING_BATCH_SIZE",
        "Chunks embedded per activity.",
        default="64",
        parse=parsers.positive_integer,
    )


# Chat ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LlmSettings:
    """The chat model's regions, their calls and their health checks."""

    regions: tuple[RegionConfig, ...] = setting(
        "LLM_REGIONS",
        "JSON list of Azure OpenAI regions: [{name, endpoint, deployment, model, priority, weight, "
        "tiers}]. Empty: chat answers offline with the extractive answerer (local-extractive).",
        default="[]",
        parse=parse_regions,
    )
    api_key: str | None = setting(
        "LLM_API_KEY",
        "Azure OpenAI key for every region, for local test doubles only; in Azure the managed "
        "identity is used.",
        secret=True,
    )
    api_version: str = setting(
        "LLM_API_VERSION", "Azure OpenAI chat API version.", default="2024-10-21"
    )
    timeout_seconds: float = setting(
        "LLM_TIMEOUT_SECONDS",
        "Time limit of one call to one region (a timeout fails over to the next region).",
        default="30",
        parse=parsers.positive_number,
    )
    max_retry_after_seconds: float = setting(
        "LLM_MAX_RETRY_AFTER_SECONDS",
        "Cap on a region's Retry-After / retry-after-ms (values near a day have been seen).",
        default="30",
        parse=parsers.positive_number,
    )
    health_schedule: str = setting(
        "REGION_HEALTH_SCHEDULE",
        "NCRONTAB schedule of the region health-check timer.",
        default="0 * * * * *",
    )


@dataclass(frozen=True, kw_only=True)
class BreakerSettings:
    """The regions' circuit breakers, shared by every instance."""

    failures: int = setting(
        "BREAKER_FAILURES",
        "Failures within BREAKER_WINDOW_SECONDS that open a region's circuit breaker.",
        default="5",
        parse=parsers.positive_integer,
    )
    window_seconds: float = setting(
        "BREAKER_WINDOW_SECONDS",
        "Window in which breaker failures are counted.",
        default="30",
        parse=parsers.positive_number,
    )
    open_seconds: float = setting(
        "BREAKER_OPEN_SECONDS",
        "How long an opened breaker stays open before half-open probes (a 429's Retry-After "
        "sets it instead, capped by LLM_MAX_RETRY_AFTER_SECONDS).",
        default="30",
        parse=parsers.positive_number,
    )
    cache_seconds: float = setting(
        "BREAKER_CACHE_SECONDS",
        "How long an instance trusts its cached copy of the shared breaker state.",
        default="2",
        parse=parsers.positive_number,
    )


@dataclass(frozen=True, kw_only=True)
class ChatSettings:
    """A chat request's time budget and how many chunks ground it."""

    deadline_seconds: float = setting(
        "CHAT_DEADLINE_SECONDS",
        "Total time budget of a chat request; a client may lower it with the x-docgate-deadline-ms "
        "header. No retry starts that cannot finish inside it.",
        default="60",
        parse=parsers.positive_number,
    )
    retrieval_mode: str = setting(
        "RETRIEVAL_MODE",
        "memory: exact in-process vector search over the tenant's chunks, kept fresh from "
        "Cosmos (the emulator; small tenants). cosmos: Cosmos VectorDistance with a vector index "
        "(Azure; large tenants).",
        default="memory",
        parse=parsers.choice("memory", "cosmos"),
    )
    retrieval_top_k: int = setting(
        "RETRIEVAL_TOP_K",
        "Chunks retrieved per question unless the request asks for another top_k.",
        default="5",
        parse=parsers.positive_integer,
    )
    retrieval_refresh_seconds: float = setting(
        "RETRIEVAL_REFRESH_SECONDS",
        "Memory mode: how often a tenant's in-process index asks Cosmos for what changed (a "
        "delta by _ts and a live count). Another instance's ingestion is searchable after at "
        "most this long plus the time to take the delta in.",
        default="5",
        parse=parsers.positive_number,
    )
    retrieval_refresh_wait_ms: float = setting(
        "RETRIEVAL_REFRESH_WAIT_MS",
        "Memory mode: how long a question waits for a due refresh of its tenant's index; past "
        "this it is answered from the current index and the refresh finishes in the background "
        "(a large ingestion's chunks never stall a question). 0: never wait.",
        default="50",
        parse=parsers.non_negative_number,
    )


# Governance ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """The semantic answer cache."""

    enabled: bool = setting(
        "CACHE_ENABLED",
        "Serve repeated and paraphrased questions from the semantic cache.",
        default="true",
        parse=parsers.boolean,
    )
    similarity_threshold: float = setting(
        "CACHE_SIMILARITY_THRESHOLD",
        "Cosine SIMILARITY in [0, 1] (not a distance) a cached question needs to be reused; "
        "0.90 measured 62.5% true hits and 0% false hits with the token guard (README).",
        default="0.90",
        parse=parsers.fraction,
    )
    ttl_seconds: int = setting(
        "CACHE_TTL_SECONDS",
        "How long a cached answer lives (Cosmos TTL in Azure; checked in code everywhere).",
        default="86400",
        parse=parsers.positive_integer,
    )
    max_entries: int = setting(
        "CACHE_MAX_ENTRIES_PER_PARTITION",
        "Cached answers kept per partition (tenant x access scope x tier x system prompt).",
        default="1000",
        parse=parsers.positive_integer,
    )
    eviction: str = setting(
        "CACHE_EVICTION",
        "Which entries go when a partition is full: lru, lfu or ttl.",
        default="lru",
        parse=parsers.choice("lru", "lfu", "ttl"),
    )
    max_temperature: float = setting(
        "CACHE_MAX_TEMPERATURE",
        "Requests with a higher temperature bypass the cache (they ask for variety).",
        default="0.3",
        parse=parsers.non_negative_number,
    )


@dataclass(frozen=True, kw_only=True)
class RateLimitSettings:
    """Requests and tokens per minute, shared by every instance."""

    enabled: bool = setting(
        "RATE_LIMITS_ENABLED",
        "Enforce RATE_LIMITS (false when a gateway in front, e.g. API Management, already does).",
        default="true",
        parse=parsers.boolean,
    )
    limits: RateLimits = setting(
        "RATE_LIMITS",
        'JSON: requests and tokens per minute per role and per tenant, e.g. {"roles": {"user": '
        '{"rpm": 60, "tpm": 100000}}, "tenant": {"rpm": 1000, "tpm": 2000000}, '
        '"on_store_error": "closed"}. Empty: those defaults.',
        default="",
        parse=RateLimits.from_json,  # empty: the documented defaults
    )
    slice_fraction: float = setting(
        "RATE_LIMIT_SLICE_FRACTION",
        "Leased slices: each instance takes this share of a bucket's requests per minute at "
        "once (one conditional write) and admits from memory until it is spent or its lease "
        "ends; the limit stays exact. 0: one conditional write per bucket and request.",
        default="0.1",
        parse=_share,
    )
    slice_seconds: float = setting(
        "RATE_LIMIT_SLICE_SECONDS",
        "How long a leased slice lasts: an idle instance's slice is unavailable to the others "
        "for at most this long (it stops using it 1 s before).",
        default="5",
        parse=parsers.positive_number,
    )


@dataclass(frozen=True, kw_only=True)
class CostSettings:
    """Model prices and who may choose a tier: the cost-aware router."""

    prices: PriceTable | None = setting(
        "LLM_PRICES",
        'JSON: model prices per 1K tokens and the model of each tier per region: {"models": '
        '{"gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006}}, "tiers": '
        '{"economy": {"*": "gpt-4o-mini"}, ...}}. Empty: no cost routing and no budgets.',
        default="",
        parse=_prices,
    )
    tier_override_roles: tuple[str, ...] = setting(
        "LLM_TIER_OVERRIDE_ROLES",
        "Comma-separated roles allowed to choose a tier per request (others get the router's).",
        default="admin",
        parse=parsers.csv,
    )


@dataclass(frozen=True, kw_only=True)
class BudgetSettings:
    """Spend limits per user and tenant, their reservations and their audit."""

    policy: BudgetPolicy = setting(
        "BUDGETS",
        'JSON: {"tenant": {"daily_usd", "monthly_usd", "soft_ratio"}, "user": {...}, '
        '"overrides": {"tenant:contoso": {...}, "user:alice": {...}}}. Soft: step down a '
        "tier and warn; hard: refuse. Empty: no budgets. Needs LLM_PRICES.",
        default="",
        parse=parse_budgets,
    )
    lease_fraction: float = setting(
        "BUDGET_LEASE_FRACTION",
        "Leased slices: each instance reserves this share of a budget at once (one conditional "
        "write) and admits misses from it in memory; spend never passes the budget. 0: one "
        "reservation per request and counter.",
        default="0.02",
        parse=_share,
    )
    lease_seconds: float = setting(
        "BUDGET_LEASE_SECONDS",
        "How long an instance admits from one budget lease before it closes it (its unused "
        "rest goes back to the budget).",
        default="30",
        parse=parsers.positive_number,
    )
    reservation_seconds: float = setting(
        "BUDGET_RESERVATION_SECONDS",
        "How long a budget reservation holds if its request never settles (longer than "
        "CHAT_DEADLINE_SECONDS).",
        default="300",
        parse=parsers.positive_number,
    )
    webhook_url: str | None = setting(
        "BUDGET_WEBHOOK_URL",
        "Optional URL the budget audit POSTs a JSON alert to at 80% and 100% of a budget.",
        parse=parsers.url,
    )
    audit_schedule: str = setting(
        "BUDGET_AUDIT_SCHEDULE",
        "NCRONTAB schedule of the budget audit (recompute from the ledger, repair, alert).",
        default="0 0 * * * *",
    )


# Security -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    """Who may call: Entra ID tokens (or the local dev issuer), EasyAuth, API keys."""

    client_id: str | None = setting(
        "AUTH_CLIENT_ID",
        "The API's Entra ID app registration (client) id: bearer tokens must carry it (or "
        "api://<id>) as audience. Unset: Entra ID tokens are not accepted.",
    )
    authority: str = setting(
        "AUTH_AUTHORITY",
        "OIDC authority whose metadata and JWKS sign the tokens. Locally: the dev issuer, "
        "http://127.0.0.1:7071/runtime/dev-issuer.",
        default="https://login.microsoftonline.com/organizations",
        parse=parsers.url,
    )
    tenants: Mapping[str, str] = setting(
        "AUTH_TENANTS",
        'Allowed Entra tenant ids (tid) and the docgate tenant each maps to: {"<tid>": '
        '"contoso"} or a comma-separated list when they are the same.',
        default="",
        parse=_tenants,
    )
    app_role_map: Mapping[str, tuple[str, ...]] = setting(
        "AUTH_APP_ROLE_MAP",
        "JSON: Entra app roles -> docgate roles (viewer, user, developer, admin).",
        default='{"viewer": "viewer", "user": "user", "developer": "developer", "admin": "admin"}',
        parse=parse_role_map,
    )
    scope_map: Mapping[str, tuple[str, ...]] = setting(
        "AUTH_SCOPE_MAP",
        'JSON: delegated scopes (scp) -> docgate roles, e.g. {"Chat.Use": "user"}.',
        default="{}",
        parse=parse_role_map,
    )
    leeway_seconds: float = setting(
        "AUTH_LEEWAY_SECONDS",
        "Clock skew tolerated on exp/nbf/iat.",
        default="60",
        parse=parsers.non_negative_number,
    )
    failures_per_minute: int = setting(
        "AUTH_FAILURES_PER_MINUTE",
        "Bad credentials (API keys, tokens) one client address may present per minute, shared "
        "by every instance; past it: 429 with Retry-After, audited. 0: no throttling.",
        default="20",
        parse=parsers.non_negative_integer,
    )
    client_address_header: str | None = setting(
        "AUTH_CLIENT_ADDRESS_HEADER",
        "Request header holding the client address credential throttling counts by, set by an "
        "edge clients cannot bypass (behind Azure Front Door: X-Azure-SocketIP). Unset: the "
        "last X-Forwarded-For entry, else the connection's peer.",
    )
    dev_issuer: bool = setting(
        "AUTH_DEV_ISSUER",
        "The authority is devhost's local dev issuer (`python -m devhost token ...` mints "
        "tokens). Refused when running in Azure (WEBSITE_INSTANCE_ID set).",
        default="false",
        parse=parsers.boolean,
    )
    easyauth_enabled: bool = setting(
        "EASYAUTH_ENABLED",
        "Trust App Service authentication's X-MS-CLIENT-PRINCIPAL header. Only with the "
        "platform feature on: otherwise any caller could forge it.",
        default="false",
        parse=parsers.boolean,
    )
    api_keys: tuple[Mapping[str, Any], ...] = setting(
        "DOCGATE_API_KEYS",
        "JSON list of API keys and the principal each one acts as: [{key, user, tenant, groups, "
        "roles}]. Sent as `Authorization: Bearer <key>` (what OpenAI clients send) or "
        "`x-api-key`. Entra ID tokens replace them in the security work.",
        default="[]",
        parse=parsers.api_keys,
        secret=True,
    )


@dataclass(frozen=True, kw_only=True)
class InjectionSettings:
    """Prompt-injection screening of questions and retrieved chunks."""

    user_policy: str = setting(
        "INJECTION_USER_POLICY",
        "Prompt-injection policy for user messages: block (400), flag (answer, never cache) or "
        "allow.",
        default="block",
        parse=parsers.choice("block", "flag", "allow"),
    )
    documents_policy: str = setting(
        "INJECTION_DOCUMENTS_POLICY",
        "Policy for retrieved chunks that try to instruct the model: block, flag or allow.",
        default="block",
        parse=parsers.choice("block", "flag", "allow"),
    )
    document_action: str = setting(
        "INJECTION_DOCUMENT_ACTION",
        "What block does to a suspicious chunk: fence (keep it, marked as data) or drop it.",
        default="fence",
        parse=parsers.choice("fence", "drop"),
    )
    threshold: float = setting(
        "INJECTION_THRESHOLD",
        "Score in (0, 1] from which the learned detector flags a text; 0.5 is the shipped "
        "operating point (1% benign false positives on its training corpora; README).",
        default="0.5",
        parse=parsers.fraction,
    )
    answer_allowed_hosts: tuple[str, ...] = setting(
        "ANSWER_ALLOWED_HOSTS",
        "Comma-separated hosts (and their subdomains) answers may link to. Any other link, "
        "image, HTML tag, script/data URL or flood of repeats is neutralised in every answer; "
        "URLs quoted verbatim by a cited source stay.",
        default="",
        parse=parsers.csv,
    )
    content_safety_endpoint: str | None = setting(
        "CONTENT_SAFETY_ENDPOINT",
        "Azure AI Content Safety endpoint: Prompt Shields joins the heuristics. Unset: "
        "heuristics only.",
        parse=parsers.url,
    )
    content_safety_key: str | None = setting(
        "CONTENT_SAFETY_KEY",
        "Content Safety key, for local test doubles only; in Azure the managed identity is used.",
        secret=True,
    )


# Console ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """The web console (`/api/app/`): how people sign in to it."""

    client_id: str | None = setting(
        "WEB_CLIENT_ID",
        "The console's Entra ID app registration (a single-page application, redirect URI "
        "https://<app>/api/app/): people sign in with MSAL.js (authorization code + PKCE). "
        "Unset: the console offers the devhost's dev sign-in when AUTH_DEV_ISSUER is on, "
        "otherwise it says that sign-in is not configured.",
    )
    authority: str = setting(
        "WEB_AUTHORITY",
        "The authority the console signs people in with, e.g. "
        "https://login.microsoftonline.com/<tenant id>.",
        default="https://login.microsoftonline.com/organizations",
        parse=parsers.url,
    )
    api_scopes: tuple[str, ...] = setting(
        "WEB_API_SCOPES",
        "Comma-separated scopes the console requests for the API, e.g. "
        "api://<AUTH_CLIENT_ID>/user_impersonation (map them to roles with AUTH_SCOPE_MAP, or "
        "assign app roles). Unset: api://<AUTH_CLIENT_ID>/.default.",
        default="",
        parse=parsers.csv,
    )
