"""Cost-aware tier routing: prices as data, complexity scoring, overrides and cost caps.

A request gets one of three tiers (economy, standard, premium) from a complexity score built of
seven weighted signals read off the question text and the retrieval context size: length,
reasoning markers, code, multi-step patterns, the number of questions, context size, and
"simple" indicators (a negative weight). Like LiteLLM's complexity router it makes no API call;
unlike it, every decision carries the REASONS that produced it, and a cost estimate.

Scoring cost is bounded whatever the input: the length signal uses the character count (about
4 characters per token, see shared/tokens.py for the measured ratios) instead of running the
tokenizer, and the pattern signals scan at most `SCAN_HEAD` + `SCAN_TAIL` characters. See
bench/router.py for the measured cost per decision.

Prices live in the `LLM_PRICES` setting (see `parse_prices`), never in code: they change more
often than the code does.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.llm.types import Usage
from shared.routing.config import TIERS, RegionConfig
from shared.security.principal import Principal

log = logging.getLogger(__name__)

ANY_REGION = "*"
# Pattern signals read the head and the tail of the question (a pasted document's question
# comes before or after it), so their cost is bounded however much text was pasted.
SCAN_HEAD, SCAN_TAIL = 800, 400
CHARACTERS_PER_TOKEN = 4.0  # between the measured 3.3 (technical) and 5.2 (prose)


# Prices --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1,000 prompt (input) and completion (output) tokens."""

    input_per_1k: float
    output_per_1k: float


@dataclass(frozen=True)
class PriceTable:
    """Model prices, and which model serves each tier in each region ("*": any other)."""

    models: Mapping[str, ModelPrice]
    tiers: Mapping[str, Mapping[str, str]]

    def price(self, model: str) -> ModelPrice:
        """The price of `model`; KeyError names the models that have one."""
        try:
            return self.models[model]
        except KeyError:
            raise KeyError(
                f"no price for model {model!r} (priced: {sorted(self.models)})"
            ) from None

    def model_for(self, tier: str, region: str) -> str:
        """The model `tier` uses in `region`."""
        models = self.tiers[tier]
        return models.get(region) or models[ANY_REGION]

    def estimate_cost(self, model: str, prompt_tokens: int, max_tokens: int) -> float:
        """The most a call can cost: its prompt plus `max_tokens` of completion, in USD."""
        price = self.price(model)
        return (prompt_tokens * price.input_per_1k + max_tokens * price.output_per_1k) / 1000

    def actual_cost(self, model: str, usage: Usage) -> float:
        """What a finished call cost, in USD, from the usage the service reported."""
        price = self.price(model)
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
        return (prompt * price.input_per_1k + completion * price.output_per_1k) / 1000


def _number(value: object, where: str) -> float:
    """A finite, non-negative price, or ValueError saying where."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a finite number >= 0")
    return float(value)


def _object(value: object, where: str) -> dict[str, Any]:
    """`value` as a JSON object, or ValueError saying where."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object")
    return value


def _model_price(name: str, entry: object) -> ModelPrice:
    """One entry of "models"."""
    where = f"models.{name}"
    body = _object(entry, where)
    unknown = sorted(set(body) - {"input_per_1k", "output_per_1k"})
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}")
    return ModelPrice(
        input_per_1k=_number(body.get("input_per_1k"), f"{where}.input_per_1k"),
        output_per_1k=_number(body.get("output_per_1k"), f"{where}.output_per_1k"),
    )


def _tier_models(tier: str, entry: object, priced: Mapping[str, ModelPrice]) -> dict[str, str]:
    """One entry of "tiers": region -> model, with a "*" default, every model priced."""
    where = f"tiers.{tier}"
    models = _object(entry, where)
    if ANY_REGION not in models:
        raise ValueError(f'{where} needs a "*" entry (the model of regions not listed)')
    for region, model in models.items():
        if not isinstance(model, str) or not model:
            raise ValueError(f"{where}.{region} must be a model name")
        if model not in priced:
            raise ValueError(f"{where}.{region}: model {model!r} has no price in models")
    return dict(models)


