"""The governed chat path, in order, each step a span:

auth and validation (by the route) -> rate limit -> cost router (the tier) -> cache lookup ->
[a hit is answered here] -> budget admission -> retrieval -> region router / model; then,
after the response (write-behind): cache store, ledger and settle.

A cache hit costs nothing, so it reserves no budget: the lookup comes before budget
admission, under the router's tier. A miss reserves, and when a soft budget steps the tier
down, its answer is stored under the tier that produced it. Everything taken up front
(rate-limit tokens, budget money) is given back or settled on every exit, so a failed request
never keeps a reservation. Settlements and cache stores run after the response
(shared/chat/behind.py), in the same order as before. Refusals are raised as the owners'
exceptions (RateLimitRefused, Refusal, PromptInjectionBlocked); the HTTP edge answers them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from shared.budgets.admission import WARNING_HEADER, BudgetGate, BudgetReservation
from shared.budgets.ledger import UsageLedger, UsageRecord
from shared.cache import CacheScope, SemanticCache
from shared.chat.behind import WriteBehind
from shared.chat.screen_memo import ScreenMemo
from shared.chat.service import ChatQuery, ChatResult, ChatService, OpenedStream
from shared.llm.prompts import SYSTEM_TEMPLATE
from shared.llm.types import Usage
from shared.resilience import ratelimit
from shared.resilience.ratelimit import Admission, RateLimiter
from shared.resilience.retry import Deadline
from shared.retrieval.condense import standalone_question
from shared.retrieval.search import RetrievedChunk
from shared.routing import cost
from shared.security.audit import AuditLog
from shared.security.chunk_screening import screen_retrieved
from shared.security.injection import InjectionScreen, PromptInjectionBlocked, StoredVerdict
from shared.security.principal import Principal
from shared.storage.cosmos import CosmosStore
from shared.telemetry import current_trace_id, names, span
from shared.telemetry.instruments import record
from shared.tokens import count_tokens

log = logging.getLogger(__name__)
PROMPT_OVERHEAD_TOKENS = 120  # the system prompt and source fences
TIER_ORDER = ("economy", "standard", "premium")


@dataclass(frozen=True)
class Controls:
    """Per-request governance controls."""

    cache_control: str | None = None  # "no-cache" (don't read) or "no-store" (neither)
    temperature: float = 0.0
    tools: bool = False
    tier_override: str | None = None
    max_cost_usd: float | None = None
    flagged: bool = False  # the injection screen flagged the message: never cache it
    injection_score: float = 0.0  # the question's injection score (audit evidence)


@dataclass
class Governed:
    """The answer and the governance headers to send with it."""

    result: ChatResult
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GovernedStream:
    """An answer under way: the headers known before the first piece, then the pieces.

    `pieces` yields text as it is generated and, last, the finished ChatResult (citations,
    usage, cost): the caller must read it to the end, or close it, so the request settles.
    """

    headers: dict[str, str]
    model: str
    region: str
    tier: str
    pieces: AsyncIterator[str | ChatResult]


@dataclass(frozen=True)
class _Streamed:
    """What a stream's end needs to store, cost and settle the answer."""

    scope: CacheScope | None
    controls: Controls
    query: ChatQuery
    question: str
    final: cost.TierChoice | None
    started: float
    verdicts: dict[str, StoredVerdict]


_WORD_PIECE = re.compile(r"\S+\s*|\s+")


def _words(text: str) -> list[str]:
    """Word-sized pieces that join back into `text` exactly."""
    return _WORD_PIECE.findall(text)


def estimated_prompt_tokens(query: ChatQuery, chunk_tokens: int) -> int:
    """Before retrieval: the conversation, `top_k` full chunks and the prompt's own overhead."""
    conversation = sum(count_tokens(message["content"]) for message in query.messages)
    return conversation + query.top_k * chunk_tokens + PROMPT_OVERHEAD_TOKENS


