"""Every metric and attribute name docgate emits, declared once (docs/telemetry.md is the table).

Model and embedding calls follow the OpenTelemetry GenAI semantic conventions
(`gen_ai.*`, `server.address`, `error.type`); HTTP requests follow the HTTP conventions
(`http.server.request.duration`); docgate's own names start with `docgate.`. Dashboards, alerts
and the KQL pack (monitoring/) use these names; tests/test_telemetry.py checks that a real
ingestion and chat emit them, so a rename here fails a test instead of silently emptying a chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Attributes: OpenTelemetry semantic conventions -------------------------------------------------

GEN_AI_OPERATION = "gen_ai.operation.name"  # "chat" | "embeddings"
GEN_AI_SYSTEM = "gen_ai.system"  # the older name of the provider attribute, still read widely
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"  # "input" | "output" on gen_ai.client.token.usage
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS = "http.response.status_code"

# Attributes: docgate's own ---------------------------------------------------------------------

TENANT = "docgate.tenant"
TIER = "docgate.tier"
MODEL = "docgate.model"  # the model that answered (a priced model, or the offline answerer)
REGION = "docgate.region"  # an LLM region's name (LLM_REGIONS)
FROM_REGION = "docgate.region.from"
OUTCOME = "docgate.outcome"
REASON = "docgate.reason"
SCOPE = "docgate.scope"
SOURCE = "docgate.source"  # where an injection was found: user | document
ACTION = "docgate.action"
STEP = "docgate.step"  # an ingestion activity's name
ENGINE = "docgate.engine"
DOCUMENT_ID = "docgate.document.id"
INSTANCE_ID = "docgate.instance.id"  # the ingestion orchestration's instance id

# Provider names (gen_ai.provider.name) ---------------------------------------------------------

AZURE_OPENAI = "azure.ai.openai"
AZURE_OPENAI_SYSTEM = "az.ai.openai"  # gen_ai.system's value for Azure OpenAI
LOCAL = "docgate.local"  # the offline answerer and the ONNX embedder

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True)
class Metric:
    """One instrument: its name, kind, unit, meaning and the attributes it is recorded with."""

    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]


_GEN_AI = (GEN_AI_OPERATION, GEN_AI_PROVIDER, GEN_AI_REQUEST_MODEL, GEN_AI_RESPONSE_MODEL)

TOKEN_USAGE = Metric(
    "gen_ai.client.token.usage", "histogram", "{token}",
    "Tokens per model or embedding call, by token type (input, output).",
    (*_GEN_AI, GEN_AI_TOKEN_TYPE, SERVER_ADDRESS),
)  # fmt: skip
OPERATION_DURATION = Metric(
    "gen_ai.client.operation.duration", "histogram", "s",
    "Duration of a model or embedding call (a failed one carries error.type).",
    (*_GEN_AI, SERVER_ADDRESS, ERROR_TYPE),
)  # fmt: skip
REQUEST_DURATION = Metric(
    "http.server.request.duration", "histogram", "s",
    "Duration of each HTTP request: its count is requests by route and status.",
    (HTTP_METHOD, HTTP_ROUTE, HTTP_STATUS),
)  # fmt: skip
CACHE_LOOKUPS = Metric(
    "docgate.cache.lookups", "counter", "{lookup}",
    "Semantic cache lookups: outcome hit, miss or bypass, and why (the path of a hit, the "
    "rule of a bypass).",
    (OUTCOME, REASON),
)  # fmt: skip
COST = Metric(
    "docgate.cost", "counter", "USD",
    "Cost of answered chat requests (actual, from usage) by tenant, tier and model.",
    (TENANT, TIER, MODEL),
)  # fmt: skip
RATE_LIMIT_REJECTIONS = Metric(
    "docgate.ratelimit.rejections", "counter", "{request}",
    "Requests refused by the rate limiter, by the bucket's scope (user, tenant) and reason "
    "(requests, tokens, too_large, unavailable).",
    (SCOPE, REASON),
)  # fmt: skip
BREAKER_STATE = Metric(
    "docgate.breaker.state", "gauge", "1",
    "An LLM region's circuit breaker as this instance last saw it: 0 closed, 1 half-open, "
    "2 open (one series per region: the value is the state).",
    (REGION,),
)  # fmt: skip
FAILOVERS = Metric(
    "docgate.llm.failovers", "counter", "{request}",
    "Requests answered by another region than the first one tried.",
    (FROM_REGION, REGION),
)  # fmt: skip
INJECTION_BLOCKS = Metric(
    "docgate.injection.detections", "counter", "{detection}",
    "Prompt-injection detections by source (user, document) and action (user: block, flag; "
    "document: drop = removed, flag = kept fenced as data).",
    (SOURCE, ACTION),
)  # fmt: skip
DOCUMENTS = Metric(
    "docgate.ingestion.documents", "counter", "{document}",
    "Documents finished by ingestion: outcome indexed or failed, with the failure's code.",
    (OUTCOME, REASON),
)  # fmt: skip
PAGES_PER_SECOND = Metric(
    "docgate.ingestion.pages_per_second", "histogram", "{page}/s",
    "Extraction throughput of each page range (extract_layout activity).",
    (ENGINE,),
)  # fmt: skip
STEP_DURATION = Metric(
    "docgate.ingestion.step.duration", "histogram", "s",
    "Duration of each ingestion activity, by step (failed runs carry error.type).",
    (STEP, ERROR_TYPE),
)  # fmt: skip
# Emitted by the modules that own them (shared/budgets/audit.py, shared/security/exfiltration.py)
# and listed here so that one table holds every name.
BUDGET_SPENT = Metric(
    "docgate.budget.spent", "gauge", "USD",
    "Spend per budget scope and period, from the budget audit (scope only for tenants).",
    ("scope_kind", "period", "scope"),
)  # fmt: skip
BUDGET_RATIO = Metric(
    "docgate.budget.ratio", "gauge", "1",
    "Budget utilisation (spent / limit) per scope and period, from the budget audit.",
    ("scope_kind", "period", "scope"),
)  # fmt: skip
BUDGET_ALERTS = Metric(
    "docgate.budget.alerts", "counter", "{alert}",
    "Budget thresholds crossed (80% and 100%), once per threshold and period.",
    ("period", "threshold"),
)  # fmt: skip
NEUTRALISED = Metric(
    "docgate.answers.neutralised", "counter", "{construct}",
    "Exfiltration constructs removed from answers (links, images, HTML, ...).",
    ("kind",),
)  # fmt: skip

METRICS: tuple[Metric, ...] = (
    TOKEN_USAGE,
    OPERATION_DURATION,
    REQUEST_DURATION,
    CACHE_LOOKUPS,
    COST,
    RATE_LIMIT_REJECTIONS,
    BREAKER_STATE,
    FAILOVERS,
    INJECTION_BLOCKS,
    DOCUMENTS,
    PAGES_PER_SECOND,
    STEP_DURATION,
    BUDGET_SPENT,
    BUDGET_RATIO,
    BUDGET_ALERTS,
    NEUTRALISED,
)