def parse_prices(text: str) -> PriceTable:
    """`LLM_PRICES`: {"models": {name: {input_per_1k, output_per_1k}}, "tiers": {tier: {region |
    "*": model}}}; every tier present, every model priced. ValueError says what is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"must be JSON ({error.msg})") from error
    body = _object(document, "the price table")
    unknown = sorted(set(body) - {"models", "tiers"})
    if unknown:
        raise ValueError(f"unknown top-level fields {unknown}")
    models = {
        name: _model_price(name, entry)
        for name, entry in _object(body.get("models"), "models").items()
    }
    if not models:
        raise ValueError("models must price at least one model")
    tiers = _object(body.get("tiers"), "tiers")
    missing, extra = [t for t in TIERS if t not in tiers], sorted(set(tiers) - set(TIERS))
    if missing or extra:
        raise ValueError(
            f"tiers must be exactly {list(TIERS)} (missing {missing}, unknown {extra})"
        )
    return PriceTable(models, {tier: _tier_models(tier, tiers[tier], models) for tier in TIERS})


# Complexity ----------------------------------------------------------------------------------

_FLAGS = re.MULTILINE  # patterns run on lower-cased text: cheaper than IGNORECASE
_REASONING = re.compile(
    r"\b(why|explain\w*|compar\w*|contrast\w*|analy[sz]\w*|evaluat\w*|assess\w*|trade-?offs?"
    r"|pros and cons|justif\w*|implications?|prove|derive|recommend\w*|critique|what if"
    r"|root cause|differences? between|reconcile|in depth|fix|debug\w*|troubleshoot\w*)\b",
    _FLAGS,
)
_CODE = re.compile(
    r"```|^\s*(def|class|import|from \S+ import|return|const|let|var|public|private)\b"
    r"|\w+\(\)|==|=>|!=|[;{}]\s*$|\btraceback\b|\b\w+(error|exception)\b|\bselect\b[^?]*\bfrom\b",
    _FLAGS,
)
_MULTI_STEP = re.compile(
    r"\b(step[- ]by[- ]step|first(ly)?|then|next|after that|afterwards|finally|followed by"
    r"|walk me through|and also|as well as)\b|^\s*\d+[.)]\s",
    _FLAGS,
)
_SIMPLE = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|ok|yes|no|what is|what's|what are|who is|who's|who are"
    r"|when (is|was|did|does|do)|where (is|are|can)|define|list|how many|how much|is there"
    r"|are there)\b"
)


@dataclass(frozen=True)
class Signal:
    """One scoring signal: its weight, and the input at which it saturates (reaches 1.0)."""

    name: str
    weight: float
    saturation: float


# The seven signals. Positive weights sum to 1.15, so one strong signal never reaches premium on
# its own: premium needs reasoning together with steps, questions, code or a long context.
SIGNALS: tuple[Signal, ...] = (
    Signal("length", 0.10, 400.0),  # estimated question tokens
    Signal("reasoning", 0.30, 3.0),  # distinct reasoning markers
    Signal("code", 0.20, 3.0),  # code patterns (a fenced block counts 3)
    Signal("multi_step", 0.15, 3.0),  # sequencing words and numbered lines
    Signal("questions", 0.15, 3.0),  # questions beyond the first
    Signal("context", 0.25, 6_000.0),  # retrieval context tokens beyond CONTEXT_BASELINE
    Signal("simple", -0.15, 1.0),  # the question opens like a lookup or small talk
)
CONTEXT_BASELINE = 2_000  # what ordinary retrieval adds (a few chunks): not a complexity sign


@dataclass(frozen=True)
class Complexity:
    """A complexity score in [0, 1] and the signals that made it, as readable reasons."""

    score: float
    reasons: tuple[str, ...]


def _distinct(pattern: re.Pattern[str], text: str) -> list[str]:
    """The distinct matches of `pattern` in `text`, lower-cased, in order of appearance."""
    seen: dict[str, None] = {}
    for match in pattern.finditer(text):
        seen.setdefault(match.group(0).strip(), None)
    return list(seen)


def scanned(question: str) -> str:
    """The lower-cased part of `question` the pattern signals read: its head and tail."""
    if len(question) <= SCAN_HEAD + SCAN_TAIL:
        return question.lower()
    return f"{question[:SCAN_HEAD]}\n{question[-SCAN_TAIL:]}".lower()


def _raw_signals(question: str, context_tokens: int) -> dict[str, tuple[float, str]]:
    """Each signal's raw input and a short description of what was found."""
    text = scanned(question)
    reasoning = _distinct(_REASONING, text)
    code = _distinct(_CODE, text)
    steps = _distinct(_MULTI_STEP, text)
    questions = text.count("?")
    tokens = len(question) / CHARACTERS_PER_TOKEN
    extra_context = max(0, context_tokens - CONTEXT_BASELINE)
    simple = _SIMPLE.match(text) is not None and tokens < 40
    return {
        "length": (tokens, f"about {tokens:.0f} question tokens"),
        "reasoning": (len(reasoning), f"reasoning markers: {', '.join(reasoning[:4])}"),
        "code": (len(code) + 2 * ("```" in code), f"code: {', '.join(code[:3])}"),
        "multi_step": (len(steps), f"multi-step: {', '.join(steps[:4])}"),
        "questions": (max(0, questions - 1), f"{questions} questions"),
        "context": (extra_context, f"retrieval context of {context_tokens} tokens"),
        "simple": (float(simple), "short lookup or small-talk question"),
    }


