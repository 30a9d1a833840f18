"""The process-wide Azure clients, built once from settings through the one credential path."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from azure.storage.blob.aio import BlobServiceClient

from shared.config import Settings, get_settings
from shared.credentials import get_credential
from shared.health import DependencyProbe
from shared.provisioning import create_local_resources
from shared.storage import blobs as storage
from shared.storage import cosmos

if TYPE_CHECKING:
    from shared.documents.engines.base import FigureDescriber, LayoutEngine
    from shared.embeddings import Embedder

log = logging.getLogger(__name__)

# Partitioned by tenant: every query of the API and of retrieval is scoped to one tenant. (One
# logical partition holds at most 20 GB; a tenant beyond that needs a hierarchical key.)
CONTAINERS: tuple[cosmos.ContainerSpec, ...] = (
    cosmos.ContainerSpec("documents", "/tenant"),
    cosmos.ContainerSpec("chunks", "/tenant"),
    cosmos.ContainerSpec("manifests", "/tenant"),
    cosmos.ContainerSpec("figures", "/id"),  # figure descriptions by image hash
    cosmos.ContainerSpec("breakers", "/id"),  # circuit-breaker state shared by all instances
    cosmos.ContainerSpec("rate_limits", "/id", default_ttl=86_400),  # token buckets
    cosmos.ContainerSpec("budgets", "/id"),  # budget counters, reservations, status, alerts
    cosmos.ContainerSpec("usage", "/tenant"),  # the usage ledger: one record per request
    cosmos.ContainerSpec("audit", "/tenant"),  # the append-only audit log
)


def cache_container(settings: Settings) -> cosmos.ContainerSpec:
    """The semantic cache's container: real TTL in Azure, checked in code everywhere."""
    from shared.cache.entries import container_spec

    return container_spec(settings.cache.ttl_seconds)


def containers(settings: Settings) -> tuple[cosmos.ContainerSpec, ...]:
    """Every Cosmos container docgate uses, for these settings."""
    return (*CONTAINERS, cache_container(settings))


LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2-int8"