@dataclass
class GovernedChat:
    """Runs one chat request through every control, in the documented order.

    limiter, cache, router_options and gate are None when switched off (RATE_LIMITS_ENABLED,
    CACHE_ENABLED, no LLM_PRICES); `chunks_live(tenant, ids)` says whether cited chunks are
    still the searchable version.
    """

    chat: ChatService
    screen: InjectionScreen
    audit: AuditLog
    ledger: UsageLedger
    chunk_tokens: int  # the longest chunk, for estimates before retrieval
    chunks_live: Callable[[str, Iterable[str]], Awaitable[bool]]
    limiter: RateLimiter | None = None
    cache: SemanticCache | None = None
    router_options: cost.RouterOptions | None = None
    gate: BudgetGate | None = None
    sources_store: CosmosStore | None = None  # chat-time verdicts are written back there
    behind: WriteBehind = field(default_factory=WriteBehind)  # post-response writes
    _screened: ScreenMemo = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Questions are screened once per process (see shared/chat/screen_memo.py)."""
        self._screened = ScreenMemo(self.screen)

    async def run(
        self, principal: Principal, query: ChatQuery, controls: Controls, deadline: Deadline
    ) -> Governed:
        """The governed answer; raises the refusing control's exception."""
        started = time.perf_counter()
        query, controls, admitted, headers = await self._admit(principal, query, controls)
        reservation: BudgetReservation | None = None
        try:
            question, query, decision = self._route(principal, query, controls)
            scope, cache_state, hit = await self._lookup(principal, query, controls, question)
            headers["x-docgate-cache"] = cache_state
            if hit is not None:
                result = self._replayed(hit, started)
                self._settle_behind(principal, result, admitted, None)
                return Governed(result, headers)
            query, reservation, scope = await self._reserve(
                principal, query, decision, scope, headers
            )
            result = await self._answer(principal, query, controls, question, deadline, started)
        except BaseException:
            await self._give_back(admitted, reservation)
            raise
        self._store_behind(scope, controls, query, question, result)
        self._settle_behind(principal, result, admitted, reservation)
        return Governed(result, headers)

    async def stream(
        self, principal: Principal, query: ChatQuery, controls: Controls, deadline: Deadline
    ) -> GovernedStream:
        """The governed answer as it is generated. Every control runs before the first piece
        (a refusal raises here, before any byte is sent); the cache store, the ledger and the
        settlements run once the last piece has gone out."""
        started = time.perf_counter()
        query, controls, admitted, headers = await self._admit(principal, query, controls)
        reservation: BudgetReservation | None = None
        try:
            question, query, decision = self._route(principal, query, controls)
            scope, cache_state, hit = await self._lookup(principal, query, controls, question)
            headers["x-docgate-cache"] = cache_state
            if hit is not None:
                result = self._replayed(hit, started)
                replay = self._after(principal, result, admitted, None)
                return GovernedStream(headers, result.model, result.region, result.tier, replay)
            query, reservation, scope = await self._reserve(
                principal, query, decision, scope, headers
            )
            chunks, flagged, tier, final, verdicts = await self._prepare(
                principal, query, controls, question
            )
            opened = await self.chat.open_stream(query, question, chunks, tier, deadline, flagged)
        except BaseException:
            await self._give_back(admitted, reservation)
            raise
        if opened is None:
            result = self.chat.nothing_found(query, tier, started)
            replay = self._after(principal, result, admitted, reservation)
            return GovernedStream(headers, result.model, result.region, tier, replay)
        context = _Streamed(scope, controls, query, question, final, started, verdicts)
        pieces = self._relay(principal, opened, context, admitted, reservation)
        return GovernedStream(headers, opened.model, opened.region, tier, pieces)

    async def _admit(
        self, principal: Principal, query: ChatQuery, controls: Controls
    ) -> tuple[ChatQuery, Controls, Admission | None, dict[str, str]]:
        """Validation and the rate limit: what was taken, and the headers they add."""
        controls = await self._validate(principal, query, controls)
        prompt_tokens = estimated_prompt_tokens(query, self.chunk_tokens)
        admitted = await self._admit_rate(principal, prompt_tokens + query.max_tokens)
        headers = ratelimit.headers(admitted) if admitted else {}
        if admitted and not admitted.allowed:
            record(
                names.RATE_LIMIT_REJECTIONS,
                1,
                {names.SCOPE: admitted.bucket, names.REASON: admitted.reason},
            )
            raise ratelimit.refusal_of(admitted)
        return query, controls, admitted, headers

    def _route(
        self, principal: Principal, query: ChatQuery, controls: Controls
    ) -> tuple[str, ChatQuery, cost.TierChoice | None]:
        """The standalone question, the query at the router's tier, and the router's decision
        (None without prices): CPU only, before the cache is consulted."""
        with span("chat.condense"):
            question = standalone_question(query.messages)
        if self.router_options is None or self.gate is None:
            return question, replace(query, tier=controls.tier_override or query.tier), None
        prompt_tokens = estimated_prompt_tokens(query, self.chunk_tokens)
        context = max(0, prompt_tokens - PROMPT_OVERHEAD_TOKENS)
        decision = self._decide(principal, query, controls, prompt_tokens, context)
        if decision is None:
            return question, replace(query, tier=controls.tier_override or query.tier), None
        return question, replace(query, tier=decision.tier), decision

    async def _reserve(
        self,
        principal: Principal,
        query: ChatQuery,
        decision: cost.TierChoice | None,
        scope: CacheScope | None,
        headers: dict[str, str],
    ) -> tuple[ChatQuery, BudgetReservation | None, CacheScope | None]:
        """Reserves the estimated cost of a miss; a soft limit steps the tier down (and the
        answer is then stored under that tier), a hard one refuses."""
        if decision is None or self.gate is None:
            return query, None, scope
        with span("chat.budget"):
            admitted = await self.gate.admit(principal, decision)
        if isinstance(admitted, cost.Refusal):
            raise admitted
        if admitted.warning:
            headers[WARNING_HEADER] = admitted.warning
        tier = admitted.decision.tier
        if tier != query.tier:
            query = replace(query, tier=tier)
            if scope is not None and self.cache is not None:
                scope = self.cache.scope(principal, principal.groups, tier, SYSTEM_TEMPLATE)
        return query, admitted, scope

    async def _relay(
        self,
        principal: Principal,
        opened: OpenedStream,
        context: _Streamed,
        admitted: Admission | None,
        reservation: BudgetReservation | None,
    ) -> AsyncIterator[str | ChatResult]:
        """The model's pieces as they come, then the finished (cited, costed) result."""
        text: list[str] = []
        usage, finish_reason = Usage(), "stop"
        finished = False
        try:
            async for piece in opened.chunks:
                if piece.delta:
                    # Exfiltration constructs never reach the client: the neutraliser holds
                    # back only what may still become one (see shared/security/exfiltration).
                    safe = opened.neutraliser.feed(piece.delta)
                    text.append(safe)
                    if safe:
                        yield safe
                usage = piece.usage or usage
                finish_reason = piece.finish_reason or finish_reason
            tail = opened.neutraliser.finish()
            if tail:
                text.append(tail)
                yield tail
            result = self.chat.finish_stream(
                opened, "".join(text), usage, finish_reason, context.started
            )
            if result.neutralised:
                await self._audit_neutralised(principal, context.controls, result, context.verdicts)
            result.cost_usd = self._cost_of(result, context.final)
            self._store_behind(
                context.scope, context.controls, context.query, context.question, result
            )
            self._settle_behind(principal, result, admitted, reservation)
            finished = True
            yield result
        finally:
            if not finished:  # the client went away, or the stream failed mid-way
                await self._give_back(admitted, reservation)

    async def _after(
        self,
        principal: Principal,
        result: ChatResult,
        admitted: Admission | None,
        reservation: BudgetReservation | None,
    ) -> AsyncIterator[str | ChatResult]:
        """A finished answer (a cache hit, or nothing found) replayed word by word."""
        for piece in _words(result.answer):
            yield piece
        self._settle_behind(principal, result, admitted, reservation)
        yield result

    async def _admit_rate(self, principal: Principal, tokens: int) -> Admission | None:
        """The rate limiter's decision; None when rate limits are off."""
        if self.limiter is None:
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
            screening = await self._screened.screen_user(query.messages[-1]["content"])
            current.set_attribute("injection.action", screening.action)
        reasons = list(screening.verdict.reasons)
        if screening.action in ("block", "flag"):
            detected = {names.SOURCE: "user", names.ACTION: screening.action}
            record(names.INJECTION_BLOCKS, 1, detected)
            await self.audit.record(
                "injection_blocked" if screening.action == "block" else "injection_flagged",
                actor=principal.user_id, tenant=principal.tenant,
                outcome="blocked" if screening.action == "block" else "success",
                target="chat", reason="; ".join(reasons), score=screening.verdict.score,
            )  # fmt: skip
        if screening.action == "block":
            raise PromptInjectionBlocked(reasons)
        if screening.action == "flag":
            return replace(controls, flagged=True, injection_score=screening.verdict.score)
        return replace(controls, injection_score=screening.verdict.score)

    # Budget ------------------------------------------------------------------------------------

    def _decide(
        self, principal: Principal, query: ChatQuery, controls: Controls, prompt_tokens: int,
        context_tokens: int,
    ) -> cost.TierChoice | None:  # fmt: skip
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
            raise decided
        return decided

    # Cache, retrieval, routing, model ------------------------------------------------------

    async def _answer(
        self,
        principal: Principal,
        query: ChatQuery,
        controls: Controls,
        question: str,
        deadline: Deadline,
        started: float,
    ) -> ChatResult:
        """A cache miss: retrieval, the source screen, the model, and the actual cost."""
        chunks, flagged, tier, final, verdicts = await self._prepare(
            principal, query, controls, question
        )
        result = await self.chat.complete(query, question, chunks, tier, deadline, started, flagged)
        if result.neutralised:
            await self._audit_neutralised(principal, controls, result, verdicts)
        result.cost_usd = self._cost_of(result, final)
        return result

    async def _prepare(
        self, principal: Principal, query: ChatQuery, controls: Controls, question: str
    ) -> tuple[
        list[RetrievedChunk], frozenset[str], str, cost.TierChoice | None, dict[str, StoredVerdict]
    ]:
        """Retrieval, the source screen and the final tier: the chunks to ground on, those
        flagged, the tier to call, the router's decision for it and each source's verdict."""
        chunks = await self.chat.retrieve(principal, question, query)
        with span("chat.screen_sources"):
            screened, verdicts = await screen_retrieved(
                self.screen, self.sources_store, principal.tenant, chunks
            )
        for action, found in (("flag", screened.flagged), ("drop", screened.dropped)):
            if found:
                detected = {names.SOURCE: "document", names.ACTION: action}
                record(names.INJECTION_BLOCKS, len(found), detected)
        chunks = screened.kept
        flagged = frozenset(chunk.id for chunk in screened.flagged)
        tier = query.tier
        with span("chat.cost_router"):
            context_tokens = sum(count_tokens(chunk.text) for chunk in chunks)
            prompt = count_tokens(question) + context_tokens + PROMPT_OVERHEAD_TOKENS
            final = self._decide(principal, query, controls, prompt, context_tokens)
            if final is not None and final.tier != tier and not controls.tier_override:
                # The reservation was made at `tier`; never step up past what was reserved.
                tier = min((tier, final.tier), key=TIER_ORDER.index)
        return chunks, flagged, tier, final, verdicts

    async def _lookup(
        self, principal: Principal, query: ChatQuery, controls: Controls, question: str
    ) -> tuple[CacheScope | None, str, ChatResult | None]:
        """The cache scope to store into (None: bypassed), the cache state header, and a hit."""
        if self.cache is None:
            return None, "off", None
        skip = self.cache.bypass(
            query.messages, temperature=controls.temperature, tools=controls.tools,
            cache_control=controls.cache_control,
        )  # fmt: skip
        if controls.flagged:
            skip = skip._replace(bypass=True, reason="flagged by validation")
        if skip.bypass:
            _count_lookup("bypass", skip.reason)
            return None, f"bypass; {skip.reason}", None
        scope = self.cache.scope(principal, principal.groups, query.tier, SYSTEM_TEMPLATE)
        with span("chat.cache_lookup"):
            await self.behind.wait(scope.partition)  # this instance's stores still under way
            hit = await self.cache.lookup(scope, question)
        if hit is None:
            _count_lookup("miss", "no similar question")
            return scope, "miss", None
        _count_lookup("hit", hit.path)
        state = f"hit; {hit.path}; {hit.similarity:.3f}"
        return scope, state, hit.result

    async def _audit_neutralised(
        self,
        principal: Principal,
        controls: Controls,
        result: ChatResult,
        verdicts: dict[str, StoredVerdict],
    ) -> None:
        """Evidence for operators: what was removed, with the question's and the sources' top
        injection scores (the likeliest carriers of the payload)."""
        kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(result.neutralised.items()))
        source_score = max((verdict.score for verdict in verdicts.values()), default=0.0)
        suspects = [
            verdicts[c.chunk_id].reasons for c in result.citations if c.chunk_id in verdicts
        ]
        reasons = sorted({reason for found in suspects for reason in found})[:6]
        reason = (
            f"removed {kinds}; question score {controls.injection_score:.2f}, top source score "
            f"{source_score:.2f}" + (f"; cited sources: {'; '.join(reasons)}" if reasons else "")
        )
        await self.audit.record(
            "answer_neutralised", actor=principal.user_id, tenant=principal.tenant,
            outcome="blocked", target=result.trace_id or "chat", reason=reason,
            score=max(controls.injection_score, source_score),
        )  # fmt: skip

    def _replayed(self, result: ChatResult, started: float) -> ChatResult:
        return replace(
            result, cached=True, usage=Usage(), cost_usd=0.0, llm_seconds=0.0,
            total_seconds=time.perf_counter() - started, trace_id=current_trace_id(),
        )  # fmt: skip

    async def _store(
        self,
        scope: CacheScope | None,
        controls: Controls,
        query: ChatQuery,
        question: str,
        result: ChatResult,
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
            # Retrieval's index refreshes every few seconds: an answer built on a version
            # re-indexed meanwhile must not be cached (its invalidation has already run).
            cited = {citation.chunk_id for citation in result.citations}
            if await self.chunks_live(scope.tenant, cited):
                await self.cache.store(scope, question, result)

    def _store_behind(
        self,
        scope: CacheScope | None,
        controls: Controls,
        query: ChatQuery,
        question: str,
        result: ChatResult,
    ) -> None:
        """Stores the answer after the response (filed under its partition: see _lookup)."""
        if self.cache is not None and scope is not None:
            store = self._store(scope, controls, query, question, result)
            self.behind.submit(store, key=scope.partition, what="cache store")

    def _cost_of(self, result: ChatResult, decision: cost.TierChoice | None) -> float:
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
        admitted: Admission | None,
        reservation: BudgetReservation | None,
    ) -> None:
        """Ledger first (the budget audit relies on that order), then budget and tokens."""
        if result.cost_usd:
            tenant, tier, model = principal.tenant, result.tier, result.model
            by = {names.TENANT: tenant, names.TIER: tier, names.MODEL: model}
            record(names.COST, result.cost_usd, by)
        with span("chat.ledger_settle"):
            await self.ledger.record(
                UsageRecord(
                    principal=principal.user_id, tenant=principal.tenant, model=result.model,
                    region=result.region, tier=result.tier,
                    prompt_tokens=result.usage.prompt_tokens,
                    completion_tokens=result.usage.completion_tokens, cost_usd=result.cost_usd,
                    cached=result.cached, trace_id=result.trace_id,
                    reservation_id=reservation.id if reservation else None, time=time.time(),
                    leases=reservation.leases if reservation else (),
                )
            )  # fmt: skip
            if reservation is not None and self.gate is not None:
                await self.gate.settle(reservation, result.cost_usd)
            if admitted is not None and self.limiter is not None:
                await self.limiter.settle(admitted.reservation, result.usage.total_tokens)

    def _settle_behind(
        self,
        principal: Principal,
        result: ChatResult,
        admitted: Admission | None,
        reservation: BudgetReservation | None,
    ) -> None:
        """Ledger, budget and tokens after the response (see shared/chat/behind.py)."""
        settle = self._settle(principal, result, admitted, reservation)
        self.behind.submit(settle, what="settlement")

    async def _give_back(
        self, admitted: Admission | None, reservation: BudgetReservation | None
    ) -> None:
        """A request that failed before a model answered returns what it took."""
        try:
            if reservation is not None and self.gate is not None:
                await self.gate.release(reservation)
            if admitted is not None and self.limiter is not None:
                await self.limiter.settle(admitted.reservation, 0)
        except Exception:  # the original failure matters more; the audit repairs drift
            log.warning("Could not give back a failed request's reservations", exc_info=True)


def _count_lookup(outcome: str, reason: str) -> None:
    """One semantic-cache lookup on docgate.cache.lookups; numbers in a reason are dropped
    ("temperature 0.7 above 0.3" -> "temperature above"), so its values stay few."""
    kind = " ".join(word for word in reason.split() if not any(c.isdigit() for c in word))
    record(names.CACHE_LOOKUPS, 1, {names.OUTCOME: outcome, names.REASON: kind})
