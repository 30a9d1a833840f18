"""The wiring: every component of the process, built from settings on first use.

Wiring only. Each property builds one component and hands it just what it uses: values from
its settings section and the other components it needs. Engines and models are built on first
use, so an instance that only serves HTTP never loads OCR or the embedding model. Nothing is
created at import: `start()` (first use, or the warm-up trigger) configures telemetry, creates
local resources when DOCGATE_CREATE_RESOURCES is set, and builds the clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.storage.blob.aio import BlobServiceClient

from shared.budgets.counters import BUDGETS_CONTAINER
from shared.budgets.ledger import USAGE_CONTAINER
from shared.cache.entries import container_spec as cache_container_spec
from shared.config import EmbeddingSettings, Settings, get_settings
from shared.credentials import create_credential
from shared.documents.figures import FIGURES_CONTAINER
from shared.documents.index import CHUNKS_CONTAINER, MANIFESTS_CONTAINER
from shared.documents.records import DOCUMENTS_CONTAINER
from shared.health import DependencyProbe
from shared.provisioning import create_resources
from shared.resilience.breaker import BREAKERS_CONTAINER
from shared.resilience.ratelimit_store import RATE_LIMITS_CONTAINER
from shared.security.audit import AUDIT_CONTAINER
from shared.storage import blobs as storage
from shared.storage import cosmos
from shared.telemetry import configure_telemetry

if TYPE_CHECKING:
    from activities.context import IngestionContext
    from shared.budgets.admission import BudgetGate
    from shared.budgets.audit import BudgetAuditor
    from shared.budgets.counters import BudgetCounters
    from shared.budgets.ledger import UsageLedger
    from shared.cache import SemanticCache
    from shared.chat.behind import WriteBehind
    from shared.chat.governance import GovernedChat
    from shared.chat.service import ChatService
    from shared.documents.engines.base import FigureDescriber, LayoutEngine
    from shared.documents.figures import FigureCache
    from shared.documents.lifecycle import DocumentLibrary
    from shared.embeddings import Embedder
    from shared.resilience.breaker import BreakerBoard
    from shared.resilience.ratelimit import RateLimiter
    from shared.routing.cost import RouterOptions
    from shared.routing.regions import RegionRouter
    from shared.secrets import SecretStore
    from shared.security.audit import AuditLog
    from shared.security.auth import ApiKeys, Authenticator
    from shared.security.gatekeeper import Gatekeeper
    from shared.security.injection import InjectionScreen
    from shared.security.throttle import CredentialThrottle

log = logging.getLogger(__name__)

# Every Cosmos container docgate uses but the semantic cache's (whose TTL is a setting), from
# the constants of the modules that own them.
CONTAINERS: tuple[cosmos.ContainerSpec, ...] = (
    DOCUMENTS_CONTAINER,
    CHUNKS_CONTAINER,
    MANIFESTS_CONTAINER,
    FIGURES_CONTAINER,
    BREAKERS_CONTAINER,
    RATE_LIMITS_CONTAINER,
    BUDGETS_CONTAINER,
    USAGE_CONTAINER,
    AUDIT_CONTAINER,
)


def cosmos_containers(settings: Settings) -> tuple[cosmos.ContainerSpec, ...]:
    """Every Cosmos container docgate uses, for these settings (the deployment creates them)."""
    return (*CONTAINERS, cache_container_spec(settings.cache.ttl_seconds))


def blob_containers(settings: Settings) -> tuple[str, ...]:
    """Every blob container docgate uses: uploads and ingestion's work area."""
    return (settings.storage.uploads_container, settings.storage.work_container)


def embedder_for(settings: EmbeddingSettings, credential: AsyncTokenCredential | None) -> Embedder:
    """Azure OpenAI embeddings when configured (a key for local doubles, else the credential),
    else all-MiniLM-L6-v2 on ONNX Runtime."""
    if settings.endpoint:
        from shared.embeddings.azure_openai import AzureOpenAIEmbedder

        return AzureOpenAIEmbedder(
            endpoint=settings.endpoint,
            deployment=settings.deployment,
            api_version=settings.api_version,
            model=settings.model,
            dimensions=settings.dimensions,
            api_key=settings.key or None,
            credential=None if settings.key else credential,
        )
    from shared.embeddings.local import LocalEmbedder

    return LocalEmbedder()


