"""Answering a chat request: condense, retrieve (ACL-trimmed), ground, route to a model, cite."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from shared.documents.pagespans import page_of
from shared.llm.prompts import (
    NOT_FOUND_ANSWER,
    Source,
    build_messages,
    cited_numbers,
    strip_unknown_citations,
)
from shared.llm.types import LlmChunk, LlmRequest, LlmResponse, Usage
from shared.resilience.retry import Deadline
from shared.retrieval.search import RetrievedChunk, Retriever
from shared.security.exfiltration import (
    AnswerNeutraliser,
    LinkPolicy,
    count_neutralised,
    neutralise,
)
from shared.security.injection import spotlight
from shared.security.principal import Principal
from shared.telemetry import current_trace_id, span

NOTHING_FOUND = NOT_FOUND_ANSWER
NO_SOURCES_MODEL = "none"
QUOTE_CHARS = 240
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# A quotable piece: a sentence, or a line (bullets, table rows and slide text end without stops).
_QUOTE_PIECE = re.compile(r"\S[^\n]*?(?:[.!?](?=\s)|(?=\n)|$)", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Citation:
    """Where a claim comes from."""

    number: int
    document_id: str
    document_name: str
    page: int
    pages: list[int]
    chunk_id: str
    quote: str

    def as_json(self) -> dict[str, Any]:
        """The citation as the APIs return it."""
        return {
            "number": self.number,
            "document_id": self.document_id,
            "document_name": self.document_name,
            "page": self.page,
            "pages": self.pages,
            "chunk_id": self.chunk_id,
            "quote": self.quote,
        }


@dataclass
class ChatResult:
    """A grounded answer and everything the response headers and ledger need."""

    answer: str
    citations: list[Citation]
    model: str
    tier: str
    region: str
    usage: Usage
    trace_id: str
    llm_seconds: float = 0.0
    total_seconds: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    warnings: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    neutralised: dict[str, int] = field(default_factory=dict)  # exfiltration constructs removed

    @property
    def overhead_ms(self) -> float:
        """Time spent outside the model call."""
        return max(0.0, (self.total_seconds - self.llm_seconds) * 1000)


@dataclass(frozen=True)
class ChatQuery:
    """What the caller asked, after validation."""

    messages: list[dict[str, str]]
    filters: dict[str, Any] | None
    top_k: int
    tier: str
    max_tokens: int = 512
    temperature: float = 0.0


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def best_quote(chunk_text: str, claim: str) -> tuple[str, int]:
    """The chunk's sentence or line sharing most words with the claim, trimmed for display,
    and where it starts in the chunk (its page is the citation's page)."""
    pieces = [(m.group(), m.start()) for m in _QUOTE_PIECE.finditer(chunk_text)]
    if not pieces:
        return chunk_text[:QUOTE_CHARS], 0
    claim_words = _words(claim)
    best, offset = max(pieces, key=lambda piece: len(_words(piece[0]) & claim_words))
    quote = best if len(best) <= QUOTE_CHARS else best[: QUOTE_CHARS - 1].rstrip() + "…"
    return quote, offset


def claims_by_source(answer: str) -> dict[int, str]:
    """For each cited source number, the answer sentence(s) citing it."""
    claims: dict[int, list[str]] = {}
    for sentence in _SENTENCE.split(answer):
        for number in cited_numbers(sentence):
            claims.setdefault(number, []).append(sentence)
    return {number: " ".join(sentences) for number, sentences in claims.items()}


def uncited_sentences(answer: str) -> list[str]:
    """Sentences making a claim without a citation marker (the refusal sentence excepted)."""
    return [
        sentence
        for sentence in _SENTENCE.split(answer.strip())
        if sentence
        and not cited_numbers(sentence)
        and NOTHING_FOUND not in sentence
        and len(_words(sentence)) > 3
    ]


def sources_of(chunks: list[RetrievedChunk], flagged: frozenset[str] = frozenset()) -> list[Source]:
    """The numbered sources the model sees (1-based, in retrieval order); chunks flagged by the
    injection screen carry a notice, inside their fence, that they are data, not instructions."""
    return [
        Source(number=index, document_name=chunk.document_name, pages=list(chunk.pages),
               text=spotlight(chunk.text) if chunk.id in flagged else chunk.text)
        for index, chunk in enumerate(chunks, start=1)
    ]  # fmt: skip


def cite(answer: str, chunks: list[RetrievedChunk]) -> tuple[str, list[Citation]]:
    """Drops markers pointing at no source; returns the answer and its citations in order."""
    answer = strip_unknown_citations(answer, set(range(1, len(chunks) + 1)))
    claims = claims_by_source(answer)
    citations = []
    for number in sorted(claims):
        chunk = chunks[number - 1]
        quote, offset = best_quote(chunk.text, claims[number])
        citations.append(
            Citation(
                number=number,
                document_id=chunk.document_id,
                document_name=chunk.document_name,
                page=page_of(chunk.page_spans, offset, chunk.pages),
                pages=list(chunk.pages),
                chunk_id=chunk.id,
                quote=quote,
            )
        )
    return answer, citations


ModelCall = Callable[[LlmRequest, str, Deadline], Awaitable[tuple[LlmResponse, str]]]
# (request, tier, deadline) -> the chunks, who serves them, and its model
ModelStream = Callable[
    [LlmRequest, str, Deadline], Awaitable[tuple[AsyncIterator[LlmChunk], str, str]]
]


@dataclass
class OpenedStream:
    """A model stream under way: its chunks, who serves it, and what its answer needs."""

    chunks: AsyncIterator[LlmChunk]
    query: ChatQuery
    region: str
    model: str
    sources: list[RetrievedChunk]
    llm_started: float
    neutraliser: AnswerNeutraliser  # every delta passes through it before the client sees it


def grounded_request(
    query: ChatQuery, question: str, chunks: list[RetrievedChunk], flagged: frozenset[str]
) -> LlmRequest:
    """The model's request: the grounded prompt over the sources, and the conversation so far."""
    history = [m for m in query.messages[:-1] if m["role"] in ("user", "assistant")]
    return LlmRequest(
        messages=build_messages(question, history, sources_of(chunks, flagged)),
        max_tokens=query.max_tokens,
        temperature=query.temperature,
    )


class ChatService:
    """The chat path: retrieve -> ground -> model -> cite.

    `model_call(request, tier, deadline)` is the region router's `serve` (or the offline
    extractive answerer's when no region is configured): the response and who served it.
    """

    def __init__(
        self,
        retriever: Retriever,
        model_call: ModelCall,
        model_stream: ModelStream,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.retriever = retriever
        self.model_call = model_call
        self.model_stream = model_stream
        self.allowed_hosts = allowed_hosts

    async def retrieve(
        self, principal: Principal, question: str, query: ChatQuery
    ) -> list[RetrievedChunk]:
        """The chunks the caller may read that answer the (standalone) question."""
        with span("chat.retrieve", top_k=query.top_k):
            return await self.retriever.retrieve(question, principal, query.filters, query.top_k)

    async def complete(
        self,
        query: ChatQuery,
        question: str,
        chunks: list[RetrievedChunk],
        tier: str,
        deadline: Deadline,
        started: float,
        flagged: frozenset[str] = frozenset(),
    ) -> ChatResult:
        """The model's grounded answer over retrieved chunks, at `tier`, with citations."""
        query = replace(query, tier=tier)
        if not chunks:
            return self.nothing_found(query, query.tier, started)
        request = grounded_request(query, question, chunks, flagged)
        llm_started = time.perf_counter()
        with span("chat.llm", tier=query.tier) as current:
            response, region = await self.model_call(request, query.tier, deadline)
            current.set_attribute("llm.region", region)
            current.set_attribute("llm.model", response.model)
        llm_seconds = time.perf_counter() - llm_started
        return self._result(query, response, region, chunks, started, llm_seconds)

    async def open_stream(
        self,
        query: ChatQuery,
        question: str,
        chunks: list[RetrievedChunk],
        tier: str,
        deadline: Deadline,
        flagged: frozenset[str] = frozenset(),
    ) -> OpenedStream | None:
        """The model's grounded answer as a stream (None when no source was found)."""
        query = replace(query, tier=tier)
        if not chunks:
            return None
        request = grounded_request(query, question, chunks, flagged)
        llm_started = time.perf_counter()
        with span("chat.llm_stream", tier=query.tier) as current:
            pieces, region, model = await self.model_stream(request, query.tier, deadline)
            current.set_attribute("llm.region", region)
        neutraliser = AnswerNeutraliser(self._link_policy(chunks))
        return OpenedStream(pieces, query, region, model, chunks, llm_started, neutraliser)

    def finish_stream(
        self, opened: OpenedStream, text: str, usage: Usage, finish_reason: str, started: float
    ) -> ChatResult:
        """The streamed answer (`text`: as the neutraliser let it through), cited, once its
        last chunk has arrived."""
        response = LlmResponse(text, opened.model, usage, finish_reason)
        llm_seconds = time.perf_counter() - opened.llm_started
        return self._result(
            opened.query, response, opened.region, opened.sources, started, llm_seconds,
            opened.neutraliser.findings,
        )  # fmt: skip

    def _link_policy(self, chunks: list[RetrievedChunk]) -> LinkPolicy:
        """Links an answer over `chunks` may keep: allowed hosts and URLs the sources quote."""
        return LinkPolicy.for_sources(self.allowed_hosts, [chunk.text for chunk in chunks])

    def nothing_found(self, query: ChatQuery, tier: str, started: float) -> ChatResult:
        """The answer when no source the caller may read answers the question."""
        return ChatResult(
            answer=NOTHING_FOUND, citations=[], model=NO_SOURCES_MODEL, tier=tier,
            region=NO_SOURCES_MODEL, usage=Usage(), trace_id=current_trace_id(),
            total_seconds=time.perf_counter() - started,
        )  # fmt: skip

    def _result(
        self,
        query: ChatQuery,
        response: LlmResponse,
        region: str,
        chunks: list[RetrievedChunk],
        started: float,
        llm_seconds: float,
        findings: Counter[str] | None = None,
    ) -> ChatResult:
        """The cited result; the answer neutralised here unless `findings` says it was."""
        if findings is None:
            content, findings = neutralise(response.content, self._link_policy(chunks))
        else:  # streamed: neutralised piece by piece already
            content = response.content
        count_neutralised(findings)
        answer, citations = cite(content, chunks)
        warnings = []
        uncited = uncited_sentences(answer)
        if uncited:
            warnings.append(f"{len(uncited)} sentence(s) of the answer cite no source")
        return ChatResult(
            answer=answer,
            citations=citations,
            model=response.model,
            tier=query.tier,
            region=region,
            usage=response.usage,
            trace_id=current_trace_id(),
            llm_seconds=llm_seconds,
            total_seconds=time.perf_counter() - started,
            warnings=warnings,
            finish_reason=response.finish_reason,
            neutralised=dict(findings),
        )
