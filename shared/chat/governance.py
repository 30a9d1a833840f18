"""The governed chat path, in order, each step a span:

auth and validation (by the route) -> rate limit -> budget admission -> cache lookup ->
retrieval -> cost router -> region router / model -> cache store -> ledger and settle.

Everything taken up front (rate-limit tokens, budget money) is given back or settled on every
exit, so a failed request never keeps a reservation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from shared.budgets.admission import WARNING_HEADER, Reservation
from shared.budgets.ledger import UsageRecord
from shared.chat.service import ChatQuery, ChatResult
from shared.documents.index import CHUNKS, LIVE
from shared.http import ProblemError
from shared.llm.prompts import SYSTEM_TEMPLATE
from shared.llm.types import Usage
from shared.resilience import ratelimit
from shared.resilience.retry import Deadline
from shared.retrieval.condense import standalone_question
from shared.routing import cost
from shared.security.principal import Principal
from shared.telemetry import current_trace_id, span
from shared.tokens import count_tokens

log = logging.getLogger(__name__)
PROMPT_OVERHEAD_TOKENS = 120  # the system prompt and source fences


@dataclass(frozen=True)
class Controls:
    """Per-request governance controls."""

    cache_control: str | None = None  # "no-cache" (don't read) or "no-store" (neither)
    temperature: float = 0.0
    tools: bool = False
    tier_override: str | None = None
    max_cost_usd: float | None = None
    flagged: bool = False  # the injection screen flagged the message: never cache it


@dataclass
class Governed:
    """The answer and the governance headers to send with it."""

    result: ChatResult
    headers: dict[str, str] = field(default_factory=dict)


def estimated_prompt_tokens(query: ChatQuery, chunk_tokens: int) -> int:
    """Before retrieval: the conversation, `top_k` full chunks and the prompt's own overhead."""
    conversation = sum(count_tokens(message["content"]) for message in query.messages)
    return conversation + query.top_k * chunk_tokens + PROMPT_OVERHEAD_TOKENS


def _refusal_problem(refusal: cost.Refusal) -> ProblemError:
    headers = {}
    retry_after = refusal.extra.get("retry_after_seconds") if refusal.extra else None
    if retry_after:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    return ProblemError(
        refusal.status, refusal.reason, headers=headers, code=refusal.code, **(refusal.extra or {})
    )


def _rate_limit_problem(decision: ratelimit.Decision) -> ProblemError:
    headers = ratelimit.headers(decision)
    if decision.reason == "too_large":
        return ProblemError(
            413, "the request needs more tokens than a minute allows", headers=headers
        )
    if decision.reason == "unavailable":
        return ProblemError(503, "the rate limiter cannot decide now", headers=headers)
    return ProblemError(
        429,
        f"rate limit reached ({decision.bucket} {decision.reason} per minute)",
        headers=headers,
        code="rate_limited",
    )