class Services:
    """The process's components, each built once from settings."""

    def __init__(self, settings: Settings) -> None:
        """Nothing is created until a component is first asked for."""
        self.settings = settings

    # Clients ------------------------------------------------------------------------------

    @cached_property
    def credential(self) -> AsyncTokenCredential:
        """The managed identity (or developer login) every Azure client uses."""
        return create_credential(self.settings.identity.client_id)

    def _key_or_credential(self, key: str | None) -> AzureKeyCredential | AsyncTokenCredential:
        return AzureKeyCredential(key) if key else self.credential

    @cached_property
    def blobs(self) -> BlobServiceClient:
        """Blob Storage: a connection string locally, the account URL and identity in Azure."""
        storage_settings = self.settings.storage
        if storage_settings.connection_string:
            return storage.create_blob_service_client(storage_settings.connection_string)
        return storage.create_blob_service_client(
            account_url=storage_settings.blob_service_uri, credential=self.credential
        )

    @cached_property
    def store(self) -> cosmos.CosmosStore:
        """Cosmos: the key for the local emulator, the identity in Azure."""
        settings = self.settings.cosmos
        client = cosmos.create_cosmos_client(
            settings.endpoint,
            settings.key,
            None if settings.key else self.credential,
            proxy=settings.proxy,
        )
        capabilities = cosmos.EMULATOR if settings.emulator else cosmos.AZURE
        return cosmos.CosmosStore(
            client, settings.database, cosmos_containers(self.settings), capabilities,
            recreate_missing=self.settings.provisioning.create_resources,
        )  # fmt: skip

    @cached_property
    def secret_store(self) -> SecretStore:
        """Key Vault secrets (managed identity), falling back to the environment."""
        from shared.secrets import SecretStore, SecretStoreOptions

        identity = self.settings.identity
        options = SecretStoreOptions(identity.key_vault_url, identity.secrets_ttl_seconds)
        return SecretStore(options, self.credential if identity.key_vault_url else None)

    # Documents and ingestion --------------------------------------------------------------

    @cached_property
    def local_engine(self) -> LayoutEngine:
        """The offline extractor (pdfplumber, python-docx/pptx, OCR)."""
        from shared.documents.engines.local import LocalEngine

        return LocalEngine()

    @cached_property
    def azure_engine(self) -> LayoutEngine | None:
        """Document Intelligence, when configured."""
        settings = self.settings.extraction
        if not settings.document_intelligence_endpoint:
            return None
        from shared.documents.engines.azure_layout import DocumentIntelligenceEngine

        return DocumentIntelligenceEngine(
            settings.document_intelligence_endpoint,
            self._key_or_credential(settings.document_intelligence_key),
            price_per_page_usd=settings.document_intelligence_price_per_page,
        )

    @cached_property
    def describer(self) -> FigureDescriber:
        """Azure Vision when configured, else a description from OCR and image properties."""
        settings = self.settings.extraction
        if settings.vision_endpoint:
            from shared.documents.engines.azure_vision import ImageAnalysisDescriber

            return ImageAnalysisDescriber(
                settings.vision_endpoint, self._key_or_credential(settings.vision_key)
            )
        from shared.documents.engines.local_describer import LocalFigureDescriber

        return LocalFigureDescriber()

    @cached_property
    def embedder(self) -> Embedder:
        """The embedding model chunks and questions go through."""
        settings = self.settings.embedding
        return embedder_for(settings, None if settings.key else self.credential)

    @cached_property
    def query_embedder(self) -> Embedder:
        """The embedder for questions: the cache and retrieval share each question's vector."""
        from shared.embeddings.memo import MemoEmbedder

        return MemoEmbedder(self.embedder)

    @cached_property
    def chunk_max_tokens(self) -> int:
        """The longest chunk: CHUNK_MAX_TOKENS, within what the embedding model reads."""
        model_limit = getattr(self.embedder, "max_input_tokens", None)
        configured = self.settings.ingestion.chunk_max_tokens
        return min(configured, model_limit) if model_limit else configured

    @cached_property
    def figures(self) -> FigureCache:
        """Figure descriptions by image hash."""
        from shared.documents.figures import FigureCache

        return FigureCache(self.store)

    @cached_property
    def documents(self) -> DocumentLibrary:
        """Uploads, status, deletion and reconciliation of documents."""
        from shared.documents.lifecycle import DocumentLibrary

        settings = self.settings
        return DocumentLibrary(
            self.blobs,
            self.store,
            self.figures,
            settings.storage.uploads_container,
            settings.storage.work_container,
            settings.ingestion.max_upload_bytes,
            self.semantic_cache,
        )

    @cached_property
    def ingestion(self) -> IngestionContext:
        """What the ingestion activities use."""
        from activities.context import IngestionContext
        from shared.documents.chunking import ChunkingOptions
        from shared.documents.validation import ValidationLimits

        settings = self.settings.ingestion
        max_tokens = self.chunk_max_tokens
        return IngestionContext(
            blobs=self.blobs,
            store=self.store,
            work_container=self.settings.storage.work_container,
            limits=ValidationLimits(
                max_bytes=settings.max_upload_bytes,
                max_pages=settings.max_pages,
                max_expanded_bytes=settings.max_expanded_bytes,
                max_compression_ratio=settings.max_compression_ratio,
            ),
            pages_per_batch=settings.pages_per_batch,
            extraction_mode=self.settings.extraction.mode,
            figure_min_pixels=settings.figure_min_pixels,
            # A chunk longer than the embedding model reads would be embedded truncated.
            chunking=ChunkingOptions(
                max_tokens=max_tokens,
                overlap_tokens=min(settings.chunk_overlap_tokens, max_tokens // 4),
            ),
            embedding_batch_size=self.settings.embedding.batch_size,
            local_engine=self.local_engine,
            azure_engine=self.azure_engine,
            describer=self.describer,
            embedder=self.embedder,
            figures=self.figures,
            answers=self.semantic_cache,
            screen=self.injection_screen,
            audit=self.audit_log,
        )

    # Chat ---------------------------------------------------------------------------------

    @cached_property
    def breakers(self) -> BreakerBoard:
        """Circuit breakers shared by every instance through Cosmos."""
        from shared.resilience.breaker import BreakerBoard, BreakerPolicy, CosmosBreakerStore

        breaker = self.settings.breaker
        policy = BreakerPolicy(
            failure_threshold=breaker.failures,
            window_seconds=breaker.window_seconds,
            open_seconds=breaker.open_seconds,
            max_open_seconds=self.settings.llm.max_retry_after_seconds,
        )
        return BreakerBoard(
            CosmosBreakerStore(self.store), policy, cache_seconds=breaker.cache_seconds
        )

    @cached_property
    def region_router(self) -> RegionRouter | None:
        """The multi-region router, or None when no region is configured."""
        settings = self.settings.llm
        if not settings.regions:
            return None
        from shared.llm.azure_openai import AzureOpenAIChat
        from shared.routing.regions import RegionRouter

        key = settings.api_key
        clients = {
            region.name: AzureOpenAIChat(
                region,
                api_version=settings.api_version,
                api_key=key,
                credential=None if key else self.credential,
            )
            for region in settings.regions
        }
        return RegionRouter(
            settings.regions,
            clients,
            self.breakers,
            max_retry_after_seconds=settings.max_retry_after_seconds,
            attempt_timeout_seconds=settings.timeout_seconds,
        )

    @cached_property
    def chat(self) -> ChatService:
        """Retrieval, then the region router (or the offline answerer)."""
        from shared.chat.service import ChatService
        from shared.llm.extractive import ExtractiveAnswerer
        from shared.retrieval.search import MemoryRefresh, build_retriever

        settings = self.settings.chat
        retriever = build_retriever(
            settings.retrieval_mode,
            self.store,
            self.query_embedder,
            settings.retrieval_top_k,
            MemoryRefresh(
                settings.retrieval_refresh_seconds, settings.retrieval_refresh_wait_ms / 1000
            ),
        )
        router = self.region_router
        hosts = self.settings.injection.answer_allowed_hosts
        if router is not None:
            return ChatService(retriever, router.serve, router.serve_stream, hosts)
        answerer = ExtractiveAnswerer()
        return ChatService(retriever, answerer.serve, answerer.serve_stream, hosts)

    @cached_property
    def governed_chat(self) -> GovernedChat:
        """The chat path with every control in order (see shared/chat/governance.py)."""
        from shared.chat.governance import GovernedChat
        from shared.documents.index import is_live

        store = self.store

        async def chunks_live(tenant: str, chunk_ids: Sequence[str]) -> bool:
            return await is_live(store, tenant, chunk_ids)

        return GovernedChat(
            chat=self.chat,
            screen=self.injection_screen,
            audit=self.audit_log,
            ledger=self.ledger,
            chunk_tokens=self.chunk_max_tokens,
            chunks_live=chunks_live,
            limiter=self.rate_limiter,
            cache=self.semantic_cache,
            router_options=self.router_options,
            gate=self.budget_gate,
            sources_store=store,
            behind=self.write_behind,
        )

    @cached_property
    def write_behind(self) -> WriteBehind:
        """The chat path's post-response writes (settlements, cache stores) of this process."""
        from shared.chat.behind import WriteBehind

        return WriteBehind()

    # Governance ---------------------------------------------------------------------------

    @cached_property
    def rate_limiter(self) -> RateLimiter | None:
        """Requests and tokens per minute shared through Cosmos; None when switched off."""
        settings = self.settings.rate_limits
        if not settings.enabled:
            return None
        from shared.resilience.ratelimit import RateLimiter
        from shared.resilience.ratelimit_slices import SliceOptions
        from shared.resilience.ratelimit_store import CosmosBucketStore

        slices = (
            SliceOptions(settings.slice_fraction, settings.slice_seconds)
            if settings.slice_fraction > 0
            else None
        )
        return RateLimiter(CosmosBucketStore(self.store), settings.limits, slices=slices)

    @cached_property
    def semantic_cache(self) -> SemanticCache | None:
        """The semantic cache, or None when CACHE_ENABLED is false."""
        settings = self.settings.cache
        if not settings.enabled:
            return None
        from shared.cache import CacheOptions, SemanticCache

        options = CacheOptions(
            similarity_threshold=settings.similarity_threshold,
            ttl_seconds=settings.ttl_seconds,
            max_entries_per_partition=settings.max_entries,
            eviction=settings.eviction,  # type: ignore[arg-type]  # validated by its parser
            max_temperature=settings.max_temperature,
        )
        return SemanticCache(options, self.store, self.query_embedder)

    @cached_property
    def router_options(self) -> RouterOptions | None:
        """Prices, regions and override roles for the cost router; None without LLM_PRICES."""
        settings = self.settings.cost
        if settings.prices is None:
            return None
        from shared.routing.cost import RouterOptions

        return RouterOptions(
            prices=settings.prices,
            regions=self.settings.llm.regions,
            override_roles=frozenset(settings.tier_override_roles),
        )

    @cached_property
    def budget_counters(self) -> BudgetCounters:
        """Budget counters shared through Cosmos."""
        from shared.budgets.counters import BudgetCounters

        return BudgetCounters(self.store)

    @cached_property
    def budget_gate(self) -> BudgetGate | None:
        """Reserves estimated cost before dispatch, settles it after (None without prices)."""
        if self.router_options is None:
            return None
        from shared.budgets.admission import BudgetGate, BudgetOptions
        from shared.budgets.leases import LeasedBudgetGate, LeaseOptions

        settings = self.settings.budgets
        options = BudgetOptions(settings.policy, reservation_seconds=settings.reservation_seconds)
        if settings.lease_fraction > 0:
            leases = LeaseOptions(settings.lease_fraction, settings.lease_seconds)
            return LeasedBudgetGate(self.budget_counters, options, self.router_options, leases)
        return BudgetGate(self.budget_counters, options, self.router_options)

    @cached_property
    def ledger(self) -> UsageLedger:
        """The usage ledger."""
        from shared.budgets.ledger import UsageLedger

        return UsageLedger(self.store)

    @cached_property
    def budget_auditor(self) -> BudgetAuditor:
        """The hourly budget audit."""
        from shared.budgets.audit import AuditOptions, BudgetAuditor

        settings = self.settings.budgets
        options = AuditOptions(webhook_url=settings.webhook_url)
        return BudgetAuditor(
            self.store, self.ledger, self.budget_counters, settings.policy, options
        )

    # Security -----------------------------------------------------------------------------

    @cached_property
    def audit_log(self) -> AuditLog:
        """The append-only audit log."""
        from shared.security.audit import AuditLog

        return AuditLog(self.store)

    @cached_property
    def injection_screen(self) -> InjectionScreen:
        """Prompt-injection screening of user messages and retrieved chunks."""
        from shared.security.injection import InjectionScreen, Policy
        from shared.security.shields import PromptShields

        settings = self.settings.injection
        policy = Policy(
            user=settings.user_policy,  # type: ignore[arg-type]  # validated by its parser
            documents=settings.documents_policy,  # type: ignore[arg-type]
            document_action=settings.document_action,  # type: ignore[arg-type]
            threshold=settings.threshold,
        )
        shields = None
        if settings.content_safety_endpoint:
            key = settings.content_safety_key
            shields = PromptShields(
                settings.content_safety_endpoint,
                key=key,
                credential=None if key else self.credential,
            )
        return InjectionScreen(policy, shields)

    @cached_property
    def credential_throttle(self) -> CredentialThrottle | None:
        """Bad credentials counted per client address in the shared `rate_limits` container."""
        per_minute = self.settings.auth.failures_per_minute
        if per_minute == 0:
            return None
        from shared.resilience.ratelimit_store import CosmosBucketStore
        from shared.security.throttle import CredentialThrottle

        header = self.settings.auth.client_address_header
        return CredentialThrottle(CosmosBucketStore(self.store), per_minute, address_header=header)

    @cached_property
    def gatekeeper(self) -> Gatekeeper:
        """Every authenticated route's throttle, authentication, permission check and audit."""
        from shared.security.gatekeeper import Gatekeeper

        return Gatekeeper(self.authenticator, self.audit_log, self.credential_throttle)

    @cached_property
    def authenticator(self) -> Authenticator:
        """Entra ID (or the dev issuer) tokens, EasyAuth, and API keys from the secret store."""
        from shared.security.auth import API_KEYS_SECRET, Authenticator, parse_api_keys
        from shared.security.easyauth import EasyAuthOptions
        from shared.security.jwt import ClaimMapping, JwtOptions, JwtValidator, dev_issuer_options

        settings = self.settings.auth
        secrets = self.secret_store

        async def api_keys() -> ApiKeys:
            secret = await secrets.get(API_KEYS_SECRET)
            return parse_api_keys(secret.reveal() if secret else None)

        if not settings.client_id:
            return Authenticator(api_keys)
        mapping = ClaimMapping(settings.tenants, settings.app_role_map, settings.scope_map)
        make = dev_issuer_options if settings.dev_issuer else JwtOptions
        options = make(
            settings.authority, settings.client_id, mapping,
            leeway_seconds=settings.leeway_seconds,
        )  # fmt: skip
        easyauth = EasyAuthOptions(settings.easyauth_enabled, mapping)
        return Authenticator(api_keys, JwtValidator(options), easyauth)

    # Health -------------------------------------------------------------------------------

    def health_probes(self) -> list[DependencyProbe]:
        """Cheap calls proving each dependency can serve (regions are optional)."""
        probes = [
            storage.container_probe(self.blobs, self.settings.storage.uploads_container),
            cosmos.database_probe(self.store),
        ]
        router = self.region_router
        if router is not None:
            from shared.routing.regions import region_probes

            probes += region_probes(router)
        return probes

    # Start-up -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Telemetry, then local resources when configured (Bicep creates them in Azure)."""
        telemetry = self.settings.telemetry
        logging.getLogger("shared").setLevel(telemetry.log_level)
        configure_telemetry(
            telemetry.service_name,
            telemetry.applicationinsights_connection_string,
            telemetry.otlp_endpoint,
        )
        if self.settings.provisioning.create_resources:
            await create_resources(
                self.blobs,
                self.store,
                blob_containers(self.settings),
                cosmos_containers(self.settings),
            )


_services: Services | None = None
_lock: asyncio.Lock | None = None


async def get_services() -> Services:
    """The process-wide services, started on first use (or by the warm-up trigger)."""
    global _services, _lock
    if _services is not None:
        return _services
    _lock = _lock or asyncio.Lock()
    async with _lock:
        if _services is None:
            services = Services(get_settings())
            await services.start()
            _services = services
    return _services


async def ingestion_context() -> IngestionContext:
    """What the ingestion activities use, for this process."""
    return (await get_services()).ingestion