@dataclass
class Services:
    """Clients and engines shared by every invocation in this worker process.

    Engines are built on first use: an instance that only serves HTTP never loads OCR or the
    embedding model.
    """

    settings: Settings
    blobs: BlobServiceClient
    store: cosmos.CosmosStore

    def _key_or_credential(self, key: str | None) -> Any:
        from azure.core.credentials import AzureKeyCredential

        return AzureKeyCredential(key) if key else get_credential(self.settings)

    @cached_property
    def local_engine(self) -> LayoutEngine:
        """The offline extractor (pdfplumber, python-docx/pptx, OCR)."""
        from shared.documents.engines.local import LocalEngine

        return LocalEngine()

    @cached_property
    def azure_engine(self) -> LayoutEngine | None:
        """Document Intelligence, when configured."""
        settings = self.settings
        if not settings.extraction.document_intelligence_endpoint:
            return None
        from shared.documents.engines.azure_layout import DocumentIntelligenceEngine

        return DocumentIntelligenceEngine(
            settings.extraction.document_intelligence_endpoint,
            self._key_or_credential(settings.extraction.document_intelligence_key),
            price_per_page_usd=settings.extraction.document_intelligence_price_per_page,
        )

    @cached_property
    def describer(self) -> FigureDescriber:
        """Azure Vision when configured, else a description from OCR and image properties."""
        settings = self.settings
        if settings.extraction.vision_endpoint:
            from shared.documents.engines.azure_vision import ImageAnalysisDescriber

            return ImageAnalysisDescriber(
                settings.extraction.vision_endpoint,
                self._key_or_credential(settings.extraction.vision_key),
            )
        from shared.documents.engines.local_describer import LocalFigureDescriber

        return LocalFigureDescriber()

    @property
    def embedder_model(self) -> str:
        """The embedding model's name, known without loading it."""
        if self.settings.embedding.endpoint:
            return self.settings.embedding.model
        return LOCAL_EMBEDDING_MODEL

    @property
    def embedder_max_tokens(self) -> int:
        """The longest input the embedding model reads (chunks are sized below it)."""
        if self.settings.embedding.endpoint:
            from shared.embeddings.azure_openai import AzureOpenAIEmbedder

            return AzureOpenAIEmbedder.max_input_tokens
        from shared.embeddings.local import LocalEmbedder

        return LocalEmbedder.max_input_tokens

    @cached_property
    def breakers(self) -> Any:
        """Circuit breakers shared by every instance through Cosmos."""
        from shared.resilience.breaker import BreakerBoard, BreakerPolicy, CosmosBreakerStore

        settings = self.settings
        policy = BreakerPolicy(
            failure_threshold=settings.breaker.failures,
            window_seconds=settings.breaker.window_seconds,
            open_seconds=settings.breaker.open_seconds,
            max_open_seconds=settings.llm.max_retry_after_seconds,
        )
        return BreakerBoard(
            CosmosBreakerStore(self.store), policy, cache_seconds=settings.breaker.cache_seconds
        )

    @cached_property
    def region_router(self) -> Any:
        """The multi-region router, or None when no region is configured."""
        settings = self.settings
        if not settings.llm.regions:
            return None
        from shared.llm.azure_openai import AzureOpenAIChat
        from shared.routing.regions import RegionRouter

        key = settings.llm.api_key
        clients = {
            region.name: AzureOpenAIChat(
                region,
                api_version=settings.llm.api_version,
                api_key=key,
                credential=None if key else get_credential(settings),
            )
            for region in settings.llm.regions
        }
        return RegionRouter(
            settings.llm.regions,
            clients,
            self.breakers,
            max_retry_after_seconds=settings.llm.max_retry_after_seconds,
            attempt_timeout_seconds=settings.llm.timeout_seconds,
        )

    @cached_property
    def rate_limiter(self) -> Any:
        """Requests and tokens per minute, shared by every instance through Cosmos."""
        from shared.resilience.ratelimit import RateLimiter
        from shared.resilience.ratelimit_store import CosmosBucketStore

        return RateLimiter(CosmosBucketStore(self.store), self.settings.rate_limits.limits)

    @cached_property
    def semantic_cache(self) -> Any:
        """The semantic cache, or None when CACHE_ENABLED is false."""
        settings = self.settings
        if not settings.cache.enabled:
            return None
        from shared.cache import CacheOptions, SemanticCache

        options = CacheOptions(
            similarity_threshold=settings.cache.similarity_threshold,
            ttl_seconds=settings.cache.ttl_seconds,
            max_entries_per_partition=settings.cache.max_entries,
            eviction=settings.cache.eviction,
            max_temperature=settings.cache.max_temperature,
        )
        return SemanticCache(options, self.store, self.query_embedder)

    @cached_property
    def router_options(self) -> Any:
        """Prices, regions and override roles for the cost router; None without LLM_PRICES."""
        settings = self.settings
        if settings.cost.prices is None:
            return None
        from shared.routing.cost import RouterOptions

        return RouterOptions(
            prices=settings.cost.prices,
            regions=settings.llm.regions,
            override_roles=frozenset(settings.cost.tier_override_roles),
        )

    @cached_property
    def budget_counters(self) -> Any:
        """Budget counters shared through Cosmos."""
        from shared.budgets.counters import BudgetCounters

        return BudgetCounters(self.store)

    @cached_property
    def budget_gate(self) -> Any:
        """Reserves estimated cost before dispatch, settles it after (None without prices)."""
        if self.router_options is None:
            return None
        from shared.budgets.admission import BudgetGate, BudgetOptions

        options = BudgetOptions(
            self.settings.budgets.policy,
            reservation_seconds=self.settings.budgets.reservation_seconds,
        )
        return BudgetGate(self.budget_counters, options, self.router_options)

    @cached_property
    def ledger(self) -> Any:
        """The usage ledger."""
        from shared.budgets.ledger import UsageLedger

        return UsageLedger(self.store)

    @cached_property
    def budget_auditor(self) -> Any:
        """The hourly budget audit."""
        from shared.budgets.audit import AuditOptions, BudgetAuditor

        options = AuditOptions(webhook_url=self.settings.budgets.webhook_url)
        return BudgetAuditor(
            self.store, self.ledger, self.budget_counters, self.settings.budgets.policy, options
        )

    @cached_property
    def audit_log(self) -> Any:
        """The append-only audit log."""
        from shared.security.audit import AuditLog

        return AuditLog(self.store)

    @cached_property
    def secret_store(self) -> Any:
        """Key Vault secrets (managed identity), falling back to the environment."""
        from shared.secrets import create_secret_store

        return create_secret_store(self.settings)

    @cached_property
    def injection_screen(self) -> Any:
        """Prompt-injection screening of user messages and retrieved chunks."""
        from shared.security.injection import InjectionScreen, Policy
        from shared.security.shields import PromptShields

        settings = self.settings
        policy = Policy(
            user=settings.injection.user_policy,
            documents=settings.injection.documents_policy,
            document_action=settings.injection.document_action,
            threshold=settings.injection.threshold,
        )
        shields = None
        if settings.injection.content_safety_endpoint:
            key = settings.injection.content_safety_key
            shields = PromptShields(
                settings.injection.content_safety_endpoint,
                key=key,
                credential=None if key else get_credential(settings),
            )
        return InjectionScreen(policy, shields)

    @cached_property
    def governed_chat(self) -> Any:
        """The chat path with every control in order (see shared/chat/governance.py)."""
        from shared.chat.governance import GovernedChat

        return GovernedChat(self)

    @cached_property
    def chat(self) -> Any:
        """The chat path: retrieval, then the router (or the offline answerer)."""
        from shared.chat.service import ChatService
        from shared.retrieval.search import build_retriever

        router = self.region_router
        model_call = _Routed(router) if router is not None else _Offline()
        retriever = build_retriever(
            self.settings.chat.retrieval_mode,
            self.store,
            self.query_embedder,
            self.settings.chat.retrieval_top_k,
        )
        return ChatService(retriever, model_call)

    @cached_property
    def query_embedder(self) -> Embedder:
        """The embedder for questions: the cache and retrieval share each question's vector."""
        from shared.embeddings.memo import MemoEmbedder

        return MemoEmbedder(self.embedder)

    @cached_property
    def embedder(self) -> Embedder:
        """Azure OpenAI embeddings when configured, else all-MiniLM-L6-v2 on ONNX Runtime."""
        settings = self.settings
        if settings.embedding.endpoint:
            from shared.embeddings.azure_openai import AzureOpenAIEmbedder

            return AzureOpenAIEmbedder.from_settings(settings, get_credential)
        from shared.embeddings.local import LocalEmbedder

        return LocalEmbedder()