def score_complexity(question: str, context_tokens: int = 0) -> Complexity:
    """The complexity of answering `question` over `context_tokens` of retrieved text."""
    raw = _raw_signals(question, context_tokens)
    total, reasons = 0.0, []
    for signal in SIGNALS:
        value, description = raw[signal.name]
        contribution = signal.weight * min(1.0, value / signal.saturation)
        total += contribution
        if abs(contribution) >= 0.005:  # a negligible signal would only clutter the reasons
            reasons.append(f"{description} ({contribution:+.2f})")
    score = min(1.0, max(0.0, total))
    return Complexity(round(score, 4), tuple(reasons))


# Decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterOptions:
    """Prices, regions and the policy knobs of tier routing."""

    prices: PriceTable
    regions: tuple[RegionConfig, ...] = ()
    override_roles: frozenset[str] = frozenset()  # roles allowed to pick a tier per request
    standard_at: float = 0.25  # complexity score from which a request is standard
    premium_at: float = 0.55  # ... and premium


@dataclass(frozen=True)
class RouteRequest:
    """What routing needs to know of one chat request."""

    question: str
    prompt_tokens: int  # the whole prompt as it will be sent: system, history, context, question
    max_tokens: int
    context_tokens: int = 0  # the retrieved context's share of prompt_tokens
    tier_override: str | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class TierChoice:
    """The tier a request runs at, why, what it may cost, and the model in each region."""

    tier: str
    reasons: tuple[str, ...]
    estimated_cost_usd: float
    model_by_region: Mapping[str, str]
    stepped_down_from: str | None = None
    score: float = 0.0
    prompt_tokens: int = 0
    max_tokens: int = 0