class GovernedChat:
    """Runs one chat request through every control, in the documented order."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.settings = services.settings
        self.chat = services.chat
        self.limiter = services.rate_limiter
        self.cache = services.semantic_cache
        self.router_options = services.router_options
        self.gate = services.budget_gate
        self.ledger = services.ledger

    async def run(
        self, principal: Principal, query: ChatQuery, controls: Controls, deadline: Deadline
    ) -> Governed:
        """The governed answer, or a ProblemError (429, 403, 400, 503...)."""
        started = time.perf_counter()
        controls = await self._validate(principal, query, controls)
        chunk_tokens = min(
            self.settings.ingestion.chunk_max_tokens, self.services.embedder_max_tokens
        )
        prompt_tokens = estimated_prompt_tokens(query, chunk_tokens)
        admitted = await self._admit_rate(principal, prompt_tokens + query.max_tokens)
        headers = ratelimit.headers(admitted) if admitted else {}
        if admitted and not admitted.allowed:
            raise _rate_limit_problem(admitted)
        reservation: Reservation | None = None
        try:
            with span("chat.budget"):
                query, reservation = await self._admit_budget(
                    principal, query, controls, prompt_tokens
                )
            if reservation is not None and reservation.warning:
                headers[WARNING_HEADER] = reservation.warning
            result, cache_state = await self._answer(principal, query, controls, deadline, started)
        except BaseException:
            await self._give_back(admitted, reservation)
            raise
        headers["x-docgate-cache"] = cache_state
        await self._settle(principal, result, admitted, reservation)
        return Governed(result, headers)

    async def _admit_rate(self, principal: Principal, tokens: int) -> ratelimit.Decision | None:
        """The rate limiter's decision; None when RATE_LIMITS_ENABLED is false."""
        if not self.settings.rate_limits.enabled:
            return None
        with span("chat.rate_limit"):
            return await self.limiter.admit(principal, tokens)

    # Validation --------------------------------------------------------------------------------

    async def _validate(
        self, principal: Principal, query: ChatQuery, controls: Controls
    ) -> Controls:
        """Screens the user's message for prompt injection: block refuses (and is audited),
        flag answers but never from or into the cache."""
        with span("chat.validate") as current:
            screening = await self.services.injection_screen.screen_user(
                query.messages[-1]["content"]
            )
            current.set_attribute("injection.action", screening.action)
        if screening.action == "block":
            reasons = list(screening.verdict.reasons)
            await self.services.audit_log.record(
                "injection_blocked", actor=principal.user_id, tenant=principal.tenant,
                outcome="blocked", target="chat", reason="; ".join(reasons),
            )  # fmt: skip
            raise ProblemError(
                400,
                "the message was refused: it reads as an attempt to override the assistant's "
                "instructions",
                code="prompt_injection",
                reasons=reasons,
            )
        if screening.action == "flag":
            return replace(controls, flagged=True)
        return controls

    # Budget ------------------------------------------------------------------------------------

    def _decide(
        self, principal: Principal, query: ChatQuery, controls: Controls, prompt_tokens: int,
        context_tokens: int,
    ) -> cost.Decision | None:  # fmt: skip
        """The cost router's tier for this request; None when no prices are configured."""
        if self.router_options is None:
            return None
        request = cost.RouteRequest(
            question=query.messages[-1]["content"],
            prompt_tokens=prompt_tokens,
            max_tokens=query.max_tokens,
            context_tokens=context_tokens,
            tier_override=controls.tier_override,
            max_cost_usd=controls.max_cost_usd,
        )
        decided = cost.route(request, principal, self.router_options)
        if isinstance(decided, cost.Refusal):
            raise _refusal_problem(decided)
        return decided

    async def _admit_budget(
        self, principal: Principal, query: ChatQuery, controls: Controls, prompt_tokens: int
    ) -> tuple[ChatQuery, Reservation | None]:
        """Reserves the estimated cost; a soft limit steps the tier down, a hard one refuses."""
        context = max(0, prompt_tokens - PROMPT_OVERHEAD_TOKENS)
        decision = self._decide(principal, query, controls, prompt_tokens, context)
        if decision is None:
            return replace(query, tier=controls.tier_override or query.tier), None
        admitted = await self.gate.admit(principal, decision)
        if isinstance(admitted, cost.Refusal):
            raise _refusal_problem(admitted)
        return replace(query, tier=admitted.decision.tier), admitted

    # Cache, retrieval, routing, model ------------------------------------------------------

    async def _answer(
        self,
        principal: Principal,
        query: ChatQuery,
        controls: Controls,
        deadline: Deadline,
        started: float,
    ) -> tuple[ChatResult, str]:
        scope = None
        cache_state = "off"
        if self.cache is not None:
            skip = self.cache.bypass(
                query.messages, temperature=controls.temperature, tools=controls.tools,
                cache_control=controls.cache_control,
            )  # fmt: skip
            if controls.flagged:
                skip = skip._replace(bypass=True, reason="flagged by validation")
            cache_state = f"bypass; {skip.reason}" if skip.bypass else "miss"
            if not skip.bypass:
                scope = self.cache.scope(principal, principal.groups, query.tier, SYSTEM_TEMPLATE)
                with span("chat.cache_lookup"):
                    hit = await self.cache.lookup(scope, standalone_question(query.messages))
                if hit is not None:
                    return self._cached(
                        hit.result, started
                    ), f"hit; {hit.path}; {hit.similarity:.3f}"
        question, chunks = await self.chat.retrieve(principal, query)
        with span("chat.screen_sources"):
            screened = await self.services.injection_screen.screen_documents(chunks)
        chunks = screened.kept
        flagged = frozenset(chunk.id for chunk in screened.flagged)
        tier = query.tier
        with span("chat.cost_router"):
            context_tokens = sum(count_tokens(chunk.text) for chunk in chunks)
            prompt = count_tokens(question) + context_tokens + PROMPT_OVERHEAD_TOKENS
            final = self._decide(principal, query, controls, prompt, context_tokens)
            if final is not None and final.tier != tier and not controls.tier_override:
                # The reservation was made at `tier`; never step up past what was reserved.
                tier = min((tier, final.tier), key=("economy", "standard", "premium").index)
        result = await self.chat.complete(query, question, chunks, tier, deadline, started, flagged)
        result.cost_usd = self._cost_of(result, final)
        await self._store(scope, controls, query, question, result)
        return result, cache_state

    def _cached(self, result: ChatResult, started: float) -> ChatResult:
        return replace(
            result, cached=True, usage=Usage(), cost_usd=0.0, llm_seconds=0.0,
            total_seconds=time.perf_counter() - started, trace_id=current_trace_id(),
        )  # fmt: skip

    async def _store(
        self, scope: Any, controls: Controls, query: ChatQuery, question: str, result: ChatResult
    ) -> None:
        if self.cache is None or scope is None:
            return
        skip = self.cache.bypass(
            query.messages, temperature=controls.temperature, tools=controls.tools,
            cache_control=controls.cache_control, phase="store",
            flagged=controls.flagged or bool(result.warnings),
            citations=len(result.citations),
        )  # fmt: skip
        if skip.bypass:
            return
        with span("chat.cache_store"):
            if await self._citations_current(scope.tenant, result):
                await self.cache.store(scope, question, result)

    async def _citations_current(self, tenant: str, result: ChatResult) -> bool:
        """Whether every cited chunk is still live: retrieval's index refreshes every few
        seconds, so an answer built on a version re-indexed meanwhile must not be cached (its
        invalidation has already run)."""
        for chunk_id in {citation.chunk_id for citation in result.citations}:
            chunk = await self.services.store.read(CHUNKS, chunk_id, tenant)
            if chunk is None or chunk.get("status") != LIVE:
                return False
        return True

    def _cost_of(self, result: ChatResult, decision: cost.Decision | None) -> float:
        """The actual cost from `usage`, logged beside the router's estimate. Models without a
        price (the offline answerer) cost nothing."""
        options = self.router_options
        if options is None or result.model not in options.prices.models:
            return 0.0
        if decision is None:
            return options.prices.actual_cost(result.model, result.usage)
        return cost.log_outcome(decision, result.model, result.usage, options.prices)

    # Settle ----------------------------------------------------------------------------------

    async def _settle(
        self,
        principal: Principal,
        result: ChatResult,
        admitted: ratelimit.Decision | None,
        reservation: Reservation | None,
    ) -> None:
        """Ledger first (the budget audit relies on that order), then budget and tokens."""
        with span("chat.ledger_settle"):
            await self.ledger.record(
                UsageRecord(
                    principal=principal.user_id, tenant=principal.tenant, model=result.model,
                    region=result.region, tier=result.tier,
                    prompt_tokens=result.usage.prompt_tokens,
                    completion_tokens=result.usage.completion_tokens, cost_usd=result.cost_usd,
                    cached=result.cached, trace_id=result.trace_id,
                    reservation_id=reservation.id if reservation else None, time=time.time(),
                )
            )  # fmt: skip
            if reservation is not None:
                await self.gate.settle(reservation, result.cost_usd)
            if admitted is not None and admitted.reservation is not None:
                await self.limiter.settle(admitted.reservation, result.usage.total_tokens)

    async def _give_back(
        self, admitted: ratelimit.Decision | None, reservation: Reservation | None
    ) -> None:
        """A request that failed before a model answered returns what it took."""
        try:
            if reservation is not None:
                await self.gate.release(reservation)
            if admitted is not None and admitted.reservation is not None:
                await self.limiter.settle(admitted.reservation, 0)
        except Exception:  # the original failure matters more; the audit repairs drift
            log.warning("Could not give back a failed request's reservations", exc_info=True)