_services: Services | None = None
_lock: asyncio.Lock | None = None


def build_services(settings: Settings) -> Services:
    """Creates the clients: keys only for the local emulators, the credential otherwise."""
    needs_credential = not settings.storage.connection_string or not settings.cosmos.key
    credential = get_credential(settings) if needs_credential else None
    blobs = storage.create_blob_service_client(
        connection_string=settings.storage.connection_string,
        account_url=None
        if settings.storage.connection_string
        else settings.storage.blob_service_uri,
        credential=credential,
    )
    client = cosmos.create_cosmos_client(settings.cosmos.endpoint, settings.cosmos.key, credential)
    capabilities = cosmos.EMULATOR if settings.cosmos.emulator else cosmos.AZURE
    store = cosmos.CosmosStore(client, settings.cosmos.database, containers(settings), capabilities)
    return Services(settings, blobs, store)


class _Offline:
    """The model call when no region is configured: the extractive answerer, in process."""

    def __init__(self) -> None:
        from shared.llm.extractive import ExtractiveAnswerer

        self.answerer = ExtractiveAnswerer()

    async def __call__(self, request: Any, tier: str, deadline: Any) -> tuple[Any, str]:
        return await self.answerer.complete(request, deadline.remaining()), self.answerer.name


class _Routed:
    """The model call through the region router (failover, breakers, deadline)."""

    def __init__(self, router: Any) -> None:
        self.router = router

    async def __call__(self, request: Any, tier: str, deadline: Any) -> tuple[Any, str]:
        routed = await self.router.complete(request, tier, deadline)
        return routed.response, routed.region


def provision(settings: Settings) -> None:
    """Creates blob and Cosmos containers at start-up when configured (local runs)."""
    if settings.provisioning.create_resources:
        create_local_resources(
            settings,
            [settings.storage.uploads_container, settings.storage.work_container],
            containers(settings),
        )


async def get_services() -> Services:
    """The process-wide services, built on first use."""
    global _services, _lock
    if _services is not None:
        return _services
    _lock = _lock or asyncio.Lock()
    async with _lock:
        if _services is None:
            _services = build_services(get_settings())
    return _services


def dependency_probes(services: Services) -> list[DependencyProbe]:
    """Cheap calls proving each required dependency can serve."""

    async def probe_blob_storage() -> None:
        container = services.blobs.get_container_client(services.settings.storage.uploads_container)
        await container.get_container_properties()

    async def probe_cosmos() -> None:
        await services.store.read_database()

    probes = [
        DependencyProbe("blob_storage", probe_blob_storage),
        DependencyProbe("cosmos", probe_cosmos),
    ]
    router = services.region_router
    if router is not None:
        probes += [region_probe(state) for state in router.region_states()]
    return probes


class RegionUnavailable(Exception):
    """The region's circuit breaker is open."""


def region_probe(state: dict[str, Any]) -> DependencyProbe:
    """A region as health sees it: down while its breaker is open (no model call is made; the
    region health timer probes regions and feeds the breakers)."""

    async def probe() -> None:
        if state["breaker"] == "open":
            raise RegionUnavailable(state["name"])

    return DependencyProbe(f"llm:{state['name']}", probe, required=False)