class Refusal(Exception):
    """Why a request is refused before dispatch; `code` is stable, `reason` is for people.

    The router and the budget gate return it; the chat path raises it; the HTTP edge decides
    the status from the code.
    """

    def __init__(self, code: str, reason: str, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.extra: dict[str, Any] = dict(extra or {})


def tier_for(score: float, options: RouterOptions) -> str:
    """The tier a complexity score maps to."""
    if score >= options.premium_at:
        return "premium"
    return "standard" if score >= options.standard_at else "economy"


def cheaper(tier: str) -> str | None:
    """The next cheaper tier, or None at the floor (economy)."""
    index = TIERS.index(tier)
    return TIERS[index - 1] if index > 0 else None


def models_for(tier: str, options: RouterOptions) -> dict[str, str]:
    """Region -> model for the regions serving `tier` ({"*": model} when none is configured)."""
    if not options.regions:
        return {ANY_REGION: options.prices.model_for(tier, ANY_REGION)}
    return {
        region.name: options.prices.model_for(tier, region.name)
        for region in options.regions
        if tier in region.tiers
    }


def served(tier: str, options: RouterOptions) -> bool:
    """Whether some region serves `tier`."""
    return bool(models_for(tier, options))


def estimate_for(tier: str, prompt_tokens: int, max_tokens: int, options: RouterOptions) -> float:
    """The estimate at `tier`: the dearest of its regions' models, since failover may use any."""
    models = models_for(tier, options).values()
    return max(options.prices.estimate_cost(m, prompt_tokens, max_tokens) for m in models)


def _served_tier(tier: str, options: RouterOptions) -> tuple[str, list[str]]:
    """`tier` if served, else the nearest cheaper served tier, else the nearest dearer one."""
    if served(tier, options):
        return tier, []
    index = TIERS.index(tier)
    for candidate in (*reversed(TIERS[:index]), *TIERS[index + 1 :]):
        if served(candidate, options):
            return candidate, [f"no region serves {tier}: using {candidate}"]
    raise ValueError("no region serves any tier")


def _build(
    tier: str,
    request: RouteRequest,
    reasons: list[str],
    score: float,
    options: RouterOptions,
    stepped_from: str | None = None,
) -> TierChoice:
    """A TierChoice at `tier` with its estimate and models."""
    return TierChoice(
        tier=tier,
        reasons=tuple(reasons),
        estimated_cost_usd=estimate_for(tier, request.prompt_tokens, request.max_tokens, options),
        model_by_region=models_for(tier, options),
        stepped_down_from=stepped_from,
        score=score,
        prompt_tokens=request.prompt_tokens,
        max_tokens=request.max_tokens,
    )


def step_down(decision: TierChoice, reason: str, options: RouterOptions) -> TierChoice | None:
    """`decision` one served tier cheaper, with `reason` added; None at the floor."""
    tier = cheaper(decision.tier)
    while tier is not None and not served(tier, options):
        tier = cheaper(tier)
    if tier is None:
        return None
    request = RouteRequest("", decision.prompt_tokens, decision.max_tokens)
    reasons = [*decision.reasons, reason]
    origin = decision.stepped_down_from or decision.tier
    return _build(tier, request, reasons, decision.score, options, origin)


def _override(request: RouteRequest, principal: Principal, options: RouterOptions) -> str | Refusal:
    """The overriding tier, or a Refusal when it is unknown or the caller may not choose."""
    tier = request.tier_override or ""
    if tier not in TIERS:
        return Refusal("tier_unknown", f"tier {tier!r} is not one of {', '.join(TIERS)}")
    allowed = options.override_roles.intersection(principal.roles)
    if not allowed:
        roles = ", ".join(sorted(options.override_roles)) or "no role (overrides are disabled)"
        return Refusal("tier_override_forbidden", f"choosing a tier requires the role {roles}")
    return tier


def _initial(
    request: RouteRequest, principal: Principal, options: RouterOptions
) -> tuple[str, list[str], float] | Refusal:
    """The tier before any cost cap: overridden, or scored from complexity."""
    complexity = score_complexity(request.question, request.context_tokens)
    reasons = list(complexity.reasons)
    if request.tier_override is not None:
        tier = _override(request, principal, options)
        if isinstance(tier, Refusal):
            return tier
        return tier, [*reasons, f"tier {tier} requested by the caller"], complexity.score
    tier = tier_for(complexity.score, options)
    return tier, [*reasons, f"complexity {complexity.score:.2f} -> {tier}"], complexity.score


def _cap(decision: TierChoice, cap: float, options: RouterOptions) -> TierChoice | Refusal:
    """`decision` stepped down until its estimate fits `cap`, or a Refusal at the floor."""
    while decision.estimated_cost_usd > cap:
        estimate = decision.estimated_cost_usd
        reason = f"estimate ${estimate:.6f} at {decision.tier} is over max_cost_usd ${cap:.6f}"
        cheaper_decision = step_down(decision, reason, options)
        if cheaper_decision is None:
            return Refusal(
                "max_cost_exceeded",
                f"{reason}, and {decision.tier} is the cheapest tier: lower max_tokens "
                f"({decision.max_tokens}), shorten the prompt ({decision.prompt_tokens} tokens) "
                "or raise max_cost_usd",
                {"estimated_cost_usd": decision.estimated_cost_usd, "max_cost_usd": cap},
            )
        decision = cheaper_decision
    return decision


def route(
    request: RouteRequest, principal: Principal, options: RouterOptions
) -> TierChoice | Refusal:
    """The tier, models and cost estimate for one request, or why it is refused (logged)."""
    initial = _initial(request, principal, options)
    if isinstance(initial, Refusal):
        log_refusal(initial, principal)
        return initial
    tier, reasons, score = initial
    tier, unserved = _served_tier(tier, options)
    decision = _build(tier, request, [*reasons, *unserved], score, options)
    if request.max_cost_usd is not None:
        capped = _cap(decision, request.max_cost_usd, options)
        if isinstance(capped, Refusal):
            log_refusal(capped, principal)
            return capped
        decision = capped
    log_decision(decision, principal)
    return decision


# Logging -------------------------------------------------------------------------------------


def log_decision(decision: TierChoice, principal: Principal | None = None) -> None:
    """One structured record per routing decision (custom dimensions in Azure Monitor)."""
    log.info(
        "route %s (estimate $%.6f)",
        decision.tier,
        decision.estimated_cost_usd,
        extra={
            "route_tier": decision.tier,
            "route_reasons": list(decision.reasons),
            "route_score": decision.score,
            "route_estimated_cost_usd": decision.estimated_cost_usd,
            "route_stepped_down_from": decision.stepped_down_from,
            "route_tenant": principal.tenant if principal else None,
        },
    )


def log_refusal(refusal: Refusal, principal: Principal | None = None) -> None:
    """One structured record per refused request."""
    log.info(
        "route refused: %s",
        refusal.code,
        extra={
            "route_refusal": refusal.code,
            "route_reasons": [refusal.reason],
            "route_tenant": principal.tenant if principal else None,
        },
    )


def log_outcome(decision: TierChoice, model: str, usage: Usage, prices: PriceTable) -> float:
    """Log what the routed call really cost next to its estimate; return the actual cost."""
    cost = prices.actual_cost(model, usage)
    log.info(
        "route %s cost $%.6f (estimate $%.6f)",
        decision.tier,
        cost,
        decision.estimated_cost_usd,
        extra={
            "route_tier": decision.tier,
            "route_reasons": list(decision.reasons),
            "route_model": model,
            "route_estimated_cost_usd": decision.estimated_cost_usd,
            "route_actual_cost_usd": cost,
            "route_prompt_tokens": usage.prompt_tokens,
            "route_completion_tokens": usage.completion_tokens,
        },
    )
    return cost
